/**
 * The e5 embedding API. loadModel: a model folder or hub id → an EmbeddingModel (config +
 * weights + tokenizer + pooling settings) on a backend's Runtime; `embed()`: prefixes,
 * length-sorted batching with unpadded packing under a token budget, pooling, normalisation,
 * original order restored.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BertTokenizer, Encoding } from '../tokenizer';
import { Checkpoint } from '../weights/checkpoint';
import { BertConfig, readBertConfig } from '../weights/config';
import { resolveModel, ResolvedModel, ResolveOptions } from '../weights/folder';
import { loadBertParams, ParamsPlan, planParams } from '../weights/params';
import { PoolingMode, readSentenceTransformersConfig, SentenceTransformersConfig } from '../weights/sentence_transformers';
import { BackendInfo, currentRuntime, PendingWeights, Precision, Runtime } from '../engine/backend';
import { HookContext } from '../engine/hooks';
import { BertModel } from '../engine/model';
import { packSequences } from '../engine/rows';
import type { HeadIntervention } from '../engine/ops';
import { checkEmbedArgs, checkLoadArgs } from './embed_options';
import { explain, ExplainOptions, ExplainResult } from './explain';
import { checkFolderAgreement, sequenceLimit } from './folder_checks';
import { similarityMatrix } from './similarity';

export type Prefix = 'query' | 'passage' | 'none';
export const PREFIXES: Record<Exclude<Prefix, 'none'>, string> = { query: 'query: ', passage: 'passage: ' };

export interface LoadModelOptions extends ResolveOptions {
  /** Accept NaN/Inf in weights. */
  allowNonFinite?: boolean;
  /** Treat the model as e5 (warn about missing prefixes); default: guessed from its name. */
  e5?: boolean;
  /** The backend to load onto (default: the one initBackend set up, engine/backend.ts). */
  runtime?: Runtime;
  /**
   * Prepare every weight for the backend during the load (default true): on wasm, XNNPACK's
   * packed copies are made now, with the heap faulted in by worker threads meanwhile
   * (engine/backends/wasm/heap.ts), instead of during the first forward. false: pack lazily, no workers.
   */
  prepack?: boolean;
  /**
   * Keep every Linear weight readable (default true). false: on wasm, each weight's memory is
   * given back once XNNPACK has packed it (engine/backends/wasm/heap.ts releaseLinearWeight) —
   * 1.15 GB less for e5-large, and a faster load — and reading `params.layers[i].query.weight`
   * throws. For embedding only (the CLI's embed, similarity and eval); hooks, caching, ablation
   * and patching work either way. Implies prepack. Ignored off wasm (nothing is packed there).
   */
  keepLinearWeights?: boolean;
  /**
   * 'fp32' (default, the reference) or 'bf16': the encoder's Linear weights and word table held as
   * bfloat16 (converted once at load; about half the memory) and its matmuls run on bfloat16
   * operands with float32 accumulation, inside the compiled TensorFlow graph — tensorflow backend
   * only; another backend is an error, never a silent fp32 run. LayerNorm, softmax, GELU, the
   * residual stream, pooling and normalisation stay float32. Read-only hooks and head interventions
   * run compiled; hook functions and `compiled: false` run op by op at bf16 (engine/eager.ts), slower.
   */
  precision?: Precision;
  /**
   * Read the weights' bytes in the background (default true; the tensorflow backend with `make
   * native`'s addon, elsewhere the load reads them as always). loadModel then returns once the
   * header, names, shapes, dtypes and sizes are checked and every weight tensor exists; two native
   * threads fill them and check them for NaN/Inf meanwhile, and the backend holds every op until
   * they are done (engine/backends/tensorflow/background.ts). What the reads find is thrown by the
   * first forward (or waitForWeights/ready) as the load would have thrown it. false: all of it
   * before loadModel returns.
   */
  backgroundRead?: boolean;
}

export interface ModelInfo extends ResolvedModel {
  /** What the user asked for (path or hub id). */
  name: string;
  plan: ParamsPlan;
  sentenceTransformers: SentenceTransformersConfig;
  /** Seconds spent in loadModel from opening the weights until it returned, prepacking included. */
  loadSeconds: number;
  /**
   * Seconds from the same start until every weight was in memory and checked: loadSeconds where the
   * load reads them itself; with background reads (LoadModelOptions.backgroundRead) when the last
   * byte arrived, undefined while they still run (read it after ready() or a forward).
   */
  readonly weightsReadSeconds?: number;
  /** Of which preparing weights for the backend (0 when not prepacked). */
  prepackSeconds: number;
  /** 'released' when the Linear weights live only in XNNPACK's packed copies (keepLinearWeights: false). */
  linearWeights: 'kept' | 'released';
  /** The precision the model runs at (LoadModelOptions.precision). */
  precision: Precision;
}

