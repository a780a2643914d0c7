/**
 * Parity with the Hugging Face stack itself, on generated models (the e5-large shape is in
 * `make parity-large`):
 * - the goldens name the transformers stack that made them;
 * - the plain-torch BERT (test/parity/bert_torch.py) is an independent second reference: it must
 *   give transformers' every hook point on a sharded, `bert.`-prefixed F16 folder with head ablation;
 * - `e5 embed` equals `SentenceTransformer(folder).encode(texts, normalize_embeddings=True)` within 1e-5
 *   on the model card's texts and on a padded batch up to 512 tokens;
 * - `e5 similarity` equals the model card's `(q @ p.T) * 100` (AutoTokenizer + AutoModel + average_pool).
 */
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { compareArrays } from '../../engine/compare';
import { hfEmbed } from './hf-stack';
import { GOLDEN_CASES, GOLDEN_DIR, longTexts, modelCard, modelCardTexts } from './make-golden';
import { e5, REPO_ROOT, tempDir } from '../support/cli';
import { cachedModel, hasSharedVocab } from '../../devtools/generate-model';
import { readAll } from '../support/golden';
import { PYTHON, pythonCanImport, pythonStack, skipUnlessHuggingFace } from '../support/python';
import { toleranceFor } from '../support/tolerance';

const PARITY = path.join(REPO_ROOT, 'test', 'parity');
const CARD = modelCard();
const CARD_TEXTS = modelCardTexts();

interface Embedded { embedding: number[]; n_tokens: number; truncated: boolean }

