/**
 * The operations the BERT encoder (engine/bert.ts) is written against. Each backend provides
 * them in its own folder (engine/backends/<name>/), the fastest way it has; the generic tfjs-ops
 * set (engine/backends/generic/) is what any backend gets for the operations it does not
 * override. The model never asks which backend runs it.
 *
 * Dimension letters: N packed tokens, R rows, T tokens of a row, D hidden, H heads, Dh = D/H,
 * B×T the padded view of N when every row has T tokens.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayerNormParams, Linear } from '../weights/params';
import type { Rows } from './rows';

/** What attention needs to know about the packed rows. */
export interface AttentionInput {
  rows: Rows;
  heads: number;
  /** Dh = D / H. */
  headSize: number;
  /** 1 = a key a query may attend to, 0 = padding; one entry per token of the N. */
  keyMask: Int32Array;
  /** Scores are divided by this (√Dh). */
  scale: number;
}

export interface Ops {
  /** nn.Linear with the weight stored [in, out]: x @ W + b. [N,in] → [N,out] */
  linear(x: tf.Tensor2D, p: Linear): tf.Tensor2D;
  /** nn.LayerNorm over the last axis, biased variance. [N,D] → [N,D] */
  layerNorm(x: tf.Tensor2D, p: LayerNormParams, eps: number): tf.Tensor2D;
  /** GELU, exact erf form: x·Φ(x) (HF "gelu"). */
  gelu(x: tf.Tensor2D): tf.Tensor2D;
  /** Rows of `table` picked by `ids`. [V,D] → [N,D] */
  gather(table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D;
  /**
   * softmax(q·kᵀ/scale + mask)·v for every row and head; rows never see each other.
   * q, k, v [N,D] (heads side by side) → z [N,D].
   */
  attention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, a: AttentionInput): tf.Tensor2D;
  /**
   * The same in three steps, for hooks that read or replace the scores or the pattern between
   * them. Only for padded batches (every row T tokens); a backend's three steps give the same
   * numbers as its one-step attention.
   */
  attentionScores(q: tf.Tensor2D, k: tf.Tensor2D, a: AttentionInput): tf.Tensor4D; // [B,H,T,T]
  attentionSoftmax(scores: tf.Tensor4D, a: AttentionInput): tf.Tensor4D; // [B,H,T,T]
  attentionZ(pattern: tf.Tensor4D, v: tf.Tensor2D, a: AttentionInput): tf.Tensor2D; // [N,D]
}
