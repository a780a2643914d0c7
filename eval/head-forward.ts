/**
 * The only place eval/ runs the encoder with attention heads removed: one forward of R rows in
 * which row r keeps or removes each head by its own mask, and the sums behind the mean head outputs
 * that mean ablation puts in place of a removed head.
 *
 * Semantics (those of `e5 inspect --ablate`, inspect/analysis.ts headAblationHooks): at
 * `blocks.{l}.attn.hook_z` a removed head's output becomes `fill` (zeros for zero ablation, the
 * head's mean output for mean ablation) at every position; a kept head is untouched. The masks are
 * binary, so the engine's z' = m·z + (1 − m)·fill is exactly z or exactly fill.
 *
 * The intervention is a forward input (ForwardOptions.heads, a [R, L, H] mask and an [L, D] fill):
 * the rows are packed unpadded (engine/rows.ts packSequences) and the forward runs compiled where
 * the backend compiles (the TensorFlow graph takes the mask as an input), op by op elsewhere.
 *
 * Letters: R rows, T tokens per (padded) row, L layers, H heads, Dh = D/H.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertModel } from '../engine/model';
import { blockHook, HookContext } from '../engine/hooks';
import { packSequences, PaddedBatch } from '../engine/rows';

/** One tokenized row. */
export interface RowTokens {
  inputIds: Int32Array; // [T_r]
  tokenTypeIds: Int32Array; // [T_r]
}

/** Rows padded (right, id 0) to the longest one, as HF pads: the batch runWithCache takes (for the means). */
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
  const R = rows.length;
  const maskData = new Float32Array(R * L * H);
  rowMasks.forEach((m, r) => maskData.set(m, r * L * H));
  const mask = tf.tensor3d(maskData, [R, L, H]);
  const fillT = fill ? tf.tensor2d(fill, [L, D]) : undefined;
  try {
    const out = bert.runScoped(packSequences(rows as RowTokens[]), { poolerOutput: false, heads: { mask, fill: fillT } }, new HookContext());
    try {
      return (await out.embedding.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    mask.dispose();
    fillT?.dispose();
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