async function e5Embed(model: string, texts: string[], work: string): Promise<Embedded[]> {
  const input = path.join(work, 'texts.jsonl');
  fs.writeFileSync(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const r = await e5(['embed', '--model', model, '--input', input, '--prefix', 'none', '--format', 'json'], { timeoutMs: 180_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).embeddings as Embedded[];
}

function assertClose(ours: number[][], ref: number[][], atol: number, what: string): number {
  assert.equal(ours.length, ref.length, `${what}: rows`);
  const r = compareArrays(Float32Array.from(ours.flat()), Float32Array.from(ref.flat()), [ref.length, ref[0].length], { atol });
  assert.ok(r.pass, `${what}: max abs diff ${r.maxAbs} at [${r.where}] > ${atol}`);
  return r.maxAbs;
}

describe('parity with the Hugging Face stack (transformers, sentence-transformers)', function () {
  this.timeout(600_000);

  before(function () {
    if (pythonCanImport('transformers')) {
      const v = pythonStack();
      console.log(`      reference: ${PYTHON}: ${Object.entries(v).map(([k, x]) => `${k} ${x}`).join(', ')}`);
    }
  });

  it('the goldens were made by transformers, and the manifest names the stack', function () {
    if (GOLDEN_DIR !== path.join(REPO_ROOT, 'test', 'golden')) skipUnlessHuggingFace(this, 'transformers');
    const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN_DIR, 'manifest.json'), 'utf8'));
    assert.ok(manifest.reference?.transformers, 'manifest.json has no reference.transformers');
    for (const c of GOLDEN_CASES) {
      const meta = readAll(path.join(GOLDEN_DIR, `${c.name}.safetensors`)).metadata;
      assert.equal(meta.impl, `transformers ${manifest.reference.transformers}`, `${c.name}: impl`);
      assert.equal(meta.torch_version, manifest.reference.torch, `${c.name}: torch_version`);
    }
  });

  it('the plain-torch BERT gives transformers\' every hook point (sharded F16, bert. prefix, head ablation)', function () {
    skipUnlessHuggingFace(this, 'transformers');
    const work = tempDir('e5-torch-vs-hf-');
    try {
      const model = path.join(work, 'model');
      execFileSync(PYTHON, [path.join(PARITY, 'make_random_bert.py'), '--output', model, '--dtype', 'F16', '--shards', '3', '--prefix', 'bert.', '--no-pooler', '--layers', '3'], { stdio: 'ignore' });
      const ids = path.join(work, 'ids.json');
      fs.writeFileSync(ids, JSON.stringify({
        input_ids: [[2, 17, 45, 3, 9, 11, 3], [0, 0, 2, 60, 61, 62, 3], [2, 5, 3, 0, 0, 0, 0]],
        attention_mask: [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]],
        token_type_ids: [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],
      }));
      const dump = (impl: string) => {
        const out = path.join(work, `${impl}.safetensors`);
        execFileSync(PYTHON, [path.join(PARITY, 'reference.py'), '--model', model, '--ids', ids, '--output', out, '--impl', impl, '--hooks', 'all', '--ablate', '1.2,0.0'], { stdio: ['ignore', 'ignore', 'pipe'] });
        return readAll(out);
      };
      const hf = dump('transformers'), pt = dump('torch');
      assert.match(hf.metadata.impl, /^transformers \d/);
      assert.equal(pt.metadata.impl, 'torch');
      assert.deepEqual([...pt.tensors.keys()], [...hf.tensors.keys()]);
      assert.ok(hf.tensors.size >= 3 * 15 + 6, `only ${hf.tensors.size} tensors`);
      const failures: string[] = [];
      let worst = 0;
      for (const [name, ref] of hf.tensors) {
        const ours = pt.tensors.get(name)!.data;
        // Masked scores hold the float32 minimum in both; compare the finite entries.
        const keep = ref.data.map((v, i) => (Math.abs(v) < 1e30 ? 1 : (ours[i] <= -1e30 ? 0 : NaN)));
        const r = compareArrays(ours.map((v, i) => (keep[i] === 1 ? v : 0)), ref.data.map((v, i) => (keep[i] ? v : 0)), ref.shape, { atol: toleranceFor(name) });
        if (!r.pass || keep.some(Number.isNaN)) failures.push(`${name}: max abs ${r.maxAbs} at [${r.where}]`);
        worst = Math.max(worst, r.maxAbs);
      }
      assert.deepEqual(failures, []);
      console.log(`      ${hf.tensors.size} tensors, max abs diff ${worst.toExponential(2)}`);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  describe('sentence-transformers and the model card (small model with modules.json + 1_Pooling)', function () {
    let work = '';
    let model = '';
    before(function () {
      skipUnlessHuggingFace(this, 'transformers', 'sentence_transformers');
      if (!hasSharedVocab()) {
        console.log('      (skipped: ../shared/data/bert-base-uncased is absent; the Python tokenizers need tokenizer.json)');
        this.skip();
      }
      model = cachedModel({ preset: 'small', sentenceTransformersPooling: 'mean' });
      work = tempDir('e5-st-parity-');
    });
    after(() => {
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it('e5 embed = SentenceTransformer.encode(normalize_embeddings=True) on the model card\'s texts, within 1e-5', async () => {
      const ref = hfEmbed(model, CARD_TEXTS, 'st', work);
      const d = assertClose((await e5Embed(model, CARD_TEXTS, work)).map((e) => e.embedding), ref.embeddings, 1e-5, 'model card texts');
      console.log(`      max abs diff ${d.toExponential(2)}`);
    });

    it('e5 embed = SentenceTransformer.encode on a padded batch up to 512 tokens (one truncated), within 1e-5', async () => {
      const texts = longTexts();
      const ref = hfEmbed(model, texts, 'st', work);
      const ours = await e5Embed(model, texts, work);
      assert.deepEqual(ours.map((e) => e.truncated), [true, false, false]);
      assert.equal(ours[0].n_tokens, 512);
      assert.ok(ours[1].n_tokens > 180 && ours[1].n_tokens < 512 && ours[2].n_tokens < 16, JSON.stringify(ours.map((e) => e.n_tokens)));
      const d = assertClose(ours.map((e) => e.embedding), ref.embeddings, 1e-5, '512-token batch');
      console.log(`      max abs diff ${d.toExponential(2)}`);
    });

    it('e5 similarity = the model card\'s (q @ p.T) * 100 with transformers + average_pool, within 1e-4', async () => {
      const ref = hfEmbed(model, CARD_TEXTS, 'card', work, CARD.queries.length);
      const args = ['similarity', '--model', model, '--format', 'json', ...CARD.queries.flatMap((q) => ['--query', q]), ...CARD.passages.flatMap((p) => ['--passage', p])];
      const r = await e5(args, { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      const d = assertClose(JSON.parse(r.stdout).scores, ref.scores!, 1e-4, 'scores x100');
      console.log(`      scores ${JSON.stringify(ref.scores!.map((row) => row.map((v) => +v.toFixed(3))))}, max abs diff ${d.toExponential(2)}`);
    });
  });
});
