/**
 * The benchmark harness's plumbing, on the tiny generated model with 1 repeat. No timing is
 * asserted (benchmarks are never timed tests): what is checked is that every engine got the
 * same inputs (PyTorch, an independent implementation, must print the same embedding), that
 * token counts and padding match what the workload definition implies, that the derived
 * columns follow from the raw times, and that the per-op profiler counts kernel calls like
 * tf.profile() does and leaves the kernel registry as it found it.
 */
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo } from '../../engine/backend';
import { HookContext } from '../../engine/hooks';
import { loadModel } from '../../e5/model';
import { packSequences } from '../../engine/rows';
import { ortInstalled, PeerName } from '../../bench/engines';
import { BenchOptions } from '../../bench/options';
import { categorize, instrumentKernels } from '../../bench/profile';
import { BenchReport, runBench } from '../../bench/run';
import { makeWorkload, parseWorkload, WorkloadError } from '../../bench/workloads';
import { testBackend } from '../support/backend';
import { cachedModel, PRESETS } from '../../devtools/generate-model';
import { PYTHON, pythonCanImport, skipUnlessPython } from '../support/python';
import { TOLERANCE } from '../support/tolerance';

// ONNX exports (only made when an onnxruntime peer is installed) go here, not into .cache/.
const onnxDir = path.join(os.tmpdir(), `e5-bench-test-onnx-${process.pid}`);
// The Python with onnxruntime (make bench-env), for the ort-fp32 / ort-int8 peers; BENCH_PYTHON overrides.
const ORT_PYTHON = process.env.BENCH_PYTHON ?? path.resolve(__dirname, '..', '..', '.cache', 'bench-env', 'bin', 'python');
after(() => fs.rmSync(onnxDir, { recursive: true, force: true }));

function options(model: string, over: Partial<BenchOptions>): BenchOptions {
  return {
    model, repeats: 1, warmup: 1, settleMs: 0, workloads: ['query'], peers: [], corpusSize: 12, batchSize: 5, seed: 7,
    compare: true, profile: false, ceiling: false, wholeRun: false, python: PYTHON, impl: 'auto',
    onnxDir, ortPython: ORT_PYTHON, precision: 'fp32', ...over,
  };
}

