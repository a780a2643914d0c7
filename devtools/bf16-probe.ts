/**
 * Issue 25's prototype: can bfloat16 live inside the compiled TensorFlow graph, and what does it
 * buy? tfjs has no bfloat16 dtype, so bf16 weights travel as int32 tensors holding two bf16 values
 * each (the upper halves of their float32 values, rounded to nearest even), and the graph turns
 * them back with Bitcast (no copy) + Reshape. Activations are Cast to bf16 in the graph, the
 * products come back as float32.
 *
 *   npx ts-node --transpile-only devtools/bf16-probe.ts gemm [--tokens 1024] [--repeats 5]
 *       Linear GEMM x[N, 1024] · W[4096, 1024]ᵀ: float32 MatMul vs bf16 (from packed int32 weights),
 *       alternating, on the tensorflow backend (2 threads); relative error of the bf16 product
 *   npx ts-node --transpile-only devtools/bf16-probe.ts encoder --model DIR [--texts 64] [--batch 32]
 *       the model at fp32 and at precision 'bf16' (loadModel) in one process: cosine of every
 *       bf16 embedding to fp32 (generated passages, the model card's texts), embed time alternating
 *
 * `gemm` builds its two-node graphs with the engine's GraphDef writer (graph/graphdef.ts) but none
 * of the encoder: it was the measurement that decided where bf16 lives (graph/ops.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { initBackend } from '../engine/backend';
import { nodeBackend, NodeBackend } from '../engine/backends/tensorflow/node-backend';
import { bool, DType, GraphBuilder, Ref, T, type } from '../engine/backends/tensorflow/graph/graphdef';
import { mulberry32 } from './rng';
import { f32ToBF16Bits } from '../weights/safetensors';
import { loadModel } from '../e5/model';
import { makeWorkload, parseWorkload } from '../bench/workloads';

/** A float32 array rounded to bf16, packed two per int32 (little-endian: element 2i in the low half). */
function packBf16(x: Float32Array): Int32Array {
  if (x.length % 2) throw new RangeError(`packBf16: an even element count is needed, got ${x.length}`);
  return new Int32Array(f32ToBF16Bits(x).buffer);
}

/** `g` loaded into a TensorFlow session: run(feeds, fetches). */
function loadGraph(g: GraphBuilder): { run: (feeds: Array<[string, tf.Tensor]>, fetch: string[]) => tf.Tensor[]; dispose: () => void } {
  const backend = nodeBackend() as NodeBackend;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-bf16-probe-'));
  let id: number;
  try {
    fs.writeFileSync(path.join(dir, 'saved_model.pb'), g.savedModel('serve'));
    id = backend.loadSavedModelMetaGraph(dir, 'serve');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    run: (feeds, fetch) => backend.runSavedModel(id, feeds.map(([, t]) => t), feeds.map(([n]) => ({ name: `${n}:0` })), fetch.map((f) => `${f}:0`)),
    dispose: () => backend.deleteSavedModel(id),
  };
}

function randoms(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => scale * (2 * r() - 1));
}

// ---------------------------------------------------------------- gemm

async function gemm(o: { tokens: number; repeats: number; inDim: number; outDim: number }): Promise<void> {
  const { tokens: N, inDim: K, outDim: M } = o;
  const g = new GraphBuilder();
  const x = g.placeholder('x', 'float32', [-1, K]);
  const w = g.placeholder('w', 'float32', [M, K]);
  const wp = g.placeholder('w_packed', 'int32', [M, K / 2]);
  const mm = (name: string, a: Ref, b: Ref, t: DType) => g.op('MatMul', [a, b], { ...T(t), transpose_a: bool(false), transpose_b: bool(true) }, name);
  const cast = (name: string, v: Ref, from: DType, to: DType) => g.op('Cast', [v], { SrcT: type(from), DstT: type(to), Truncate: bool(false) }, name);
  g.op('Identity', [mm('f32_mm', x, w, 'float32')], T('float32'), 'f32');
  const xb = cast('x_bf16', x, 'float32', 'bfloat16');
  // int32 [M, K/2] holding M·K bf16 → bf16 [M, K] (Bitcast shares the buffer; Reshape is free)
  const bits = g.op('Bitcast', [wp], { T: type('int32'), type: type('bfloat16') }, 'w_bf16/bitcast');
  const wb = g.op('Reshape', [bits, g.constant([M, K], 'int32')], { ...T('bfloat16'), Tshape: type('int32') }, 'w_bf16');
  cast('bf16', mm('bf16_mm', xb, wb, 'bfloat16'), 'bfloat16', 'float32');
  const s = loadGraph(g);
  const xv = randoms(N * K, 1), wv = randoms(M * K, 2, 0.05);
  const xt = tf.tensor2d(xv, [N, K]), wt = tf.tensor2d(wv, [M, K]), wpt = tf.tensor2d(packBf16(wv), [M, K / 2], 'int32');
  const run = (which: 'f32' | 'bf16') => {
    const t0 = performance.now();
    const [y] = s.run(which === 'f32' ? [['x', xt], ['w', wt]] : [['x', xt], ['w_packed', wpt]], [which]);
    const data = y.dataSync() as Float32Array;
    const ms = performance.now() - t0;
    y.dispose();
    return { ms, data };
  };
  const ref = run('f32').data, low = run('bf16').data; // warm-up, and the values
  let maxAbs = 0, maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ref[i] - low[i]));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  const times: Record<string, number[]> = { f32: [], bf16: [] };
  for (let r = 0; r < o.repeats; r++) {
    for (const k of (r % 2 ? ['bf16', 'f32'] : ['f32', 'bf16']) as Array<'f32' | 'bf16'>) times[k].push(run(k).ms);
  }
  const flop = 2 * N * K * M;
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  for (const k of ['f32', 'bf16']) {
    console.log(`${k}: ${times[k].map((t) => t.toFixed(1)).join(', ')} ms; median ${med(times[k]).toFixed(1)} ms = ${(flop / med(times[k]) / 1e6).toFixed(0)} GFLOPS`);
  }
  console.log(`bf16 ÷ f32 time: ${(med(times.bf16) / med(times.f32)).toFixed(2)}; max |Δ| ${maxAbs.toExponential(2)} = ${((100 * maxAbs) / maxRef).toFixed(3)}% of max |y|`);
  s.dispose();
  tf.dispose([xt, wt, wpt]);
}

