/**
 * The encoder as a differentiable function of a hidden state, and the Jacobian products that
 * attributions are made of (e5/explain.ts builds the query–passage attributions on these).
 *
 *   e(X) = L2(pool(blocks from..L−1 (X)))      X: one text's hidden state [T, D] at depth `from`
 *
 * (depth 0 = HF hidden_states[0], the embedding LayerNorm's output; depth k = the output of block
 * k−1), with the text's attention mask fixed (one unpadded text: every key visible). Gradients come
 * from tfjs's autodiff, so the function runs on differentiable operations (`differentiableOps`)
 * on every backend: the backends' fast kernels (wasm's SIMD attention, one-pass GELU/LayerNorm,
 * TensorFlow ops called by name) have no gradients, so the generic tfjs ops run instead, with
 * Linear as matMul + add and attention batched over the (uniform) rows.
 *
 * Every product is batched over rows: each row is one copy of the text at its own point of the
 * path, with its own cotangent (VJP) or tangent (JVP); rows are cut into chunks of at most
 * `maxBatchTokens` tokens, which bounds the memory the tape holds.
 *
 * - vjp: ∂(e(X_r)·u_r)/∂X_r, one backward pass per row.
 * - jvp: J(X_r)·v_r. tfjs has reverse mode only, so a JVP is the derivative of a VJP with respect
 *   to its cotangent: J v = ∂/∂u [ (Jᵀu) · v ] — the backward pass is linear in u, and
 *   differentiating it again costs about one more pass (a forward, a backward, and the backward's
 *   backward: ~3 forwards' work). No second derivative of the model is taken, only of the linear
 *   backward pass, so the saved forward activations are constants.
 *
 * Dimension letters: R rows, T tokens, D hidden, Dout the embedding width (= D), H heads, Dh = D/H.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import type { BertParams } from '../weights/params';
import type { PoolingMode } from '../weights/sentence_transformers';
import { layersFrom } from './bert';
import { eagerForward } from './eager';
import { blockHook, HookContext, HookFn, HookName } from './hooks';
import { genericOps } from './backends/generic/ops';
import { MASK_VALUE } from './numerics';
import type { AttentionInput, Ops } from './ops';
import { l2Normalize, pool } from './pooling';
import { packPadded } from './rows';

/** What the differentiable encoder needs: the weights, the differentiable operations, the pooling. */
export interface EncoderFunction {
  config: BertConfig;
  params: BertParams;
  /** Operations with gradients (differentiableOps). */
  ops: Ops;
  pooling: PoolingMode;
}

/**
 * The encoder's operations with gradients under tfjs's autodiff, on any backend: generic GELU and
 * LayerNorm; Linear as a matMul and an add, whose gradient functions tfjs calls only for the inputs
 * on the path being differentiated (tf.fused.matMul's gradient also computes the weight's and the
 * bias's: a second GEMM per Linear that attributions never need); attention for rows of one length,
 * every row and head in two batched matmuls. A released weight (wasm, keepLinearWeights: false)
 * throws when read, saying how to load the model with weights kept.
 */
export function differentiableOps(): Ops {
  return {
    ...genericOps,
    linear: (x, p) => tf.add(tf.matMul(x, p.weight, false, p.outIn === true), p.bias) as tf.Tensor2D, // [N,out]
    attention: uniformAttention,
  };
}

/** softmax(q·kᵀ/√Dh + mask)·v for R rows of T tokens each: q, k, v [N, D] → z [N, D]. */
function uniformAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, a: AttentionInput): tf.Tensor2D {
  const T = a.rows.uniformLength;
  if (T === undefined) throw new Error('attributions run rows of one length (copies of one text)');
  return tf.tidy(() => {
    const R = a.rows.count, H = a.heads, Dh = a.headSize;
    const heads = (x: tf.Tensor2D) => tf.transpose(tf.reshape(x, [R, T, H, Dh]), [0, 2, 1, 3]); // [R,H,T,Dh]
    let scores = tf.div(tf.matMul(heads(q), heads(k), false, true), a.scale); // [R,H,T,T]
    if (a.keyMask.some((m) => m === 0)) {
      const mask = Float32Array.from(a.keyMask, (m) => (m === 1 ? 0 : MASK_VALUE));
      scores = tf.add(scores, tf.tensor4d(mask, [R, 1, 1, T]));
    }
    const z = tf.matMul(tf.softmax(scores), heads(v)); // [R,H,T,Dh]
    return tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [R * T, H * Dh]) as tf.Tensor2D; // [N,D]
  });
}

