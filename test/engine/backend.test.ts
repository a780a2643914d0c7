/**
 * The backend module: the thread count really took effect (read back from the wasm module, so a
 * broken trick shows as 1), and our wasm Slice/Unpack kernels give exactly the values an
 * independent JS slice gives.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import * as os from 'os';
import { backendInfo, initBackend, maxThreads } from '../../engine/backend';
import { geluErf, layerNorm } from '../../engine/backends/kernel-ops';
import { GELU_ERF_KERNEL, LAYER_NORM_KERNEL, ROW_HEADS_KERNEL, RowHeadsAttrs } from '../../engine/backends/wasm/kernels';
import { elementwiseThreads } from '../../engine/backends/wasm';
import { geluErfInto, layerNormInto } from '../../engine/backends/elementwise';
import { MIN_PARALLEL_ELEMENTS } from '../../engine/backends/wasm/threads';
import { mulberry32 } from '../../devtools/rng';
import { testBackend } from '../support/backend';

/** Row-major slice of a flat array, computed without tfjs. */
function jsSlice(x: Float32Array, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const walk = (d: number, off: number) => {
    if (d === shape.length) return void out.push(x[off]);
    for (let i = 0; i < size[d]; i++) walk(d + 1, off + (begin[d] + i) * strides[d]);
  };
  walk(0, 0);
  return out;
}

