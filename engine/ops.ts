/**
 * The operations of the BERT encoder. `EncoderOps<V>` (below) is what engine/bert.ts is written
 * against, generic in the value it passes; `Ops` is what a backend provides for the eager form,
 * in its own folder (engine/backends/<name>/), the fastest way it has; the generic tfjs-ops set
 * (engine/backends/generic/) is what any backend gets for the operations it does not override.
 * The model never asks which backend runs it.
 *
 * Dimension letters: N packed tokens, R rows, T tokens of a row, D hidden, H heads, Dh = D/H,
 * B×T the padded view of N when every row has T tokens.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { HiddenAct } from '../weights/config';
import type { LayerNormParams, Linear } from '../weights/params';
import type { HookName } from './hooks';
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
  /**
   * Precision 'bf16' op by op: rounds a product to bf16 where the compiled graph holds it in bf16
   * (q·kᵀ and its scaling, the pattern before ·v, z). Absent at fp32.
   */
  round?: (x: tf.Tensor) => tf.Tensor;
}

/** Precision 'bf16' op by op (engine/eager.ts): bf16 values carried in float32 tensors. */
export interface Bf16Kernels {
  /** x rounded to the nearest bf16 (ties to even), as float32: what Cast to bfloat16 and back gives. */
  round<T extends tf.Tensor>(x: T): T;
  /** Packed bf16 pairs (int32 [rows, cols/2], weights/params.ts Linear.bf16) as float32 [rows, cols]. */
  unpack(packed: tf.Tensor2D): tf.Tensor2D;
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
  /** Where the backend can run precision 'bf16' op by op (tensorflow): its kernels; its attention honours AttentionInput.round. */
  bf16?: Bf16Kernels;
}

// ---------------------------------------------------------------- what engine/bert.ts is written against

/** Which of the forward's id arrays indexes an embedding table. */
export type IdsName = 'inputIds' | 'tokenTypeIds' | 'positionIds';

/**
 * The operations of one forward pass, bound to its input (the packed rows, their ids and
 * attention mask, the head intervention) and generic in the value they pass: eager tfjs tensors
 * (engine/eager.ts, over a backend's Ops above) or the nodes of a TensorFlow graph being built
 * (engine/backends/tensorflow/graph/ops.ts). engine/bert.ts calls nothing else, so the encoder
 * is written once and runs either way.
 *
 * Token-wise values are packed [N, C]; attention's scores and pattern are [R, H, T, T] (T the
 * longest row; a shorter row's extra cells are padding, masked as keys).
 */
export interface EncoderOps<V> {
  /** Rows of `table` picked by one of the forward's id arrays. [V,D] → [N,D] */
  embed(table: tf.Tensor2D, ids: IdsName): V;
  /** nn.Linear. [N,in] → [N,out] */
  linear(x: V, p: Linear): V;
  /** nn.LayerNorm over the last axis, biased variance. [N,D] → [N,D] */
  layerNorm(x: V, p: LayerNormParams, eps: number): V;
  /** HF ACT2FN[act]: "gelu" exact (erf), "gelu_new"/"gelu_pytorch_tanh" the tanh form, "relu". */
  activation(x: V, act: HiddenAct): V;
  /** a + b, same shapes. */
  add(a: V, b: V): V;
  /** softmax(q·kᵀ/√Dh + mask)·v for every row and head. q, k, v [N,D] → z [N,D] */
  attention(q: V, k: V, v: V): V;
  /** The same in three steps, for hooks between them. → [R,H,T,T] */
  attentionScores(q: V, k: V): V;
  attentionSoftmax(scores: V): V;
  /** pattern [R,H,T,T], v [N,D] → z [N,D] */
  attentionZ(pattern: V, v: V): V;
  /** The forward's head intervention at `layer` (engine/model.ts HeadIntervention); z itself when there is none. [N,D] */
  intervene(z: V, layer: number): V;
  /** Run `body` as one step of the forward (eager: its own tidy, `done` freed after; graph: a name scope). */
  step(name: string, body: () => V, done?: V): V;
}

/** The hook points of one forward: eager (hook functions and caches, engine/eager.ts) or graph outputs. */
export interface HookSite<V> {
  /** Whether anything listens at `name`. */
  wants(name: HookName): boolean;
  /** The value to continue with after the hooks at `name` saw `x` (packed [N, C], or attention's [R,H,T,T] grid). */
  at(name: HookName, x: V): V;
}

/**
 * Heads removed or scaled at attn.hook_z, as an input of the forward (Hugging Face's head_mask,
 * generalised): z' = m·z + (1 − m)·fill for each head, so m = 1 keeps the head, m = 0 puts
 * `fill` in its place, and a value between blends (a gate, differentiable in m).
 */
export interface HeadIntervention {
  /** [L, H] for every row, or [R, L, H] one per row of the forward. */
  mask: tf.Tensor;
  /** [L, D]: each layer's heads side by side (Dh values each); zeros when absent (zero ablation). */
  fill?: tf.Tensor;
}
