/**
 * Strict loading of BertModel parameters into a typed tree on tfjs tensors.
 *
 * Names mirror Hugging Face's BertModel state dict (`embeddings.word_embeddings.weight`,
 * `encoder.layer.{i}.attention.self.query.weight`, …), an optional `bert.` prefix is accepted,
 * and every missing, unexpected or mis-shaped tensor is listed in one error.
 *
 * Layout decision (see shared/TFJS-WASM-NOTES.md): PyTorch stores nn.Linear weights as
 * [out, in] and computes x @ W^T. On the wasm backend only un-transposed 2-D matmuls reach
 * XNNPACK, so every Linear weight is transposed ONCE here, at load, to [in, out]; the engine
 * then computes x @ W with no transpose flag. The transpose runs here in plain JS, from the
 * read buffer into the tensor's memory (`transposeF32`): tfjs-wasm's Transpose kernel took 3-4 s
 * of a 9 s e5-large load; a cache-blocked JS loop does the 1.15 GB in ~0.7 s.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BertConfig } from './config';
import { Checkpoint } from './checkpoint';
import type { F32Source, NativeF32Read } from './safetensors';

/**
 * Set on a Linear whose weight was handed to XNNPACK for good and its memory given back
 * (engine/backends/wasm/heap.ts releaseLinearWeight): the tensor the matmul still names, whose data must never
 * be read. `weight` then throws, saying how to load the model with weights kept.
 */
export const PACKED_WEIGHT = Symbol('packedWeight');

export interface Linear {
  weight: tf.Tensor2D; // [in, out]  (transposed from PyTorch's [out, in] at load), or [out, in] when `outIn`
  bias: tf.Tensor1D; // [out]
  /** The weight kept in PyTorch's [out, in] layout: y = x·Wᵀ + b (backends whose GEMM takes Wᵀ as it is). */
  outIn?: boolean;
  /**
   * The weight held as bfloat16 (precision 'bf16'): an int32 tensor [out, in/2], each element two
   * bf16 values (element 2j in its low half), [out, in] when unpacked; only the TensorFlow graph
   * reads it as bf16 (engine/backends/tensorflow/graph/ops.ts); op by op it is unpacked to its float32 values (engine/eager.ts). Implies `outIn`.
   */
  bf16?: boolean;
  [PACKED_WEIGHT]?: tf.Tensor2D;
}
export interface LayerNormParams {
  weight: tf.Tensor1D; // [D]  (gamma)
  bias: tf.Tensor1D; // [D]  (beta)
}
export interface BertEmbeddingsParams {
  wordEmbeddings: tf.Tensor2D; // [V, D]
  positionEmbeddings: tf.Tensor2D; // [P, D]
  tokenTypeEmbeddings: tf.Tensor2D; // [Tv, D]
  layerNorm: LayerNormParams;
}
/** One post-LN encoder layer: `encoder.layer.{i}`. */
export interface BertLayerParams {
  query: Linear; // attention.self.query
  key: Linear; // attention.self.key
  value: Linear; // attention.self.value
  attnOutput: Linear; // attention.output.dense
  attnLayerNorm: LayerNormParams; // attention.output.LayerNorm
  intermediate: Linear; // intermediate.dense  [D, F]
  output: Linear; // output.dense  [F, D]
  outputLayerNorm: LayerNormParams; // output.LayerNorm
}
export interface BertParams {
  embeddings: BertEmbeddingsParams;
  layers: BertLayerParams[];
  /** BERT's pooler (tanh dense on [CLS]); absent in checkpoints saved without it. */
  pooler?: Linear;
}

/** Rows of the source handled per block; the destination is written row by row inside a block. */
const TRANSPOSE_BLOCK = 32;

/**
 * Row-major [rows, cols] → a new row-major [cols, rows]. Blocked so both sides stay in cache:
 * with power-of-two widths (1024, 4096) a naive column walk hits one cache set over and over.
 * 32 rows per block keeps a block of both sides in L1/L2 on the e5-large shapes (64 is ~3x slower).
 */
export function transposeF32(src: Float32Array, rows: number, cols: number, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (src.length !== rows * cols) throw new RangeError(`transposeF32: ${src.length} elements is not ${rows} x ${cols}`);
  if (dst.length !== src.length) throw new RangeError(`transposeF32: destination has ${dst.length} elements, not ${src.length}`);
  const B = TRANSPOSE_BLOCK;
  for (let c0 = 0; c0 < cols; c0 += B) {
    const c1 = Math.min(c0 + B, cols);
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(r0 + B, rows);
      for (let c = c0; c < c1; c++) {
        let d = c * rows + r0, s = r0 * cols + c;
        for (let r = r0; r < r1; r++, d++, s += cols) dst[d] = src[s];
      }
    }
  }
  return dst;
}

