// Head ablation in retrieval metrics (eval/ablation.ts, eval/scan.ts) on the generated tiny BERT
// (2 layers × 4 heads) and a generated BEIR set:
// - an ablated query embedding equals `e5 inspect --ablate`'s (ablateHeads) for the same text, zero and mean;
// - each scan cell equals evaluateAblation() with that head / layer, exactly (means and per-query metrics);
// - the query side reuses the plain run's corpus cache, the passage side gets a cache of its own;
// - the scan resumes (only missing or damaged cells recomputed), shards over cells, and a final run
//   merges the workers' cells into the same grid;
// - bad input: heads out of range, an embedder without heads, a metric cutoff not evaluated, a cache
//   of another intervention.

import { strict as assert } from 'node:assert';
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddingModel, loadModel } from '../../e5/model';
import { evaluateAblation, headMask, MEAN_REFERENCE } from '../../eval/ablation';
import { EngineEmbedder } from '../../eval/embedder-adapter';
import { evaluate, EvalResult } from '../../eval/evaluate';
import { scanAblations, scanCells } from '../../eval/scan';
import { ablateHeads, meanHeadOutputs } from '../../inspect/analysis';
import { testBackend } from '../support/backend';
import { HashingEmbedder, writeTinyBeir } from '../support/eval-child';
import { cachedModel } from '../../devtools/generate-model';
import { loadBeir } from '../../eval/beir';
import { execFileSync } from 'node:child_process';
import { METRIC_NAMES } from '../../eval/metrics';
import { PYTHON, skipUnlessHuggingFace } from '../support/python';
import { TOLERANCE } from '../support/tolerance';

const K = [1, 5, 10];
let tmp: string;
let model: EmbeddingModel;
let modelDir: string;
let embedder: EngineEmbedder;
let data: string;
let plain: EvalResult;

