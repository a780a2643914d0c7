// Checks that @tensorflow/tfjs-node loads and computes: prints tfjs-node's and TensorFlow's
// versions, and compares a matMul and a softmax with the same computed in float64 here.
// Exit 0 when it works.
'use strict';
const NAME = process.env.E5_NATIVE_NAME || 'make native';
process.env.TF_CPP_MIN_LOG_LEVEL = process.env.TF_CPP_MIN_LOG_LEVEL || '2';
let tf;
try {
  tf = require('@tensorflow/tfjs-node');
} catch (e) {
  const missing = e.code === 'MODULE_NOT_FOUND' && /'@tensorflow\/tfjs-node'/.test(e.message);
  console.error(`${NAME}: ${missing ? '@tensorflow/tfjs-node is not installed here (npm install @tensorflow/tfjs-node where its download works, else npx e5 native / make native)' : `@tensorflow/tfjs-node does not load: ${e.message.split('\n')[0]}`}`);
  process.exit(1);
}

const M = 48, K = 96, N = 40;
const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));

function expected() {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[k * N + n];
      c[m * N + n] = s;
    }
    const row = c.subarray(m * N, (m + 1) * N);
    const max = Math.max(...row);
    let z = 0;
    for (let n = 0; n < N; n++) z += Math.exp(row[n] - max);
    for (let n = 0; n < N; n++) row[n] = Math.exp(row[n] - max) / z;
  }
  return c;
}

async function main() {
  await tf.setBackend('tensorflow');
  if (tf.getBackend() !== 'tensorflow') throw new Error(`tf.setBackend('tensorflow') gave '${tf.getBackend()}'`);
  const got = tf.tidy(() => tf.softmax(tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N]))).dataSync());
  const want = expected();
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  if (!(maxDiff < 1e-5)) {
    throw new Error(`tfjs-node loads but a ${M}×${K}·${K}×${N} matMul + softmax differs from float64 by ${maxDiff}`);
  }
  const tfVersion = tf.backend().binding?.TF_Version ?? '(version unknown)';
  console.log(`${NAME}: @tensorflow/tfjs-node ${tf.version['tfjs-node']} works on TensorFlow ${tfVersion}` +
    ` (backend 'tensorflow'; matMul + softmax vs float64: max |Δ| ${maxDiff.toExponential(1)})`);
}

main().catch((e) => {
  console.error(`${NAME}: ${e.message}`);
  process.exit(1);
});
