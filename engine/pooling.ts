/**
 * Pooling lives in the library, not in a CLI (candle's BERT example once averaged the padding).
 * All functions take the packed last hidden state [N, D] and return one vector per row [R, D].
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PoolingMode } from '../weights/sentence_transformers';
import type { Linear } from '../weights/params';
import type { Ops } from './ops';
import type { PackedInput } from './rows';

/**
 * Masked mean, exactly the e5 model card's `average_pool`:
 *   last_hidden.masked_fill(~mask, 0).sum(dim=1) / mask.sum(dim=1)
 * The masked sum over each row is one [R, N] @ [N, D] matmul with the 0/1 mask as the left operand.
 */
export function meanPool(hidden: tf.Tensor2D, input: PackedInput): tf.Tensor2D {
  const { rows, attentionMask } = input;
  const select = new Float32Array(rows.count * rows.total); // [R,N]
  const counts = new Float32Array(rows.count); // [R]
  rows.starts.forEach((start, r) => {
    for (let t = start; t < start + rows.lengths[r]; t++) {
      select[r * rows.total + t] = attentionMask[t];
      counts[r] += attentionMask[t];
    }
  });
  return tf.tidy(() => {
    const sums = tf.matMul(tf.tensor2d(select, [rows.count, rows.total]), hidden); // [R,D]
    return tf.div(sums, tf.tensor2d(counts, [rows.count, 1])) as tf.Tensor2D;
  });
}

/** The first token of each row ([CLS] with right padding), as sentence-transformers' CLS pooling. */
export function clsPool(hidden: tf.Tensor2D, input: PackedInput): tf.Tensor2D {
  return tf.tidy(() => tf.gather(hidden, tf.tensor1d(input.rows.starts, 'int32')) as tf.Tensor2D);
}

/** Max over the real tokens of each row (padding set to -1e9 first, as sentence-transformers does). */
export function maxPool(hidden: tf.Tensor2D, input: PackedInput): tf.Tensor2D {
  const { rows, attentionMask } = input;
  return tf.tidy(() => tf.concat(rows.starts.map((start, r) => {
    const T = rows.lengths[r];
    const h = tf.slice(hidden, [start, 0], [T, -1]); // [T,D]
    const m = attentionMask.subarray(start, start + T);
    const masked = m.every((v) => v === 1) ? h : tf.add(h, tf.tensor2d(Float32Array.from(m, (v) => (v ? 0 : -1e9)), [T, 1]));
    return tf.max(masked, 0, true); // [1,D]
  }), 0) as tf.Tensor2D);
}

export function pool(mode: PoolingMode, hidden: tf.Tensor2D, input: PackedInput): tf.Tensor2D {
  switch (mode) {
    case 'mean': return meanPool(hidden, input);
    case 'cls': return clsPool(hidden, input);
    case 'max': return maxPool(hidden, input);
  }
}

/** F.normalize(x, p=2, dim=1): x / max(‖x‖₂, 1e-12). */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

/** BertPooler: tanh(dense(hidden[CLS])) → HF pooler_output [R, D]. */
export function bertPooler(ops: Ops, hidden: tf.Tensor2D, input: PackedInput, p: Linear): tf.Tensor2D {
  return tf.tidy(() => tf.tanh(ops.linear(clsPool(hidden, input), p)));
}
