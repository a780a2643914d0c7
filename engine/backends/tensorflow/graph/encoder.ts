/**
 * The BERT encoder as one TensorFlow graph, for forwards no hook looks into (engine/model.ts).
 *
 * engine/bert.ts is the encoder a researcher reads and hooks; on tensorflow it runs op by op in
 * TensorFlow's eager runtime, which does GELU, LayerNorm, the residual adds and the attention
 * scale and mask each as its own pass over memory. Written here once more as a graph — the same
 * functions, the same order of additions — and run in one TF_SessionRun, TensorFlow's graph
 * optimiser fuses them into the GEMMs (oneDNN: MatMul + BiasAdd + GELU, q·kᵀ·scale + mask) and
 * into one LayerNorm kernel. The graph holds no weights: they are its inputs, the very tensors
 * the model loaded, so nothing is copied and there is one set of weights in memory.
 *
 * The patterns TensorFlow's remapper recognises decide how two things are written: GELU as
 * ½x·erfc(−x/√2) (tf.nn.gelu's graph) and LayerNorm as Keras's FusedBatchNormV3 over [1, N, D, 1]
 * in training mode (each token a channel: its mean and biased variance over D), then ·γ + β.
 * Where the optimiser does not fuse (another TensorFlow version), the graph still computes the
 * same numbers, op by op.
 *
 * Two outputs share the weights: `hidden` for packed rows of different lengths (gathered into a
 * padded grid for attention, as engine/backends/tensorflow/ops.ts does) and `hidden_uniform` for
 * rows of one length (a reshape suffices). TensorFlow runs only the part a fetch needs.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../../../../weights/config';
import { BertParams, expectedTensors, LayerNormParams, Linear, paramTensors } from '../../../../weights/params';
import type { CompiledEncoder } from '../../../backend';
import { checkEmbeddingIds } from '../../../bert';
import type { PackedInput } from '../../../rows';
import { attentionGrid } from '../grid';
import { NodeBackend, nodeBackend } from '../node-backend';
import { bool, GraphBuilder, int, Ref, T, type } from './graphdef';

const TAG = 'serve';

/** What one chain of the graph reads: the weights and the per-call inputs. */
interface Emit {
  g: GraphBuilder;
  c: BertConfig;
  /** Placeholder of each weight tensor. */
  w: Map<tf.Tensor, Ref>;
  ids: Ref;
  types: Ref;
  positions: Ref;
  /** [R,1,1,T] additive key mask. */
  keyMask: Ref;
  /** [4] = [R, T, H, Dh]. */
  headsShape: Ref;
  /** [R·T] packed index of each grid cell, [N] grid cell of each token; absent when rows are uniform. */
  cells?: Ref;
  tokens?: Ref;
}

const weight = (e: Emit, t: tf.Tensor): Ref => e.w.get(t)!;

/** nn.Linear: x·Wᵀ + b ([out, in] weights) or x·W + b. MatMul + BiasAdd fuse (with a GELU after). */
function linear(e: Emit, x: Ref, p: Linear, name: string): Ref {
  return e.g.scope(name, () => {
    const product = e.g.op('MatMul', [x, weight(e, p.weight)], { ...T(), transpose_a: bool(false), transpose_b: bool(p.outIn === true) });
    return e.g.op('BiasAdd', [product, weight(e, p.bias)], { ...T(), data_format: { s: 'NHWC' } });
  });
}

