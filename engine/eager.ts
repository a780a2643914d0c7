/**
 * engine/bert.ts run eagerly, op by op: its operations (EncoderOps) over a backend's kernels
 * (engine/ops.ts Ops) for one forward's packed input, and its hook points as a HookContext's
 * (hook functions and caches), which see each activation in its public shape (engine/hooks.ts).
 * Every operation is a tfjs op or a backend kernel, so a forward over the generic kernels
 * (engine/backends/generic/) is differentiable end to end.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig, HiddenAct } from '../weights/config';
import { checkEmbeddingIds, Forward } from './bert';
import { eagerIntervention } from './heads';
import { HookContext, hookLayout, HookName } from './hooks';
import type { AttentionInput, EncoderOps, HeadIntervention, HookSite, Ops } from './ops';
import type { PackedInput, Rows } from './rows';

type T2 = tf.Tensor2D;

/**
 * One eager forward of engine/bert.ts over `kernels` (a backend's Ops), with `hooks` and an optional
 * head intervention. `bf16`: the model's weights are packed bf16 (precision 'bf16'); the forward
 * then rounds to bf16 wherever the compiled graph (engine/backends/tensorflow/graph/ops.ts) holds
 * a value in bf16 — each Linear's input, bias and output, the GELU's output, attention's products —
 * with the backend's Bf16Kernels, and keeps float32 where the graph does.
 */
export function eagerForward(c: BertConfig, kernels: Ops, input: PackedInput, hooks: HookContext, heads?: HeadIntervention, bf16 = false): Forward<tf.Tensor> {
  checkEmbeddingIds(c, input);
  const low = bf16 ? kernels.bf16 : undefined;
  if (bf16 && !low) throw new Error("precision 'bf16' cannot run op by op on this backend (the tensorflow backend can)");
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H;
  const a: AttentionInput = { rows: input.rows, heads: H, headSize: Dh, keyMask: input.attentionMask, scale: Math.sqrt(Dh), ...(low && { round: low.round }) };
  const ops: EncoderOps<tf.Tensor> = {
    // A packed bf16 table: its rows gathered as int32 pairs, then unpacked.
    embed: (table, ids) => (table.dtype === 'int32' && low ? tf.tidy(() => low.unpack(kernels.gather(table, input[ids]))) : kernels.gather(table, input[ids])),
    linear: (x, p) =>
      p.bf16 && low
        ? tf.tidy(() => low.round(kernels.linear(low.round(x as T2), { weight: low.unpack(p.weight), bias: low.round(p.bias), outIn: true })))
        : kernels.linear(x as T2, p),
    layerNorm: (x, p, eps) => kernels.layerNorm(x as T2, p, eps),
    // (The graph applies GELU to the GEMM's float32 accumulators, inside it; here to the Linear's
    // bf16 output: a difference of one rounding of the pre-activation.)
    activation: (x, act) => (low ? tf.tidy(() => low.round(activation(kernels, x as T2, act))) : activation(kernels, x as T2, act)),
    add: (x, y) => tf.add(x, y),
    attention: (q, k, v) => kernels.attention(q as T2, k as T2, v as T2, a),
    attentionScores: (q, k) => kernels.attentionScores(q as T2, k as T2, a),
    attentionSoftmax: (scores) => kernels.attentionSoftmax(scores as tf.Tensor4D, a),
    attentionZ: (pattern, v) => kernels.attentionZ(pattern as tf.Tensor4D, v as T2, a),
    intervene: heads ? eagerIntervention(c, input.rows, heads) : (z) => z,
    step(_name, body, done) {
      const out = tf.tidy(body);
      done?.dispose();
      return out;
    },
  };
  return { c, ops, hooks: eagerHooks(c, input.rows, hooks) };
}

/** HF ACT2FN: "gelu" is the exact erf form x·Φ(x); "gelu_new"/"gelu_pytorch_tanh" the tanh approximation. */
function activation(kernels: Ops, x: T2, act: HiddenAct): T2 {
  switch (act) {
    case 'gelu':
      return kernels.gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return tf.tidy(() => {
        const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
        return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner))) as T2;
      });
    case 'relu':
      return tf.relu(x);
  }
}

/** The HookContext's hooks at engine/bert.ts's hook points, each seeing its activation in its public shape. */
function eagerHooks(c: BertConfig, rows: Rows, ctx: HookContext): HookSite<tf.Tensor> {
  return {
    wants: (name) => ctx.wants(name),
    at(name, x) {
      if (!ctx.wants(name)) return x;
      return tf.reshape(ctx.apply(name, publicView(c, rows, name, x)), x.shape);
    },
  };
}

/**
 * A hook point's value in its public shape (engine/hooks.ts): [B,T,…] for rows of one length,
 * [1,N,…] for packed rows of different lengths; attention's grid is already [R,H,T,T].
 */
export function publicView(c: BertConfig, rows: Rows, name: HookName, x: tf.Tensor): tf.Tensor {
  const layout = hookLayout(name);
  if (layout === 'grid') return x;
  const lead = rows.uniformLength !== undefined ? [rows.count, rows.uniformLength] : [1, rows.total];
  const H = c.numAttentionHeads;
  return tf.reshape(x, [...lead, ...(layout === 'heads' ? [H, x.shape[1]! / H] : [x.shape[1]!])]);
}
