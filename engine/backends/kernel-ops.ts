/**
 * GELU and LayerNorm as one kernel each — E5GeluErf and E5LayerNorm, which the wasm and cpu
 * backends register (the arithmetic: ../elementwise.ts) — with the composed tfjs ops where the
 * current backend has no such kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerNormParams } from '../../weights/params';
import { genericOps } from './generic/ops';

export const GELU_ERF_KERNEL = 'E5GeluErf';
export const LAYER_NORM_KERNEL = 'E5LayerNorm';

const registered = (kernel: string) => tf.getKernel(kernel, tf.getBackend()) !== undefined;

/** GELU, exact erf form, in one pass (float64 inside, rounded once). */
export function geluErf(x: tf.Tensor2D): tf.Tensor2D {
  if (x.dtype !== 'float32' || !registered(GELU_ERF_KERNEL)) return genericOps.gelu(x);
  return tf.engine().runKernel(GELU_ERF_KERNEL, { x }, {}) as tf.Tensor2D;
}

/** LayerNorm over the last axis in one kernel, statistics in float64. */
export function layerNorm(x: tf.Tensor2D, p: LayerNormParams, eps: number): tf.Tensor2D {
  if (x.dtype !== 'float32' || !registered(LAYER_NORM_KERNEL)) return genericOps.layerNorm(x, p, eps);
  return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma: p.weight, beta: p.bias }, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