before(async function () {
  this.timeout(120_000);
  await testBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-ablation-'));
  modelDir = cachedModel({ preset: 'tiny' });
  model = await loadModel(modelDir);
  embedder = new EngineEmbedder(model);
  data = path.join(tmp, 'data');
  writeTinyBeir(data, 60);
  plain = await evaluate(embedder, data, { k: K, progress: false });
});
after(() => {
  model?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * Bit-identity where the kernels promise it: on wasm (XNNPACK) a row's result does not depend on the
 * rows beside it, and both sides run op by op. On tensorflow the ablated forward runs compiled (the
 * mask is a graph input) while inspect's hooks run op by op, and oneDNN may pick other kernels for
 * another row count; the cpu backend's matMul blocks by the operands' sizes (deploy/README.md: its
 * rows depend on their batch-mates). There: the documented embedding tolerance.
 */
const BIT_EXACT = (process.env.E5_TEST_BACKEND ?? 'wasm') === 'wasm';
function assertSameVector(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  if (BIT_EXACT) return assert.deepEqual(Array.from(got), Array.from(want), what);
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= TOLERANCE.embedding, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

const strip = (r: EvalResult) => ({ means: r.means, perQuery: r.perQuery });

describe('eval ablation: the embeddings are e5 inspect --ablate\'s', () => {
  for (const mode of ['zero', 'mean'] as const) {
    it(`${mode}: embedMasked of one query equals ablateHeads on the same tokens (the batch is the reference for mean; tensorflow, cpu: within the embedding tolerance)`, async () => {
      const text = 'query: lorem ipsum summit';
      const heads = [{ layer: 0, head: 1 }, { layer: 1, head: 3 }];
      const e = model.tokenizer.encode(text, { maxLength: model.maxLength });
      const batch = { inputIds: [Array.from(e.inputIds)], tokenTypeIds: [Array.from(e.tokenTypeIds)] };
      const expected = ablateHeads(model.bert, batch, heads, mode);
      const want = expected.embedding.dataSync().slice();
      expected.dispose();
      const fill = mode === 'mean' ? await embedder.headMeans([text], { prefix: 'none' }) : undefined;
      if (fill) {
        // the means of a one-text reference are inspect's means over that batch
        const means = meanHeadOutputs(model.bert, batch, [0, 1]);
        means.forEach((t, l) => assertSameVector(fill.subarray(l * 32, (l + 1) * 32), t.dataSync(), `layer ${l} means`));
        means.forEach((t) => t.dispose());
      }
      const [got] = await embedder.embedMasked([text], [headMask(embedder, heads)], fill, { prefix: 'none' });
      assertSameVector(got.embeddings[0], want, 'embedding');
      const [unablated] = await embedder.embedMasked([text], [headMask(embedder, [])], fill, { prefix: 'none' });
      assert.notDeepEqual(Array.from(unablated.embeddings[0]), Array.from(want), 'the heads removed change the embedding');
    });
  }
});

describe('eval ablation: no tensor is left behind', () => {
  it('headMeans and embedMasked (zero and mean) free every tensor they make', async () => {
    const texts = ['lorem ipsum', 'summit define the highest point'];
    await embedder.embedMasked(texts, [headMask(embedder, [{ layer: 0, head: 0 }])], undefined, { prefix: 'query' }); // warm-up: kernels, compiled encoder
    const before = tf.memory().numTensors;
    const fill = await embedder.headMeans(texts, { prefix: 'query' });
    await embedder.embedMasked(texts, scanCells('heads', 2, 4).map((c) => headMask(embedder, c.heads)), fill, { prefix: 'query' });
    await embedder.embedMasked(texts, [headMask(embedder, [{ layer: 1, head: 1 }])], undefined, { prefix: 'query' });
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('eval ablation: scan cells equal single runs', () => {
  it('a query embedded beside other cells\' rows (one packed forward) has the bits it has alone (tensorflow, cpu: within the embedding tolerance)', async () => {
    const texts = ['lorem ipsum summit', 'a much longer query about the highest point of a mountain', 'x'];
    const masks = scanCells('heads', 2, 4).map((c) => headMask(embedder, c.heads));
    const fill = await embedder.headMeans(texts, { prefix: 'query' });
    const together = await embedder.embedMasked(texts, masks, fill, { prefix: 'query' });
    for (const [c, mask] of masks.entries()) {
      const [alone] = await embedder.embedMasked(texts, [mask], fill, { prefix: 'query' });
      alone.embeddings.forEach((e, i) => assertSameVector(together[c].embeddings[i], e, `cell ${c}, text ${i}`));
    }
    assert.notDeepEqual(Array.from(together[0].embeddings[0]), Array.from(together[1].embeddings[0]));
  });

  for (const [scan, mode] of [['heads', 'zero'], ['layers', 'mean'], ['heads', 'mean']] as const) {
    it(`${scan} scan, ${mode}, query side: every cell equals evaluateAblation of its heads exactly`, async function () {
      this.timeout(120_000);
      const res = await scanAblations(embedder, data, { k: K, scan, mode, progress: false, cellsPerPass: 3 });
      assert.equal(res.cells.length, scan === 'heads' ? 8 : 2);
      assert.equal(res.meanReference, mode === 'mean' ? MEAN_REFERENCE : null);
      assert.deepEqual(strip(res.baseline), strip(plain));
      let changed = 0;
      for (const cell of res.cells) {
        const single = await evaluateAblation(embedder, data, { k: K, heads: cell.heads, mode, progress: false, baseline: plain });
        assert.deepEqual(cell.means, single.ablated.means, `cell ${cell.label}`);
        assert.deepEqual(cell.perQuery, single.ablated.perQuery, `cell ${cell.label}`);
        assert.deepEqual(cell.delta, single.delta.means);
        assert.deepEqual(cell.perQueryDelta, single.perQueryDelta.map((q) => q.metrics.ndcg[2]));
        assert.equal(res.deltaGrid[cell.layer][cell.head ?? 0], single.delta.means.ndcg[2]);
        if (single.perQueryDelta.some((q) => q.metrics.ndcg.some((v) => v !== 0))) changed++;
      }
      assert.ok(changed > 0, 'some ablation changes some query\'s nDCG (else the test could not fail)');
    });
  }
});

describe('eval ablation: caches', () => {
  it('query side reuses the plain corpus cache; passage side embeds the corpus into a cache keyed by the intervention', async function () {
    this.timeout(60_000);
    const cacheDir = path.join(tmp, 'cache-sides');
    const base = await evaluate(embedder, data, { k: K, cacheDir, progress: false });
    const q = await evaluateAblation(embedder, data, { k: K, cacheDir, heads: [{ layer: 1, head: 2 }], progress: false });
    assert.deepEqual(q.ablated.cache, { ...base.cache, reused: 1, computed: 0 });
    const p = await evaluateAblation(embedder, data, { k: K, cacheDir, heads: [{ layer: 1, head: 2 }], side: 'passage', progress: false, baseline: base });
    assert.equal(p.ablated.cache.computed, 1);
    assert.notEqual(p.ablated.cache.dir, base.cache.dir);
    const p2 = await evaluateAblation(embedder, data, { k: K, cacheDir, heads: [{ layer: 1, head: 1 }], side: 'passage', progress: false, baseline: base });
    assert.notEqual(p2.ablated.cache.dir, p.ablated.cache.dir, 'another head, another corpus cache');
    const again = await evaluateAblation(embedder, data, { k: K, cacheDir, heads: [{ layer: 1, head: 2 }], side: 'passage', progress: false, baseline: base });
    assert.equal(again.ablated.cache.reused, 1);
    assert.deepEqual(strip(again.ablated), strip(p.ablated));
    const both = await evaluateAblation(embedder, data, { k: K, cacheDir, heads: [{ layer: 1, head: 2 }], side: 'both', progress: false, baseline: base });
    assert.equal(both.ablated.cache.dir, p.ablated.cache.dir, 'passage and both share the ablated corpus');
    assert.deepEqual(q.perQueryDelta.length, plain.perQuery.length);
  });

  it('a scan resumes: only missing or damaged cells are recomputed, with a warning for the damaged one', async function () {
    this.timeout(120_000);
    const cacheDir = path.join(tmp, 'cache-resume');
    const first = await scanAblations(embedder, data, { k: K, scan: 'heads', cacheDir, progress: false });
    assert.deepEqual(first.cache, { dir: first.cache.dir, cells: 8, reused: 0, computed: 8, rejected: 0 });
    const dir = first.cache.dir!;
    fs.rmSync(path.join(dir, 'cell-0.2.json'));
    const damaged = path.join(dir, 'cell-1.1.json');
    fs.writeFileSync(damaged, fs.readFileSync(damaged, 'utf8').replace(/"ndcg":\[([0-9.]+)/, '"ndcg":[0.123'));
    const warnings: string[] = [];
    const second = await scanAblations(embedder, data, { k: K, scan: 'heads', cacheDir, progress: false, onWarning: (w) => warnings.push(w) });
    assert.deepEqual(second.cache, { dir, cells: 8, reused: 6, computed: 2, rejected: 1 });
    assert.match(warnings.join('\n'), /cell-1\.1\.json is unusable and is recomputed: .*sha256/);
    assert.deepEqual(second.grid, first.grid);
    assert.deepEqual(second.cells.map((c) => c.perQuery), first.cells.map((c) => c.perQuery));
  });

  it('shards over cells: three workers fill the cache, the final run reuses every cell and returns the same grid', async function () {
    this.timeout(120_000);
    const cacheDir = path.join(tmp, 'cache-shards');
    const w0 = await scanAblations(embedder, data, { k: K, scan: 'heads', mode: 'mean', cacheDir, progress: false, worker: { index: 0, count: 3 } });
    const w1 = await scanAblations(embedder, data, { k: K, scan: 'heads', mode: 'mean', cacheDir, progress: false, worker: { index: 1, count: 3 } });
    const w2 = await scanAblations(embedder, data, { k: K, scan: 'heads', mode: 'mean', cacheDir, progress: false, worker: { index: 2, count: 3 } });
    assert.deepEqual([w0, w1, w2].map((w) => w.cells.map((c) => c.label)), [['0.0', '0.3', '1.2'], ['0.1', '1.0', '1.3'], ['0.2', '1.1']]);
    assert.equal(w0.grid[0][1], null);
    const final = await scanAblations(embedder, data, { k: K, scan: 'heads', mode: 'mean', cacheDir, progress: false });
    assert.deepEqual(final.cache, { dir: w0.cache.dir, cells: 8, reused: 8, computed: 0, rejected: 0 });
    const whole = await scanAblations(embedder, data, { k: K, scan: 'heads', mode: 'mean', progress: false });
    assert.deepEqual(final.grid, whole.grid);
    assert.deepEqual(final.deltaGrid, whole.deltaGrid);
  });

  it('a cell of another intervention or another cell is never reused', async function () {
    this.timeout(120_000);
    const cacheDir = path.join(tmp, 'cache-mixed');
    const zero = await scanAblations(embedder, data, { k: K, scan: 'layers', mode: 'zero', cacheDir, progress: false });
    const mean = await scanAblations(embedder, data, { k: K, scan: 'layers', mode: 'mean', cacheDir, progress: false });
    assert.notEqual(zero.cache.dir, mean.cache.dir);
    // a zero cell copied into the mean scan's folder, and cell 0 copied as cell 1
    fs.copyFileSync(path.join(zero.cache.dir!, 'cell-0.json'), path.join(mean.cache.dir!, 'cell-0.json'));
    fs.copyFileSync(path.join(mean.cache.dir!, 'cell-0.json'), path.join(mean.cache.dir!, 'cell-1.json'));
    const warnings: string[] = [];
    const again = await scanAblations(embedder, data, { k: K, scan: 'layers', mode: 'mean', cacheDir, progress: false, onWarning: (w) => warnings.push(w) });
    assert.equal(again.cache.rejected, 2);
    assert.match(warnings.join('\n'), /cell-0\.json is unusable.*another model, intervention or data set/);
    assert.match(warnings.join('\n'), /cell-1\.json is unusable.*written for key|cell-1\.json is unusable.*holds cell "0"/);
    assert.deepEqual(again.grid, mean.grid);
    // a key.json that disagrees with its folder name is an error, not a silent mix
    fs.writeFileSync(path.join(mean.cache.dir!, 'key.json'), '{}');
    await assert.rejects(scanAblations(embedder, data, { k: K, scan: 'layers', mode: 'mean', cacheDir, progress: false }), /key\.json holds a different key .*cache_conflict/);
  });
});

describe('eval ablation: bad input', () => {
  it('heads out of range, an embedder without heads, an unevaluated metric cutoff, a bad worker', async () => {
    await assert.rejects(evaluateAblation(embedder, data, { k: K, heads: [{ layer: 2, head: 0 }], progress: false }), /heads\[0\] = 2\.0: layer 2 is out of range \(the model has layers 0-1\).*bad_option/);
    await assert.rejects(evaluateAblation(embedder, data, { k: K, heads: [{ layer: 0, head: 4 }], progress: false }), /head 4 is out of range \(the model has heads 0-3/);
    await assert.rejects(evaluateAblation(new HashingEmbedder(), data, { k: K, heads: [{ layer: 0, head: 0 }] }), /cannot remove attention heads.*bad_option/);
    await assert.rejects(scanAblations(new HashingEmbedder() as never, data, { k: K, scan: 'heads' }), /cannot remove attention heads/);
    await assert.rejects(scanAblations(embedder, data, { k: K, scan: 'heads', metric: { name: 'ndcg', k: 100 }, progress: false }), /100 is not one of the cutoffs \(1, 5, 10\)/);
    await assert.rejects(scanAblations(embedder, data, { k: K, scan: 'heads', worker: { index: 3, count: 3 }, progress: false }), /worker index must be in \[0, 3\)/);
    const noHeads = Object.create(embedder, { headShape: { value: { numHiddenLayers: 0, numAttentionHeads: 4, hiddenSize: 32 } } }) as EngineEmbedder;
    await assert.rejects(scanAblations(noHeads, await loadBeir(data), { k: K, scan: 'heads' }), /has no attention heads to ablate/);
    assert.equal(scanCells('heads', 2, 4).length, 8);
  });
});

// ------------------------------------------------------------------------------------ PyTorch reference

interface RefRun { means: Record<string, number[]>; perQuery: Array<{ queryId: string; metrics: Record<string, number[]> }> }

/** Every metric of `got` within 1e-6 of the reference's, per query and in the means, naming the first miss. */
function assertClose(got: { means: Record<string, number[]>; perQuery: Array<{ queryId: string; metrics: Record<string, number[]> }> }, want: RefRun, what: string): void {
  const check = (a: number, b: number, where: string) => assert.ok(Math.abs(a - b) <= 1e-6, `${what} ${where}: e5-tfjs ${a}, PyTorch ${b}`);
  assert.deepEqual(got.perQuery.map((q) => q.queryId), want.perQuery.map((q) => q.queryId), `${what}: queries`);
  for (const m of METRIC_NAMES) {
    K.forEach((k, i) => check(got.means[m][i], want.means[m][i], `mean ${m}@${k}`));
    got.perQuery.forEach((q, j) => K.forEach((k, i) => check(q.metrics[m][i], want.perQuery[j].metrics[m][i], `${q.queryId} ${m}@${k}`)));
  }
}

describe('eval ablation: equals a PyTorch reference (transformers BertModel, a pre-hook at hook_z)', function () {
  this.timeout(300_000);
  before(function () {
    skipUnlessHuggingFace(this, 'transformers');
  });
  const reference = (args: string[], dataDir = data) => {
    const out = path.join(tmp, `ref-${path.basename(dataDir)}-${args.join('_').replace(/[^a-z0-9]+/gi, '-')}.json`);
    execFileSync(PYTHON, [path.join(__dirname, '..', 'parity', 'eval_ablate.py'), '--model', modelDir, '--data', dataDir, '--k', K.join(','), ...args, '--output', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    return JSON.parse(fs.readFileSync(out, 'utf8')) as { baseline: RefRun; cells: Array<{ label: string; run: RefRun }> };
  };

  it('heads scan, zero, query side: every cell and the plain run', async () => {
    const ref = reference(['--scan', 'heads', '--mode', 'zero', '--side', 'query']);
    const res = await scanAblations(embedder, data, { k: K, scan: 'heads', progress: false });
    assertClose(res.baseline, ref.baseline, 'plain run');
    assert.deepEqual(res.cells.map((c) => c.label), ref.cells.map((c) => c.label));
    res.cells.forEach((c, i) => assertClose(c, ref.cells[i].run, `cell ${c.label}`));
  });

  it('layers scan, mean (the evaluated queries as reference), both sides', async () => {
    const ref = reference(['--scan', 'layers', '--mode', 'mean', '--side', 'both']);
    const res = await scanAblations(embedder, data, { k: K, scan: 'layers', mode: 'mean', side: 'both', progress: false });
    res.cells.forEach((c, i) => assertClose(c, ref.cells[i].run, `layer ${c.label}`));
  });

  it('the hand-checkable BEIR fixture (an exact score tie, a query id among the documents, null and missing titles): heads, mean, both sides', async () => {
    const fixture = path.join(__dirname, '..', 'fixtures', 'eval', 'tiny');
    const ref = reference(['--scan', 'heads', '--mode', 'mean', '--side', 'both'], fixture);
    const res = await scanAblations(embedder, fixture, { k: K, scan: 'heads', mode: 'mean', side: 'both', progress: false });
    assertClose(res.baseline, ref.baseline, 'plain run');
    // d1 and d4 embed the same text: their exact tie goes to d4 (doc id descending), so q1's relevant d1 is second
    assert.equal(res.baseline.perQuery[0].metrics.mrr[0], 0);
    res.cells.forEach((c, i) => assertClose(c, ref.cells[i].run, `cell ${c.label}`));
  });

  it('--ablate 0.1,1.2 mean on the passage side', async () => {
    const ref = reference(['--ablate', '0.1,1.2', '--mode', 'mean', '--side', 'passage']);
    const res = await evaluateAblation(embedder, data, { k: K, heads: [{ layer: 0, head: 1 }, { layer: 1, head: 2 }], mode: 'mean', side: 'passage', progress: false });
    assertClose(res.ablated, ref.cells[0].run, 'ablated');
    assert.ok(res.perQueryDelta.some((q) => q.metrics.ndcg.some((v) => v !== 0)), 'the ablation changes some ranking');
  });
});
