/**
 * engine/bert.ts's operations as TensorFlow graph nodes: running bert.ts's encoder over these
 * writes the encoder graph (./encoder.ts). Each operation is written in the shape TensorFlow's
 * remapper recognises, so that grappler fuses what its eager ops run one pass at a time: Linear
 * as MatMul + BiasAdd (+ the GELU after it), exact GELU as ½x·erfc(−x/√2) (tf.nn.gelu's graph),
 * LayerNorm as Keras's FusedBatchNormV3 over [1, N, D, 1] in training mode (each token a channel:
 * its mean and biased variance over D) then ·γ + β, attention's q·kᵀ·scale + mask. Where the
 * optimiser does not fuse (another TensorFlow version), the graph computes the same numbers.
 *
 * Hook points become named Identity nodes, fetched as extra outputs when a forward caches them.
 *
 * With bfloat16 weights (precision 'bf16', weights/params.ts Linear.bf16), the Linear layers and
 * attention's two matmuls run on bfloat16 operands (oneDNN accumulates in float32; AVX512_BF16
 * runs them at about twice float32's rate): the packed int32 weight becomes [out, in] bf16 by
 * Bitcast (no copy) and Reshape, activations are Cast to bf16 just before each product and the
 * product Cast back to float32 at once. Bias, GELU, LayerNorm, softmax, the residual stream and
 * everything after the encoder stay float32.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { BertConfig, HiddenAct } from '../../../../weights/config';
import type { LayerNormParams, Linear } from '../../../../weights/params';
import type { HookName } from '../../../hooks';
import type { EncoderOps, HookSite, IdsName } from '../../../ops';
import { bool, GraphBuilder, int, Ref, T, type } from './graphdef';

/** The per-call inputs one chain of the graph reads. */
export interface ChainInputs {
  ids: Record<IdsName, Ref>;
  /** [R,1,1,T] additive key mask. */
  keyMask: Ref;
  /** [4] = [R, T, H, Dh]. */
  headsShape: Ref;
  /** [R·T] packed index of each grid cell, [N] grid cell of each token; absent when rows are uniform. */
  cells?: Ref;
  tokens?: Ref;
  /** The head intervention: mask [L,R,H], fill [L,D], the row of each token [N]; absent in a plain chain. */
  heads?: { mask: Ref; fill: Ref; tokenRows: Ref };
}