/** A tensor the checkpoint must (or may) contain, with its PyTorch shape. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
  optional?: boolean;
}

/** Every tensor of a BertModel with this config, in checkpoint order, with PyTorch shapes. */
export function expectedTensors(c: BertConfig, withPooler = true): ExpectedTensor[] {
  const D = c.hiddenSize, F = c.intermediateSize;
  const linear = (p: string, out: number, inp: number): ExpectedTensor[] => [
    { name: `${p}.weight`, shape: [out, inp] },
    { name: `${p}.bias`, shape: [out] },
  ];
  const ln = (p: string): ExpectedTensor[] => [
    { name: `${p}.weight`, shape: [D] },
    { name: `${p}.bias`, shape: [D] },
  ];
  const list: ExpectedTensor[] = [
    { name: 'embeddings.word_embeddings.weight', shape: [c.vocabSize, D] },
    { name: 'embeddings.position_embeddings.weight', shape: [c.maxPositionEmbeddings, D] },
    { name: 'embeddings.token_type_embeddings.weight', shape: [c.typeVocabSize, D] },
    ...ln('embeddings.LayerNorm'),
  ];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `encoder.layer.${i}`;
    list.push(
      ...linear(`${p}.attention.self.query`, D, D),
      ...linear(`${p}.attention.self.key`, D, D),
      ...linear(`${p}.attention.self.value`, D, D),
      ...linear(`${p}.attention.output.dense`, D, D),
      ...ln(`${p}.attention.output.LayerNorm`),
      ...linear(`${p}.intermediate.dense`, F, D),
      ...linear(`${p}.output.dense`, D, F),
      ...ln(`${p}.output.LayerNorm`),
    );
  }
  if (withPooler) list.push(...linear('pooler.dense', D, D).map((t) => ({ ...t, optional: true })));
  return list;
}

/** Tensors a checkpoint may carry that BertModel does not use (skipped, like HF does). */
export function isIgnoredTensor(name: string): boolean {
  return /^embeddings\.position_ids$/.test(name) || /^cls\./.test(name);
}

/** Problems a ParamsError lists one by one; the rest are counted ("... and N more"). */
export const MAX_LISTED_PROBLEMS = 20;

export class ParamsError extends Error {
  /** `problems`: the first MAX_LISTED_PROBLEMS; `unlisted`: how many more there were. */
  constructor(readonly source: string, readonly problems: string[], readonly unlisted = 0) {
    const total = problems.length + unlisted;
    const more = unlisted ? `\n  ... and ${unlisted} more` : '';
    super(`${source}: the weights do not match the config (${total} problem${total === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}${more}`);
    this.name = 'ParamsError';
  }
}

/** The encoder layer indexes the checkpoint's (prefix-stripped) names hold: `encoder.layer.{i}.`. */
function layerIndexes(names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    const m = /^encoder\.layer\.(\d+)\./.exec(n);
    if (m) out.add(m[1]);
  }
  return out;
}

/** Describes how the checkpoint's names map onto BertModel names. */
export interface ParamsPlan {
  /** '' or 'bert.' */
  prefix: string;
  hasPooler: boolean;
  /** Checkpoint tensors that are not used (ignored ones such as embeddings.position_ids). */
  skipped: string[];
  /** Stored dtypes seen, e.g. ['F32'] or ['F16']. */
  dtypes: string[];
  /** Number of parameters that will be loaded. */
  parameterCount: number;
}