export interface EmbedOptions {
  /**
   * Prepend `query: ` / `passage: ` (default 'none': texts are used as given). embed() cannot know
   * which role a text plays — a query, a passage, or either side of a symmetric task (e5 puts
   * `query: ` on both there) — so it adds nothing unless told, and warns, for an e5 model, about
   * texts that carry neither prefix. similarity() knows the roles and adds both by default.
   */
  prefix?: Prefix;
  pooling?: PoolingMode;
  /** L2-normalise (default true). */
  normalize?: boolean;
  /** Rows per forward pass (default 32). */
  batchSize?: number;
  /** Tokens per forward pass, summed over rows (default 8192): bounds memory for long inputs. */
  maxBatchTokens?: number;
  /** Truncate each text to this many tokens incl. [CLS]/[SEP] (default: the model's limit). */
  maxLength?: number;
  onProgress?: (done: number, total: number) => void;
  /** Called for each warning (default: collected in the result only). */
  onWarning?: (message: string) => void;
  /**
   * Heads removed or scaled at attn.hook_z for every text (engine/ops.ts HeadIntervention; mask
   * [L, H], fill [L, D]): ablation as an input of the forward, so it runs compiled where the
   * backend compiles. The caller keeps ownership of the tensors.
   */
  heads?: HeadIntervention;
}

export interface EmbedResult {
  /** One vector per text, in input order: each a view of its row of `matrix`. */
  embeddings: Float32Array[];
  /** Every embedding in one row-major [texts, dim] array (what numpy, a GEMM or a vector index takes). */
  matrix: Float32Array;
  nTokens: number[];
  truncated: boolean[];
  warnings: string[];
  backend: BackendInfo;
  dim: number;
}

export interface SimilarityOptions extends Omit<EmbedOptions, 'prefix'> {
  /** scores = scale × cosine (default 100, as the model card). */
  scale?: number;
  /** 'auto' (default): `query: ` on the queries, `passage: ` on the passages; 'none': texts as given. */
  prefix?: 'auto' | 'none';
}

export interface SimilarityResult {
  /** scores[i][j]: query i against passage j. */
  scores: number[][];
  queries: EmbedResult;
  passages: EmbedResult;
}

export class EmbeddingModel {
  private disposed = false;
  constructor(
    readonly bert: BertModel,
    readonly tokenizer: BertTokenizer,
    readonly info: ModelInfo,
    /** Whether this is an e5 model (inputs should carry `query: ` / `passage: `). */
    readonly isE5: boolean,
  ) {}

  get config(): BertConfig {
    return this.bert.config;
  }
  /** Longest input in tokens: the tokenizer's, sentence-transformers' and the position table's minimum. */
  get maxLength(): number {
    return sequenceLimit(this.config, this.tokenizer, this.info.sentenceTransformers);
  }

  /** Apply the prefix and collect e5's prefix warnings. */
  prepare(texts: string[], prefix: Prefix, warn: (m: string) => void): string[] {
    const has = (t: string) => t.startsWith(PREFIXES.query) || t.startsWith(PREFIXES.passage);
    if (prefix === 'none') {
      const missing = texts.filter((t) => !has(t)).length;
      if (this.isE5 && missing) {
        warn(`${missing} of ${texts.length} input${texts.length === 1 ? '' : 's'} to an e5 model start${missing === 1 ? 's' : ''} with neither 'query: ' nor 'passage: ' (e5 was trained with these prefixes)`);
      }
      return texts;
    }
    const p = PREFIXES[prefix];
    const doubled = texts.filter(has).length;
    if (doubled) warn(`${doubled} input${doubled === 1 ? '' : 's'} already start${doubled === 1 ? 's' : ''} with a prefix; '${p}' is added in front anyway`);
    return texts.map((t) => p + t);
  }

  /**
   * `texts` tokenized as embed() tokenizes them (prefix, maxLength, the truncation warning) and the
   * batches embed() runs them in (indexes into `encodings`). For whoever runs embed()'s forwards
   * another way (eval's head means).
   */
  encodeBatches(texts: string[], opts: Pick<EmbedOptions, 'prefix' | 'maxLength' | 'batchSize' | 'maxBatchTokens'>, warn: (message: string) => void): { encodings: Encoding[]; batches: number[][] } {
    const maxLength = opts.maxLength ?? this.maxLength;
    if (maxLength > this.config.maxPositionEmbeddings) {
      throw new RangeError(`maxLength ${maxLength} exceeds the model's ${this.config.maxPositionEmbeddings} positions`);
    }
    const encodings = this.prepare(texts, opts.prefix ?? 'none', warn).map((t) => this.tokenizer.encode(t, { maxLength }));
    const nTruncated = encodings.filter((e) => e.truncated).length;
    if (nTruncated) warn(`${nTruncated} input${nTruncated === 1 ? ' was' : 's were'} truncated to ${maxLength} tokens`);
    return { encodings, batches: planBatches(encodings, opts.batchSize ?? 32, opts.maxBatchTokens ?? 8192) };
  }