/** nn.LayerNorm over D, written as Keras's FusedBatchNormV3 pattern (→ one _MklLayerNorm). */
function layerNorm(e: Emit, x: Ref, p: LayerNormParams, name: string): Ref {
  const { g, c } = e;
  return g.scope(name, () => {
    const shape = g.op('Shape', [x], { ...T(), out_type: type('int32') }); // [N, D]
    const n = g.op('StridedSlice', [shape, g.constant([0], 'int32'), g.constant([1], 'int32'), g.constant([1], 'int32')], {
      ...T('int32'), Index: type('int32'), begin_mask: int(0), end_mask: int(0), ellipsis_mask: int(0), new_axis_mask: int(0), shrink_axis_mask: int(1),
    });
    const one = g.constant(1, 'int32');
    const nchw = g.op('Pack', [one, n, g.constant(c.hiddenSize, 'int32'), one], { ...T('int32'), N: int(4), axis: int(0) });
    const channels = g.op('Pack', [n], { ...T('int32'), N: int(1), axis: int(0) });
    const fill = (v: number) => g.op('Fill', [channels, g.constant(v, 'float32')], { ...T(), index_type: type('int32') });
    const empty = () => g.constant([], 'float32', [0]);
    const normed = g.op('FusedBatchNormV3', [g.op('Reshape', [x, nchw], { ...T(), Tshape: type('int32') }), fill(1), fill(0), empty(), empty()], {
      ...T(), U: type('float32'), epsilon: { f: c.layerNormEps }, exponential_avg_factor: { f: 1 }, data_format: { s: 'NCHW' }, is_training: bool(true),
    });
    const back = g.op('Reshape', [normed, shape], { ...T(), Tshape: type('int32') });
    return g.op('AddV2', [g.op('Mul', [back, weight(e, p.weight)], T()), weight(e, p.bias)], T());
  });
}

/** Exact GELU as tf.nn.gelu writes it: ½x · erfc(−x/√2) (fuses into the MatMul before it). */
function gelu(e: Emit, x: Ref): Ref {
  const { g } = e;
  return g.scope('gelu', () => {
    const half = g.op('Mul', [g.constant(0.5, 'float32'), x], T());
    const arg = g.op('Mul', [g.op('Neg', [x], T()), g.constant(Math.SQRT1_2, 'float32')], T());
    return g.op('Mul', [half, g.op('Erfc', [arg], T())], T());
  });
}

const gather = (e: Emit, table: Ref, ids: Ref): Ref =>
  e.g.op('GatherV2', [table, ids, e.g.constant(0, 'int32')], { Tparams: type('float32'), Tindices: type('int32'), Taxis: type('int32'), batch_dims: int(0) });

const add = (e: Emit, a: Ref, b: Ref): Ref => e.g.op('AddV2', [a, b], T());

/** BertEmbeddings: (word + token type) + position, then LayerNorm. */
function embeddings(e: Emit, p: BertParams): Ref {
  return e.g.scope('embeddings', () => {
    const m = p.embeddings;
    const word = gather(e, weight(e, m.wordEmbeddings), e.ids);
    const typ = gather(e, weight(e, m.tokenTypeEmbeddings), e.types);
    const pos = gather(e, weight(e, m.positionEmbeddings), e.positions);
    return layerNorm(e, add(e, add(e, word, typ), pos), m.layerNorm, 'LayerNorm');
  });
}

/** Packed [N, D] → [R, H, T, Dh]. */
function toHeads(e: Emit, x: Ref): Ref {
  const { g } = e;
  const cells = e.cells ? gather(e, x, e.cells) : x;
  const grid = g.op('Reshape', [cells, e.headsShape], { ...T(), Tshape: type('int32') });
  return g.op('Transpose', [grid, g.constant([0, 2, 1, 3], 'int32')], { ...T(), Tperm: type('int32') });
}

