/**
 * The only place eval/ runs the encoder with attention heads removed: one forward of R rows in
 * which row r keeps or removes each head by its own mask, and the mean head outputs that mean
 * ablation puts in place of a removed head.
 *
 * Semantics (those of `e5 inspect --ablate`, inspect/analysis.ts headAblationHooks): at
 * `blocks.{l}.attn.hook_z` [B,T,H,Dh], a removed head's output becomes `fill` (zeros for zero
 * ablation, the head's mean output for mean ablation) at every position; a kept head is untouched
 * (tf.where copies values, so it stays bit-identical). The mask is binary.
 *
 * Today this runs through runWithHooks on a padded batch (the hook view needs rows of one length),
 * which runs op by op. When engine/model.ts takes `ForwardOptions.heads` (a [R,L,H] mask and an
 * [L,D] fill, an input of the compiled encoder), `forwardRowMasked` becomes one `bert.run` on the
 * packed rows with that option — nothing else in eval/ changes.
 *
 * Letters: R rows, T tokens per (padded) row, L layers, H heads, Dh = D/H.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertModel } from '../engine/model';
import { blockHook, HookFn, HookName } from '../engine/hooks';
import type { PaddedBatch } from '../engine/rows';

/** One tokenized row. */
export interface RowTokens {
  inputIds: Int32Array; // [T_r]
  tokenTypeIds: Int32Array; // [T_r]
}

/** Rows padded (right, id 0) to the longest one, as HF pads: the batch runWithHooks and runWithCache take. */
export function padRows(rows: readonly RowTokens[]): PaddedBatch {
  const B = rows.length, T = Math.max(...rows.map((r) => r.inputIds.length));
  const inputIds = new Int32Array(B * T), tokenTypeIds = new Int32Array(B * T), attentionMask = new Int32Array(B * T);
  rows.forEach((r, b) => {
    inputIds.set(r.inputIds, b * T);
    tokenTypeIds.set(r.tokenTypeIds, b * T);
    attentionMask.fill(1, b * T, b * T + r.inputIds.length);
  });
  return { inputIds, tokenTypeIds, attentionMask, batchSize: B, seqLen: T };
}

/**
 * L2-normalised embeddings [R*D] of `rows`, row r with the heads of `rowMasks[r]` ([L*H], 1 keeps
 * head h of layer l at l*H+h, 0 removes it) replaced by `fill` ([L*D], zeros when absent).
 */
export async function forwardRowMasked(
  bert: BertModel,
  rows: readonly RowTokens[],
  rowMasks: readonly Float32Array[],
  fill: Float32Array | undefined,
): Promise<Float32Array> {
  const { numHiddenLayers: L, numAttentionHeads: H, hiddenSize: D } = bert.config;
  const Dh = D / H, R = rows.length;
  const owned: tf.Tensor[] = [];
  const hooks: Array<[HookName, HookFn]> = [];
  try {
    for (let l = 0; l < L; l++) {
      const removed = new Uint8Array(R * H);
      rowMasks.forEach((m, r) => { for (let h = 0; h < H; h++) removed[r * H + h] = m[l * H + h] === 0 ? 1 : 0; });
      if (!removed.includes(1)) continue; // this layer runs untouched
      const where = tf.tensor4d(removed, [R, 1, H, 1], 'bool');
      const f = fill ? tf.tensor4d(fill.subarray(l * D, (l + 1) * D), [1, 1, H, Dh]) : tf.zeros([1, 1, H, Dh]);
      owned.push(where, f);
      hooks.push([blockHook(l, 'attn.hook_z'), (z) => tf.where(where, f, z)]);
    }
    const out = bert.runWithHooks(padRows(rows), hooks, { poolerOutput: false });
    try {
      return (await out.embedding.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    owned.forEach((t) => t.dispose());
  }
}

/**
 * Σ over the real tokens of `rows` of each layer's attn.hook_z, as [L*D] (layer l at l*D, its heads
 * side by side), and the number of tokens summed. Sums of batches are added by the caller in float64.
 */
export function headOutputSums(bert: BertModel, rows: readonly RowTokens[]): { sums: Float32Array; tokens: number } {
  const { numHiddenLayers: L, hiddenSize: D } = bert.config;
  const batch = padRows(rows);
  const B = batch.batchSize!, T = batch.seqLen!;
  const mask = batch.attentionMask as Int32Array;
  const names = Array.from({ length: L }, (_, l) => blockHook(l, 'attn.hook_z'));
  const { output, cache } = bert.runWithCache(batch, { names, poolerOutput: false });
  try {
    const sums = new Float32Array(L * D);
    const weights = tf.tensor4d(Float32Array.from(mask), [B, T, 1, 1]);
    try {
      names.forEach((n, l) => {
        const s = tf.tidy(() => tf.sum(tf.mul(cache.get(n), weights), [0, 1])); // [H,Dh]
        sums.set(s.dataSync() as Float32Array, l * D);
        s.dispose();
      });
    } finally {
      weights.dispose();
    }
    return { sums, tokens: mask.reduce((a, m) => a + m, 0) };
  } finally {
    output.dispose();
    cache.dispose();
  }
}