describe('bench harness (tiny model, 1 repeat)', function () {
  this.timeout(300_000);
  const dir = cachedModel({ preset: 'tiny' });
  const c = PRESETS.tiny;
  let report: BenchReport;
  let markdown = '';
  let peers: PeerName[] = [];
  const jsonFile = path.join(os.tmpdir(), `e5-bench-test-${process.pid}.json`);

  before(async function () {
    await testBackend();
    if (pythonCanImport('torch')) peers.push('torch');
    else console.log(`      (${PYTHON} cannot import torch: the torch peer is not exercised)`);
    const ort = (['web', 'node'] as const).filter(ortInstalled).map((k) => `ort-${k}` as PeerName);
    peers = [...peers, ...(peers.includes('torch') ? ort : [])];
    if (fs.existsSync(ORT_PYTHON)) peers.push('ort-fp32', 'ort-int8');
    else console.log(`      (no ${ORT_PYTHON}: the Python onnxruntime peers are not exercised; make bench-env)`);
    report = await runBench(options(dir, { workloads: ['query', '4x24', 'corpus'], peers, ceiling: true, profile: true, json: jsonFile }),
      { out: (s) => (markdown += s), log: () => {} });
  });
  after(() => fs.rmSync(jsonFile, { force: true }));

  it('measures every workload on every engine that started, in order', () => {
    const cmp = report.compare!;
    assert.deepEqual(cmp.workloads.map((w) => w.workload), ['query', '4x24', 'corpus']);
    for (const w of cmp.workloads) assert.deepEqual(w.results.map((r) => r.engine), ['ours', ...peers]);
    assert.deepEqual(report.skipped, []);
  });

  it('counts real tokens as the workload defines them (R×T; the corpus within 16–256 per text)', () => {
    const [query, fixed, corpus] = report.compare!.workloads;
    assert.equal(query.realTokens, 16);
    assert.equal(fixed.realTokens, 4 * 24);
    assert.ok(corpus.realTokens >= 12 * 16 && corpus.realTokens <= 12 * 256, `corpus has ${corpus.realTokens} tokens`);
    for (const w of report.compare!.workloads) {
      for (const r of w.results) {
        assert.equal(r.realTokens, w.realTokens, `${r.engine} on ${w.workload}`);
        assert.ok(Math.abs(r.tokensPerSecond - r.realTokens / r.medianSeconds) < 1e-6 * r.tokensPerSecond);
      }
    }
  });

  it('feeds PyTorch the same inputs: its embedding of the first text matches ours', function () {
    if (!peers.includes('torch')) this.skip();
    for (const w of report.compare!.workloads) {
      for (const r of w.results.filter((x) => x.engine !== 'ours' && x.engine !== 'ort-int8')) { // int8: below
        assert.ok(r.maxAbsDiffVsOurs! < 1e-4, `${r.engine} on ${w.workload}: max abs diff ${r.maxAbsDiffVsOurs}`);
      }
    }
    const torch = report.compare!.engines.find((e) => e.name === 'torch')!;
    assert.equal(torch.threads, backendInfo().threads, 'torch runs on our thread count');
  });

  it('runs the fused fp32 ONNX export on the same inputs (ours within the embedding tolerance), and its int8 quantization', function () {
    if (!peers.includes('ort-fp32')) this.skip();
    for (const w of report.compare!.workloads) {
      const fp32 = w.results.find((r) => r.engine === 'ort-fp32')!;
      assert.ok(fp32.maxAbsDiffVsOurs! <= TOLERANCE.embedding, `ort-fp32 on ${w.workload}: max abs diff ${fp32.maxAbsDiffVsOurs}`);
      // int8 weights move the embedding by far more than float rounding, but it is still this model's.
      const int8 = w.results.find((r) => r.engine === 'ort-int8')!;
      assert.ok(int8.maxAbsDiffVsOurs! > TOLERANCE.embedding && int8.maxAbsDiffVsOurs! < 0.1, `ort-int8 on ${w.workload}: max abs diff ${int8.maxAbsDiffVsOurs}`);
      assert.equal(int8.paddedTokens, fp32.paddedTokens, 'both pad like sentence-transformers');
    }
    const engines = report.compare!.engines.filter((e) => e.name.startsWith('ort-'));
    for (const e of engines) assert.equal(e.threads, backendInfo().threads, `${e.name} runs on our thread count`);
    const row = markdown.split('\n').find((l) => l.startsWith('| query | ours |'))!;
    const q = report.compare!.workloads[0].results;
    assert.ok(row.includes(`${(q.find((r) => r.engine === 'ort-int8')!.medianSeconds / q[0].medianSeconds).toFixed(2)}×`), row);
  });

  it("pads PyTorch's corpus batches like sentence-transformers: sorted by length, padded to each batch's longest", async function () {
    if (!peers.includes('torch')) this.skip();
    const m = await loadModel(dir);
    try {
      const w = makeWorkload(parseWorkload('corpus', 12), m.tokenizer, 7, 5);
      assert.equal(w.kind, 'corpus');
      const lengths = (w as { texts: string[] }).texts.map((t) => m.tokenizer.encode(t).nTokens).sort((a, b) => b - a);
      let padded = 0;
      for (let s = 0; s < lengths.length; s += 5) padded += lengths.slice(s, s + 5).length * lengths[s];
      const torch = report.compare!.workloads[2].results.find((r) => r.engine === 'torch')!;
      assert.equal(torch.paddedTokens, padded);
      const ours = report.compare!.workloads[2].results[0];
      assert.equal(ours.paddedTokens, ours.realTokens, 'ours packs without padding');
    } finally {
      m.dispose();
    }
  });

  it('derives the ratio column from the medians and prints one row per workload and engine', () => {
    const cmp = report.compare!;
    for (const w of cmp.workloads) {
      const ours = w.results[0];
      const torch = w.results.find((r) => r.engine === 'torch');
      const row = markdown.split('\n').find((l) => l.startsWith(`| ${w.workload} | ours |`));
      assert.ok(row, `no markdown row for ${w.workload}/ours`);
      if (torch) assert.ok(row!.includes(`${(torch.medianSeconds / ours.medianSeconds).toFixed(2)}×`), row);
    }
    const json = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
    assert.equal(json.format, 'e5-tfjs-bench');
    assert.equal(json.compare.workloads.length, 3);
    assert.equal(json.markdown, report.markdown);
  });

  it('ceiling: GEMM throughput from the model shape, one forward per batch, corpus per planned batch', () => {
    const [query, fixed, corpus] = report.ceiling!;
    assert.deepEqual(query.tokensPerForward, [16]);
    assert.deepEqual(fixed.tokensPerForward, [96]);
    assert.ok(corpus.tokensPerForward.length === 3, `12 texts in batches of 5 → 3 forwards, got ${corpus.tokensPerForward.length}`);
    const flops = 2 * c.numHiddenLayers * (4 * c.hiddenSize ** 2 + 2 * c.hiddenSize * c.intermediateSize) * 96;
    assert.ok(Math.abs(fixed.linearGflops - flops / (fixed.linearMs / 1000) / 1e9) < 1e-9 * fixed.linearGflops);
    assert.ok(Math.abs(fixed.overheadVsLinear - (fixed.forwardMs / fixed.linearMs - 1)) < 1e-12);
  });

  it('profile: categories add up to the wall time of the profiled forward', () => {
    for (const p of report.profile!) {
      const sum = p.byCategory.reduce((a, x) => a + x.ms, 0);
      assert.ok(Math.abs(sum - Math.max(p.wallMs, p.kernelMs)) < 1e-6, `${p.workload}: ${sum} vs ${p.wallMs}`);
      assert.ok(p.byKernel.some((k) => k.kernel === '_FusedMatMul' && k.category === 'matmul: linear'));
    }
  });
});

