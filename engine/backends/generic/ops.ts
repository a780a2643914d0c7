/**
 * The encoder's operations from plain tfjs ops (engine/ops.ts): correct on any tfjs backend, and
 * the base every backend folder overrides where it has something faster.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Ops } from '../../ops';
import { PACKED_WEIGHT } from '../../../weights/params';
import { rowAttention } from './attention';

export const genericOps: Ops = {
  // One fused matmul (un-transposed unless the weight is [out, in]). A released weight (wasm, engine/backends/wasm/heap.ts)
  // lives on only as the key of XNNPACK's packed copy: the call must name that tensor.
  linear: (x, p) => tf.fused.matMul({ a: x, b: p[PACKED_WEIGHT] ?? p.weight, transposeB: p.outIn === true, bias: p.bias }) as tf.Tensor2D, // [N,out]

  layerNorm: (x, p, eps) =>
    tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true); // [N,1] each
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
      return tf.add(tf.mul(normed, p.weight), p.bias) as tf.Tensor2D;
    }),

  gelu: (x) => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as tf.Tensor2D),

  gather: (table, ids) => tf.tidy(() => tf.gather(table, tf.tensor1d(ids, 'int32')) as tf.Tensor2D),

  ...rowAttention(),
};