/** Check names and shapes against the config without reading any tensor data. */
export function planParams(ckpt: Pick<Checkpoint, 'tensors'>, c: BertConfig, source: string): ParamsPlan {
  const names = [...ckpt.tensors.keys()];
  const prefixed = names.filter((n) => n.startsWith('bert.')).length;
  const prefix = prefixed > 0 && prefixed >= names.filter((n) => !isIgnoredTensor(n)).length / 2 ? 'bert.' : '';
  const strip = (n: string) => (prefix && n.startsWith(prefix) ? n.slice(prefix.length) : n);
  const byName = new Map(names.map((n) => [strip(n), n]));
  // Before any name is made from the config: a num_hidden_layers the file cannot hold is one
  // problem, not a list (and a build) of millions of missing names.
  const layers = layerIndexes(byName.keys()).size;
  if (c.numHiddenLayers > layers) {
    throw new ParamsError(source, [`config.json num_hidden_layers is ${c.numHiddenLayers}, but the weights hold ${layers} encoder layer${layers === 1 ? '' : 's'} (${prefix}encoder.layer.N.*)`]);
  }
  const problems: string[] = [];
  let unlisted = 0;
  const problem = (p: () => string) => {
    if (problems.length < MAX_LISTED_PROBLEMS) problems.push(p());
    else unlisted++;
  };
  const expected = expectedTensors(c);
  const hasPooler = byName.has('pooler.dense.weight') || byName.has('pooler.dense.bias');
  const dtypes = new Set<string>();
  let parameterCount = 0;
  for (const e of expected) {
    const stored = byName.get(e.name);
    if (stored === undefined) {
      if (!e.optional || hasPooler) problem(() => `missing tensor '${prefix}${e.name}' (expected shape [${e.shape}])`);
      continue;
    }
    const info = ckpt.tensors.get(stored)!;
    dtypes.add(info.dtype);
    if (!['F32', 'F16', 'BF16'].includes(info.dtype)) {
      problem(() => `tensor '${stored}' has dtype ${info.dtype}; weights must be F32, F16 or BF16`);
    }
    if (info.shape.length !== e.shape.length || info.shape.some((d, i) => d !== e.shape[i])) {
      problem(() => `tensor '${stored}' has shape [${info.shape}], expected [${e.shape}]`);
    }
    parameterCount += e.shape.reduce((a, b) => a * b, 1);
  }
  const known = new Set(expected.map((e) => e.name));
  const skipped: string[] = [];
  for (const [name, stored] of byName) {
    if (known.has(name)) continue;
    if (isIgnoredTensor(name)) skipped.push(stored);
    else problem(() => `unexpected tensor '${stored}' (not part of a BertModel with ${c.numHiddenLayers} layers)`);
  }
  if (problems.length) throw new ParamsError(source, problems, unlisted);
  return { prefix, hasPooler, skipped, dtypes: [...dtypes].sort(), parameterCount };
}

export interface LoadOptions {
  /** Accept NaN/Inf in weights (reported as an error by default). */
  allowNonFinite?: boolean;
  /** planParams' result when the caller already has it (it is checked again otherwise). */
  plan?: ParamsPlan;
  /**
   * Makes a float32 tensor whose values `fill` writes (default: a fresh array given to
   * tf.tensor). engine/backends/wasm/heap.ts `filledTensor` writes straight into tfjs-wasm's heap.
   */
  newTensor?: (shape: number[], fill: (dst: Float32Array) => void) => tf.Tensor;
  /**
   * Called as soon as each Linear (weight and bias) is in backend memory, with its checkpoint
   * name (`encoder.layer.0.attention.self.query`): e5/model.ts packs it for XNNPACK there,
   * so a weight it releases leaves memory the next one is read into.
   */
  onLinear?: (lin: Linear, name: string) => void;
  /**
   * 'in-out' (default): each Linear weight transposed once to [in, out], the only layout
   * tfjs-wasm's XNNPACK path takes. 'out-in': kept as stored, [out, in], no transpose.
   */
  linearLayout?: 'in-out' | 'out-in';
  /** Reads F32 tensors (ReadF32Options.nativeRead): the tensorflow backend's two-thread read with the native finiteness check. */
  nativeRead?: NativeF32Read;
  /**
   * Precision 'bf16': makes each encoder Linear weight, and the word-embedding table, as packed
   * bfloat16 (Linear.bf16; an int32 [rows, cols/2] tensor) from the float32 values `fill` writes;
   * shape is [out, in] as stored. Implies the 'out-in' layout.
   */
  packLinear?: (shape: [number, number], fill: (dst: Float32Array) => void) => tf.Tensor2D;
  /**
   * F32 tensors made at once over backend memory and read later (DeferredReads, below);
   * other dtypes are read now through newTensor / packLinear. The caller starts the reads before it
   * closes the checkpoint. Needs the 'out-in' layout (nothing is transposed on the way).
   */
  deferred?: DeferredReads;
}

/**
 * Tensors whose bytes are read after the load returns (engine/runtime.ts WeightSink.deferred: the
 * tensorflow backend with make native's addon, engine/backends/tensorflow/background.ts). The backend guarantees that nothing reads them
 * before they are there.
 */