/** BertSelfAttention → z [N, D]: softmax(q·kᵀ/√Dh + mask)·v over each row's grid. */
function selfAttention(e: Emit, x: Ref, p: BertParams['layers'][number]): Ref {
  const { g, c } = e;
  return g.scope('attention', () => {
    const q = toHeads(e, linear(e, x, p.query, 'query'));
    const k = toHeads(e, linear(e, x, p.key, 'key'));
    const v = toHeads(e, linear(e, x, p.value, 'value'));
    const headSize = c.hiddenSize / c.numAttentionHeads;
    const qk = g.op('BatchMatMulV2', [q, k], { ...T(), adj_x: bool(false), adj_y: bool(true) });
    const scores = add(e, g.op('Mul', [qk, g.constant(1 / Math.sqrt(headSize), 'float32')], T()), e.keyMask);
    const pattern = g.op('Softmax', [scores], T());
    const zHeads = g.op('BatchMatMulV2', [pattern, v], { ...T(), adj_x: bool(false), adj_y: bool(false) }); // [R,H,T,Dh]
    const zGrid = g.op('Reshape', [g.op('Transpose', [zHeads, g.constant([0, 2, 1, 3], 'int32')], { ...T(), Tperm: type('int32') }), g.constant([-1, c.hiddenSize], 'int32')], {
      ...T(), Tshape: type('int32'),
    });
    return e.tokens ? gather(e, zGrid, e.tokens) : zGrid;
  });
}

/** One post-LN BertLayer, in engine/bert.ts's order of operations. */
function encoderLayer(e: Emit, x: Ref, p: BertParams['layers'][number], i: number): Ref {
  return e.g.scope(`layer_${i}`, () => {
    const z = selfAttention(e, x, p);
    const ln1 = layerNorm(e, add(e, linear(e, z, p.attnOutput, 'attention_output'), x), p.attnLayerNorm, 'attention_LayerNorm');
    const post = gelu(e, linear(e, ln1, p.intermediate, 'intermediate'));
    return layerNorm(e, add(e, linear(e, post, p.output, 'output'), ln1), p.outputLayerNorm, 'output_LayerNorm');
  });
}

/** The weight tensors, each with its checkpoint name (its placeholder's): paramTensors is in checkpoint order. */
function weightInputs(c: BertConfig, p: BertParams): Array<[string, tf.Tensor]> {
  const tensors = paramTensors(p); // the pooler, last, is not the encoder's
  return expectedTensors(c, false).map((t, i) => [t.name, tensors[i]]);
}

/** The graph: inputs, the two chains, and the names to feed. */
export function encoderGraph(c: BertConfig, p: BertParams): { graph: GraphBuilder; weights: Array<[string, tf.Tensor]> } {
  const g = new GraphBuilder();
  const weights = weightInputs(c, p);
  const w = new Map(weights.map(([name, t]) => [t, g.placeholder(name, 'float32', t.shape)] as [tf.Tensor, Ref]));
  const common = {
    g, c, w,
    ids: g.placeholder('input_ids', 'int32', [-1]),
    types: g.placeholder('token_type_ids', 'int32', [-1]),
    positions: g.placeholder('position_ids', 'int32', [-1]),
    keyMask: g.placeholder('key_mask', 'float32', [-1, 1, 1, -1]),
    headsShape: g.placeholder('heads_shape', 'int32', [4]),
  };
  const packed: Emit = { ...common, cells: g.placeholder('cells', 'int32', [-1]), tokens: g.placeholder('tokens', 'int32', [-1]) };
  for (const [e, out] of [[packed, 'hidden'], [common, 'hidden_uniform']] as Array<[Emit, string]>) {
    const x = g.scope(out, () => p.layers.reduce((h, l, i) => encoderLayer(e, h, l, i), embeddings(e, p)));
    g.op('Identity', [x], T(), out);
  }
  return { graph: g, weights };
}

/** The parts of tfjs-node's backend that run a SavedModel. */
type SavedModelBackend = Pick<NodeBackend, 'loadSavedModelMetaGraph' | 'runSavedModel' | 'deleteSavedModel'>;

/**
 * The first forward with at least this many tokens builds the graph, or the forward that brings
 * the hook-free tokens run so far to 8× as many (a process embedding one query at a time). Building
 * it and TensorFlow's first optimised run cost ~1.5–2 s on the e5-large shape, which a forward of
 * 256 tokens (0.6 s op by op, 25–30% less as a graph) starts to pay back, and a query (1×16: ~230
 * ms op by op, ~200 ms as a graph) pays back after some 50; a single query never pays it.
 */
