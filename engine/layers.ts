/**
 * The small pure functions a BERT layer is made of. Each mirrors one Hugging Face module
 * (modeling_bert.py) and works on 2-D [N, *] token matrices: N tokens of all rows packed
 * together, which is the shape XNNPACK's fast GEMM wants (shared/TFJS-WASM-NOTES.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HiddenAct } from '../weights/config';
import { LayerNormParams, Linear, PACKED_WEIGHT } from '../weights/params';
import { GELU_ERF_KERNEL, LAYER_NORM_KERNEL } from './kernels';

/**
 * nn.Linear with the weight stored [in, out]: x @ W + b as one fused, un-transposed matmul.
 * Always this exact call: tfjs-wasm caches XNNPACK's packed weights per (weight, bias,
 * activation), and a released weight (engine/heap.ts) exists only in that cache.
 */
export function linear(x: tf.Tensor2D, p: Linear): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: p[PACKED_WEIGHT] ?? p.weight, bias: p.bias }) as tf.Tensor2D; // [N, out]
}

/** nn.LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, biased variance. */
export function layerNorm(x: tf.Tensor2D, p: LayerNormParams, eps: number): tf.Tensor2D {
  if (x.dtype === 'float32' && tf.getKernel(LAYER_NORM_KERNEL, tf.getBackend())) {
    // The same formula in one kernel, statistics in float64 (engine/kernels.ts).
    return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma: p.weight, beta: p.bias }, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true); // [N,1] each
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, p.weight), p.bias) as tf.Tensor2D;
  });
}

/** GELU, exact erf form: x·Φ(x) = 0.5·x·(1 + erf(x/√2)), as torch.nn.functional.gelu. */
export function geluErf(x: tf.Tensor2D): tf.Tensor2D {
  if (x.dtype === 'float32' && tf.getKernel(GELU_ERF_KERNEL, tf.getBackend())) {
    return tf.engine().runKernel(GELU_ERF_KERNEL, { x }, {}) as tf.Tensor2D; // the same formula in one pass (engine/kernels.ts)
  }
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as tf.Tensor2D);
}

/** HF ACT2FN: "gelu" is the exact erf form x·Φ(x); "gelu_new"/"gelu_pytorch_tanh" the tanh approximation. */
export function activation(x: tf.Tensor2D, act: HiddenAct): tf.Tensor2D {
  return tf.tidy(() => {
    switch (act) {
      case 'gelu':
        return geluErf(x);
      case 'gelu_new':
      case 'gelu_pytorch_tanh': {
        const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
        return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner))) as tf.Tensor2D;
      }
      case 'relu':
        return tf.relu(x);
    }
  });
}