  /** Embed `texts` (one string counts as a list of one); the options are checked first. */
  async embed(textOrTexts: string | string[], opts: EmbedOptions = {}): Promise<EmbedResult> {
    if (this.disposed) throw new Error(`embed(): the model ${this.info.name} has been disposed; load it again`);
    const texts = checkEmbedArgs(textOrTexts, opts);
    const warnings: string[] = [];
    const warn = (m: string) => {
      warnings.push(m);
      opts.onWarning?.(m);
    };
    const { encodings, batches } = this.encodeBatches(texts, opts, warn);

    const D = this.config.hiddenSize;
    const matrix = new Float32Array(texts.length * D);
    const embeddings = Array.from({ length: texts.length }, (_, i) => matrix.subarray(i * D, (i + 1) * D));
    let done = 0;
    for (const batch of batches) {
      // A callback (onProgress, onWarning) may have disposed the model: say so, not fail inside tfjs.
      if (this.disposed) throw new Error(`embed(): the model ${this.info.name} was disposed during this call (by an onProgress or onWarning callback?); dispose it after embed() returns`);
      const input = packSequences(batch.map((i) => encodings[i]));
      const out = this.bert.runScoped(input, { pooling: opts.pooling, poolerOutput: false, heads: opts.heads }, new HookContext()); // e5 never uses BERT's pooler
      try {
        const vectors = (opts.normalize ?? true ? out.embedding : out.pooled);
        const data = await vectors.data() as Float32Array;
        batch.forEach((orig, r) => embeddings[orig].set(data.subarray(r * D, (r + 1) * D)));
      } finally {
        out.dispose();
      }
      done += batch.length;
      opts.onProgress?.(done, texts.length);
    }
    return {
      embeddings,
      matrix,
      nTokens: encodings.map((e) => e.nTokens),
      truncated: encodings.map((e) => e.truncated),
      warnings,
      backend: this.bert.runtime.info,
      dim: this.config.hiddenSize,
    };
  }

  /**
   * The model card's experiment: `queries` embedded with `query: `, `passages` with `passage: `
   * (prefix 'none': as given), and scale × cosine for every pair (scale default 100, the card's).
   * Each side is one embed() call, so its vectors are the ones embed() gives those texts.
   */
  async similarity(queries: string[], passages: string[], opts: SimilarityOptions = {}): Promise<SimilarityResult> {
    const { scale = 100, prefix = 'auto', ...embedOpts } = opts;
    if (prefix !== 'auto' && prefix !== 'none') throw new TypeError(`similarity(): prefix must be 'auto' or 'none', got ${JSON.stringify(prefix)}`);
    const q = await this.embed(queries, { ...embedOpts, prefix: prefix === 'auto' ? 'query' : 'none' });
    const p = await this.embed(passages, { ...embedOpts, prefix: prefix === 'auto' ? 'passage' : 'none' });
    return { scores: similarityMatrix(q.embeddings, p.embeddings, scale), queries: q, passages: p };
  }

  /**
   * Why this score: attributions of s = e_q·e_p to token pairs, tokens or attention heads
   * (integrated gradients; the definitions and how they are computed: e5/explain.ts).
   */
  async explain(query: string, passage: string, opts: ExplainOptions = {}): Promise<ExplainResult> {
    if (this.disposed) throw new Error(`explain(): the model ${this.info.name} has been disposed; load it again`);
    return explain(this, query, passage, opts);
  }

  /**
   * Waits until every weight is in memory and checked, and throws what the reads found (a NaN/Inf,
   * an I/O error, a file that changed: the SafetensorsError a synchronous load throws). Forwards
   * wait by themselves; this is for whoever wants the check, or the reads' cost, paid now.
   */
  waitForWeights(): void {
    this.bert.pendingWeights?.wait();
  }

  /** waitForWeights without blocking the event loop meanwhile (it polls every 2 ms until the reads end). */
  async ready(): Promise<void> {
    const pending = this.bert.pendingWeights;
    while (pending && !pending.done()) await new Promise((r) => setTimeout(r, 2));
    this.waitForWeights();
  }

