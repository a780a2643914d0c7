/**
 * EmbeddingModel.explain (e5/explain.ts): the definitions checked against an independent
 * float64 PyTorch implementation (test/parity/explain.py: transformers.BertModel, torch.func JVPs,
 * A = C^q C^pᵀ in full) on the generated tiny and small models at N = 8 and 32 and ℓ ∈ {0, L−1},
 * within 1e-4 × max|value|; completeness shrinking with N; each heads row against the ablation it
 * must sum to; the JVP and VJP routes agreeing; CLS pooling; bad input; no tensor leaks.
 */
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { cachedModel } from '../../devtools/generate-model';
import { EmbeddingModel, loadModel } from '../../e5/model';
import { ExplainError, ExplainOptions, ExplainResult } from '../../e5/explain';
import { ablateHeads } from '../../inspect/analysis';
import { testBackend } from '../support/backend';
import { tempDir } from '../support/cli';
import { PYTHON, skipUnlessHuggingFace } from '../support/python';

const QUERY = 'how much protein should a female eat';
const PASSAGE = "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day.";

interface Reference {
  score: number;
  pairs?: number[][];
  query?: number[];
  passage?: number[];
  heads?: number[][];
  heads_targets?: number[];
  e_q?: number[];
  e_p?: number[];
  e_qR?: number[];
  e_pR?: number[];
  pooling: string;
}

