/**
 * engine/backends/wasm/simd.ts and the attention kernels on it (engine/backends/wasm/kernels.ts). Expectations: attention
 * computed by hand in float64; the JavaScript GELU's and LayerNorm's bits; tfjs-wasm's own per-head matmuls (XNNPACK) bit for bit for q·kᵀ;
 * the one-kernel and the three-step (hook) forms bit for bit; a worker computing its share of
 * the heads; the engine taking this path on wasm.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo } from '../../engine/backend';
import { MASK_VALUE } from '../../engine/bert';
import {
  ATTENTION_KERNEL, AttentionAttrs, ATTN_SCORES_KERNEL, ATTN_SOFTMAX_KERNEL, ATTN_Z_KERNEL, GELU_ERF_KERNEL, LAYER_NORM_KERNEL, ROW_HEADS_KERNEL, RowAttentionAttrs, WasmBackendLike,
} from '../../engine/backends/wasm/kernels';
import { simdAttentionAvailable } from '../../engine/backends/wasm';
import { geluErfInto, layerNormInto } from '../../engine/backends/elementwise';
import { attentionScratchFloats, compileSimdModule, instantiateSimd } from '../../engine/backends/wasm/simd';
import { HeapThreads, MIN_PARALLEL_MACS } from '../../engine/backends/wasm/threads';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { HookName } from '../../engine/hooks';
import { readBertConfig } from '../../weights/config';
import { loadBert } from '../support/golden';
import { cachedModel, generateModel } from '../../devtools/generate-model';
import { testBackend } from '../support/backend';
import { attentionByHand } from '../support/attention';
import { mulberry32 } from '../../devtools/rng';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
const run = <T extends tf.Tensor>(kernel: string, inputs: tf.NamedTensorMap, attrs: object) => tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as T;

function randoms(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * rand() - 1);
}

describe('attention in wasm SIMD', () => {
  before(async function () {
    await testBackend();
    if (!simdAttentionAvailable(8)) this.skip(); // wasm only (the module imports tfjs-wasm's memory)
  });

  // Rows of 1 token, under one 4×8 tile, over several tiles, past 32 and 128 (the split over threads).
  const cases = [
    { H: 4, Dh: 8, lengths: [1, 5, 13, 40], pad: [0, 2, 0, 7] },
    { H: 2, Dh: 16, lengths: [37, 3], pad: [0, 1] },
    { H: 16, Dh: 64, lengths: [130], pad: [9] },
  ];

  it('computes softmax(q·kᵀ/√Dh + mask)·v as by hand in float64, every row and head', () => {
    cases.forEach(({ H, Dh, lengths, pad }, i) => {
      const D = H * Dh, N = lengths.reduce((a, b) => a + b), starts = lengths.map((_, r) => lengths.slice(0, r).reduce((a, b) => a + b, 0));
      const keyMask = lengths.flatMap((T, r) => Array.from({ length: T }, (_, t) => (t < T - pad[r] ? 1 : 0)));
      const [qv, kv, vv] = [1, 2, 3].map((s) => randoms(N * D, 10 * i + s));
      const got = tf.tidy(() => run<tf.Tensor2D>(ATTENTION_KERNEL, { q: tf.tensor2d(qv, [N, D]), k: tf.tensor2d(kv, [N, D]), v: tf.tensor2d(vv, [N, D]) },
        { starts, lengths, heads: H, keyMask, scale: Math.sqrt(Dh) } satisfies AttentionAttrs).dataSync() as Float32Array);
      const want = attentionByHand(qv, kv, vv, D, H, starts, lengths, keyMask);
      const worst = got.reduce((w, x, j) => Math.max(w, Math.abs(x - want[j])), 0);
      assert.ok(worst < 1e-6, `case ${i}: max abs error ${worst.toExponential(2)}`);
    });
  });

  it('scores are the bits of tfjs-wasm\'s per-head matmuls, divided and masked as the tfjs ops do', () => {
    const H = 4, Dh = 16, D = H * Dh, T = 23, start = 3, N = 30;
    const keyMask = Array.from({ length: N }, (_, t) => (t >= 20 ? 0 : 1));
    const [qv, kv] = [4, 5].map((s) => randoms(N * D, s));
    tf.tidy(() => {
      const q = tf.tensor2d(qv, [N, D]), k = tf.tensor2d(kv, [N, D]), scale = Math.sqrt(Dh);
      const scores = run<tf.Tensor3D>(ATTN_SCORES_KERNEL, { q, k }, { start, length: T, heads: H, keyMask, scale } satisfies RowAttentionAttrs);
      const mask = tf.tensor2d(keyMask.slice(start, start + T).map((m) => (m === 1 ? 0 : MASK_VALUE)), [1, T]);
      for (let h = 0; h < H; h++) {
        const qh = tf.slice(q, [start, h * Dh], [T, Dh]) as tf.Tensor2D, kT = tf.transpose(tf.slice(k, [start, h * Dh], [T, Dh])) as tf.Tensor2D;
        const want = tf.add(tf.div(tf.matMul(qh, kT), scale), mask); // un-transposed 2-D: XNNPACK, as the engine's per-head path
        assert.deepEqual(bits(tf.slice(scores, [h, 0, 0], [1, T, T]).dataSync() as Float32Array), bits(want.dataSync() as Float32Array), `head ${h}`);
      }
    });
  });

  it('softmax: rows of any length, masked and infinite entries, NaN as torch', () => {
    const rows = [[1, 2, 3], [0, 0, 0, 0, 0], [5, MASK_VALUE, 1, MASK_VALUE, 2, 7, -1], [-Infinity, 0, 1, 2, 3, 4, 5, 6, 7], [NaN, 1, 2, 3, 4]];
    for (const row of rows) {
      const got = tf.tidy(() => run<tf.Tensor>(ATTN_SOFTMAX_KERNEL, { x: tf.tensor2d([row]) }, {}).dataSync());
      const m = Math.max(...row), e = row.map((x) => Math.exp(x - m)), sum = e.reduce((a, b) => a + b);
      e.forEach((x, j) => {
        if (Number.isNaN(x / sum)) assert.ok(Number.isNaN(got[j]), `[${row}] → NaN`);
        else assert.ok(Math.abs(got[j] - x / sum) <= 2e-7 * (x / sum) + 1e-30, `[${row}][${j}]: ${got[j]} vs ${x / sum}`);
      });
    }
  });

  it('one kernel and the three steps the hooks see give the same bits; threads split long rows', () => {
    const H = 16, Dh = 64, D = H * Dh, lengths = [7, 131], starts = [0, 7], N = 138;
    assert.ok(2 * 131 * 131 * D >= MIN_PARALLEL_MACS, 'the long row is split over the threads');
    const keyMask = Array.from({ length: N }, (_, t) => (t >= 135 ? 0 : 1));
    const [qv, kv, vv] = [6, 7, 8].map((s) => randoms(N * D, s));
    tf.tidy(() => {
      const q = tf.tensor2d(qv, [N, D]), k = tf.tensor2d(kv, [N, D]), v = tf.tensor2d(vv, [N, D]), scale = Math.sqrt(Dh);
      const once = run<tf.Tensor2D>(ATTENTION_KERNEL, { q, k, v }, { starts, lengths, heads: H, keyMask, scale } satisfies AttentionAttrs);
      const steps = tf.concat(starts.map((start, r) => {
        const attrs: RowAttentionAttrs = { start, length: lengths[r], heads: H, keyMask, scale };
        const pattern = run<tf.Tensor3D>(ATTN_SOFTMAX_KERNEL, { x: run<tf.Tensor3D>(ATTN_SCORES_KERNEL, { q, k }, attrs) }, {});
        return run<tf.Tensor2D>(ATTN_Z_KERNEL, { pattern, v }, attrs);
      }));
      assert.deepEqual(bits(once.dataSync() as Float32Array), bits(steps.dataSync() as Float32Array));
    });
  });

  it('GELU: the bits of the JavaScript function (engine/backends/elementwise.ts), specials and a tail included', () => {
    const specials = [NaN, Infinity, -Infinity, 0, -0, 3.92 * Math.SQRT2, -3.92 * Math.SQRT2, 1e-30, -1e-30, 3.4e38, -3.4e38];
    const n = 40_003, x = Float32Array.from({ length: n }, (_, i) => (i < specials.length ? specials[i] : -6 + (12 * ((i * 7919) % n)) / n));
    const want = new Float32Array(n);
    geluErfInto(x, want);
    const got = tf.tidy(() => run<tf.Tensor>(GELU_ERF_KERNEL, { x: tf.tensor2d(x, [1, n]) }, {}).dataSync() as Float32Array);
    assert.deepEqual(bits(got), bits(want));
  });

  it('LayerNorm: the bits of the JavaScript function (engine/backends/elementwise.ts), rows of any width', () => {
    for (const D of [1, 3, 8, 37, 1024]) {
      const R = 5, x = Float32Array.from({ length: R * D }, (_, i) => (i % 7 === 0 ? 40 : 0) + 3 * Math.sin(i * 1.37));
      const gamma = Float32Array.from({ length: D }, (_, j) => 1 + 0.3 * Math.cos(j)), beta = Float32Array.from({ length: D }, (_, j) => 0.1 * Math.sin(3 * j));
      const want = new Float32Array(R * D);
      layerNormInto(x, gamma, beta, 1e-12, D, want);
      const got = tf.tidy(() => run<tf.Tensor>(LAYER_NORM_KERNEL, { x: tf.tensor2d(x, [R, D]), gamma: tf.tensor1d(gamma), beta: tf.tensor1d(beta) }, { eps: 1e-12 }).dataSync() as Float32Array);
      assert.deepEqual(bits(got), bits(want), `D = ${D}`);
    }
  });

  it('a worker computes its share of the heads', async function () {
    const wasm = (tf.backend() as unknown as WasmBackendLike).wasm;
    if (backendInfo().threads < 2 || !(wasm.wasmMemory?.buffer instanceof SharedArrayBuffer)) this.skip(); // the split needs the threaded (shared) heap
    const H = 4, Dh = 16, D = H * Dh, T = 20;
    const module = await compileSimdModule(true);
    // The main thread's share (heads 0, 1) is left undone, so only the worker writes.
    const main = { ...instantiateSimd(module, wasm.wasmMemory!), attention: () => undefined };
    const threads = new HeapThreads(wasm.wasmMemory!, 1, { module, main });
    const [qv, kv, vv] = [9, 10, 11].map((s) => randoms(T * D, s));
    const [q, k, v] = [qv, kv, vv].map((a) => tf.tensor2d(a, [T, D]));
    const z = tf.fill([T, D], NaN), scratch = tf.zeros([2 * attentionScratchFloats(T, Dh)]);
    const off = (t: tf.Tensor) => (tf.backend() as unknown as WasmBackendLike).dataIdMap.get(t.dataId)!.memoryOffset;
    threads.attention({ q: off(q), k: off(k), v: off(v), z: off(z), Dh, T, mask: 0, scale: Math.sqrt(Dh), scratch: off(scratch), scratchBytes: 4 * attentionScratchFloats(T, Dh) }, D, H);
    const got = z.dataSync(), want = attentionByHand(qv, kv, vv, D, H, [0], [T], new Array(T).fill(1));
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < D; c++) {
        if (c < 2 * Dh) assert.ok(Number.isNaN(got[t * D + c]), `z[${t}, ${c}]: the main thread's share is untouched`);
        else assert.ok(Math.abs(got[t * D + c] - want[t * D + c]) < 1e-6, `z[${t}, ${c}]: the worker's share`);
      }
    }
    tf.dispose([q, k, v, z, scratch]);
  });

  it('heads whose width is not a multiple of 8 take the tfjs-op path, which computes the same attention', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-simd-dh9-'));
    try {
      const H = 4, Dh = 9, D = H * Dh;
      const config = readBertConfig(cachedModel({ preset: 'tiny' }));
      generateModel(dir, { config: { ...config, numHiddenLayers: 1, hiddenSize: D, numAttentionHeads: H, intermediateSize: 40 } });
      const bert = loadBert(dir);
      assert.ok(!simdAttentionAvailable(Dh));
      for (const T of [5, 40]) { // one batched matmul per row under 32 tokens, per-head matmuls from 32 on
        const names: HookName[] = ['blocks.0.attn.hook_q', 'blocks.0.attn.hook_k', 'blocks.0.attn.hook_v', 'blocks.0.attn.hook_z'];
        const { output, cache } = bert.runWithCache({ inputIds: [Array.from({ length: T }, (_, t) => 1000 + 7 * t)], attentionMask: [new Array(T).fill(1)] }, { names });
        const [q, k, v, z] = names.map((n) => cache.get(n).dataSync() as Float32Array); // [1, T, H, Dh] = [T, D]
        const want = attentionByHand(q, k, v, D, H, [0], [T], new Array(T).fill(1));
        const worst = z.reduce((w, x, j) => Math.max(w, Math.abs(x - want[j])), 0);
        assert.ok(worst < 1e-5, `T = ${T}: max abs error ${worst.toExponential(2)}`);
        output.dispose();
        cache.dispose();
      }
      bert.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the engine attends with one kernel per layer, with three steps when a hook wants the pattern, and leaks nothing', async () => {
    const bert = await loadBert(cachedModel({ preset: 'tiny' }));
    const batch = { inputIds: [[101, 2000, 2001, 2002, 102], [101, 2003, 102, 0, 0]], attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]] };
    try {
      const plain = await tf.profile(() => bert.forward(batch).dispose());
      const calls = (name: string) => plain.kernels.filter((k) => k.name === name).length;
      assert.equal(calls(ATTENTION_KERNEL), bert.config.numHiddenLayers, 'one attention kernel per layer');
      assert.equal(calls('Softmax') + calls(ROW_HEADS_KERNEL), 0, `no tfjs-op attention: ${plain.kernelNames}`);
      const hooked = await tf.profile(() => {
        const { output, cache } = bert.runWithCache(batch, { names: 'blocks.0.attn.hook_pattern' });
        output.dispose();
        cache.dispose();
      });
      assert.ok([ATTN_SCORES_KERNEL, ATTN_SOFTMAX_KERNEL, ATTN_Z_KERNEL].every((n) => hooked.kernelNames.includes(n)), `kernels: ${hooked.kernelNames}`);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) bert.forward(batch).dispose();
      assert.equal(tf.memory().numTensors, before);
    } finally {
      bert.dispose();
    }
  });
});
