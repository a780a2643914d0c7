/**
 * The BERT encoder: embeddings → N post-LN layers, as short functions over packed [N, *]
 * token matrices (engine/rows.ts). Mirrors Hugging Face modeling_bert.py (BertEmbeddings,
 * BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput) and exposes every
 * intermediate at a TransformerLens-named hook point (engine/hooks.ts).
 *
 * Dimension letters: N packed tokens, R rows, T tokens of one row, D hidden, H heads,
 * Dh = D/H head size, F FFN width, B×T the public (padded batch) view of N.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import type { BertLayerParams, BertParams } from '../weights/params';
import { blockHook, BlockHook, HookContext, HookName } from './hooks';
import {
  ATTENTION_KERNEL, AttentionAttrs, ATTN_SCORES_KERNEL, ATTN_SOFTMAX_KERNEL, ATTN_Z_KERNEL, ROW_HEADS_KERNEL, RowAttentionAttrs, RowHeadsAttrs, simdAttentionAvailable,
} from './kernels';
import { activation, layerNorm, linear } from './layers';
import { MASK_VALUE } from './numerics';
import { InputError, PackedInput, Rows } from './rows';

export { MASK_VALUE }; // HF's additive mask value (engine/numerics.ts)

// ---------------------------------------------------------------- public views for hooks

/** [N, ...rest] → [B, T, ...rest]; only a padded batch (uniform rows) has this view. */
function toView(x: tf.Tensor, rows: Rows, rest: number[], name: HookName): tf.Tensor {
  if (rows.uniformLength === undefined) {
    throw new InputError(`hook '${name}' needs a padded batch (rows of one length); this forward packs rows of different lengths`);
  }
  return tf.reshape(x, [rows.count, rows.uniformLength, ...rest]);
}

/** Run the hooks at `name` on a [N, C] activation seen as [B, T, ...viewRest]. */
function hookTokens<T extends tf.Tensor>(ctx: HookContext, name: HookName, x: T, rows: Rows, viewRest?: number[]): T {
  if (!ctx.wants(name)) return x;
  const rest = viewRest ?? x.shape.slice(1);
  return tf.reshape(ctx.apply(name, toView(x, rows, rest, name)), x.shape) as T;
}

/** Run the hooks at `name` on per-row [H, T, T] tensors seen as one [B, H, T, T] tensor. */
function hookRows(ctx: HookContext, name: HookName, perRow: tf.Tensor3D[], rows: Rows): tf.Tensor3D[] {
  if (!ctx.wants(name)) return perRow;
  if (rows.uniformLength === undefined) {
    throw new InputError(`hook '${name}' needs a padded batch (rows of one length)`);
  }
  return tf.unstack(ctx.apply(name, tf.stack(perRow))) as tf.Tensor3D[];
}

// ---------------------------------------------------------------- embeddings

function checkIds(ids: Int32Array, limit: number, what: string, input: PackedInput): void {
  for (let n = 0; n < ids.length; n++) {
    if (ids[n] < 0 || ids[n] >= limit) {
      const r = input.rows.starts.findIndex((s, i) => n >= s && n < s + input.rows.lengths[i]);
      throw new InputError(`${what} ${ids[n]} at row ${r}, position ${n - input.rows.starts[r]} is outside [0, ${limit})`);
    }
  }
}

/** BertEmbeddings: word + position + token type, then LayerNorm. → [N, D] (= HF hidden_states[0]) */
export function embeddings(p: BertParams, c: BertConfig, input: PackedInput, ctx: HookContext): tf.Tensor2D {
  checkIds(input.inputIds, c.vocabSize, 'token id', input);
  checkIds(input.tokenTypeIds, c.typeVocabSize, 'token type id', input);
  checkIds(input.positionIds, c.maxPositionEmbeddings, `position (max_position_embeddings = ${c.maxPositionEmbeddings})`, input);
  const { rows } = input;
  const e = p.embeddings;
  const gather = (table: tf.Tensor2D, ids: Int32Array) => tf.gather(table, tf.tensor1d(ids, 'int32')) as tf.Tensor2D; // [N,D]
  const word = hookTokens(ctx, 'embed.hook_embed', gather(e.wordEmbeddings, input.inputIds), rows);
  const pos = hookTokens(ctx, 'embed.hook_pos_embed', gather(e.positionEmbeddings, input.positionIds), rows);
  const type = hookTokens(ctx, 'embed.hook_token_type_embed', gather(e.tokenTypeEmbeddings, input.tokenTypeIds), rows);
  // HF adds in this order: (inputs_embeds + token_type_embeddings) + position_embeddings.
  const sum = tf.add(tf.add(word, type), pos) as tf.Tensor2D;
  return hookTokens(ctx, 'hook_full_embed', layerNorm(sum, e.layerNorm, c.layerNormEps), rows);
}

