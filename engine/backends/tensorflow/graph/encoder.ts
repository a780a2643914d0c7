/**
 * The BERT encoder as one TensorFlow graph, for forwards no hook function looks into
 * (engine/model.ts).
 *
 * engine/bert.ts is the encoder; on tensorflow it runs op by op in TensorFlow's eager runtime,
 * which does GELU, LayerNorm, the residual adds and the attention scale and mask each as its own
 * pass over memory. Run over graph-building operations (./ops.ts) instead, the same bert.ts
 * writes this graph, which runs in one TF_SessionRun: TensorFlow's graph optimiser fuses those
 * steps into the GEMMs (oneDNN: MatMul + BiasAdd + GELU, q·kᵀ·scale + mask) and into one
 * LayerNorm kernel. The graph holds no weights: they are its inputs, the very tensors the model
 * loaded, so nothing is copied and there is one set of weights in memory. This file holds only
 * what is the graph's own: its placeholders, its outputs, and the SavedModel that carries it.
 *
 * Four chains share the weights: rows of one length (a reshape makes attention's grid) or of
 * different lengths (gathered into a padded grid, as engine/backends/tensorflow/ops.ts does), each
 * plain or with a head intervention (engine/ops.ts HeadIntervention) as inputs. Each is built and
 * loaded into a session of its own the first time a forward needs it. Every hook point of a chain
 * is a named node, fetched when a forward caches it. TensorFlow runs only the part a fetch needs,
 * and optimises each set of fetches once.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../../../../weights/config';
import { BertParams, expectedTensors, isBf16, paramTensors } from '../../../../weights/params';
import type { CompiledEncoder, CompiledRun, CompiledRunOptions } from '../../../runtime';
import { checkEmbeddingIds, encoder } from '../../../bert';
import { maskByLayer, tokenRows } from '../../../heads';
import type { HookName } from '../../../hooks';
import type { PackedInput } from '../../../rows';
import { AttentionGrid, attentionGrid } from '../grid';
import { NodeBackend, nodeBackend } from '../node-backend';
import { GraphBuilder, Ref, T } from './graphdef';
import { ChainInputs, graphHooks, graphOps } from './ops';

const TAG = 'serve';

/** A chain of the graph: its output node and the node of each hook point. */
interface Chain {
  output: Ref;
  hooks: Map<HookName, Ref>;
}

/** Chains by (packed rows?, head intervention?). */
type ChainKey = `${'packed' | 'uniform'}${'' | '_heads'}`;

/** The weight tensors, each with its checkpoint name (its placeholder's): paramTensors is in checkpoint order. */
function weightInputs(c: BertConfig, p: BertParams): Array<[string, tf.Tensor]> {
  const tensors = paramTensors(p); // the pooler, last, is not the encoder's
  return expectedTensors(c, false).map((t, i) => [t.name, tensors[i]]);
}

const CHAINS: ChainKey[] = ['uniform', 'packed', 'uniform_heads', 'packed_heads'];

/**
 * The graph of the chains `keys` (default all four): their inputs, bert.ts's encoder written once
 * per chain, and the weights to feed. A session loads one chain: TensorFlow imports every node of
 * the graph it is given, so a graph of four chains took four times the import's time and memory
 * for the one a process uses (a shell's single query, a batch of one length).
 */