export const COMPILE_MIN_TOKENS = 256;

/**
 * The encoder graph for TensorFlow sessions; undefined when this tfjs backend cannot run one. The
 * graph is built and loaded on the first forward that `takes` (see COMPILE_MIN_TOKENS).
 */
export function compileEncoderGraph(c: BertConfig, p: BertParams, minTokens = COMPILE_MIN_TOKENS): CompiledEncoder | undefined {
  const backend = nodeBackend();
  if (typeof backend.loadSavedModelMetaGraph !== 'function' || typeof backend.runSavedModel !== 'function') return undefined;
  if (c.hiddenAct !== 'gelu') return undefined; // the graph writes exact GELU only; the op-by-op path has the rest
  let session: Session | undefined;
  let disposed = false;
  let tokensSoFar = 0;
  return {
    takes(input) {
      tokensSoFar += input.rows.total;
      return !disposed && (session !== undefined || input.rows.total >= minTokens || tokensSoFar >= 8 * minTokens);
    },
    get nodes() {
      return session?.nodes ?? 0;
    },
    run(input: PackedInput): tf.Tensor2D {
      if (disposed) throw new Error('the encoder graph was disposed');
      session ??= new Session(backend as SavedModelBackend, c, p);
      return session.run(input);
    },
    dispose() {
      session?.dispose();
      disposed = true;
    },
  };
}

/** The graph of one model loaded into a TensorFlow session, fed the model's weight tensors. */
class Session {
  private readonly id: number;
  readonly nodes: number;
  private readonly weightNames: Array<{ name: string }>;
  private readonly weightTensors: tf.Tensor[];

  constructor(private readonly backend: SavedModelBackend, private readonly c: BertConfig, p: BertParams) {
    const { graph, weights } = encoderGraph(c, p);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-encoder-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), graph.savedModel(TAG));
      this.id = backend.loadSavedModelMetaGraph(dir, TAG);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true }); // the session holds the graph now
    }
    this.nodes = graph.size;
    this.weightNames = weights.map(([name]) => ({ name: `${name}:0` }));
    this.weightTensors = weights.map(([, t]) => t);
  }

  run(input: PackedInput): tf.Tensor2D {
    const { c } = this;
    checkEmbeddingIds(c, input);
    const grid = attentionGrid(input.rows, input.attentionMask);
    const H = c.numAttentionHeads;
    const feeds: Array<[string, tf.Tensor]> = [
      ['input_ids', tf.tensor1d(input.inputIds, 'int32')],
      ['token_type_ids', tf.tensor1d(input.tokenTypeIds, 'int32')],
      ['position_ids', tf.tensor1d(input.positionIds, 'int32')],
      ['key_mask', tf.tensor4d(grid.keyMask, [input.rows.count, 1, 1, grid.T])],
      ['heads_shape', tf.tensor1d([input.rows.count, grid.T, H, c.hiddenSize / H], 'int32')],
    ];
    if (grid.cells) feeds.push(['cells', tf.tensor1d(grid.cells, 'int32')], ['tokens', tf.tensor1d(grid.tokens!, 'int32')]);
    try {
      const [hidden] = this.backend.runSavedModel(
        this.id,
        [...feeds.map(([, t]) => t), ...this.weightTensors],
        [...feeds.map(([name]) => ({ name: `${name}:0` })), ...this.weightNames],
        [grid.cells ? 'hidden:0' : 'hidden_uniform:0'],
      );
      return hidden as tf.Tensor2D;
    } finally {
      feeds.forEach(([, t]) => t.dispose());
    }
  }

  dispose(): void {
    this.backend.deleteSavedModel(this.id);
  }
}