// ---------------------------------------------------------------- attention

/** Additive key masks, one [1, T_r] row per sequence (null where every key is real). */
export function attentionMasks(input: PackedInput): Array<tf.Tensor2D | null> {
  const { rows } = input;
  return rows.starts.map((start, r) => {
    const m = input.attentionMask.subarray(start, start + rows.lengths[r]);
    if (m.every((v) => v === 1)) return null;
    return tf.tensor2d(Float32Array.from(m, (v) => (v === 1 ? 0 : MASK_VALUE)), [1, m.length]);
  });
}

/**
 * How attention multiplies when our SIMD kernels are not there (simdAttention is the wasm path;
 * this is the path of other backends, and of wasm for heads whose width is not a multiple of 8).
 * On tfjs-wasm only 2-D, un-transposed matmuls reach XNNPACK —
 * batched ones run a scalar loop at ~2 GFLOPS, which cost 20% of a 32×64 e5-large forward
 * (bench/ --profile), while going head by head costs ~35 op dispatches per row and layer.
 * Measured per row and layer (bench/attention.ts, 16 heads, 2 threads): T=16 batched 0.7-1.2 ms
 * vs per head 3.2-3.3 ms; T=32 1.9 vs 1.5-2.3; T=64 6.8-11 vs 1.9-5.7. So wasm goes head by
 * head only from PER_HEAD_MIN_TOKENS tokens on; backends with a real batched GEMM
 * (tfjs-node, cpu) always take one batched matmul.
 */
export const PER_HEAD_MIN_TOKENS = 32;
function perHeadMatmuls(T: number): boolean {
  return tf.getBackend() === 'wasm' && T >= PER_HEAD_MIN_TOKENS;
}

/** One row's heads: [H, T, Dh] (or [H, Dh, T]) for a batched matmul, or the H heads apart. */
type RowHeads = tf.Tensor3D | tf.Tensor2D[];

/**
 * Each row's heads of a packed [N, D] activation (`transposed`: each head as [Dh, T], for kᵀ),
 * in the form its matmuls take (perHeadMatmuls). On wasm one kernel copies them out
 * (engine/kernels.ts E5RowHeads); elsewhere the same from tfjs ops: [N, D] → [H, N, Dh], a
 * slice per row, a transpose, an unstack.
 */
function headsByRow(x: tf.Tensor2D, rows: Rows, H: number, transposed: boolean): RowHeads[] {
  const perHead = rows.lengths.map(perHeadMatmuls);
  if (tf.getKernel(ROW_HEADS_KERNEL, tf.getBackend())) {
    const attrs: RowHeadsAttrs = { starts: rows.starts, lengths: rows.lengths, heads: H, transposed, perHead };
    const outs = tf.engine().runKernel(ROW_HEADS_KERNEL, { x }, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[];
    let k = 0;
    return perHead.map((apart) => (apart ? (outs.slice(k, (k += H)) as tf.Tensor2D[]) : (outs[k++] as tf.Tensor3D)));
  }
  const [N, D] = x.shape;
  const xh = tf.transpose(tf.reshape(x, [N, H, D / H]), [1, 0, 2]); // [H,N,Dh]: a row's heads are the box [:, start:start+T, :]
  return rows.starts.map((start, r) => {
    const heads = tf.slice(xh, [0, start, 0], [-1, rows.lengths[r], -1]) as tf.Tensor3D; // [H,T,Dh]
    const oriented = transposed ? (tf.transpose(heads, [0, 2, 1]) as tf.Tensor3D) : heads; // [H,Dh,T]
    return perHead[r] ? (tf.unstack(oriented) as tf.Tensor2D[]) : oriented;
  });
}

/** q·kᵀ/√Dh (+ mask) for every head of one row → [H, T, T]. */
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
    return tf.concat(tf.unstack(pattern).map((a, h) => tf.matMul(a as tf.Tensor2D, v[h])), 1) as tf.Tensor2D;
  }
  const [H, T, Dh] = v.shape;
  return tf.reshape(tf.transpose(tf.matMul(pattern, v), [1, 0, 2]), [T, H * Dh]); // [H,T,Dh] → [T,H,Dh] → [T,D]
}

