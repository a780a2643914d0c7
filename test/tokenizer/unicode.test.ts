// Every Unicode scalar value, one at a time, through the Hugging Face Rust normalizer and
// pre-tokenizer (npm `tokenizers`) and through ours. Also re-derives the committed tables in
// tokenizer/unicode_tables.ts, so a tokenizers upgrade or a Node/ICU change that moves a character
// fails here with its code point (fix: `npx ts-node --transpile-only tokenizer/generate_unicode_tables.ts`).

import * as assert from 'assert';
import { allScalars, probeAll, probeNormalizer, probePreTokenizer, ProbedTables } from '../../tokenizer/generate_unicode_tables';
import { BertNormalizerConfig, normalizeChar } from '../../tokenizer/normalizer';
import { isPunctuation, isWhitespace } from '../../tokenizer/unicode';
import * as tables from '../../tokenizer/unicode_tables';

type Rust = Parameters<typeof probeAll>[0];

function hex(c: number): string {
  return 'U+' + c.toString(16).toUpperCase().padStart(4, '0');
}

function firstDiffs<T>(cps: number[], ours: (c: number) => T, theirs: (c: number) => T, max = 8): string[] {
  const out: string[] = [];
  for (const c of cps) {
    const a = ours(c);
    const b = theirs(c);
    if (a !== b && out.length < max) out.push(`${hex(c)}: ours ${JSON.stringify(a)} vs HF ${JSON.stringify(b)}`);
  }
  return out;
}

describe('tokenizer/unicode: every code point vs the Rust library', function () {
  this.timeout(180_000);
  let tk: Rust;
  const cps = allScalars().concat([0x1c2]);

  before(function () {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    tk = require('tokenizers') as Rust;
  });

  it('the committed tables are what the installed tokenizers + Node ICU produce', async function () {
    const probed: ProbedTables = await probeAll(tk);
    assert.deepStrictEqual(probed.other, tables.RUST_IS_OTHER, 'RUST_IS_OTHER');
    assert.deepStrictEqual(probed.whitespace, tables.RUST_IS_WHITESPACE, 'RUST_IS_WHITESPACE');
    assert.deepStrictEqual(probed.bertPunctuation, tables.RUST_IS_BERT_PUNCTUATION, 'RUST_IS_BERT_PUNCTUATION');
    assert.deepStrictEqual(probed.markNonspacing, tables.RUST_IS_MARK_NONSPACING, 'RUST_IS_MARK_NONSPACING');
    assert.deepStrictEqual(probed.nfdExceptions, tables.RUST_NFD_EXCEPTIONS.map(([c, s]) => [c, s]), 'RUST_NFD_EXCEPTIONS');
    assert.deepStrictEqual(probed.lowercaseExceptions, tables.RUST_LOWERCASE_EXCEPTIONS.map(([c, s]) => [c, s]), 'RUST_LOWERCASE_EXCEPTIONS');
    assert.deepStrictEqual(probed.cccUnknownToRust, tables.RUST_CCC_UNKNOWN, 'RUST_CCC_UNKNOWN');
    assert.deepStrictEqual(probed.notWordChars, tables.RUST_NOT_WORD_CHARS, 'RUST_NOT_WORD_CHARS');
  });

  const configs: Array<[string, BertNormalizerConfig]> = [
    ['bert-base-uncased', { cleanText: true, handleChineseChars: true, stripAccents: true, lowercase: true }],
    ['cased (no lowercase, no strip)', { cleanText: true, handleChineseChars: true, stripAccents: false, lowercase: false }],
    ['lowercase without strip_accents', { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true }],
  ];
  for (const [name, cfg] of configs) {
    it(`BertNormalizer (${name}) maps every code point like Rust`, function () {
      const rust = probeNormalizer(tk.bertNormalizer(cfg), cps.filter((c) => c !== 0x1c2));
      const diffs = firstDiffs([...rust.keys()], (c) => normalizeChar(String.fromCodePoint(c), c, cfg), (c) => rust.get(c)!);
      assert.deepStrictEqual(diffs, []);
    });
  }

  it('BertPreTokenizer splits on exactly the same whitespace and punctuation', function () {
    const rust = probePreTokenizer(tk.bertPreTokenizer(), cps);
    const ours = (c: number) => (isWhitespace(c) ? 'W' : isPunctuation(c) ? 'P' : 'N');
    assert.deepStrictEqual(firstDiffs(cps, ours, (c) => rust.get(c)!), []);
  });
});
