// Differential tests: our BertTokenizer against Hugging Face's Rust tokenizer (npm `tokenizers`, the
// library behind AutoTokenizer/BertTokenizerFast) loading the genuine bert-base-uncased tokenizer.json
// (= e5's vocabulary). Input ids, token type ids, tokens, offsets, attention mask, length and the
// truncated flag must be identical on a committed corpus of named edge cases and on 100k seeded
// random strings. Known exceptions: none.
// The same comparison against Python's transformers.AutoTokenizer (the fast tokenizer e5 users get,
// run by the reference Python of test/support/python.ts), pairs and offsets included.

import * as assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BertTokenizer } from '../../tokenizer';
import { randomCases, rng } from '../../devtools/random-text';
import { PYTHON, skipUnlessHuggingFace } from '../support/python';
import { diff, loadCorpus, loadRust, ourOutcome, Outcome, rustOutcomes, RustTokenizer } from '../fixtures/tokenizer/support';

const repoRoot = path.resolve(__dirname, '..', '..');
const sharedDir = path.resolve(repoRoot, '..', 'shared');
const modelDir = path.join(sharedDir, 'data', 'bert-base-uncased');

describe('tokenizer: differential vs Hugging Face Rust tokenizers (bert-base-uncased)', function () {
  let ours: BertTokenizer;
  let rust: RustTokenizer;

  before(function () {
    if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) {
      console.log(`    skipping: ${modelDir}/tokenizer.json not found (../shared is absent)`);
      this.skip();
    }
    ours = BertTokenizer.fromFolder(modelDir);
    rust = loadRust(path.join(modelDir, 'tokenizer.json'));
  });

  describe('named edge cases (test/fixtures/tokenizer/corpus.json)', function () {
    const corpus = loadCorpus();
    let ref: Outcome[] = [];
    before(async function () {
      ref = await rustOutcomes(rust, corpus);
    });
    for (const [i, c] of corpus.entries()) {
      it(c.name, function () {
        const d = diff(ourOutcome(ours, c), ref[i]);
        assert.strictEqual(d, null, `${c.name} ${JSON.stringify(c.text.slice(0, 80))}: ${d}`);
      });
    }
    it('the corpus covers >512-token texts and every pair truncation shape', function () {
      const truncatedPairs = corpus.filter((c, i) => c.pair !== undefined && ref[i].truncated);
      assert.ok(corpus.some((c, i) => c.maxLength === undefined && ref[i].truncated), 'a text over 512 tokens');
      assert.ok(truncatedPairs.length >= 10, `pairs truncated: ${truncatedPairs.length}`);
    });
  });

  it('added tokens with single_word / lstrip / rstrip / normalized flags: identical on 10,000 strings', async function () {
    this.timeout(120_000);
    const json = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
    const extra = [
      { id: 30522, content: 'Héllo Wörld', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
      { id: 30523, content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
      { id: 30524, content: 'ony', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false },
      { id: 30525, content: 'New-Token', single_word: true, lstrip: true, rstrip: false, normalized: true, special: false },
    ];
    json.added_tokens.push(...extra);
    const oursX = BertTokenizer.fromTokenizerJson(json);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const rustX = (require('tokenizers') as { Tokenizer: { fromString(s: string): RustTokenizer } }).Tokenizer.fromString(JSON.stringify(json));
    const r = rng(5);
    const bits = ['hello world', 'HELLO  WORLD', 'Hello World', 'héllo wörld', '<mask>', ' <mask> ', '\t<mask>\u2000', 'ony', 'Tony', 'ony.', 'new-token', 'NEW-TOKEN', 'x new-token', '中ony'];
    const cases = randomCases(11, 10_000).map((c) => {
      const words = c.text.split(' ');
      for (let k = 0; k < 3; k++) words.splice(Math.floor(r() * (words.length + 1)), 0, bits[Math.floor(r() * bits.length)]);
      return { ...c, text: words.join(r() < 0.8 ? ' ' : '') };
    });
    const ref = await rustOutcomes(rustX, cases);
    const failures = cases.map((c, i) => diff(ourOutcome(oursX, c), ref[i])).map((d, i) => (d ? `#${i} ${JSON.stringify(cases[i])}\n      ${d}` : '')).filter(Boolean);
    assert.ok(ref.some((o) => o.ids.includes(30522)) && ref.some((o) => o.ids.includes(30523)) && ref.some((o) => o.ids.includes(30525)));
    assert.strictEqual(failures.length, 0, failures.slice(0, 10).join('\n'));
  });

  it('100,000 seeded random strings mixing scripts and categories: identical', async function () {
    this.timeout(300_000);
    const N = 100_000;
    const cases = randomCases(20240601, N);
    const t0 = Date.now();
    const ref = await rustOutcomes(rust, cases);
    const t1 = Date.now();
    const failures: string[] = [];
    let tokens = 0;
    cases.forEach((c, i) => {
      const o = ourOutcome(ours, c);
      tokens += o.ids.length;
      const d = diff(o, ref[i]);
      if (d) failures.push(`#${i} ${JSON.stringify(c)}\n      ${d}`);
    });
    console.log(`    ${N} cases, ${tokens} tokens, ${cases.filter((c) => c.pair !== undefined).length} pairs, ` +
      `${ref.filter((r) => r.truncated).length} truncated; HF ${t1 - t0} ms, ours ${Date.now() - t1} ms; ${failures.length} mismatches`);
    assert.strictEqual(failures.length, 0, failures.slice(0, 10).join('\n'));
  });
});

/** Lone UTF-16 surrogates as U+FFFD: what Node's bindings hand to Rust, and the only way to pass them to Python. */
function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** transformers.AutoTokenizer's outcomes for `cases` (test/parity/hf_tokenize.py, one batched process). */
function autoTokenizerOutcomes(cases: RandomCaseLike[]): { tokenizer: string; isFast: boolean; version: string; outcomes: Outcome[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-autotok-'));
  try {
    const casesFile = path.join(dir, 'cases.json'), out = path.join(dir, 'out.json');
    fs.writeFileSync(casesFile, JSON.stringify(cases.map((c) => ({ ...c, text: wellFormed(c.text), ...(c.pair !== undefined ? { pair: wellFormed(c.pair) } : {}) }))));
    execFileSync(PYTHON, [path.join(repoRoot, 'test', 'parity', 'hf_tokenize.py'), '--model', modelDir, '--cases', casesFile, '--output', out], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
    const r = JSON.parse(fs.readFileSync(out, 'utf8'));
    return { tokenizer: r.tokenizer, isFast: r.is_fast, version: r.versions.transformers, outcomes: r.outcomes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
type RandomCaseLike = { text: string; pair?: string; maxLength?: number; addSpecialTokens?: boolean };

describe('tokenizer: differential vs transformers.AutoTokenizer (Python, bert-base-uncased)', function () {
  this.timeout(600_000);
  let ours: BertTokenizer;

  before(function () {
    if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) {
      console.log(`    skipping: ${modelDir}/tokenizer.json not found (../shared is absent)`);
      this.skip();
    }
    skipUnlessHuggingFace(this, 'transformers');
    ours = BertTokenizer.fromFolder(modelDir);
  });

  function compare(cases: RandomCaseLike[]): { failures: string[]; pairs: number; truncated: number } {
    const ref = autoTokenizerOutcomes(cases);
    assert.ok(ref.isFast, `AutoTokenizer gave ${ref.tokenizer}, not a fast tokenizer`);
    console.log(`      ${ref.tokenizer} (fast) from transformers ${ref.version}, ${cases.length} cases`);
    const failures = cases.map((c, i) => diff(ourOutcome(ours, c), ref.outcomes[i])).map((d, i) => (d ? `#${i} ${JSON.stringify(cases[i]).slice(0, 200)}\n      ${d}` : '')).filter(Boolean);
    return { failures, pairs: cases.filter((c) => c.pair !== undefined).length, truncated: ref.outcomes.filter((o) => o.truncated).length };
  }

  it('named edge cases (corpus.json): identical, pairs and truncation included', function () {
    const r = compare(loadCorpus());
    assert.ok(r.pairs >= 10 && r.truncated >= 10, `pairs ${r.pairs}, truncated ${r.truncated}`);
    assert.strictEqual(r.failures.length, 0, r.failures.slice(0, 10).join('\n'));
  });

  it('25,000 seeded random strings mixing scripts and categories (another seed than above): identical', function () {
    const cases = randomCases(20251204, 25_000);
    const r = compare(cases);
    assert.ok(r.pairs > 250 && r.truncated > 0, `pairs ${r.pairs}, truncated ${r.truncated}`);
    assert.strictEqual(r.failures.length, 0, r.failures.slice(0, 10).join('\n'));
  });
});
