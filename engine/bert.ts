/**
 * The BERT encoder: embeddings → N post-LN layers, as short functions over packed [N, *] token
 * matrices (engine/rows.ts). Mirrors Hugging Face modeling_bert.py (BertEmbeddings,
 * BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput) and exposes every
 * intermediate at a TransformerLens-named hook point (engine/hooks.ts). Written against the
 * operations of engine/ops.ts: whichever backend runs it provides them.
 *
 * Dimension letters: N packed tokens, R rows, T tokens of one row, D hidden, H heads,
 * Dh = D/H head size, F FFN width, B×T the public (padded batch) view of N.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig, HiddenAct } from '../weights/config';
import type { BertLayerParams, BertParams } from '../weights/params';
import { blockHook, BlockHook, HookContext, HookName } from './hooks';
import { MASK_VALUE } from './numerics';
import type { AttentionInput, Ops } from './ops';
import { InputError, PackedInput, Rows } from './rows';

export { MASK_VALUE }; // HF's additive mask value (engine/numerics.ts)

/** What every function of one forward pass reads. */
export interface Forward {
  c: BertConfig;
  ops: Ops;
  input: PackedInput;
  hooks: HookContext;
}

// ---------------------------------------------------------------- public views for hooks

/** Run the hooks at `name` on a [N, C] activation seen as [B, T, ...viewRest] (only a padded batch has that view). */
function hookTokens<T extends tf.Tensor>(f: Forward, name: HookName, x: T, viewRest?: number[]): T {
  if (!f.hooks.wants(name)) return x;
  const rows = needsPadded(f.input.rows, name);
  const view = tf.reshape(x, [rows.count, rows.uniformLength!, ...(viewRest ?? x.shape.slice(1))]);
  return tf.reshape(f.hooks.apply(name, view), x.shape) as T;
}

function needsPadded(rows: Rows, name: HookName): Rows {
  if (rows.uniformLength === undefined) {
    throw new InputError(`hook '${name}' needs a padded batch (rows of one length); this forward packs rows of different lengths`);
  }
  return rows;
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

/** Every id indexes its embedding table; an InputError names the first that does not. */
export function checkEmbeddingIds(c: BertConfig, input: PackedInput): void {
  checkIds(input.inputIds, c.vocabSize, 'token id', input);
  checkIds(input.tokenTypeIds, c.typeVocabSize, 'token type id', input);
  checkIds(input.positionIds, c.maxPositionEmbeddings, `position (max_position_embeddings = ${c.maxPositionEmbeddings})`, input);
}

/** BertEmbeddings: word + position + token type, then LayerNorm. → [N, D] (= HF hidden_states[0]) */
export function embeddings(p: BertParams, f: Forward): tf.Tensor2D {
  const { c, ops, input } = f;
  checkEmbeddingIds(c, input);
  const e = p.embeddings;
  const word = hookTokens(f, 'embed.hook_embed', ops.gather(e.wordEmbeddings, input.inputIds)); // [N,D]
  const pos = hookTokens(f, 'embed.hook_pos_embed', ops.gather(e.positionEmbeddings, input.positionIds)); // [N,D]
  const type = hookTokens(f, 'embed.hook_token_type_embed', ops.gather(e.tokenTypeEmbeddings, input.tokenTypeIds)); // [N,D]
  // HF adds in this order: (inputs_embeds + token_type_embeddings) + position_embeddings.
  const sum = tf.add(tf.add(word, type), pos) as tf.Tensor2D;
  return hookTokens(f, 'hook_full_embed', ops.layerNorm(sum, e.layerNorm, c.layerNormEps));
}

// ---------------------------------------------------------------- attention

/**
 * BertSelfAttention → z [N, D] (the heads' outputs side by side, before the output dense).
 * Packed rows never see each other. When a hook wants the scores or the pattern, attention runs
 * as its three steps with the hooks between them.
 */
export function selfAttention(x: tf.Tensor2D, p: BertLayerParams, layer: number, f: Forward): tf.Tensor2D {
  const { c, ops, hooks } = f;
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H;
  const hook = (kind: BlockHook, t: tf.Tensor) => hookTokens(f, blockHook(layer, kind), t, kind.startsWith('attn.hook_') ? [H, Dh] : undefined);
  const a: AttentionInput = { rows: f.input.rows, heads: H, headSize: Dh, keyMask: f.input.attentionMask, scale: Math.sqrt(Dh) };
  const q = hook('attn.hook_q', ops.linear(x, p.query)) as tf.Tensor2D; // [N,D]
  const k = hook('attn.hook_k', ops.linear(x, p.key)) as tf.Tensor2D; // [N,D]
  const v = hook('attn.hook_v', ops.linear(x, p.value)) as tf.Tensor2D; // [N,D]
  const scoresHook = blockHook(layer, 'attn.hook_attn_scores'), patternHook = blockHook(layer, 'attn.hook_pattern');
  if (!hooks.wants(scoresHook) && !hooks.wants(patternHook)) {
    return hook('attn.hook_z', ops.attention(q, k, v, a)) as tf.Tensor2D; // [N,D]
  }
  needsPadded(a.rows, hooks.wants(scoresHook) ? scoresHook : patternHook);
  const scores = hooks.apply(scoresHook, ops.attentionScores(q, k, a)) as tf.Tensor4D; // [B,H,T,T]  q·kᵀ/√Dh + mask
  const pattern = hooks.apply(patternHook, ops.attentionSoftmax(scores, a)) as tf.Tensor4D; // [B,H,T,T]
  return hook('attn.hook_z', ops.attentionZ(pattern, v, a)) as tf.Tensor2D; // [N,D]
}

// ---------------------------------------------------------------- one layer, the encoder

/** HF ACT2FN: "gelu" is the exact erf form x·Φ(x); "gelu_new"/"gelu_pytorch_tanh" the tanh approximation. */
export function activation(ops: Ops, x: tf.Tensor2D, act: HiddenAct): tf.Tensor2D {
  switch (act) {
    case 'gelu':
      return ops.gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return tf.tidy(() => {
        const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
        return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner))) as tf.Tensor2D;
      });
    case 'relu':
      return tf.relu(x);
  }
}

