/**
 * Attention from tfjs ops, row by row: each row's heads cut out of the packed [N, D] matrices,
 * q·kᵀ as one batched matmul per row ([H,T,Dh]·[H,Dh,T]), scale, mask, softmax, ·v. Any backend
 * runs it; a backend may pass its own way of cutting heads out (`HeadSplitter`), e.g. wasm,
 * whose batched matmuls are slow, cuts each head apart for 2-D matmuls.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionInput, Ops } from '../../ops';
import { MASK_VALUE } from '../../numerics';
import type { Rows } from '../../rows';

/** One row's heads: [H, T, Dh] (or [H, Dh, T]) for a batched matmul, or the H heads apart. */
export type RowHeads = tf.Tensor3D | tf.Tensor2D[];

/**
 * Each row's heads of a packed [N, D] activation (`transposed`: each head as [Dh, T], for kᵀ),
 * in the form the matmuls take.
 */
export type HeadSplitter = (x: tf.Tensor2D, rows: Rows, H: number, transposed: boolean) => RowHeads[];

/** [N, D] → [H, N, Dh], a slice per row, a transpose (for kᵀ): one [H, T, Dh] per row. */
export const splitHeadsWithOps: HeadSplitter = (x, rows, H, transposed) => {
  const [N, D] = x.shape;
  const xh = tf.transpose(tf.reshape(x, [N, H, D / H]), [1, 0, 2]); // [H,N,Dh]: a row's heads are the box [:, start:start+T, :]
  return rows.starts.map((start, r) => {
    const heads = tf.slice(xh, [0, start, 0], [-1, rows.lengths[r], -1]) as tf.Tensor3D; // [H,T,Dh]
    return transposed ? (tf.transpose(heads, [0, 2, 1]) as tf.Tensor3D) : heads; // [H,Dh,T]
  });
};

/** Additive key mask of one row, [1, T] (null where every key is real). */
function rowKeyMask(a: AttentionInput, r: number): tf.Tensor2D | null {
  const start = a.rows.starts[r], m = a.keyMask.subarray(start, start + a.rows.lengths[r]);
  if (m.every((v) => v === 1)) return null;
  return tf.tensor2d(Float32Array.from(m, (v) => (v === 1 ? 0 : MASK_VALUE)), [1, m.length]);
}

/** q·kᵀ/scale (+ mask) for every head of one row → [H, T, T]. */
function rowScores(q: RowHeads, kT: RowHeads, mask: tf.Tensor2D | null, scale: number): tf.Tensor3D {
  const raw = Array.isArray(q)
    ? (tf.stack(q.map((qh, h) => tf.matMul(qh, (kT as tf.Tensor2D[])[h]))) as tf.Tensor3D) // H × [T,T]
    : (tf.matMul(q, kT as tf.Tensor3D) as tf.Tensor3D); // [H,T,T]
  const s = tf.div(raw, scale) as tf.Tensor3D;
  return mask ? (tf.add(s, mask) as tf.Tensor3D) : s;
}

/** pattern · v for every head of one row, heads side by side → [T, D]. */
function rowZ(pattern: tf.Tensor3D, v: RowHeads): tf.Tensor2D {
  if (Array.isArray(v)) {
    return tf.concat(tf.unstack(pattern).map((p, h) => tf.matMul(p as tf.Tensor2D, v[h])), 1) as tf.Tensor2D;
  }
  const [H, T, Dh] = v.shape;
  return tf.reshape(tf.transpose(tf.matMul(pattern, v), [1, 0, 2]), [T, H * Dh]); // [H,T,Dh] → [T,H,Dh] → [T,D]
}

/**
 * Rows' [H, T_r, T_r] scores as one [R, H, T, T] grid (T the longest row): a shorter row's extra
 * keys and query rows hold the mask value, so its softmax gives them weight exactly 0 (keys) and
 * its real cells the unpadded values. Rows of one length are only stacked.
 */
export function scoresGrid(rows: tf.Tensor3D[]): tf.Tensor4D {
  const T = Math.max(...rows.map((s) => s.shape[1]));
  return tf.stack(rows.map((s) => (s.shape[1] === T ? s : tf.pad(s, [[0, 0], [0, T - s.shape[1]], [0, T - s.shape[1]]], MASK_VALUE)))) as tf.Tensor4D;
}

/** Row r's own [H, T_r, T_r] cells of a pattern grid. */
export function rowPattern(grid: tf.Tensor, r: number, length: number): tf.Tensor3D {
  const [, H, T] = grid.shape;
  const row = tf.reshape(tf.slice(grid, [r, 0, 0, 0], [1, -1, -1, -1]), [H!, T!, T!]) as tf.Tensor3D;
  return T === length ? row : tf.slice(row, [0, 0, 0], [-1, length, length]);
}

/** Attention's operations from tfjs ops, with heads cut out by `split`. */
export function rowAttention(split: HeadSplitter = splitHeadsWithOps): Pick<Ops, 'attention' | 'attentionScores' | 'attentionSoftmax' | 'attentionZ'> {
  return {
    attention(q, k, v, a) {
      const qh = split(q, a.rows, a.heads, false), kT = split(k, a.rows, a.heads, true), vh = split(v, a.rows, a.heads, false);
      // One row at a time in its own tidy, its heads freed after it: a batch of long rows would
      // otherwise hold every row's [H,T,T] scores and their temporaries at once.
      const zRows = a.rows.starts.map((_, r) => {
        const z = tf.tidy(() => rowZ(tf.softmax(rowScores(qh[r], kT[r], rowKeyMask(a, r), a.scale)), vh[r]));
        tf.dispose([qh[r], kT[r], vh[r]].flat());
        return z;
      });
      const z = tf.concat(zRows, 0) as tf.Tensor2D; // [N,D]
      tf.dispose(zRows);
      return z;
    },
    attentionScores(q, k, a) {
      const qh = split(q, a.rows, a.heads, false), kT = split(k, a.rows, a.heads, true);
      return scoresGrid(a.rows.starts.map((_, r) => rowScores(qh[r], kT[r], rowKeyMask(a, r), a.scale)));
    },
    attentionSoftmax: (scores) => tf.softmax(scores),
    attentionZ(pattern, v, a) {
      const vh = split(v, a.rows, a.heads, false);
      return tf.concat(a.rows.lengths.map((T, r) => rowZ(rowPattern(pattern, r, T), vh[r])), 0) as tf.Tensor2D;
    },
  };
}