export interface DeferredReads {
  /**
   * A tensor over backend memory now, its values read from `source` later: 'f32' as stored, or
   * 'bf16' (precision 'bf16''s Linear weights: `shape` is the stored [out, in], the tensor the
   * packed int32 [out, in / 2] of LoadOptions.packLinear).
   */
  tensor(shape: number[], source: F32Source, as: 'f32' | 'bf16'): tf.Tensor;
  /** Starts reading every tensor made so far; call while their files are still open. */
  start(): PendingWeights;
}

/** Weight bytes being read in the background (DeferredReads.start). */
export interface PendingWeights {
  /** Whether every read has ended (never waits). */
  done(): boolean;
  /** Seconds from start() until the last byte was in and checked; undefined while reading. */
  readSeconds(): number | undefined;
  /**
   * Waits for the reads; throws what they found — the SafetensorsError a synchronous load throws
   * ('non_finite' naming the tensor and element, 'truncated', 'io_error') — on this and every later call.
   */
  wait(): void;
  /** Throws the error the reads ended with, once they have been waited for; never waits itself. */
  throwIfFailed(): void;
  /** Stops the reads and waits for the threads (a model disposed before its weights arrived); never throws. */
  cancel(): void;
}

/** The portable way: a fresh array, filled, given to tf.tensor. */
export function freshTensor(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor {
  const dst = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(dst);
  return tf.tensor(dst, shape, 'float32');
}

/**
 * Read every tensor (one at a time, F16/BF16 up-cast to F32) into backend memory.
 * Peak host memory is one tensor's bytes plus what the backend keeps.
 */
export function loadBertParams(ckpt: Checkpoint, c: BertConfig, source: string, opts: LoadOptions = {}): { params: BertParams; plan: ParamsPlan } {
  const plan = opts.plan ?? planParams(ckpt, c, source);
  const created: tf.Tensor[] = [];
  const newTensor = opts.newTensor ?? freshTensor;
  const { allowNonFinite, nativeRead } = opts;
  // Deferred: F32 tensors are only located now (their bytes come later); transposed ones never are.
  const deferred = opts.linearLayout === 'out-in' || opts.packLinear ? opts.deferred : undefined;
  const later = (name: string) => deferred && ckpt.f32Source(plan.prefix + name, { allowNonFinite });
  const read = (name: string, shape: number[]): tf.Tensor => {
    const source = later(name);
    const t = source ? deferred!.tensor(shape, source, 'f32')
      : newTensor(shape, (dst) => ckpt.readF32(plan.prefix + name, { allowNonFinite, into: dst, nativeRead }));
    created.push(t);
    return t;
  };
  const vec = (name: string, n: number) => read(name, [n]) as tf.Tensor1D;
  const D = c.hiddenSize, F = c.intermediateSize;
  // nn.Linear weight [out, in] → [in, out], transposed once here (see the file comment).
  // One host buffer serves every Linear weight: fresh memory costs a page fault per 4 KiB, which
  // can take longer than reading the file.
  let scratch: Float32Array | undefined;
  /** bf16 (packLinear): a 2-D weight as packed bf16 pairs, its bytes now or deferred. */
  const packed = (name: string, out: number, inp: number): tf.Tensor2D => {
    const source = later(name);
    const t = source ? (deferred!.tensor([out, inp], source, 'bf16') as tf.Tensor2D)
      : opts.packLinear!([out, inp], (dst) => ckpt.readF32(plan.prefix + name, { allowNonFinite, into: dst, nativeRead }));
    created.push(t);
    return t;
  };
  const linear = (p: string, out: number, inp: number, packable = true): Linear => {
    if (opts.packLinear && packable) {
      const lin: Linear = { weight: packed(`${p}.weight`, out, inp), bias: vec(`${p}.bias`, out), outIn: true, bf16: true };
      opts.onLinear?.(lin, plan.prefix + p);
      return lin;
    }
    if (opts.linearLayout === 'out-in') {
      const lin: Linear = { weight: read(`${p}.weight`, [out, inp]) as tf.Tensor2D, bias: vec(`${p}.bias`, out), outIn: true };
      opts.onLinear?.(lin, plan.prefix + p);
      return lin;
    }
    if (!scratch || scratch.length < out * inp) scratch = new Float32Array(out * inp);
    const stored = ckpt.readF32(plan.prefix + `${p}.weight`, { allowNonFinite, into: scratch, nativeRead }); // [out, in]
    const weight = newTensor([inp, out], (dst) => transposeF32(stored, out, inp, dst)) as tf.Tensor2D; // [in, out]
    created.push(weight);
    const lin: Linear = { weight, bias: vec(`${p}.bias`, out) };
    opts.onLinear?.(lin, plan.prefix + p);
    return lin;
  };
  const ln = (p: string): LayerNormParams => ({ weight: vec(`${p}.weight`, D), bias: vec(`${p}.bias`, D) });
  try {
    const embeddings: BertEmbeddingsParams = {
      // bf16: the word table too (e5-large: 125 → 62.5 MB), packed as the Linear weights are; the
      // position and token-type tables (2 MB) and every LayerNorm stay float32.
      wordEmbeddings: opts.packLinear ? packed('embeddings.word_embeddings.weight', c.vocabSize, D) : (read('embeddings.word_embeddings.weight', [c.vocabSize, D]) as tf.Tensor2D),
      positionEmbeddings: read('embeddings.position_embeddings.weight', [c.maxPositionEmbeddings, D]) as tf.Tensor2D,
      tokenTypeEmbeddings: read('embeddings.token_type_embeddings.weight', [c.typeVocabSize, D]) as tf.Tensor2D,
      layerNorm: ln('embeddings.LayerNorm'),
    };
    const layers: BertLayerParams[] = [];
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const p = `encoder.layer.${i}`;
      layers.push({
        query: linear(`${p}.attention.self.query`, D, D),
        key: linear(`${p}.attention.self.key`, D, D),
        value: linear(`${p}.attention.self.value`, D, D),
        attnOutput: linear(`${p}.attention.output.dense`, D, D),
        attnLayerNorm: ln(`${p}.attention.output.LayerNorm`),
        intermediate: linear(`${p}.intermediate.dense`, F, D),
        output: linear(`${p}.output.dense`, D, F),
        outputLayerNorm: ln(`${p}.output.LayerNorm`),
      });
    }
    // The pooler stays float32: only pooler_output reads it, op by op (engine/pooling.ts bertPooler).
    const pooler = plan.hasPooler ? linear('pooler.dense', D, D, false) : undefined;
    return { params: { embeddings, layers, pooler }, plan };
  } catch (e) {
    created.forEach((t) => t.dispose());
    throw e;
  }
}