/** One post-LN BertLayer: attention block, then the FFN block, each residual + LayerNorm. */
export function encoderLayer(x: tf.Tensor2D, p: BertLayerParams, layer: number, f: Forward): tf.Tensor2D {
  const { c, ops } = f;
  const hook = <T extends tf.Tensor2D>(kind: BlockHook, t: T) => hookTokens(f, blockHook(layer, kind), t);
  const residPre = hook('hook_resid_pre', x); // [N,D]
  const z = selfAttention(residPre, p, layer, f); // [N,D]
  const attnOut = hook('hook_attn_out', ops.linear(z, p.attnOutput)); // [N,D]  BertSelfOutput.dense
  const residMid = hook('hook_resid_mid', tf.add(attnOut, residPre) as tf.Tensor2D); // [N,D]
  const ln1 = hook('ln1.hook_normalized', ops.layerNorm(residMid, p.attnLayerNorm, c.layerNormEps)); // [N,D]
  const pre = hook('mlp.hook_pre', ops.linear(ln1, p.intermediate)); // [N,F]  BertIntermediate.dense
  const post = hook('mlp.hook_post', activation(ops, pre, c.hiddenAct)); // [N,F]
  const mlpOut = hook('hook_mlp_out', ops.linear(post, p.output)); // [N,D]  BertOutput.dense
  const residPost = hook('hook_resid_post', tf.add(mlpOut, ln1) as tf.Tensor2D); // [N,D]
  return hook('hook_normalized_resid_post', ops.layerNorm(residPost, p.outputLayerNorm, c.layerNormEps)); // = HF hidden_states[layer+1]
}

/**
 * The whole encoder → last hidden state [N, D]. Each layer runs in its own tidy so a layer's
 * intermediates are freed before the next starts (the wasm heap is 4 GB). Hook caches survive
 * because they are kept.
 */
export function encoder(p: BertParams, f: Forward): tf.Tensor2D {
  let x = tf.tidy(() => embeddings(p, f));
  p.layers.forEach((layerParams, i) => {
    const next = tf.tidy(() => encoderLayer(x, layerParams, i, f));
    x.dispose();
    x = next;
  });
  return x;
}