// ---------------------------------------------------------------- the whole encoder

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);

/**
 * The same model loaded at fp32 and at bf16 in one process (loadModel's precision), embedding
 * `texts` generated passages (16–256 tokens, the bench corpus generator) and the model card's
 * texts in batches, alternating which precision goes first; cosine of every bf16 embedding to its
 * fp32 one, and the time of each.
 */
async function encoder(o: { model: string; texts: number; batch: number; seed: number; repeats: number }): Promise<void> {
  const fp32 = await loadModel(o.model, { keepLinearWeights: false });
  const t0 = performance.now();
  const bf16 = await loadModel(o.model, { keepLinearWeights: false, precision: 'bf16' });
  console.log(`bf16 load ${((performance.now() - t0) / 1000).toFixed(2)} s (fp32 ${fp32.info.loadSeconds.toFixed(2)} s)`);
  const w = makeWorkload(parseWorkload('corpus', o.texts), fp32.tokenizer, o.seed);
  const card = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'test', 'fixtures', 'model-card.json'), 'utf8'));
  const texts = [...(w as { texts: string[] }).texts, ...card.queries.map((q: string) => `query: ${q}`), ...card.passages.map((p: string) => `passage: ${p}`)];
  // Warm-up: each builds and optimises its graph once (a process embedding a corpus pays it once).
  for (const m of [fp32, bf16]) await m.embed(texts.slice(0, o.batch), { batchSize: o.batch });
  const secs: Record<string, number[]> = { fp32: [], bf16: [] };
  const emb: Record<string, Float32Array[]> = {};
  for (let r = 0; r < o.repeats; r++) {
    for (const [k, m] of (r % 2 ? [['bf16', bf16], ['fp32', fp32]] : [['fp32', fp32], ['bf16', bf16]]) as Array<[string, typeof fp32]>) {
      const t = performance.now();
      emb[k] = (await m.embed(texts, { batchSize: o.batch })).embeddings;
      secs[k].push((performance.now() - t) / 1000);
    }
  }
  const cos = emb.bf16.map((e, i) => cosine(e, emb.fp32[i]));
  const stats = (xs: number[]) => `min ${Math.min(...xs).toFixed(6)}, mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(6)}`;
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  console.log(`${texts.length} texts, batches of ${o.batch}, ${o.repeats} alternating runs each`);
  console.log(`cosine bf16 vs fp32: ${o.texts} generated passages ${stats(cos.slice(0, o.texts))}; model card texts ${stats(cos.slice(o.texts))}`);
  console.log(`embed s: fp32 ${secs.fp32.map((x) => x.toFixed(2)).join(', ')}; bf16 ${secs.bf16.map((x) => x.toFixed(2)).join(', ')}; bf16 ÷ fp32 (medians) ${(med(secs.bf16) / med(secs.fp32)).toFixed(2)}`);
  fp32.dispose();
  bf16.dispose();
}

async function main(): Promise<void> {
  const program = new Command('bf16-probe');
  program.command('gemm').option('--tokens <n>', 'rows of x', '1024').option('--repeats <n>', 'timed runs per form', '5')
    .option('--in <n>', 'K', '1024').option('--out <n>', 'M', '4096')
    .action(async (opts) => {
      await initBackend({ backend: 'tensorflow', threads: 2 });
      await gemm({ tokens: Number(opts.tokens), repeats: Number(opts.repeats), inDim: Number(opts.in), outDim: Number(opts.out) });
    });
  program.command('encoder').requiredOption('--model <dir>', 'model folder').option('--texts <n>', 'generated passages (16–256 tokens)', '64')
    .option('--batch <n>', 'texts per forward', '32').option('--seed <n>', 'seed of the passages', '7').option('--repeats <n>', 'timed runs per precision', '3')
    .action(async (opts) => {
      await initBackend({ backend: 'tensorflow', threads: 2 });
      await encoder({ model: opts.model, texts: Number(opts.texts), batch: Number(opts.batch), seed: Number(opts.seed), repeats: Number(opts.repeats) });
    });
  await program.parseAsync(process.argv);
}

if (require.main === module) {
  main().then(() => process.exit(0), (e) => {
    process.stderr.write(`bf16-probe: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