export function encoderGraph(c: BertConfig, p: BertParams, keys: readonly ChainKey[] = CHAINS): { graph: GraphBuilder; weights: Array<[string, tf.Tensor]>; chains: Partial<Record<ChainKey, Chain>> } {
  const g = new GraphBuilder();
  const weights = weightInputs(c, p);
  // bf16 Linear weights are int32 tensors (two bf16 values each): fed as they are.
  const w = new Map(weights.map(([name, t]) => [t, g.placeholder(name, t.dtype === 'int32' ? 'int32' : 'float32', t.shape)] as [tf.Tensor, Ref]));
  const bf16 = isBf16(p);
  const plain: ChainInputs = {
    ids: {
      inputIds: g.placeholder('input_ids', 'int32', [-1]),
      tokenTypeIds: g.placeholder('token_type_ids', 'int32', [-1]),
      positionIds: g.placeholder('position_ids', 'int32', [-1]),
    },
    keyMask: g.placeholder('key_mask', 'float32', [-1, 1, 1, -1]),
    headsShape: g.placeholder('heads_shape', 'int32', [4]),
  };
  let grid: Pick<ChainInputs, 'cells' | 'tokens'> | undefined;
  let heads: ChainInputs['heads'];
  const gridInputs = () => (grid ??= { cells: g.placeholder('cells', 'int32', [-1]), tokens: g.placeholder('tokens', 'int32', [-1]) });
  const headInputs = () =>
    (heads ??= {
      mask: g.placeholder('head_mask', 'float32', [c.numHiddenLayers, -1, c.numAttentionHeads]),
      fill: g.placeholder('head_fill', 'float32', [c.numHiddenLayers, c.hiddenSize]),
      tokenRows: g.placeholder('token_rows', 'int32', [-1]),
    });
  const chain = (name: ChainKey): Chain => {
    const inputs: ChainInputs = { ...plain, ...(name.startsWith('packed') ? gridInputs() : {}), ...(name.endsWith('_heads') ? { heads: headInputs() } : {}) };
    const ops = graphOps(g, c, w, inputs, bf16);
    const hooks = graphHooks(g, ops);
    const x = g.scope(name, () => encoder(p, { c, ops, hooks }));
    return { output: g.op('Identity', [x], T(), name), hooks: hooks.outputs };
  };
  const chains: Partial<Record<ChainKey, Chain>> = {};
  for (const key of keys) chains[key] = chain(key);
  return { graph: g, weights, chains };
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
  const sessions = new Map<ChainKey, Session>();
  let disposed = false;
  const bf16 = isBf16(p);
  let tokensSoFar = 0;
  return {
    takes(input) {
      tokensSoFar += input.rows.total;
      // bf16 runs the graph from the first forward: op by op it unpacks every weight each time (~1.5 s a query on e5-large).
      return !disposed && (sessions.size > 0 || bf16 || input.rows.total >= minTokens || tokensSoFar >= 8 * minTokens);
    },
    get nodes() {
      return [...sessions.values()].reduce((n, s) => n + s.nodes, 0);
    },
    run(input, opts) {
      if (disposed) throw new Error('the encoder graph was disposed');
      checkEmbeddingIds(c, input);
      const grid = attentionGrid(input.rows, input.attentionMask);
      const key: ChainKey = `${grid.cells ? 'packed' : 'uniform'}${opts?.heads ? '_heads' : ''}`;
      let session = sessions.get(key);
      if (!session) sessions.set(key, (session = new Session(backend as SavedModelBackend, c, p, key)));
      return session.run(input, grid, opts);
    },
    dispose() {
      sessions.forEach((s) => s.dispose());
      sessions.clear();
      disposed = true;
    },
  };
}

/** One chain of the graph loaded into a TensorFlow session, fed the model's weight tensors. */
class Session {
  private readonly id: number;
  readonly nodes: number;
  private readonly weightNames: Array<{ name: string }>;
  private readonly weightTensors: tf.Tensor[];
  private readonly chain: Chain;

  constructor(private readonly backend: SavedModelBackend, private readonly c: BertConfig, p: BertParams, key: ChainKey) {
    const { graph, weights, chains } = encoderGraph(c, p, [key]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-encoder-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), graph.savedModel(TAG));
      this.id = backend.loadSavedModelMetaGraph(dir, TAG);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true }); // the session holds the graph now
    }
    this.nodes = graph.size;
    this.chain = chains[key]!;
    this.weightNames = weights.map(([name]) => ({ name: `${name}:0` }));
    this.weightTensors = weights.map(([, t]) => t);
  }

  run(input: PackedInput, grid: AttentionGrid, opts: CompiledRunOptions = {}): CompiledRun {
    const { c, chain } = this;
    const { rows } = input;
    const H = c.numAttentionHeads;
    const fetch = opts.fetch ?? [];
    const feeds: Array<[string, tf.Tensor]> = tf.tidy(() => {
      const f: Array<[string, tf.Tensor]> = [
        ['input_ids', tf.tensor1d(input.inputIds, 'int32')],
        ['token_type_ids', tf.tensor1d(input.tokenTypeIds, 'int32')],
        ['position_ids', tf.tensor1d(input.positionIds, 'int32')],
        ['key_mask', tf.tensor4d(grid.keyMask, [rows.count, 1, 1, grid.T])],
        ['heads_shape', tf.tensor1d([rows.count, grid.T, H, c.hiddenSize / H], 'int32')],
      ];
      if (grid.cells) f.push(['cells', tf.tensor1d(grid.cells, 'int32')], ['tokens', tf.tensor1d(grid.tokens!, 'int32')]);
      if (opts.heads) {
        f.push(
          ['head_mask', maskByLayer(opts.heads, rows.count)],
          ['head_fill', opts.heads.fill ?? tf.zeros([c.numHiddenLayers, c.hiddenSize])],
          ['token_rows', tf.tensor1d(tokenRows(rows), 'int32')],
        );
      }
      return f.map(([name, t]) => [name, tf.keep(t === opts.heads?.fill ? t.clone() : t)] as [string, tf.Tensor]);
    });
    try {
      const outputs = this.backend.runSavedModel(
        this.id,
        [...feeds.map(([, t]) => t), ...this.weightTensors],
        [...feeds.map(([name]) => ({ name: `${name}:0` })), ...this.weightNames],
        [chain.output, ...fetch.map((n) => chain.hooks.get(n)!)].map((ref) => `${ref}:0`),
      );
      return { hidden: outputs[0] as tf.Tensor2D, hooks: new Map(fetch.map((n, i) => [n, outputs[i + 1]])) };
    } finally {
      feeds.forEach(([, t]) => t.dispose());
    }
  }

  dispose(): void {
    this.backend.deleteSavedModel(this.id);
  }
}