  /** Free the weights; embed() then throws. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.bert.dispose();
  }

  /** `using model = await loadModel(...)` disposes it at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Indices grouped into batches: longest first, so each batch holds similar lengths, with at
 * most `batchSize` rows and `maxTokens` tokens (a single longer input still gets its own batch).
 */
export function planBatches(encodings: Array<Pick<Encoding, 'nTokens'>>, batchSize: number, maxTokens: number): number[][] {
  if (!(batchSize >= 1)) throw new RangeError(`batchSize must be >= 1, got ${batchSize}`);
  const order = encodings.map((_, i) => i).sort((a, b) => encodings[b].nTokens - encodings[a].nTokens || a - b);
  const batches: number[][] = [];
  let cur: number[] = [], tokens = 0;
  for (const i of order) {
    const n = encodings[i].nTokens;
    if (cur.length && (cur.length >= batchSize || tokens + n > maxTokens)) {
      batches.push(cur);
      cur = [];
      tokens = 0;
    }
    cur.push(i);
    tokens += n;
  }
  if (cur.length) batches.push(cur);
  return batches;
}

/** A name like `intfloat/e5-large-unsupervised` or `.../e5-base` is an e5 model. */
export function looksLikeE5(name: string): boolean {
  return /(^|[\/\\_.-])(multilingual-)?e5([\/\\_.-]|$)/i.test(name);
}

/** A precision this backend cannot run (bf16 off tensorflow), or one that does not exist. */
export class PrecisionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrecisionError';
  }
}

/** Resolve, validate and load a model. The caller must have initialised a tfjs backend. */
export async function loadModel(nameOrDir: string, opts: LoadModelOptions = {}): Promise<EmbeddingModel> {
  checkLoadArgs(nameOrDir, opts);
  const resolved = await resolveModel(nameOrDir, opts);
  const dir = resolved.dir;
  const config = readBertConfig(dir);
  const tokenizer = BertTokenizer.fromFolder(dir);
  const st = readSentenceTransformersConfig(dir);
  checkFolderAgreement(dir, config, tokenizer, st);
  const t0 = performance.now();
  const ckpt = Checkpoint.open(dir);
  const runtime = opts.runtime ?? currentRuntime();
  const precision = opts.precision ?? 'fp32'; // checkLoadArgs checked it is one of PRECISIONS
  let loaded, sink, pending: PendingWeights | undefined, tStart = t0;
  try {
    const plan = planParams(ckpt, config, dir); // names, shapes, dtypes: fails before any memory is touched
    sink = runtime.weightSink(config, plan, { prepack: opts.prepack ?? true, keepLinearWeights: opts.keepLinearWeights ?? true, precision, background: opts.backgroundRead ?? true });
    if (precision === 'bf16' && !sink.packLinear) throw new PrecisionError(`precision 'bf16' needs the tensorflow backend's compiled graph; this is ${runtime.name} (use precision 'fp32')`);
    loaded = loadBertParams(ckpt, config, dir, {
      allowNonFinite: opts.allowNonFinite, newTensor: sink.newTensor, plan, onLinear: sink.onLinear, linearLayout: sink.linearLayout, nativeRead: sink.nativeRead, packLinear: sink.packLinear,
      deferred: sink.deferred,
    });
    // The reads start while the checkpoint's descriptors are open (the batch dup()s them).
    tStart = performance.now();
    pending = sink.deferred?.start();
  } finally {
    ckpt.close();
  }
  const bert = new BertModel(config, loaded.params, st.pooling ?? 'mean', runtime, pending);
  await sink.done; // usually long done; the workers are unref'd and would not hold the process anyway
  const t1 = performance.now();
  const name = resolved.repoId ?? nameOrDir;
  const loadSeconds = (t1 - t0) / 1000;
  const info: ModelInfo = {
    ...resolved, name, plan: loaded.plan, sentenceTransformers: st, loadSeconds, prepackSeconds: sink.prepareSeconds(), linearWeights: sink.linearWeights, precision,
  };
  // A getter: the background reads' end is known only once they are done.
  const readFrom = (tStart - t0) / 1000;
  Object.defineProperty(info, 'weightsReadSeconds', {
    enumerable: true,
    get: () => {
      if (!pending) return loadSeconds;
      const s = pending.readSeconds();
      return s === undefined ? undefined : readFrom + s;
    },
  });
  const isE5 = opts.e5 ?? (looksLikeE5(name) || looksLikeE5(fs.realpathSync(dir)));
  return new EmbeddingModel(bert, tokenizer, info, isE5);
}

