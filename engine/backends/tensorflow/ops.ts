/**
 * The encoder's operations on TensorFlow (tfjs-node). Linear is TensorFlow's MatMul + BiasAdd
 * called by name (./tf-ops.ts); GELU and LayerNorm are the generic tfjs ops. Attention is batched:
 * every row and head of a layer in two batched matmuls, [R,H,T,Dh]·[R,H,Dh,T] and ·[R,H,T,Dh],
 * rows of different lengths padded to the longest for attention only (the dense layers run on
 * the packed tokens) and masked — TensorFlow's batched GEMM is as fast as its 2-D one, so there is
 * no reason to go row by row or head by head here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionInput, Bf16Kernels, Ops } from '../../ops';
import type { Linear } from '../../../weights/params';
import { genericOps } from '../generic/ops';
import { AttentionGrid, attentionGrid } from './grid';
import type { TfOps } from './tf-ops';

/** The grid of ./grid.ts with its index arrays as tensors (made inside the caller's tidy). */
interface Grid extends Omit<AttentionGrid, 'cells' | 'tokens'> {
  cells?: tf.Tensor1D;
  tokens?: tf.Tensor1D;
}

function grid(a: AttentionInput): Grid {
  const g = attentionGrid(a.rows, a.keyMask);
  return { ...g, cells: g.cells && tf.tensor1d(g.cells, 'int32'), tokens: g.tokens && tf.tensor1d(g.tokens, 'int32') };
}

/** Packed [N, D] → [R, H, T, Dh]. */
function toHeads(x: tf.Tensor2D, a: AttentionInput, g: Grid): tf.Tensor4D {
  const padded = g.cells ? tf.gather(x, g.cells) : x; // [R·T, D]
  return tf.transpose(tf.reshape(padded, [a.rows.count, g.T, a.heads, a.headSize]), [0, 2, 1, 3]) as tf.Tensor4D; // [R,H,T,Dh]
}

/** [R, H, T, Dh] → packed [N, D]. */
function fromHeads(z: tf.Tensor4D, g: Grid): tf.Tensor2D {
  const [R, H, T, Dh] = z.shape;
  const cells = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [R * T, H * Dh]) as tf.Tensor2D; // [R·T, D]
  return g.tokens ? (tf.gather(cells, g.tokens) as tf.Tensor2D) : cells;
}

function scores(q: tf.Tensor2D, k: tf.Tensor2D, a: AttentionInput, g: Grid): tf.Tensor4D {
  const product = tf.matMul(toHeads(q, a, g), toHeads(k, a, g), false, true); // [R,H,T,T]
  // bf16 (a.round): the graph's bf16 product times bf16(1/√Dh), each rounded (exact for Dh = 64).
  const s = (a.round ? a.round(tf.mul(a.round(product), a.round(tf.scalar(1 / a.scale)))) : tf.div(product, a.scale)) as tf.Tensor4D;
  if (g.dense) return s;
  return tf.add(s, tf.tensor4d(g.keyMask, [a.rows.count, 1, 1, g.T])) as tf.Tensor4D;
}

function z(pattern: tf.Tensor4D, v: tf.Tensor2D, a: AttentionInput, g: Grid): tf.Tensor2D {
  const r = a.round ?? ((x: tf.Tensor) => x);
  return fromHeads(r(tf.matMul(r(pattern), toHeads(v, a, g))) as tf.Tensor4D, g); // [R,H,T,Dh] → [N,D]
}

/** The encoder's operations on TensorFlow; `tf` is tfjs-node's backend, for ops called by name. */
export function tensorflowOps(tfops: TfOps | undefined, bf16?: Bf16Kernels): Ops {
  return {
    ...genericOps,
    ...(tfops && { linear: (x: tf.Tensor2D, p: Linear) => tfops.matMulBias(x, p.weight, p.bias, p.outIn === true) }),
    ...batchedAttention,
    ...(bf16 && { bf16 }),
  };
}

const batchedAttention: Pick<Ops, 'attention' | 'attentionScores' | 'attentionSoftmax' | 'attentionZ'> = {
  attention: (q, k, v, a) =>
    tf.tidy(() => {
      const g = grid(a);
      return z(tf.softmax(scores(q, k, a, g)), v, a, g);
    }),
  // The three steps are the one-step form's own functions: hooking changes no number.
  attentionScores: (q, k, a) => tf.tidy(() => scores(q, k, a, grid(a))),
  attentionSoftmax: (s) => tf.softmax(s),
  attentionZ: (pattern, v, a) => tf.tidy(() => z(pattern, v, a, grid(a))),
};