/**
 * e(X) for R rows: blocks `from`..L−1 on x [R, T, D], the model's pooling, L2 → [R, Dout].
 * `hooks` may read or replace activations on the way (heads mode gates attn.hook_z with them).
 */
export function embedFrom(fn: EncoderFunction, x: tf.Tensor3D, from: number, hooks: Array<[HookName, HookFn]> = []): tf.Tensor2D {
  const [R, T, D] = x.shape;
  const input = packPadded({ inputIds: new Int32Array(R * T), batchSize: R, seqLen: T }); // R copies of one T-token text, every key visible
  const ctx = new HookContext({ hooks });
  try {
    const f = eagerForward(fn.config, fn.ops, input, ctx);
    const h = layersFrom(from, tf.reshape(x, [R * T, D]), fn.params, f) as tf.Tensor2D; // [N,D]
    // CLS as a slice: GatherV2's gradient needs UnsortedSegmentSum, which tfjs-wasm lacks.
    const pooled = fn.pooling === 'cls' ? (tf.reshape(tf.slice(tf.reshape(h, [R, T, D]), [0, 0, 0], [R, 1, D]), [R, D]) as tf.Tensor2D) : pool(fn.pooling, h, input);
    return l2Normalize(pooled);
  } finally {
    ctx.dispose();
  }
}

/**
 * tfjs-core registers no gradient for any op: the functions ship in the union package
 * @tensorflow/tfjs, which registers them all when it loads (~0.2 s; tfjs-node loads it anyway).
 */
function ensureGradients(): void {
  if (tf.getGradient('Sum') === undefined) require('@tensorflow/tfjs');
}

/** ∂f/∂x for a scalar f, typed like x. */
function gradient<T extends tf.Tensor>(f: (x: T) => tf.Scalar | tf.Tensor, x: T): T {
  ensureGradients();
  return tf.grad((t) => f(t as T))(x) as T;
}

/** Rows per chunk: as many as fit `maxBatchTokens` tokens of `T` (at least one). */
function rowsPerChunk(T: number, maxBatchTokens: number): number {
  return Math.max(1, Math.floor(maxBatchTokens / T));
}

/**
 * VJPs: for each row r, g_r = ∂(e(x_r)·u_r)/∂x_r, contracted with `weights` over D:
 * out[r][t] = Σ_d g_r[t, d] · weights[t, d]  → [R, T] (Float64Array, row-major).
 * x [R, T, D] comes from `rowsX(r0, r1)` per chunk (so the caller never holds every row at once);
 * u [R, Dout] from `rowsU(r0, r1)`.
 */
export function vjpContracted(
  fn: EncoderFunction, from: number, R: number, T: number,
  rowsX: (r0: number, r1: number) => tf.Tensor3D, rowsU: (r0: number, r1: number) => tf.Tensor2D,
  weights: tf.Tensor2D, maxBatchTokens: number, onChunk?: (rowsDone: number) => void,
): Float64Array {
  const out = new Float64Array(R * T);
  const chunk = rowsPerChunk(T, maxBatchTokens);
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const r1 = Math.min(R, r0 + chunk);
    const contracted = tf.tidy(() => {
      const x = rowsX(r0, r1), u = rowsU(r0, r1);
      const g = gradient((xx) => tf.sum(tf.mul(embedFrom(fn, xx, from), u)), x); // [r,T,D]
      return tf.sum(tf.mul(g, weights), 2); // [r,T]
    });
    out.set(contracted.dataSync() as Float32Array, r0 * T);
    contracted.dispose();
    onChunk?.(r1);
  }
  return out;
}