/** Every Linear of a parameter tree, layer by layer in forward order, then the pooler. */
/** Whether the encoder's Linear weights are held as bfloat16 (precision 'bf16'). */
export function isBf16(p: BertParams): boolean {
  return p.layers.length > 0 && p.layers[0].query.bf16 === true;
}

export function linearLayers(p: BertParams): Linear[] {
  return [...p.layers.flatMap((l) => [l.query, l.key, l.value, l.attnOutput, l.intermediate, l.output]), ...(p.pooler ? [p.pooler] : [])];
}

/**
 * Elements of every Linear a BertModel with this config has (all but embeddings and
 * LayerNorms): weights and biases, or the weights alone.
 */
export function linearParameterCount(c: BertConfig, withPooler: boolean, part: 'all' | 'weights' = 'all'): number {
  return expectedTensors(c, withPooler)
    .filter((t) => !t.name.startsWith('embeddings.') && !t.name.includes('LayerNorm'))
    .filter((t) => part === 'all' || t.name.endsWith('.weight'))
    .reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Every tensor of a parameter tree (for dispose and memory accounting); a released Linear
 * weight is there as its handle (PACKED_WEIGHT), whose data must not be read.
 */
export function paramTensors(p: BertParams): tf.Tensor[] {
  const lin = (l: Linear) => [l[PACKED_WEIGHT] ?? l.weight, l.bias];
  const ln = (l: LayerNormParams) => [l.weight, l.bias];
  return [
    p.embeddings.wordEmbeddings, p.embeddings.positionEmbeddings, p.embeddings.tokenTypeEmbeddings,
    ...ln(p.embeddings.layerNorm),
    ...p.layers.flatMap((l) => [
      ...lin(l.query), ...lin(l.key), ...lin(l.value), ...lin(l.attnOutput), ...ln(l.attnLayerNorm),
      ...lin(l.intermediate), ...lin(l.output), ...ln(l.outputLayerNorm),
    ]),
    ...(p.pooler ? lin(p.pooler) : []),
  ];
}
