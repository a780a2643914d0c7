// One row's attention for the 16 heads of e5-large (Dh 64) on the wasm backend, two ways, at
// several row lengths: one batched matmul per product (tfjs-wasm runs batched matmuls in a scalar
// loop) vs one 2-D matmul per head (XNNPACK, but ~35 op dispatches). engine/bert.ts picks by row
// length (PER_HEAD_MIN_TOKENS) from these numbers.
//
//   npx ts-node --transpile-only bench/attention.ts [--threads N]

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/backend';

const H = 16, Dh = 64, LENGTHS = [8, 16, 24, 32, 48, 64, 128], REPEATS = 30;

function batched(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor {
  const T = q.shape[1];
  const pattern = tf.softmax(tf.matMul(q, tf.transpose(k, [0, 2, 1])));
  return tf.reshape(tf.transpose(tf.matMul(pattern, v), [1, 0, 2]), [T, H * Dh]);
}

function perHead(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor {
  const kT = tf.unstack(tf.transpose(k, [0, 2, 1])), vs = tf.unstack(v);
  const scores = tf.stack(tf.unstack(q).map((qh, h) => tf.matMul(qh as tf.Tensor2D, kT[h] as tf.Tensor2D)));
  return tf.concat(tf.unstack(tf.softmax(scores)).map((a, h) => tf.matMul(a as tf.Tensor2D, vs[h] as tf.Tensor2D)), 1);
}

function msPerCall(f: () => tf.Tensor): number {
  for (let i = 0; i < 3; i++) tf.tidy(f).dispose();
  const t0 = performance.now();
  for (let i = 0; i < REPEATS; i++) tf.tidy(() => { const r = f(); r.dataSync(); return r; }).dispose();
  return (performance.now() - t0) / REPEATS;
}

async function main(): Promise<void> {
  const threadsAt = process.argv.indexOf('--threads');
  const info = await initBackend({ backend: 'wasm', threads: threadsAt > 0 ? Number(process.argv[threadsAt + 1]) : undefined });
  console.log(`wasm, ${info.threads} threads; ms per row and layer, mean of ${REPEATS}\n`);
  console.log('| tokens | batched ms | per head ms | max abs diff |\n| ---: | ---: | ---: | ---: |');
  for (const T of LENGTHS) {
    const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([H, T, Dh]) as tf.Tensor3D);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(batched(q, k, v), perHead(q, k, v)))).dataSync()[0]);
    console.log(`| ${T} | ${msPerCall(() => batched(q, k, v)).toFixed(2)} | ${msPerCall(() => perHead(q, k, v)).toFixed(2)} | ${diff.toExponential(1)} |`);
    tf.dispose([q, k, v]);
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); }); // wasm threads keep Node alive
