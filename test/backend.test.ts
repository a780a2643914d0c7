/**
 * The backend module: the thread count really took effect (read back from the wasm module, so a
 * broken trick shows as 1), and our wasm Slice/Unpack kernels give exactly the values an
 * independent JS slice gives.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo, initBackend } from '../engine/backend';
import { testBackend } from './support/backend';

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
});