/** test/parity/explain.py on the texts as explain() tokenized them. */
function reference(model: string, r: ExplainResult, m: EmbeddingModel, layer: number, steps: number, modes: string[], work: string): Reference {
  const text = (t: ExplainResult['query']) => {
    const enc = m.tokenizer.encode(t.modelText);
    return { input_ids: Array.from(enc.inputIds), token_type_ids: Array.from(enc.tokenTypeIds), special: t.special.map(Number) };
  };
  const input = path.join(work, 'job.json'), output = path.join(work, 'out.json');
  fs.writeFileSync(input, JSON.stringify({ model, layer, steps, modes, query: text(r.query), passage: text(r.passage) }));
  execFileSync(PYTHON, [path.join(__dirname, '..', 'parity', 'explain.py'), '--input', input, '--output', output], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  return JSON.parse(fs.readFileSync(output, 'utf8'));
}

/** max |ours − ref| ≤ rel × max |ref|, with the numbers in the message. */
function assertRelClose(ours: number[] | number[][], ref: number[] | number[][], rel: number, what: string): number {
  const a = (ours as number[]).flat(), b = (ref as number[]).flat();
  assert.equal(a.length, b.length, `${what}: ${a.length} values, the reference has ${b.length}`);
  const scale = Math.max(...b.map(Math.abs));
  let worst = 0, at = 0;
  a.forEach((v, i) => {
    const d = Math.abs(v - b[i]);
    if (d > worst) [worst, at] = [d, i];
  });
  assert.ok(worst <= rel * scale, `${what}: max |Δ| ${worst.toExponential(2)} at ${at} (ours ${a[at]}, ref ${b[at]}) > ${rel} × max|ref| ${scale.toExponential(2)}`);
  return worst / scale;
}

function sum(xs: number[] | number[][]): number {
  return (xs as number[]).flat().reduce((a, b) => a + b, 0);
}

describe('explain: attributions of a query–passage similarity', function () {
  this.timeout(900_000);
  const models = new Map<string, EmbeddingModel>();
  let work = '';
  let backend = '';

  before(async () => {
    backend = (await testBackend()).name;
    work = tempDir('e5-explain-');
  });
  after(() => {
    models.forEach((m) => m.dispose());
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function model(preset: 'tiny' | 'small', pooling?: 'cls'): Promise<[string, EmbeddingModel]> {
    const dir = cachedModel({ preset, sentenceTransformersPooling: pooling });
    if (!models.has(dir)) models.set(dir, await loadModel(dir));
    return [dir, models.get(dir)!];
  }

  /** The small model at N = 32 takes minutes on wasm (its batched matmuls are scalar loops): make test-tensorflow runs it. */
  function skipSlowOnWasm(ctx: Mocha.Context, preset: string, steps: number): void {
    if (backend !== 'wasm' || preset === 'tiny' || steps < 32) return;
    console.log('      (skipped on wasm: the small model at N = 32 runs in make test-tensorflow, E5_TEST_BACKEND=tensorflow)');
    ctx.skip();
  }

  for (const preset of ['tiny', 'small'] as const) {
    describe(`parity with the float64 PyTorch reference, ${preset} model`, () => {
      for (const steps of [8, 32]) {
        for (const last of [false, true]) {
          it(`pairs and tokens at N = ${steps}, ℓ = ${last ? 'L−1' : '0'}, within 1e-4 × max`, async function () {
            skipUnlessHuggingFace(this, 'transformers');
            skipSlowOnWasm(this, preset, steps);
            const [dir, m] = await model(preset);
            const layer = last ? m.config.numHiddenLayers - 1 : 0;
            const pairs = await m.explain(QUERY, PASSAGE, { mode: 'pairs', layer, steps });
            const tokens = await m.explain(QUERY, PASSAGE, { mode: 'tokens', layer, steps });
            const ref = reference(dir, pairs, m, layer, steps, ['pairs'], work);
            assert.ok(Math.abs(pairs.score - ref.score) < 1e-5, `score ${pairs.score} vs ${ref.score}`);
            const worst = Math.max(
              assertRelClose(pairs.pairs!, ref.pairs!, 1e-4, 'pairs'),
              assertRelClose(pairs.query.attributions!, ref.query!, 1e-4, 'pairs mode, query tokens'),
              assertRelClose(pairs.passage.attributions!, ref.passage!, 1e-4, 'pairs mode, passage tokens'),
              assertRelClose(tokens.query.attributions!, ref.query!, 1e-4, 'tokens mode, query'),
              assertRelClose(tokens.passage.attributions!, ref.passage!, 1e-4, 'tokens mode, passage'),
            );
            const target = ref.e_q!.reduce((s, v, i) => s + (v - ref.e_qR![i]) * (ref.e_p![i] - ref.e_pR![i]), 0);
            assert.ok(Math.abs(pairs.completeness.target - target) < 1e-5, `target ${pairs.completeness.target} vs ${target}`);
            assert.ok(Math.abs(pairs.completeness.sum - sum(ref.pairs!)) <= 1e-4 * Math.max(1, Math.abs(sum(ref.pairs!))));
            console.log(`      ${pairs.query.tokens.length}×${pairs.passage.tokens.length} tokens, C via ${pairs.jacobian!.method} on the ${pairs.jacobian!.text}; worst |Δ|/max ${worst.toExponential(2)}; completeness error ${pairs.completeness.error.toExponential(2)}`);
          });
        }
        it(`heads at N = ${steps}, within 1e-4 × max`, async function () {
          skipUnlessHuggingFace(this, 'transformers');
          skipSlowOnWasm(this, preset, steps);
          const [dir, m] = await model(preset);
          const r = await m.explain(QUERY, PASSAGE, { mode: 'heads', steps });
          const ref = reference(dir, r, m, 0, steps, ['heads'], work);
          const worst = assertRelClose(r.heads!, ref.heads!, 1e-4, 'heads');
          assertRelClose(r.completeness.layers!.map((c) => c.target), ref.heads_targets!, 1e-4, 'heads targets');
          console.log(`      ${r.heads!.length}×${r.heads![0].length} grid, worst |Δ|/max ${worst.toExponential(2)}`);
        });
      }
    });
  }

  it('a model whose pooling is CLS: the same definitions, the same parity', async function () {
    skipUnlessHuggingFace(this, 'transformers');
    const [dir, m] = await model('tiny', 'cls');
    assert.equal(m.bert.defaultPooling, 'cls');
    const r = await m.explain(QUERY, PASSAGE, { steps: 8 });
    const ref = reference(dir, r, m, 0, 8, ['pairs'], work);
    assert.equal(ref.pooling, 'cls');
    assertRelClose(r.pairs!, ref.pairs!, 1e-4, 'pairs (cls)');
    assertRelClose(r.query.attributions!, ref.query!, 1e-4, 'query (cls)');
  });

  it('completeness error shrinks with N (8 → 128, tiny model): ΣA → (e_q − e_q^R)·(e_p − e_p^R)', async () => {
    const [, m] = await model('tiny');
    const errors: number[] = [];
    for (const steps of [8, 32, 128]) errors.push((await m.explain(QUERY, PASSAGE, { steps })).completeness.error);
    console.log(`      |ΣA − target| at N = 8, 32, 128: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    // The midpoint rule's error falls as 1/N²: 16× per 4× steps; float32 rounding floors it.
    assert.ok(errors[1] < errors[0] / 4 && errors[2] < errors[1] / 4, JSON.stringify(errors));
    assert.ok(errors[2] < 1e-3, `error at N = 128: ${errors[2]}`);
  });

  it('each heads row sums to s − s(layer l\'s heads zeroed), the ablation run independently', async () => {
    const [, m] = await model('tiny');
    const L = m.config.numHiddenLayers, H = m.config.numAttentionHeads;
    const r = await m.explain(QUERY, PASSAGE, { mode: 'heads', steps: 64 });
    const ids = (t: string) => ({ inputIds: [Array.from(m.tokenizer.encode(t).inputIds)] });
    const embedding = (t: string, layer?: number) => {
      const out = layer === undefined ? m.bert.forward(ids(t)) : ablateHeads(m.bert, ids(t), Array.from({ length: H }, (_, head) => ({ layer, head })));
      try {
        return out.embedding.dataSync() as Float32Array;
      } finally {
        out.dispose();
      }
    };
    const score = (layer?: number) => {
      const q = embedding(r.query.modelText, layer), p = embedding(r.passage.modelText, layer);
      return q.reduce((s, v, i) => s + v * p[i], 0);
    };
    assert.ok(Math.abs(score() - r.score) < 1e-5, `score ${r.score} vs the model's ${score()}`);
    for (let l = 0; l < L; l++) {
      const target = r.score - score(l);
      const rowSum = sum(r.heads![l]);
      assert.ok(Math.abs(rowSum - target) < 2e-3 * Math.max(1e-3, Math.abs(target)) + 1e-5, `layer ${l}: row sums to ${rowSum}, ablation says ${target}`);
      assert.ok(Math.abs(r.completeness.layers![l].target - target) < 1e-5);
    }
  });

  it('pairs: C of the shorter text by JVPs or by VJPs gives the same matrix; the passage as the shorter text too', async () => {
    const [, m] = await model('tiny');
    const byJvp = await m.explain(QUERY, PASSAGE, { steps: 4, jacobian: 'jvp' });
    const byVjp = await m.explain(QUERY, PASSAGE, { steps: 4, jacobian: 'vjp' });
    assert.deepEqual([byJvp.jacobian, byVjp.jacobian], [{ method: 'jvp', text: 'query' }, { method: 'vjp', text: 'query' }]);
    assertRelClose(byJvp.pairs!, byVjp.pairs!, 1e-5, 'jvp vs vjp');
    // Swapped roles: the passage is now the shorter text; rows stay query tokens.
    const swapped = await m.explain(PASSAGE, QUERY, { steps: 4 });
    assert.equal(swapped.jacobian!.text, 'passage');
    assert.equal(swapped.pairs!.length, swapped.query.tokens.length);
    assert.equal(swapped.pairs![0].length, swapped.passage.tokens.length);
  });

  it('result: tokens with offsets, special tokens kept with zero attributions, s = target + reference terms', async () => {
    const [, m] = await model('tiny');
    const r = await m.explain(QUERY, PASSAGE, { steps: 8 });
    assert.equal(r.query.modelText, `query: ${QUERY}`);
    assert.equal(r.passage.modelText, `passage: ${PASSAGE}`);
    assert.equal(r.query.tokens[0], '[CLS]');
    assert.deepEqual([r.query.special[0], r.query.special.at(-1), r.query.special[1]], [true, true, false]);
    assert.deepEqual(r.query.offsets[1], [0, 5]); // "query"
    assert.equal(r.query.attributions![0], 0);
    assert.ok(r.pairs!.every((row, i) => row.every((v, j) => !(r.query.special[i] || r.passage.special[j]) || v === 0)));
    const ref = r.reference!;
    assert.ok(Math.abs(r.completeness.target + ref.queryRef + ref.passageRef + ref.refRef - r.score) < 1e-6);
    assert.ok(Math.abs(sum(r.pairs!) - r.completeness.sum) < 1e-9);
    assert.equal(r.layer, 0);
    assert.equal(r.steps, 8);
  });

  it('no tensor leaks in any mode (and none after an error)', async () => {
    const [, m] = await model('tiny');
    for (const mode of ['pairs', 'tokens', 'heads'] as const) {
      const before = tf.memory().numTensors;
      await m.explain(QUERY, PASSAGE, { mode, steps: 2 });
      assert.equal(tf.memory().numTensors, before, `${mode}: ${tf.memory().numTensors - before} tensors left`);
    }
    const before = tf.memory().numTensors;
    await assert.rejects(m.explain(QUERY, '', {}));
    assert.equal(tf.memory().numTensors, before);
  });

  it('bad input: empty texts, layer out of range, N < 1 or absurd, unknown options — errors naming the field', async () => {
    const [, m] = await model('tiny');
    const L = m.config.numHiddenLayers;
    const bad: Array<[string, string, ExplainOptions, RegExp]> = [
      ['', PASSAGE, {}, /^query: is empty/],
      [QUERY, '   ', {}, /^passage: is empty/],
      [QUERY, PASSAGE, { layer: L + 1 }, /^layer: 3 is out of range/],
      [QUERY, PASSAGE, { layer: -1 }, /^layer: -1 is out of range/],
      [QUERY, PASSAGE, { steps: 0 }, /^steps: 0 is out of range/],
      [QUERY, PASSAGE, { steps: 1e9 }, /^steps: 1000000000 is out of range.*\[1, 4096\]/],
      [QUERY, PASSAGE, { steps: 2.5 }, /^steps: 2.5 is out of range/],
      [QUERY, PASSAGE, { mode: 'words' as never }, /^mode: "words" is not one of pairs, tokens, heads/],
      [QUERY, PASSAGE, { stepz: 3 } as never, /^stepz: unknown option/],
    ];
    for (const [q, p, o, re] of bad) {
      await assert.rejects(m.explain(q, p, o), (e: Error) => e instanceof ExplainError && re.test(e.message), `${JSON.stringify([q, p, o])}`);
    }
    // ℓ = L is the last hidden state: attribution through pooling and L2 alone.
    const r = await m.explain(QUERY, PASSAGE, { layer: L, steps: 4 });
    assert.equal(r.layer, L);
  });
});