describe('bench profiler', function () {
  this.timeout(120_000);
  before(testBackend);

  it('counts the kernel calls tf.profile() counts, and restores the registry', async () => {
    const m = await loadModel(cachedModel({ preset: 'tiny' }));
    try {
      const w = makeWorkload(parseWorkload('3x20', 1), m.tokenizer, 1);
      assert.equal(w.kind, 'batch');
      const encodings = w.kind === 'batch' ? w.encodings : [];
      const forward = () => {
        const out = m.bert.run(packSequences(encodings), {}, new HookContext());
        out.dispose();
      };
      forward();
      const backend = tf.getBackend();
      const before = new Map(tf.getKernelsForBackend(backend).map((k) => [k.kernelName, k.kernelFunc]));
      const reference = await tf.profile(forward);
      const expected = new Map<string, number>();
      // tf.profile also lists custom-gradient scopes (e.g. fusedMatMul__op) that are not kernels.
      for (const k of reference.kernels.filter((k) => before.has(k.name))) expected.set(k.name, (expected.get(k.name) ?? 0) + 1);

      const { stats, restore } = instrumentKernels({
        hidden: m.config.hiddenSize, intermediate: m.config.intermediateSize, tokenTotals: new Set([60]), rowLengths: new Set([20]),
      });
      try {
        forward();
      } finally {
        restore();
      }
      const counted = new Map<string, number>();
      for (const s of stats.values()) counted.set(s.kernel, (counted.get(s.kernel) ?? 0) + s.calls);
      assert.deepEqual(Object.fromEntries([...counted].sort()), Object.fromEntries([...expected].sort()));
      for (const k of tf.getKernelsForBackend(backend)) assert.equal(k.kernelFunc, before.get(k.kernelName), `${k.kernelName} restored`);
    } finally {
      m.dispose();
    }
  });

  it('categorizes kernels by name and element-wise ones by output shape', () => {
    // e5-large widths; a forward of 32 rows × 128 tokens: N = 4096 = F, the case shape alone cannot tell.
    const ctx = { hidden: 1024, intermediate: 4096, tokenTotals: new Set([4096]), rowLengths: new Set([128]) };
    const cat = (kernel: string, shape: number[]) => categorize(kernel, shape, ctx);
    assert.equal(cat('_FusedMatMul', [4096, 1024]), 'matmul: linear');
    assert.equal(cat('BatchMatMul', [16, 128, 128]), 'matmul: attention');
    assert.equal(cat('Softmax', [16, 128, 128]), 'attention softmax');
    assert.equal(cat('RealDiv', [16, 128, 128]), 'attention softmax'); // scores / √Dh, all heads of a row
    assert.equal(cat('Add', [128, 128]), 'attention softmax'); // + mask, one head
    assert.equal(cat('Multiply', [4096, 4096]), 'gelu'); // x · 0.5 on [N, F] with N = F
    assert.equal(cat('Erf', [4096, 4096]), 'gelu');
    assert.equal(cat('Add', [4096, 1024]), 'layernorm + residual');
    assert.equal(cat('Mean', [4096, 1]), 'layernorm + residual');
    assert.equal(cat('Rsqrt', [4096, 1]), 'layernorm + residual');
    assert.equal(cat('Slice', [16, 128, 64]), 'data movement');
    assert.equal(cat('Unpack', [128, 64]), 'data movement');
    assert.equal(cat('Conv2D', [1, 1]), 'other');
    // A single 1024-token row on a model whose hidden size is 1024: [N, D] is a token matrix.
    const one = { ...ctx, tokenTotals: new Set([1024]), rowLengths: new Set([1024]) };
    assert.equal(categorize('Add', [1024, 1024], one), 'layernorm + residual');
  });
});

