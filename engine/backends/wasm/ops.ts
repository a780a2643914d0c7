/**
 * The encoder's operations on tfjs-wasm: the generic set where XNNPACK already serves (Linear as
 * one fused, un-transposed 2-D matmul — the only form that reaches XNNPACK), and our kernels
 * (./kernels.ts) for the rest: GELU and LayerNorm in one pass each, attention in one kernel per
 * layer from our SIMD module (./simd.ts), or — where the module is missing or heads are not a
 * multiple of 8 floats wide — from tfjs ops with heads cut out by one kernel (E5RowHeads).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionInput, Ops } from '../../ops';
import type { Rows } from '../../rows';
import { HeadSplitter, RowHeads, rowAttention, rowPattern, scoresGrid } from '../generic/attention';
import { genericOps } from '../generic/ops';
import { geluErf, layerNorm } from '../kernel-ops';
import {
  ATTENTION_KERNEL, AttentionAttrs, ATTN_SCORES_KERNEL, ATTN_SOFTMAX_KERNEL, ATTN_Z_KERNEL, ROW_HEADS_KERNEL, RowAttentionAttrs, RowHeadsAttrs, WasmKernelState,
} from './kernels';

/**
 * From this many tokens on, a row's attention goes head by head (2-D matmuls reach XNNPACK;
 * tfjs-wasm runs batched matmuls in a scalar loop), below it one batched matmul per row costs
 * less than ~35 op dispatches per row and layer. Measured per row and layer (16 heads, 2
 * threads): T=16 batched 0.7-1.2 ms vs per head 3.2-3.3 ms; T=64 6.8-11 vs 1.9-5.7.
 */
export const PER_HEAD_MIN_TOKENS = 32;

function runKernel<T extends tf.Tensor>(kernel: string, inputs: tf.NamedTensorMap, attrs: object): T {
  return tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as T;
}

/** Each row's heads copied out of [N, D] in one kernel, apart for rows of PER_HEAD_MIN_TOKENS or more. */
const splitHeadsInOneKernel: HeadSplitter = (x: tf.Tensor2D, rows: Rows, H: number, transposed: boolean): RowHeads[] => {
  const perHead = rows.lengths.map((T) => T >= PER_HEAD_MIN_TOKENS);
  const attrs: RowHeadsAttrs = { starts: rows.starts, lengths: rows.lengths, heads: H, transposed, perHead };
  const outs = runKernel<tf.Tensor>(ROW_HEADS_KERNEL, { x }, attrs) as unknown as tf.Tensor[];
  let k = 0;
  return perHead.map((apart) => (apart ? (outs.slice(k, (k += H)) as tf.Tensor2D[]) : (outs[k++] as tf.Tensor3D)));
};

export function wasmOps(state: WasmKernelState): Ops {
  const fromOps = rowAttention(splitHeadsInOneKernel);
  const simd = (a: AttentionInput) => state.simdAttention(a.headSize);
  const rowAttrs = (a: AttentionInput, r: number): RowAttentionAttrs =>
    ({ start: a.rows.starts[r], length: a.rows.lengths[r], heads: a.heads, keyMask: a.keyMask, scale: a.scale });
  return {
    ...genericOps,
    gelu: geluErf,
    layerNorm,
    attention(q, k, v, a) {
      if (!simd(a)) return fromOps.attention(q, k, v, a);
      const attrs: AttentionAttrs = { starts: a.rows.starts, lengths: a.rows.lengths, heads: a.heads, keyMask: a.keyMask, scale: a.scale };
      return runKernel<tf.Tensor2D>(ATTENTION_KERNEL, { q, k, v }, attrs); // every row and head in one kernel
    },
    // The hooked form runs the one kernel's own three functions, so hooking changes no number.
    attentionScores(q, k, a) {
      if (!simd(a)) return fromOps.attentionScores(q, k, a);
      return scoresGrid(a.rows.starts.map((_, r) => runKernel<tf.Tensor3D>(ATTN_SCORES_KERNEL, { q, k }, rowAttrs(a, r))));
    },
    attentionSoftmax(scores, a) {
      return simd(a) ? runKernel<tf.Tensor4D>(ATTN_SOFTMAX_KERNEL, { x: scores }, {}) : fromOps.attentionSoftmax(scores, a);
    },
    attentionZ(pattern, v, a) {
      if (!simd(a)) return fromOps.attentionZ(pattern, v, a);
      const zRows = a.rows.lengths.map((T, r) => runKernel<tf.Tensor2D>(ATTN_Z_KERNEL, { pattern: rowPattern(pattern, r, T), v }, rowAttrs(a, r)));
      return tf.concat(zRows, 0) as tf.Tensor2D;
    },
  };
}