/**
 * JVPs: for each row r, J(x_r)·v_r → [R, Dout] (Float64Array, row-major), as the derivative of a
 * VJP with respect to its cotangent (see the file comment).
 */
export function jvpRows(
  fn: EncoderFunction, from: number, R: number, T: number,
  rowsX: (r0: number, r1: number) => tf.Tensor3D, rowsV: (r0: number, r1: number) => tf.Tensor3D,
  maxBatchTokens: number, onChunk?: (rowsDone: number) => void,
): Float64Array {
  const Dout = fn.config.hiddenSize;
  const out = new Float64Array(R * Dout);
  const chunk = rowsPerChunk(T, maxBatchTokens);
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const r1 = Math.min(R, r0 + chunk);
    const jv = tf.tidy(() => {
      const x = rowsX(r0, r1), v = rowsV(r0, r1);
      // The VJP is linear in u, so its derivative does not depend on where it is taken: u = 0.
      const u0 = tf.zeros([r1 - r0, Dout]) as tf.Tensor2D;
      return gradient((u) => {
        const g = gradient((xx) => tf.sum(tf.mul(embedFrom(fn, xx, from), u)), x); // [r,T,D] = Jᵀu
        return tf.sum(tf.mul(g, v));
      }, u0); // [r,Dout] = J v
    });
    out.set(jv.dataSync() as Float32Array, r0 * Dout);
    jv.dispose();
    onChunk?.(r1);
  }
  return out;
}

/**
 * Head gates: for each row r, both texts run blocks `layer`..L−1 from their hidden state at depth
 * `layer` with head h's output at `blocks.{layer}.attn.hook_z` multiplied by gate g_r[h] (the same
 * gates on both texts); returns ∂(e_q·e_p)/∂g_r → [R, H] (Float64Array), for g_r = gates[r]·1.
 * The gate is a hook function, not the forward's head intervention (ForwardOptions.heads): a mask
 * per row is gathered per token there, and GatherV2's gradient needs UnsortedSegmentSum, which
 * tfjs-wasm lacks; z·g at the hook point is the same product, differentiable on every backend.
 */
export function headGateGrads(
  fn: EncoderFunction, layer: number, xq: tf.Tensor2D, xp: tf.Tensor2D, gates: number[], maxBatchTokens: number,
  onChunk?: (rowsDone: number) => void,
): Float64Array {
  const H = fn.config.numAttentionHeads;
  const R = gates.length;
  const out = new Float64Array(R * H);
  const [Tq] = xq.shape, [Tp] = xp.shape;
  const chunk = rowsPerChunk(Tq + Tp, maxBatchTokens);
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const r1 = Math.min(R, r0 + chunk), n = r1 - r0;
    const grads = tf.tidy(() => {
      const g0 = tf.tensor2d(Float32Array.from({ length: n * H }, (_, i) => gates[r0 + Math.floor(i / H)]), [n, H]);
      const repeat = (x: tf.Tensor2D) => tf.tile(tf.expandDims(x, 0), [n, 1, 1]) as tf.Tensor3D;
      const q = repeat(xq), p = repeat(xp);
      return gradient((g) => {
        const gate = tf.reshape(g, [n, 1, H, 1]);
        const hooks: Array<[HookName, HookFn]> = [[blockHook(layer, 'attn.hook_z'), (z) => tf.mul(z, gate)]];
        const eq = embedFrom(fn, q, layer, hooks), ep = embedFrom(fn, p, layer, hooks);
        return tf.sum(tf.mul(eq, ep));
      }, g0); // [n,H]
    });
    out.set(grads.dataSync() as Float32Array, r0 * H);
    grads.dispose();
    onChunk?.(r1);
  }
  return out;
}
