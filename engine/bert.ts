/**
 * The BERT encoder: embeddings → N post-LN layers, as short functions over packed [N, *] token
 * matrices (engine/rows.ts). Mirrors Hugging Face modeling_bert.py (BertEmbeddings,
 * BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput) and exposes every
 * intermediate at a TransformerLens-named hook point (engine/hooks.ts).
 *
 * This is the only description of the encoder. It is written against the operations of one
 * forward (engine/ops.ts EncoderOps), generic in the value they pass: run over eager tensors
 * (engine/eager.ts) it is the forward a researcher hooks; run over graph-building operations
 * (engine/backends/tensorflow/graph/) it writes the TensorFlow graph the fast path runs.
 *
 * Dimension letters: N packed tokens, R rows, T tokens of one row, D hidden, H heads,
 * Dh = D/H head size, F FFN width, B×T the public (padded batch) view of N.
 */
import type { BertConfig } from '../weights/config';
import type { BertLayerParams, BertParams } from '../weights/params';
import { blockHook, BlockHook } from './hooks';
import { MASK_VALUE } from './numerics';
import type { EncoderOps, HookSite } from './ops';
import { InputError, PackedInput } from './rows';

export { MASK_VALUE }; // HF's additive mask value (engine/numerics.ts)

/** What every function of one forward pass reads. */
export interface Forward<V> {
  c: BertConfig;
  ops: EncoderOps<V>;
  hooks: HookSite<V>;
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
export function embeddings<V>(p: BertParams, f: Forward<V>): V {
  const { c, ops, hooks } = f;
  const e = p.embeddings;
  const word = hooks.at('embed.hook_embed', ops.embed(e.wordEmbeddings, 'inputIds')); // [N,D]
  const pos = hooks.at('embed.hook_pos_embed', ops.embed(e.positionEmbeddings, 'positionIds')); // [N,D]
  const type = hooks.at('embed.hook_token_type_embed', ops.embed(e.tokenTypeEmbeddings, 'tokenTypeIds')); // [N,D]
  // HF adds in this order: (inputs_embeds + token_type_embeddings) + position_embeddings.
  const sum = ops.add(ops.add(word, type), pos); // [N,D]
  return hooks.at('hook_full_embed', ops.layerNorm(sum, e.layerNorm, c.layerNormEps));
}

// ---------------------------------------------------------------- attention

/**
 * BertSelfAttention → z [N, D] (the heads' outputs side by side, before the output dense).
 * Packed rows never see each other. When a hook wants the scores or the pattern, attention runs
 * as its three steps with the hooks between them. The forward's head intervention (if any)
 * acts on z before its hook point, so `hook_z` sees the heads as they go on.
 */
export function selfAttention<V>(x: V, p: BertLayerParams, layer: number, f: Forward<V>): V {
  const { ops, hooks } = f;
  const hook = (kind: BlockHook, t: V) => hooks.at(blockHook(layer, kind), t);
  const q = hook('attn.hook_q', ops.linear(x, p.query)); // [N,D]
  const k = hook('attn.hook_k', ops.linear(x, p.key)); // [N,D]
  const v = hook('attn.hook_v', ops.linear(x, p.value)); // [N,D]
  const scoresHook = blockHook(layer, 'attn.hook_attn_scores'), patternHook = blockHook(layer, 'attn.hook_pattern');
  let z: V; // [N,D]
  if (!hooks.wants(scoresHook) && !hooks.wants(patternHook)) {
    z = ops.attention(q, k, v);
  } else {
    const scores = hooks.at(scoresHook, ops.attentionScores(q, k)); // [R,H,T,T]  q·kᵀ/√Dh + mask
    const pattern = hooks.at(patternHook, ops.attentionSoftmax(scores)); // [R,H,T,T]
    z = ops.attentionZ(pattern, v);
  }
  return hook('attn.hook_z', ops.intervene(z, layer)); // [N,D]
}

// ---------------------------------------------------------------- one layer, the encoder

/** One post-LN BertLayer: attention block, then the FFN block, each residual + LayerNorm. */
export function encoderLayer<V>(x: V, p: BertLayerParams, layer: number, f: Forward<V>): V {
  const { c, ops } = f;
  const hook = (kind: BlockHook, t: V) => f.hooks.at(blockHook(layer, kind), t);
  const residPre = hook('hook_resid_pre', x); // [N,D]
  const z = selfAttention(residPre, p, layer, f); // [N,D]
  const attnOut = hook('hook_attn_out', ops.linear(z, p.attnOutput)); // [N,D]  BertSelfOutput.dense
  const residMid = hook('hook_resid_mid', ops.add(attnOut, residPre)); // [N,D]
  const ln1 = hook('ln1.hook_normalized', ops.layerNorm(residMid, p.attnLayerNorm, c.layerNormEps)); // [N,D]
  const pre = hook('mlp.hook_pre', ops.linear(ln1, p.intermediate)); // [N,F]  BertIntermediate.dense
  const post = hook('mlp.hook_post', ops.activation(pre, c.hiddenAct)); // [N,F]
  const mlpOut = hook('hook_mlp_out', ops.linear(post, p.output)); // [N,D]  BertOutput.dense
  const residPost = hook('hook_resid_post', ops.add(mlpOut, ln1)); // [N,D]
  return hook('hook_normalized_resid_post', ops.layerNorm(residPost, p.outputLayerNorm, c.layerNormEps)); // = HF hidden_states[layer+1]
}

/**
 * The whole encoder → last hidden state [N, D]. Each layer is a step of its own (eager: its own
 * tidy, so a layer's intermediates are freed before the next starts; graph: a name scope).
 */
export function encoder<V>(p: BertParams, f: Forward<V>): V {
  return layersFrom(0, f.ops.step('embeddings', () => embeddings(p, f)), p, f, true);
}

/**
 * Layers `from`…L−1 on `x` = HF hidden_states[from] (the embeddings' output for 0) → last hidden
 * state [N, D]. `x` is freed after its layer only when `ownsX` (the caller's stays theirs).
 */
export function layersFrom<V>(from: number, x: V, p: BertParams, f: Forward<V>, ownsX = false): V {
  for (let i = from; i < p.layers.length; i++) {
    const layerIn = x;
    x = f.ops.step(`layer_${i}`, () => encoderLayer(layerIn, p.layers[i], i, f), i > from || ownsX ? layerIn : undefined);
  }
  return x;
}