describe('bench workloads', () => {
  it('parses query, corpus and ROWSxTOKENS, and names the forms on a bad name', () => {
    assert.deepEqual(parseWorkload('query', 256), { kind: 'batch', name: 'query', rows: 1, tokens: 16 });
    assert.deepEqual(parseWorkload('32x64', 256), { kind: 'batch', name: '32x64', rows: 32, tokens: 64 });
    assert.deepEqual(parseWorkload('corpus', 9), { kind: 'corpus', name: 'corpus', texts: 9, minTokens: 16, maxTokens: 256 });
    assert.throws(() => parseWorkload('8by128', 1), (e: Error) => e instanceof WorkloadError && /query, corpus or ROWSxTOKENS/.test(e.message));
  });

  it('makes the same texts for the same seed and different ones for another', async () => {
    await testBackend();
    const m = await loadModel(cachedModel({ preset: 'tiny' }));
    try {
      const spec = parseWorkload('corpus', 20);
      const a = makeWorkload(spec, m.tokenizer, 3), b = makeWorkload(spec, m.tokenizer, 3), other = makeWorkload(spec, m.tokenizer, 4);
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, other);
    } finally {
      m.dispose();
    }
  });
});

describe('bench whole runs', function () {
  this.timeout(300_000);
  it('runs bin/e5 embed and python3 + torch as whole processes, and both print the same embedding', async function () {
    skipUnlessPython(this, 'torch', 'python3-torch');
    const r = await runBench(options(cachedModel({ preset: 'tiny' }), { compare: false, wholeRun: true, threads: 1 }), { out: () => {}, log: () => {} });
    const w = r.wholeRun!;
    assert.equal(w.ours.length, 1);
    assert.equal(w.torch!.length, 1);
    assert.ok(w.maxAbsDiff < 1e-5, `the printed embeddings differ by ${w.maxAbsDiff}`);
    assert.ok(Math.abs(w.speedupVsTorch! - w.torchMedianSeconds! / w.oursMedianSeconds) < 1e-12);
  });

  it('embeds a file of generated passages in every engine that reads one (--whole-run-texts), onnxruntime included', async function () {
    if (!fs.existsSync(ORT_PYTHON)) this.skip();
    const r = await runBench(options(cachedModel({ preset: 'tiny' }), { compare: false, wholeRun: true, wholeRunTexts: 6, threads: 1, peers: ['ort-fp32', 'ort-int8'] }),
      { out: () => {}, log: () => {} });
    const w = r.wholeRun!;
    assert.equal(w.input!.texts, 6);
    assert.ok(w.input!.tokens >= 6 * 16 && w.input!.tokens <= 6 * 256);
    assert.equal(w.torch, undefined, 'torch_bench.py embeds one text only');
    assert.deepEqual(Object.keys(w.ort!).sort(), ['ort-fp32', 'ort-int8']);
    assert.ok(w.maxAbsDiff <= TOLERANCE.embedding, `the float engines' first embeddings differ by ${w.maxAbsDiff}`);
    assert.ok(w.int8MaxAbsDiff! > TOLERANCE.embedding && w.int8MaxAbsDiff! < 0.1, `int8: ${w.int8MaxAbsDiff}`);
    assert.match(r.markdown, /6 generated passages/);
  });
});

describe('bench/ablation-scan.ts (tiny model, 1 repeat)', function () {
  this.timeout(120_000);
  it('times plain embedding and the scan, and derives the ratio from them', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ablation-')), 'report.json');
    const stdout = execFileSync(process.execPath, [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(__dirname, '..', '..', 'bench', 'ablation-scan.ts'),
      '--model', cachedModel({ preset: 'tiny' }), '--backend', 'wasm', '--queries', '20', '--cells', '3', '--json', out], { encoding: 'utf8' });
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as { cells: number; of: number; plainSeconds: number[]; scanSeconds: number[]; ratio: number };
    assert.equal(r.cells, 3);
    assert.equal(r.of, 8);
    assert.equal(r.ratio, Math.min(...r.scanSeconds) / (3 * Math.min(...r.plainSeconds)));
    assert.match(stdout, new RegExp(`ratio scan / \\(cells × plain\\) = ${r.ratio.toFixed(3)} \\(target ≤ 1\\.5\\)`));
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  });
});
