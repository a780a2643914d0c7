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
 * Bitcast (no copy) and Reshape, and a value stays bf16 from one product to the next (a Linear's
 * bias and the GELU after it run on the GEMM's float32 accumulators, fused). It is cast to float32
 * only into LayerNorm, softmax, the residual adds and the hook points, which stay float32 with
 * everything after the encoder.
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
export function graphOps(g: GraphBuilder, c: BertConfig, weights: Map<tf.Tensor, Ref>, inputs: ChainInputs, bf16 = false): EncoderOps<Ref> & GraphValues {
  const w = (t: tf.Tensor): Ref => weights.get(t)!;
  const cast = (x: Ref, from: 'float32' | 'bfloat16', to: 'float32' | 'bfloat16') => g.op('Cast', [x], { SrcT: type(from), DstT: type(to), Truncate: bool(false) });
  /**
   * bf16: the values that are bfloat16 (a Linear's output, GELU after it, attention's q/k/v, z),
   * and each value's one Cast to the other type, shared by all who need it.
   */
  const low = new Set<Ref>();
  /** Each bf16 Linear's output, and how to write that Linear again (see `observe`). */
  const again = new Map<Ref, () => Ref>();
  const casts = new Map<Ref, Ref>();
  const lowValue = (x: Ref): Ref => (low.add(x), x);
  const toLow = (x: Ref): Ref => (low.has(x) ? x : memo(x, () => lowValue(cast(x, 'float32', 'bfloat16'))));
  const toF32 = (x: Ref): Ref => (low.has(x) ? memo(x, () => cast(x, 'bfloat16', 'float32')) : x);
  const memo = (x: Ref, make: () => Ref): Ref => {
    let c = casts.get(x);
    if (c === undefined) casts.set(x, (c = make()));
    return c;
  };
  /** A packed bf16 weight (int32 [out, in/2]) as bf16 [out, in]. */
  const unpackTable = (t: tf.Tensor, rows = t.shape[0]): Ref => {
    const half = t.shape[1]!;
    const bits = g.op('Bitcast', [w(t)], { T: type('int32'), type: type('bfloat16') }); // [out, in/2, 2]
    return lowValue(g.op('Reshape', [bits, g.constant([rows, 2 * half], 'int32')], { T: type('bfloat16'), Tshape: type('int32') }));
  };
  /** x·Wᵀ + b on bf16 operands, W the unpacked weight `weight`: MatMul + BiasAdd, fused (+ GELU) by grappler. */
  const lowLinear = (x: Ref, p: Linear, weight: Ref): Ref =>
    lowValue(g.op('BiasAdd', [g.op('MatMul', [toLow(x), weight], { ...T('bfloat16'), transpose_a: bool(false), transpose_b: bool(true) }), toLow(w(p.bias))], { ...T('bfloat16'), data_format: { s: 'NHWC' } }));
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H;
  const f32 = (v: number) => g.constant(v, 'float32');
  const ints = (v: number[]) => g.constant(v, 'int32');
  /**
   * An elementwise op in bf16 where an operand is bf16 (the other, a constant or the key mask, is
   * cast: grappler folds a constant's Cast), else float32.
   */
  const binary = (op: string, a: Ref, b: Ref) => {
    if (!low.has(a) && !low.has(b)) return g.op(op, [a, b], T());
    return lowValue(g.op(op, [toLow(a), toLow(b)], T('bfloat16')));
  };
  const add = (a: Ref, b: Ref) => g.op('AddV2', [toF32(a), toF32(b)], T());
  const mul = (a: Ref, b: Ref) => binary('Mul', a, b);
  const typeOf = (x: Ref) => (low.has(x) ? 'bfloat16' : 'float32');
  const keepType = (x: Ref, out: Ref) => (low.has(x) ? lowValue(out) : out);
  const unary = (op: string, x: Ref) => keepType(x, g.op(op, [x], T(typeOf(x))));
  const reshape = (x: Ref, shape: Ref) => keepType(x, g.op('Reshape', [x, shape], { ...T(typeOf(x)), Tshape: type('int32') }));
  const transpose = (x: Ref, perm: number[]) => keepType(x, g.op('Transpose', [x, ints(perm)], { ...T(typeOf(x)), Tperm: type('int32') }));
  const gather = (table: Ref, ids: Ref) =>
    keepType(table, g.op('GatherV2', [table, ids, g.constant(0, 'int32')], { Tparams: type(typeOf(table)), Tindices: type('int32'), Taxis: type('int32'), batch_dims: int(0) }));
  /**
   * Attention's products: bf16 operands and product, then (q·kᵀ) its scale and mask in bf16 too, so
   * that grappler fuses them into the GEMM as in float32 (the scale 1/√Dh is a power of two for
   * Dh = 64, the mask 0 or very negative: neither changes a bf16 value's rounding).
   */
  const batchMatMul = (a: Ref, b: Ref, adjY: boolean) => bf16
    ? lowValue(g.op('BatchMatMulV2', [toLow(a), toLow(b)], { ...T('bfloat16'), adj_x: bool(false), adj_y: bool(adjY) }))
    : g.op('BatchMatMulV2', [a, b], { ...T(), adj_x: bool(false), adj_y: bool(adjY) });

  /**
   * The additive key mask; in bf16 truncated, not rounded: float32's lowest value rounds to −∞ in
   * bf16, and a row with no key left would then give NaN where float32 gives a finite pattern.
   */
  const keyMask = () => (bf16 ? memo(inputs.keyMask, () => lowValue(g.op('Cast', [inputs.keyMask], { SrcT: type('float32'), DstT: type('bfloat16'), Truncate: bool(true) }))) : inputs.keyMask);

  /** Packed [N, D] → [R, H, T, Dh]. */
  const toHeads = (x: Ref): Ref => transpose(reshape(inputs.cells ? gather(x, inputs.cells) : x, inputs.headsShape), [0, 2, 1, 3]);

  const ops: EncoderOps<Ref> & GraphValues = {
    // In bf16 the GELU runs inside the GEMM, on its float32 accumulators; a second consumer of the
    // GEMM's output would keep grappler from fusing them, and the GELU would run as bf16 ops. So
    // mlp.hook_pre reads a copy of the Linear, computed only when it is fetched: reading it changes
    // no value of the forward.
    observe: (name, x) => toF32(bf16 && name.endsWith('mlp.hook_pre') && again.has(x) ? again.get(x)!() : x),

    // A bf16 table (int32 pairs, precision 'bf16') is gathered as bf16 rows, each row then float32.
    embed: (table, ids) => (table.dtype === 'int32' ? toF32(gather(unpackTable(table), inputs.ids[ids])) : gather(w(table), inputs.ids[ids])),

    linear: (x: Ref, p: Linear) =>
      g.scope('linear', () => {
        if (p.bf16) {
          // MatMul + BiasAdd (+ the GELU after it) in bf16: one oneDNN GEMM whose bias and GELU
          // run on its float32 accumulators before the result is rounded to bf16.
          const out = lowLinear(x, p, unpackTable(p.weight));
          // The copy (`observe`) reads the weight through a Reshape of its own (to [-1, in]), so that
          // grappler does not merge it with this one; it is the same MatMul + BiasAdd otherwise.
          again.set(out, () => lowLinear(x, p, unpackTable(p.weight, -1)));
          return out;
        }
        const product = g.op('MatMul', [x, w(p.weight)], { ...T(), transpose_a: bool(false), transpose_b: bool(p.outIn === true) });
        return g.op('BiasAdd', [product, w(p.bias)], { ...T(), data_format: { s: 'NHWC' } });
      }),

    layerNorm: (x: Ref, p: LayerNormParams, eps: number) =>
      g.scope('LayerNorm', () => {
        x = toF32(x);
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

    attentionScores: (q, k) => binary('AddV2', mul(batchMatMul(toHeads(q), toHeads(k), true), f32(1 / Math.sqrt(Dh))), keyMask()), // [R,H,T,T]

    attentionSoftmax: (scores) => g.op('Softmax', [toF32(scores)], T()),

    attentionZ(pattern, v) {
      const zHeads = batchMatMul(pattern, toHeads(v), false); // [R,H,T,Dh]
      const zGrid = reshape(transpose(zHeads, [0, 2, 1, 3]), ints([-1, c.hiddenSize])); // [R·T, D]
      return inputs.tokens ? gather(zGrid, inputs.tokens) : zGrid; // [N,D]
    },

    intervene(z, layer) {
      const h = inputs.heads;
      if (!h) return z;
      z = toF32(z);
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
        return mul(mul(f32(0.5), x), unary('Erfc', mul(unary('Neg', x), f32(Math.SQRT1_2))));
      case 'gelu_new':
      case 'gelu_pytorch_tanh': { // ½x · (1 + tanh(√(2/π)·(x + 0.044715x³)))
        x = toF32(x); // (not fused with the matmul in bf16: float32, as elsewhere)
        const cube = mul(mul(x, x), x);
        const inner = mul(f32(Math.sqrt(2 / Math.PI)), add(x, mul(f32(0.044715), cube)));
        return mul(mul(x, f32(0.5)), add(f32(1), g.op('Tanh', [inner], T())));
      }
      case 'relu':
        return unary('Relu', x);
    }
  }
  return ops;
}

/** What the graph's hook points need to know of the values bert.ts passes. */
export interface GraphValues {
  /** The float32 node a hook point fetches for x (a Cast where x is bf16). */
  observe(name: HookName, x: Ref): Ref;
}

/**
 * Every hook point as a named Identity node: `outputs` maps each hook name to the node to fetch,
 * always float32 (a bf16 value is cast; the value bert.ts continues with stays bf16).
 */
export function graphHooks(g: GraphBuilder, values: GraphValues): HookSite<Ref> & { outputs: Map<HookName, Ref> } {
  const outputs = new Map<HookName, Ref>();
  return {
    outputs,
    // The graph writes every hook point (the three-step attention is its only attention); a run
    // fetches the ones a forward caches, and TensorFlow prunes the rest.
    wants: () => true,
    at(name, x) {
      outputs.set(name, g.op('Identity', [values.observe(name, x)], T(), name));
      return x;
    },
  };
}