/** One row's attention in three steps, for when hooks see the scores and the pattern between them. */
interface AttentionSteps {
  scores(r: number): tf.Tensor3D; // [H,T,T]
  softmax(scores: tf.Tensor3D): tf.Tensor3D; // [H,T,T]
  z(pattern: tf.Tensor3D, r: number): tf.Tensor2D; // [T,D]
}

/** Hooks see every row's scores and pattern at once, as one [B,H,T,T] tensor each → each row's z. */
function hookedAttention(ctx: HookContext, rows: Rows, scoresHook: HookName, patternHook: HookName, steps: AttentionSteps): tf.Tensor2D[] {
  const scores = hookRows(ctx, scoresHook, rows.starts.map((_, r) => steps.scores(r)), rows);
  const pattern = hookRows(ctx, patternHook, scores.map((s) => steps.softmax(s)), rows);
  return pattern.map((a, r) => steps.z(a, r));
}

/**
 * The steps on wasm with our SIMD kernels (engine/simd.ts, engine/kernels.ts): the functions the
 * one-kernel E5Attention runs, so hooking changes no number.
 */
function simdSteps(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, input: PackedInput, H: number, scale: number): AttentionSteps {
  const { rows } = input;
  const attrs = (r: number): RowAttentionAttrs => ({ start: rows.starts[r], length: rows.lengths[r], heads: H, keyMask: input.attentionMask, scale });
  return {
    scores: (r) => runKernel<tf.Tensor3D>(ATTN_SCORES_KERNEL, { q, k }, attrs(r)),
    softmax: (s) => runKernel<tf.Tensor3D>(ATTN_SOFTMAX_KERNEL, { x: s }, {}),
    z: (a, r) => runKernel<tf.Tensor2D>(ATTN_Z_KERNEL, { pattern: a, v }, attrs(r)),
  };
}

function runKernel<T extends tf.Tensor>(kernel: string, inputs: tf.NamedTensorMap, attrs: object): T {
  return tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as T;
}

/**
 * BertSelfAttention → z [N, D] (the heads' outputs side by side, before the output dense).
 * Attention runs row by row — packed rows never see each other — on each row's heads.
 */