/** bert.ts's operations writing nodes into `g`; `weights` maps each weight tensor to its placeholder. */
export function graphOps(g: GraphBuilder, c: BertConfig, weights: Map<tf.Tensor, Ref>, inputs: ChainInputs, bf16 = false): EncoderOps<Ref> {
  const w = (t: tf.Tensor): Ref => weights.get(t)!;
  const cast = (x: Ref, from: 'float32' | 'bfloat16', to: 'float32' | 'bfloat16') => g.op('Cast', [x], { SrcT: type(from), DstT: type(to), Truncate: bool(false) });
  /** A packed bf16 weight (int32 [out, in/2]) as bf16 [out, in]. */
  const unpack = (p: Linear): Ref => {
    const [out, half] = p.weight.shape;
    const bits = g.op('Bitcast', [w(p.weight)], { T: type('int32'), type: type('bfloat16') }); // [out, in/2, 2]
    return g.op('Reshape', [bits, g.constant([out, 2 * half], 'int32')], { T: type('bfloat16'), Tshape: type('int32') });
  };
  /** a·b on bf16 operands, the product back in float32. */
  const lowProduct = (op: string, a: Ref, b: Ref, attrs: Record<string, ReturnType<typeof bool>>) =>
    cast(g.op(op, [a, b], { ...T('bfloat16'), ...attrs }), 'bfloat16', 'float32');
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H;
  const f32 = (v: number) => g.constant(v, 'float32');
  const ints = (v: number[]) => g.constant(v, 'int32');
  const add = (a: Ref, b: Ref) => g.op('AddV2', [a, b], T());
  const mul = (a: Ref, b: Ref) => g.op('Mul', [a, b], T());
  const reshape = (x: Ref, shape: Ref) => g.op('Reshape', [x, shape], { ...T(), Tshape: type('int32') });
  const transpose = (x: Ref, perm: number[]) => g.op('Transpose', [x, ints(perm)], { ...T(), Tperm: type('int32') });
  const gather = (table: Ref, ids: Ref, dtype: 'float32' | 'int32' = 'float32') =>
    g.op('GatherV2', [table, ids, g.constant(0, 'int32')], { Tparams: type(dtype), Tindices: type('int32'), Taxis: type('int32'), batch_dims: int(0) });
  const batchMatMul = (a: Ref, b: Ref, adjY: boolean) => bf16
    ? lowProduct('BatchMatMulV2', cast(a, 'float32', 'bfloat16'), cast(b, 'float32', 'bfloat16'), { adj_x: bool(false), adj_y: bool(adjY) })
    : g.op('BatchMatMulV2', [a, b], { ...T(), adj_x: bool(false), adj_y: bool(adjY) });

  /** Packed [N, D] → [R, H, T, Dh]. */
  const toHeads = (x: Ref): Ref => transpose(reshape(inputs.cells ? gather(x, inputs.cells) : x, inputs.headsShape), [0, 2, 1, 3]);

  const ops: EncoderOps<Ref> = {
    embed: (table, ids) => gather(w(table), inputs.ids[ids]),

    linear: (x: Ref, p: Linear) =>
      g.scope('linear', () => {
        const product = p.bf16
          ? lowProduct('MatMul', cast(x, 'float32', 'bfloat16'), unpack(p), { transpose_a: bool(false), transpose_b: bool(true) })
          : g.op('MatMul', [x, w(p.weight)], { ...T(), transpose_a: bool(false), transpose_b: bool(p.outIn === true) });
        return g.op('BiasAdd', [product, w(p.bias)], { ...T(), data_format: { s: 'NHWC' } });
      }),

    layerNorm: (x: Ref, p: LayerNormParams, eps: number) =>
      g.scope('LayerNorm', () => {
        const shape = g.op('Shape', [x], { ...T(), out_type: type('int32') }); // [N, D]
        const n = g.op('StridedSlice', [shape, ints([0]), ints([1]), ints([1])], {
          ...T('int32'), Index: type('int32'), begin_mask: int(0), end_mask: int(0), ellipsis_mask: int(0), new_axis_mask: int(0), shrink_axis_mask: int(1),
        });
        const one = g.constant(1, 'int32');
        const nchw = g.op('Pack', [one, n, g.constant(c.hiddenSize, 'int32'), one], { ...T('int32'), N: int(4), axis: int(0) });
        const channels = g.op('Pack', [n], { ...T('int32'), N: int(1), axis: int(0) });
        const fill = (v: number) => g.op('Fill', [channels, f32(v)], { ...T(), index_type: type('int32') });
        const empty = () => g.constant([], 'float32', [0]);
        const normed = g.op('FusedBatchNormV3', [reshape(x, nchw), fill(1), fill(0), empty(), empty()], {
          ...T(), U: type('float32'), epsilon: { f: eps }, exponential_avg_factor: { f: 1 }, data_format: { s: 'NCHW' }, is_training: bool(true),
        });
        return add(mul(reshape(normed, shape), w(p.weight)), w(p.bias));
      }),

    activation: (x: Ref, act: HiddenAct) => g.scope(act, () => activation(x, act)),

    add,

    attention: (q, k, v) => ops.attentionZ(ops.attentionSoftmax(ops.attentionScores(q, k)), v),

    attentionScores: (q, k) => add(mul(batchMatMul(toHeads(q), toHeads(k), true), f32(1 / Math.sqrt(Dh))), inputs.keyMask), // [R,H,T,T]

    attentionSoftmax: (scores) => g.op('Softmax', [scores], T()),

    attentionZ(pattern, v) {
      const zHeads = batchMatMul(pattern, toHeads(v), false); // [R,H,T,Dh]
      const zGrid = reshape(transpose(zHeads, [0, 2, 1, 3]), ints([-1, c.hiddenSize])); // [R·T, D]
      return inputs.tokens ? gather(zGrid, inputs.tokens) : zGrid; // [N,D]
    },

    intervene(z, layer) {
      const h = inputs.heads;
      if (!h) return z;
      return g.scope('heads', () => {
        const m = reshape(gather(gather(h.mask, g.constant(layer, 'int32')), h.tokenRows), ints([-1, H, 1])); // [N,H,1]
        const fill = reshape(gather(h.fill, g.constant(layer, 'int32')), ints([1, H, Dh])); // [1,H,Dh]
        const kept = mul(m, reshape(z, ints([-1, H, Dh]))); // [N,H,Dh]
        return reshape(add(kept, mul(g.op('Sub', [f32(1), m], T()), fill)), ints([-1, c.hiddenSize]));
      });
    },

    step: (name, body) => g.scope(name, body),
  };

  /** HF ACT2FN[act] in the forms grappler fuses into the MatMul before it where it can. */
  function activation(x: Ref, act: HiddenAct): Ref {
    switch (act) {
      case 'gelu': // ½x · erfc(−x/√2)
        return mul(mul(f32(0.5), x), g.op('Erfc', [mul(g.op('Neg', [x], T()), f32(Math.SQRT1_2))], T()));
      case 'gelu_new':
      case 'gelu_pytorch_tanh': { // ½x · (1 + tanh(√(2/π)·(x + 0.044715x³)))
        const cube = mul(mul(x, x), x);
        const inner = mul(f32(Math.sqrt(2 / Math.PI)), add(x, mul(f32(0.044715), cube)));
        return mul(mul(x, f32(0.5)), add(f32(1), g.op('Tanh', [inner], T())));
      }
      case 'relu':
        return g.op('Relu', [x], T());
    }
  }
  return ops;
}

/** Every hook point as a named Identity node: `outputs` maps each hook name to the node to fetch. */
export function graphHooks(g: GraphBuilder): HookSite<Ref> & { outputs: Map<HookName, Ref> } {
  const outputs = new Map<HookName, Ref>();
  return {
    outputs,
    // The graph writes every hook point (the three-step attention is its only attention); a run
    // fetches the ones a forward caches, and TensorFlow prunes the rest.
    wants: () => true,
    at(name, x) {
      outputs.set(name, g.op('Identity', [x], T(), name));
      return x;
    },
  };
}
