/**
 * Head interventions (engine/ops.ts HeadIntervention): checked once per forward, in the form
 * each way of running the encoder takes — a per-token mask for the eager ops, [L, R, H] for the
 * TensorFlow graph's input.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import type { HeadIntervention } from './ops';
import { InputError, Rows } from './rows';

/** An InputError unless `h` fits a model of config `c` and a forward of `rows`. */
export function checkHeadIntervention(c: BertConfig, rows: Rows, h: HeadIntervention): void {
  const L = c.numHiddenLayers, H = c.numAttentionHeads;
  const m = h.mask.shape;
  const perRow = m.length === 3;
  if (!(m.length === 2 || perRow) || m[m.length - 2] !== L || m[m.length - 1] !== H || (perRow && m[0] !== rows.count)) {
    throw new InputError(`heads.mask has shape [${m}]; expected [${L}, ${H}] (layers × heads) or [${rows.count}, ${L}, ${H}] (one per row)`);
  }
  if (h.fill && (h.fill.shape.length !== 2 || h.fill.shape[0] !== L || h.fill.shape[1] !== c.hiddenSize)) {
    throw new InputError(`heads.fill has shape [${h.fill.shape}]; expected [${L}, ${c.hiddenSize}] (layers × hidden size)`);
  }
  if (h.mask.dtype !== 'float32' || (h.fill && h.fill.dtype !== 'float32')) throw new InputError('heads.mask and heads.fill must be float32');
}

/** The row of each packed token. [N] */
export function tokenRows(rows: Rows): Int32Array {
  const out = new Int32Array(rows.total);
  rows.starts.forEach((start, r) => out.fill(r, start, start + rows.lengths[r]));
  return out;
}

/** The mask as [L, R, H] (the graph's input): a per-layer slice is then each row's heads. */
export function maskByLayer(h: HeadIntervention, R: number): tf.Tensor3D {
  return tf.tidy(() => {
    if (h.mask.rank === 3) return tf.transpose(h.mask, [1, 0, 2]) as tf.Tensor3D; // [R,L,H] → [L,R,H]
    const [L, H] = h.mask.shape;
    return tf.tile(tf.reshape(h.mask, [L, 1, H]), [1, R, 1]) as tf.Tensor3D;
  });
}

/**
 * z' = m·z + (1 − m)·fill at `layer`, eagerly: tfjs ops only, so tf.grad reaches the mask (gates).
 * z [N, D] → [N, D]. With no fill, m·z + 0.
 */
export function eagerIntervention(c: BertConfig, rows: Rows, h: HeadIntervention): (z: tf.Tensor, layer: number) => tf.Tensor {
  const H = c.numAttentionHeads, D = c.hiddenSize, Dh = D / H, N = rows.total;
  const rowOf = h.mask.rank === 3 ? tokenRows(rows) : undefined;
  return (z, layer) =>
    tf.tidy(() => {
      const m = rowOf
        ? tf.reshape(tf.gather(tf.squeeze(tf.slice(h.mask, [0, layer, 0], [-1, 1, H]), [1]), tf.tensor1d(rowOf, 'int32')), [N, H, 1]) // [N,H,1]
        : tf.reshape(tf.slice(h.mask, [layer, 0], [1, H]), [1, H, 1]); // [1,H,1]
      const kept = tf.mul(m, tf.reshape(z, [N, H, Dh])); // [N,H,Dh]
      // + (1 − m)·0: an ablated head is +0, not −0 (m·z of a negative z), as in the graph.
      if (!h.fill) return tf.reshape(tf.add(kept, 0), [N, D]);
      const fill = tf.reshape(tf.slice(h.fill, [layer, 0], [1, D]), [1, H, Dh]);
      return tf.reshape(tf.add(kept, tf.mul(tf.sub(1, m), fill)), [N, D]);
    });
}