export function selfAttention(
  x: tf.Tensor2D, p: BertLayerParams, layer: number, c: BertConfig,
  input: PackedInput, masks: Array<tf.Tensor2D | null>, ctx: HookContext,
): tf.Tensor2D {
  const { rows } = input;
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H;
  const hook = (kind: BlockHook, t: tf.Tensor2D) => hookTokens(ctx, blockHook(layer, kind), t, rows, [H, Dh]);
  const q = hook('attn.hook_q', linear(x, p.query)); // [N,D]
  const k = hook('attn.hook_k', linear(x, p.key)); // [N,D]
  const v = hook('attn.hook_v', linear(x, p.value)); // [N,D]
  const scale = Math.sqrt(Dh);
  const scoresHook = blockHook(layer, 'attn.hook_attn_scores'), patternHook = blockHook(layer, 'attn.hook_pattern');
  const hooked = ctx.wants(scoresHook) || ctx.wants(patternHook);
  let zRows: tf.Tensor2D[];
  if (simdAttentionAvailable(Dh)) {
    if (!hooked) {
      // Every row and head in one kernel (engine/simd.ts).
      const attrs: AttentionAttrs = { starts: rows.starts, lengths: rows.lengths, heads: H, keyMask: input.attentionMask, scale };
      return hook('attn.hook_z', runKernel<tf.Tensor2D>(ATTENTION_KERNEL, { q, k, v }, attrs)); // [N,D]
    }
    zRows = hookedAttention(ctx, rows, scoresHook, patternHook, simdSteps(q, k, v, input, H, scale));
  } else {
    const qh = headsByRow(q, rows, H, false), kT = headsByRow(k, rows, H, true), vh = headsByRow(v, rows, H, false);
    const scoresOf = (r: number) => rowScores(qh[r], kT[r], masks[r], scale); // [H,T,T]
    if (hooked) {
      zRows = hookedAttention(ctx, rows, scoresHook, patternHook, { scores: scoresOf, softmax: (s) => tf.softmax(s), z: (a, r) => rowZ(a, vh[r]) });
    } else {
      // One row at a time in its own tidy, its heads freed after it: a batch of long rows would
      // otherwise hold every row's [H,T,T] scores and their temporaries at once (hundreds of MB
      // next to a 4 GB wasm heap).
      zRows = rows.starts.map((_, r) => {
        const z = tf.tidy(() => rowZ(tf.softmax(scoresOf(r)), vh[r]));
        tf.dispose([qh[r], kT[r], vh[r]]);
        return z;
      });
    }
  }
  const z = tf.concat(zRows, 0) as tf.Tensor2D; // [N,D]
  zRows.forEach((t) => t.dispose());
  return hook('attn.hook_z', z);
}

// ---------------------------------------------------------------- one layer, the encoder

/** One post-LN BertLayer: attention block, then the FFN block, each residual + LayerNorm. */
export function encoderLayer(
  x: tf.Tensor2D, p: BertLayerParams, layer: number, c: BertConfig,
  input: PackedInput, masks: Array<tf.Tensor2D | null>, ctx: HookContext,
): tf.Tensor2D {
  const hook = <T extends tf.Tensor2D>(kind: BlockHook, t: T) => hookTokens(ctx, blockHook(layer, kind), t, input.rows);
  const residPre = hook('hook_resid_pre', x); // [N,D]
  const z = selfAttention(residPre, p, layer, c, input, masks, ctx); // [N,D]
  const attnOut = hook('hook_attn_out', linear(z, p.attnOutput)); // [N,D]  BertSelfOutput.dense
  const residMid = hook('hook_resid_mid', tf.add(attnOut, residPre) as tf.Tensor2D); // [N,D]
  const ln1 = hook('ln1.hook_normalized', layerNorm(residMid, p.attnLayerNorm, c.layerNormEps)); // [N,D]
  const pre = hook('mlp.hook_pre', linear(ln1, p.intermediate)); // [N,F]  BertIntermediate.dense
  const post = hook('mlp.hook_post', activation(pre, c.hiddenAct)); // [N,F]
  const mlpOut = hook('hook_mlp_out', linear(post, p.output)); // [N,D]  BertOutput.dense
  const residPost = hook('hook_resid_post', tf.add(mlpOut, ln1) as tf.Tensor2D); // [N,D]
  return hook('hook_normalized_resid_post', layerNorm(residPost, p.outputLayerNorm, c.layerNormEps)); // = HF hidden_states[layer+1]
}

/**
 * The whole encoder → last hidden state [N, D]. Each layer runs in its own tidy so a layer's
 * intermediates are freed before the next starts (the wasm heap is 4 GB and holds the weights
 * twice once XNNPACK has packed them, unless they were released). Hook caches survive because they are kept.
 */
export function encoder(p: BertParams, c: BertConfig, input: PackedInput, ctx: HookContext): tf.Tensor2D {
  const masks = attentionMasks(input);
  try {
    let x = tf.tidy(() => embeddings(p, c, input, ctx));
    p.layers.forEach((layerParams, i) => {
      const next = tf.tidy(() => encoderLayer(x, layerParams, i, c, input, masks, ctx));
      x.dispose();
      x = next;
    });
    return x;
  } finally {
    masks.forEach((m) => m?.dispose());
  }
}