describe('backend', () => {
  before(async () => {
    await testBackend();
  });

  it('reports the backend and the threads it really uses', function () {
    const info = backendInfo();
    assert.equal(info.name, process.env.E5_TEST_BACKEND ?? 'wasm');
    if (info.name !== 'wasm') this.skip();
    const asked = Number(process.env.E5_TEST_THREADS ?? 2);
    // Read back from the wasm module: without the worker/CPU-count work in engine/backend.ts this is 1.
    assert.equal(info.threads, asked, `asked for ${asked} wasm threads, the module runs ${info.threads}`);
  });

  it('threads are bounded by the cores: more (10000), 0 or 1.5 is a RangeError naming the bound', async () => {
    const cores = os.cpus().length;
    assert.equal(maxThreads(), cores);
    for (const threads of [cores + 1, 10_000, 0, 1.5]) {
      await assert.rejects(initBackend({ threads }), new RegExp(`threads must be an integer from 1 to ${cores} \\(the cores of this machine\\), got ${threads}`));
    }
  });

  it('refuses to switch backend once initialised', async () => {
    const other = backendInfo().name === 'cpu' ? 'wasm' : 'cpu';
    await assert.rejects(initBackend({ backend: other }), /already initialised/);
  });

  it('slices (contiguous, strided, every rank up to 4) and unstacks exactly', () => {
    const shape = [3, 5, 4, 6];
    const x = Float32Array.from({ length: 3 * 5 * 4 * 6 }, (_, i) => Math.sin(i) * 100);
    const t = tf.tensor(x, shape);
    const cases: Array<[number[], number[]]> = [
      [[1, 0, 0, 0], [1, 5, 4, 6]], // contiguous
      [[0, 2, 1, 3], [3, 2, 2, 3]], // strided in every dimension
      [[2, 4, 3, 5], [1, 1, 1, 1]], // a single element
      [[0, 0, 0, 0], [3, 5, 4, 6]], // everything
      [[1, 1, 0, 0], [2, 0, 4, 6]], // empty
    ];
    for (const [begin, size] of cases) {
      const s = tf.slice(t, begin, size);
      assert.deepEqual(Array.from(s.dataSync()), jsSlice(x, shape, begin, size), `slice ${begin} ${size}`);
      s.dispose();
    }
    const two = tf.tensor2d(x.subarray(0, 60), [6, 10]);
    const s2 = tf.slice(two, [2, 3], [3, 4]);
    assert.deepEqual(Array.from(s2.dataSync()), jsSlice(x.subarray(0, 60), [6, 10], [2, 3], [3, 4]));
    const parts = tf.unstack(t, 1);
    parts.forEach((p, i) => {
      assert.deepEqual(p.shape, [3, 4, 6]);
      assert.deepEqual(Array.from(p.dataSync()), jsSlice(x, shape, [0, i, 0, 0], [3, 1, 4, 6]));
    });
    [t, two, s2, ...parts].forEach((u) => u.dispose());
  });

  // x·Φ(x) from Python's math.erf in float64 (independent of every erf in this process).
  const GELU_REFERENCE: Array<[number, number]> = [
    [-6, -5.9195258694799691e-09], [-3, -0.0040496940948903104], [-1.5, -0.10021080190328713],
    [-1, -0.15865525393145707], [-0.5, -0.15426876936299344], [-0.001, -0.00049960105778608897], [0, 0],
    [0.001, 0.00050039894221391105], [0.5, 0.34573123063700656], [1, 0.84134474606854293],
    [1.5, 1.399789198096713], [2, 1.9544997361036416], [3, 2.9959503059051098], [5.5, 5.4999998955574068], [10, 10],
  ];

  it('exact GELU: math.erf reference values to float32 resolution, the composed tfjs ops on a dense grid, NaN/Inf as torch', () => {
    if (backendInfo().name === 'wasm') assert.ok(tf.getKernel(GELU_ERF_KERNEL, 'wasm'), 'the one-pass kernel is registered on wasm');
    const ref = tf.tensor2d(GELU_REFERENCE.map(([x]) => x), [1, GELU_REFERENCE.length]);
    const got = tf.tidy(() => geluErf(ref).dataSync());
    GELU_REFERENCE.forEach(([x, want], i) => {
      // One float32 spacing at |x| <= 1 (torch's own float32 gelu is off by 1.7e-7 at x = -3).
      assert.ok(Math.abs(got[i] - want) <= 6e-8 * Math.max(1, Math.abs(x)), `gelu(${x}) = ${got[i]}, math.erf says ${want}`);
    });
    // Every 1/256 on [-12, 12]: against 0.5·x·(1 + tf.erf(x/√2)) from the backend's own Erf kernel.
    const grid = Float32Array.from({ length: 24 * 256 + 1 }, (_, i) => -12 + i / 256);
    const x = tf.tensor2d(grid, [1, grid.length]);
    const [fast, composed] = tf.tidy(() => [geluErf(x).dataSync(), tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))).dataSync()]);
    grid.forEach((v, i) => {
      const tol = 2.4e-7 * Math.max(1, Math.abs(v)); // ~2 float32 ulps at |x| <= 2; erf kernels differ by that much
      assert.ok(Math.abs(fast[i] - composed[i]) <= tol, `gelu(${v}): ${fast[i]} vs composed ${composed[i]}`);
    });
    const special = tf.tidy(() => Array.from(geluErf(tf.tensor2d([NaN, Infinity, -Infinity], [1, 3])).dataSync()));
    assert.ok(Number.isNaN(special[0]), 'NaN stays NaN');
    assert.equal(special[1], Infinity);
    assert.ok(Number.isNaN(special[2]), '-Inf gives NaN (-inf * 0), as torch.nn.functional.gelu does');
    tf.dispose([ref, x]);
  });

  it('gathers rows (axis 0, every rank, 2-D indices) and other axes exactly; out-of-range indices throw', () => {
    const jsGather0 = (x: Float32Array, rowSize: number, idx: number[]) => idx.flatMap((r) => Array.from(x.subarray(r * rowSize, (r + 1) * rowSize)));
    const x = Float32Array.from({ length: 7 * 3 * 4 }, (_, i) => Math.cos(i) * 10);
    const idx = [6, 0, 3, 3, 1];
    for (const shape of [[7], [7, 12], [7, 3, 4]]) {
      const size = shape.reduce((a, b) => a * b, 1);
      const table = tf.tensor(x.subarray(0, size), shape);
      const g = tf.gather(table, tf.tensor1d(idx, 'int32'));
      assert.deepEqual(g.shape, [idx.length, ...shape.slice(1)]);
      assert.deepEqual(Array.from(g.dataSync()), jsGather0(x, size / 7, idx), `table rank ${shape.length}`);
      tf.dispose([table, g]);
    }
    const t2 = tf.tensor2d(x.subarray(0, 84), [7, 12]);
    const g2 = tf.gather(t2, tf.tensor2d([[1, 2], [6, 0]], [2, 2], 'int32')); // 2-D indices
    assert.deepEqual(g2.shape, [2, 2, 12]);
    assert.deepEqual(Array.from(g2.dataSync()), jsGather0(x, 12, [1, 2, 6, 0]));
    const g3 = tf.gather(t2, tf.tensor1d([11, 0, 5], 'int32'), 1); // axis 1: the stock kernel
    const want = Array.from({ length: 7 }, (_, r) => [11, 0, 5].map((c) => x[r * 12 + c])).flat();
    assert.deepEqual(Array.from(g3.dataSync()), want);
    const before = tf.memory().numTensors;
    const bad = tf.tensor1d([0, 7], 'int32');
    assert.throws(() => tf.gather(t2, bad), /index value 7 is not in \[0, 6\]/);
    bad.dispose();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([t2, g2, g3]);
  });

  it('LayerNorm: a hand-computed row, and the composed tfjs ops on random rows', () => {
    if (backendInfo().name === 'wasm') assert.ok(tf.getKernel(LAYER_NORM_KERNEL, 'wasm'), 'the one-kernel LayerNorm is registered on wasm');
    // [1, 2, 3, 4]: mean 2.5, biased variance 1.25 → (x - 2.5) / √1.25, then · gamma + beta.
    const p = { weight: tf.tensor1d([1, 2, 1, 0.5]), bias: tf.tensor1d([0, 0, 1, -1]) };
    const got = tf.tidy(() => Array.from(layerNorm(tf.tensor2d([[1, 2, 3, 4]]), p, 0).dataSync()));
    const z = [-1.5, -0.5, 0.5, 1.5].map((d) => d / Math.sqrt(1.25));
    const want = [z[0] * 1 + 0, z[1] * 2 + 0, z[2] * 1 + 1, z[3] * 0.5 - 1];
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-6, `element ${i}: ${v} vs ${want[i]}`));
    const rand = mulberry32(11);
    const D = 96, N = 37;
    const x = tf.tensor2d(Float32Array.from({ length: N * D }, () => 0.5 + 4 * (rand() - 0.5)), [N, D]);
    const q = { weight: tf.tensor1d(Float32Array.from({ length: D }, () => 1 + rand() - 0.5)), bias: tf.tensor1d(Float32Array.from({ length: D }, () => rand() - 0.5)) };
    const [fast, composed] = tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const ref = tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-12))), q.weight), q.bias);
      return [layerNorm(x, q, 1e-12).dataSync(), ref.dataSync()];
    });
    fast.forEach((v, i) => assert.ok(Math.abs(v - composed[i]) <= 2e-6, `element ${i}: ${v} vs composed ${composed[i]}`));
    tf.dispose([p.weight, p.bias, x, q.weight, q.bias]);
  });

  it('GELU and LayerNorm split over worker threads give the single-thread arithmetic bit for bit', () => {
    const rand = mulberry32(12);
    // Odd sizes, so shares end mid-way through float runs (GELU) and rows split unevenly (LayerNorm).
    const R = 97, F = 4099, D = 1024, N = 333;
    assert.ok(R * F >= MIN_PARALLEL_ELEMENTS && N * D >= MIN_PARALLEL_ELEMENTS, 'large enough to be split');
    const g = Float32Array.from({ length: R * F }, () => 8 * (rand() - 0.5));
    const l = Float32Array.from({ length: N * D }, () => 3 * (rand() - 0.5) + (rand() < 0.01 ? 40 : 0));
    const gamma = Float32Array.from({ length: D }, () => 1 + rand() - 0.5), beta = Float32Array.from({ length: D }, () => rand() - 0.5);
    const wantG = new Float32Array(g.length), wantL = new Float32Array(l.length);
    geluErfInto(g, wantG);
    layerNormInto(l, gamma, beta, 1e-12, D, wantL);
    for (let rep = 0; rep < 3; rep++) { // the workers are reused from one call to the next
      const [gotG, gotL] = tf.tidy(() => [
        geluErf(tf.tensor2d(g, [R, F])).dataSync(),
        layerNorm(tf.tensor2d(l, [N, D]), { weight: tf.tensor1d(gamma), bias: tf.tensor1d(beta) }, 1e-12).dataSync(),
      ]);
      assert.deepEqual(new Uint32Array(gotG.buffer.slice(0)), new Uint32Array(wantG.buffer.slice(0)), 'GELU');
      assert.deepEqual(new Uint32Array(gotL.buffer.slice(0)), new Uint32Array(wantL.buffer.slice(0)), 'LayerNorm');
    }
    const info = backendInfo();
    if (info.name === 'wasm') assert.equal(elementwiseThreads(), info.threads, 'large inputs ran on every wasm thread');
  });

  it('cuts a packed [N, D] matrix into each row\'s heads ([H,T,Dh], [H,Dh,T] or apart) exactly', function () {
    if (!tf.getKernel(ROW_HEADS_KERNEL, tf.getBackend())) this.skip(); // wasm only; elsewhere tfjs ops do it
    const rand = mulberry32(13);
    const H = 4, Dh = 3, D = H * Dh, lengths = [5, 1, 40, 33], starts = [0, 5, 6, 46], N = 79;
    const xv = Float32Array.from({ length: N * D }, () => rand());
    const x = tf.tensor2d(xv, [N, D]);
    // x[start + t, h·Dh + d], written out by hand.
    const head = (r: number, h: number, transposed: boolean) => {
      const T = lengths[r], out: number[] = [];
      if (transposed) for (let d = 0; d < Dh; d++) for (let t = 0; t < T; t++) out.push(xv[(starts[r] + t) * D + h * Dh + d]);
      else for (let t = 0; t < T; t++) for (let d = 0; d < Dh; d++) out.push(xv[(starts[r] + t) * D + h * Dh + d]);
      return out;
    };
    for (const transposed of [false, true]) {
      const perHead = [true, false, true, false];
      const attrs: RowHeadsAttrs = { starts, lengths, heads: H, transposed, perHead };
      const outs = tf.engine().runKernel(ROW_HEADS_KERNEL, { x }, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[];
      let k = 0;
      lengths.forEach((T, r) => {
        const shape = transposed ? [Dh, T] : [T, Dh];
        if (perHead[r]) {
          for (let h = 0; h < H; h++, k++) {
            assert.deepEqual(outs[k].shape, shape);
            assert.deepEqual(Array.from(outs[k].dataSync()), head(r, h, transposed), `row ${r} head ${h}`);
          }
        } else {
          assert.deepEqual(outs[k].shape, [H, ...shape]);
          assert.deepEqual(Array.from(outs[k++].dataSync()), [0, 1, 2, 3].flatMap((h) => head(r, h, transposed)), `row ${r}`);
        }
      });
      assert.equal(k, outs.length);
      tf.dispose(outs);
    }
    x.dispose();
  });
});
