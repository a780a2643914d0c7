/**
 * Analysis helpers built on the two public ways to run the model with hooks, `runWithCache`
 * and `runWithHooks` (engine/model.ts): head ablation, activation patching, layer-wise
 * similarity and the data for the attention viewer (inspect/html.ts). Nothing here reaches
 * into the forward pass; everything is a hook function or a read of a cached activation.
 *
 * Dimension letters as in engine/hooks.ts: B rows, T tokens per row, D hidden, H heads,
 * Dh = D/H, L layers; "depth" d = 0 is the embeddings output (hook_full_embed = HF
 * hidden_states[0]) and d = l + 1 the output of layer l (hook_normalized_resid_post).
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo } from '../engine/backend';
import { allHookNames, blockHook, depthHook, HookContext, HookFilter, HookFn, HookName, hookMatcher, parseHookName } from '../engine/hooks';
import type { HeadIntervention } from '../engine/ops';
import type { EmbeddingModel, Prefix } from '../e5/model';
import type { BertModel, ForwardOptions, ForwardOutput } from '../engine/model';
import { l2Normalize, pool } from '../engine/pooling';
import { PackedInput, packPadded, packSequences, PaddedBatch } from '../engine/rows';
import type { PoolingMode } from '../weights/sentence_transformers';
import type { AttentionViewData } from './html';

/** A bad argument to an analysis helper; `field` names it (`heads[2]`, `positions`, `corrupted`). */
export class InspectError extends Error {
  override readonly name = 'InspectError';
  constructor(readonly field: string, detail: string) {
    super(`${field}: ${detail}`);
  }
}

type Hooks = Array<[HookFilter, HookFn]>;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** B and T of a padded batch, and its attention mask as [B*T] (1 = real token). */
function batchShape(batch: PaddedBatch): { B: number; T: number; mask: Int32Array } {
  const p = packPadded(batch);
  return { B: p.rows.count, T: p.rows.uniformLength!, mask: p.attentionMask };
}

// ---------------------------------------------------------------------------------------------
// Heads: "L.H,..." and ablation at attn.hook_z

export interface HeadRef {
  layer: number;
  head: number;
}
export interface ModelShape {
  numHiddenLayers: number;
  numAttentionHeads: number;
}

/**
 * "3.5,0.1" → [{layer: 3, head: 5}, {layer: 0, head: 1}] (duplicates dropped, order kept).
 * With `shape`, layers and heads outside the model are errors naming the item.
 */
export function parseHeadList(spec: string, shape?: ModelShape): HeadRef[] {
  if (spec.trim() === '') throw new InspectError('heads', 'empty list; expected LAYER.HEAD pairs like 3.5,0.1');
  const heads = spec.split(',').map((item, i) => {
    const m = /^\s*(\d+)\.(\d+)\s*$/.exec(item);
    if (!m) throw new InspectError(`heads[${i}]`, `'${item.trim()}' is not LAYER.HEAD (e.g. 3.5 = layer 3, head 5)`);
    return { layer: Number(m[1]), head: Number(m[2]) };
  });
  if (shape) checkHeads(heads, shape);
  const seen = new Set<string>();
  return heads.filter((h) => !seen.has(`${h.layer}.${h.head}`) && !!seen.add(`${h.layer}.${h.head}`));
}

/** Every head exists in a model of this shape (errors name the item and the valid range). */
export function checkHeads(heads: HeadRef[], shape: ModelShape): void {
  const L = shape.numHiddenLayers, H = shape.numAttentionHeads;
  if (heads.length === 0) throw new InspectError('heads', 'no head given');
  heads.forEach(({ layer, head }, i) => {
    const where = `heads[${i}] = ${layer}.${head}`;
    if (!Number.isInteger(layer) || layer < 0 || layer >= L) throw new InspectError(where, `layer ${layer} is out of range (the model has layers 0-${L - 1})`);
    if (!Number.isInteger(head) || head < 0 || head >= H) throw new InspectError(where, `head ${head} is out of range (the model has heads 0-${H - 1} in each layer)`);
  });
}

export type AblationMode = 'zero' | 'mean';

/** A padded batch (HF semantics) or packed rows (engine/rows.ts packSequences): what an analysis runs. */
export type AnalysisInput = PaddedBatch | PackedInput;

const packedOf = (x: AnalysisInput): PackedInput => ('rows' in x ? x : packPadded(x));

/**
 * Each head's z [H, Dh] averaged over every real (mask = 1) token of `input`, from a clean run
 * (compiled where the backend compiles), for the given layers: what mean ablation puts in place
 * of a head's output.
 */
export function meanHeadOutputs(model: BertModel, input: AnalysisInput, layers: number[]): Map<number, tf.Tensor2D> {
  const packed = packedOf(input);
  const { numAttentionHeads: H, hiddenSize: D } = model.config;
  const count = packed.attentionMask.reduce((s, m) => s + m, 0);
  const ctx = new HookContext({ cache: layers.map((l) => blockHook(l, 'attn.hook_z')) });
  try {
    model.run(packed, { poolerOutput: false }, ctx).dispose();
    return new Map(layers.map((l) => [l, tf.tidy(() => {
      const z = tf.reshape(ctx.cache.get(blockHook(l, 'attn.hook_z'))!, [-1, H, D / H]); // [N,H,Dh]
      const weights = tf.tensor3d(Float32Array.from(packed.attentionMask), [packed.rows.total, 1, 1]); // 1 on real tokens
      return tf.div(tf.sum(tf.mul(z, weights), 0), count) as tf.Tensor2D; // [H,Dh]
    })]));
  } finally {
    ctx.dispose();
  }
}

/** Heads by layer, layers ascending. */
function headsByLayer(heads: HeadRef[]): Map<number, Set<number>> {
  const byLayer = new Map<number, Set<number>>();
  for (const { layer, head } of [...heads].sort((a, b) => a.layer - b.layer)) byLayer.set(layer, (byLayer.get(layer) ?? new Set()).add(head));
  return byLayer;
}

/**
 * The head intervention (engine/ops.ts HeadIntervention) that ablates `heads`: mask 0 at each,
 * fill 0 ('zero') or the head's mean output over the real tokens of `reference` ('mean',
 * meanHeadOutputs). An input of the forward (ForwardOptions.heads, EmbedOptions.heads), so it
 * runs compiled where the backend compiles; untouched heads stay bit-identical (1·z + 0·fill),
 * ablated ones are exactly `fill`. dispose() frees its tensors.
 */
export function headIntervention(model: BertModel, reference: AnalysisInput, heads: HeadRef[], mode: AblationMode): HeadIntervention & { dispose(): void } {
  checkHeads(heads, model.config);
  const { numHiddenLayers: L, numAttentionHeads: H, hiddenSize: D } = model.config;
  const byLayer = headsByLayer(heads);
  const mask = new Float32Array(L * H).fill(1);
  byLayer.forEach((hs, l) => hs.forEach((h) => (mask[l * H + h] = 0)));
  const means = mode === 'mean' ? meanHeadOutputs(model, reference, [...byLayer.keys()]) : undefined;
  const fill = means
    ? tf.tidy(() => tf.stack(range(L).map((l) => (means.has(l) ? tf.reshape(means.get(l)!, [D]) : tf.zeros([D])))) as tf.Tensor2D)
    : undefined;
  means?.forEach((t) => t.dispose());
  const out = { mask: tf.tensor2d(mask, [L, H]), fill };
  return { ...out, dispose: () => tf.dispose([out.mask, out.fill ?? []].flat()) };
}

/**
 * Hook functions that ablate `heads` at `blocks.{l}.attn.hook_z` [B,T,H,Dh]: 'zero' sets the
 * head's output to 0 at every position, 'mean' to its mean over the real tokens of `batch`
 * (meanHeadOutputs). For composing with other hook functions; on its own, headIntervention does
 * the same as an input of the forward (compiled where the backend compiles). The caller disposes
 * them after the runs.
 */
export function headAblationHooks(model: BertModel, batch: AnalysisInput, heads: HeadRef[], mode: AblationMode): { hooks: Array<[HookName, HookFn]>; dispose(): void } {
  checkHeads(heads, model.config);
  const H = model.config.numAttentionHeads, Dh = model.config.hiddenSize / H;
  const byLayer = headsByLayer(heads);
  const layers = [...byLayer.keys()];
  const means = mode === 'mean' ? meanHeadOutputs(model, batch, layers) : undefined;
  const owned: tf.Tensor[] = [];
  const hooks = layers.map((layer): [HookName, HookFn] => {
    const chosen = byLayer.get(layer)!;
    const ablated = tf.tensor4d(range(H).map((h) => (chosen.has(h) ? 1 : 0)), [1, 1, H, 1], 'bool');
    const fill = means ? tf.reshape(means.get(layer)!, [1, 1, H, Dh]) : tf.zeros([1, 1, H, Dh]);
    owned.push(ablated, fill);
    // tf.where copies values exactly: untouched heads stay bit-identical, ablated ones are exactly `fill`.
    return [blockHook(layer, 'attn.hook_z'), (z) => tf.where(ablated, fill, z)];
  });
  means?.forEach((t) => t.dispose());
  return { hooks, dispose: () => owned.forEach((t) => t.dispose()) };
}

/** Forward `batch` with `heads` ablated (zero or mean, at attn.hook_z), as an input of the forward. */
export function ablateHeads(model: BertModel, batch: PaddedBatch, heads: HeadRef[], mode: AblationMode = 'zero', opts: ForwardOptions = {}): ForwardOutput {
  const intervention = headIntervention(model, batch, heads, mode);
  try {
    return model.forward(batch, { ...opts, heads: intervention });
  } finally {
    intervention.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Activation patching

export interface PatchSpec {
  /** The hook point(s) to patch: a name, glob, RegExp or predicate. */
  hook: HookName | HookFilter;
  /** Token positions to patch (default all). For attn_scores/pattern: query positions. */
  positions?: number[];
  /** Heads to patch (default all); only for attn.hook_q|k|v|z|attn_scores|pattern. */
  heads?: number[];
}

/** Where the token and head axes are in each hook's public shape (engine/hooks.ts). */
function axesOf(name: HookName): { token?: number; head?: number } {
  const kind = parseHookName(name)?.kind;
  if (kind === 'hook_pooled' || kind === 'hook_embedding') return {};
  if (kind === 'attn.hook_q' || kind === 'attn.hook_k' || kind === 'attn.hook_v' || kind === 'attn.hook_z') return { token: 1, head: 2 }; // [B,T,H,Dh]
  if (kind === 'attn.hook_attn_scores' || kind === 'attn.hook_pattern') return { token: 2, head: 1 }; // [B,H,Tq,Tk]
  return { token: 1 }; // [B,T,*]
}

/** The hook names `spec` selects, with its positions/heads checked against T, H and each hook's axes. */
function planPatch(spec: PatchSpec, L: number, T: number, H: number): HookName[] {
  const names = allHookNames(L).filter(hookMatcher(spec.hook as HookFilter));
  if (!names.length) throw new InspectError('hook', `${String(spec.hook)} matches no hook point of this ${L}-layer model`);
  const checkIndices = (field: string, xs: number[] | undefined, n: number, what: string) => xs?.forEach((x, i) => {
    if (!Number.isInteger(x) || x < 0 || x >= n) throw new InspectError(`${field}[${i}]`, `${what} ${x} is out of range [0, ${n})`);
  });
  checkIndices('positions', spec.positions, T, 'position');
  checkIndices('heads', spec.heads, H, 'head');
  for (const n of names) {
    const axes = axesOf(n);
    if (spec.positions && axes.token === undefined) throw new InspectError('positions', `'${n}' has no token axis ([B,D]); patch it without positions`);
    if (spec.heads && axes.head === undefined) throw new InspectError('heads', `'${n}' has no head axis; heads apply to attn.hook_q|k|v|z|attn_scores|pattern`);
  }
  return names;
}

/** `corrupted` with the chosen positions/heads replaced by `clean` (same shape), exactly. */
function patchTensor(corrupted: tf.Tensor, clean: tf.Tensor, name: HookName, spec: PatchSpec): tf.Tensor {
  if (!spec.positions && !spec.heads) return clean;
  const { token, head } = axesOf(name);
  const T = token === undefined ? 1 : corrupted.shape[token];
  const H = head === undefined ? 1 : corrupted.shape[head];
  const pos = new Set(spec.positions ?? range(T)), heads = new Set(spec.heads ?? range(H));
  // The selection as a boolean tensor that broadcasts: T at the token axis, H at the head axis, 1 elsewhere.
  const shape = corrupted.shape.map((n, axis) => (axis === token || axis === head ? n : 1));
  const headFirst = head !== undefined && token !== undefined && head < token; // [B,H,T,T] hooks
  const sel = new Uint8Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) sel[headFirst ? h * T + t : t * H + h] = pos.has(t) && heads.has(h) ? 1 : 0;
  }
  return tf.tidy(() => tf.where(tf.tensor(sel, shape, 'bool'), clean, corrupted));
}

function checkEqualShapes(clean: PaddedBatch, corrupted: PaddedBatch): { B: number; T: number } {
  const c = batchShape(clean), k = batchShape(corrupted);
  if (c.B !== k.B || c.T !== k.T) {
    throw new InspectError('corrupted', `is ${k.B}×${k.T} tokens but clean is ${c.B}×${c.T}: patching needs inputs of equal token length (pad or choose a corruption with the same number of tokens)`);
  }
  return c;
}

/**
 * Run `clean` once, caching the hook(s) `spec` selects, and return hook functions that patch
 * those activations into another run of the same shape (positions on the token axis, heads on
 * the head axis). Use them with runWithHooks / runWithCache; dispose() frees the clean cache.
 */
export function patchingHooks(model: BertModel, clean: PaddedBatch, spec: PatchSpec): { hooks: Array<[HookFilter, HookFn]>; dispose(): void } {
  const { T } = batchShape(clean);
  const names = planPatch(spec, model.config.numHiddenLayers, T, model.config.numAttentionHeads);
  // Op by op, as the run it is patched into (hook functions always are): patching every position
  // then reproduces the clean run bit for bit, with the same kernels on both sides.
  const { output, cache } = model.runWithCache(clean, { names, compiled: false });
  output.dispose();
  const patch: HookFn = (x, info) => {
    const source = cache.get(info.name);
    if (!tf.util.arraysEqual(source.shape, x.shape)) {
      throw new InspectError('corrupted', `'${info.name}' is [${x.shape}] but the clean run's is [${source.shape}]: patching needs inputs of equal token length`);
    }
    return patchTensor(x, source, info.name, spec);
  };
  return { hooks: [[(n: HookName) => names.includes(n), patch]], dispose: () => cache.dispose() };
}

/**
 * Run `clean` with a cache of the hook(s) in `spec`, then `corrupted` with hooks that replace
 * the chosen positions (token axis) / heads of those activations by the clean ones.
 */
export function patchActivations(model: BertModel, clean: PaddedBatch, corrupted: PaddedBatch, spec: PatchSpec, opts: ForwardOptions = {}): ForwardOutput {
  checkEqualShapes(clean, corrupted);
  const patching = patchingHooks(model, clean, spec);
  try {
    return model.runWithHooks(corrupted, patching.hooks, opts);
  } finally {
    patching.dispose();
  }
}

export interface PatchingEffectOptions {
  query: string;
  cleanPassage: string;
  corruptedPassage: string;
  /** Hook points patched one at a time (default: `blocks.{l}.hook_resid_pre` for every layer). */
  hooks?: HookName[] | 'resid_pre per layer';
  /** 'all': patch every position at once; 'each': one run per position (default 'all'). */
  positions?: 'each' | 'all';
  /** 'auto' prepends `query: ` / `passage: ` (default); 'none' uses the texts as given. */
  prefix?: 'auto' | 'none';
}

export interface PatchingResult {
  hook: HookName;
  layer?: number;
  /** The patched position (positions: 'each'); absent when every position was patched. */
  position?: number;
  /** cos(query, patched passage). */
  similarity: number;
  /** (patched − corrupted) / (clean − corrupted): 1 = the clean similarity restored, 0 = no effect (NaN when clean = corrupted). */
  effect: number;
}

export interface PatchingReport {
  /** Token strings of the clean and corrupted passages (same length). */
  tokens: string[];
  corruptedTokens: string[];
  clean: number;
  corrupted: number;
  results: PatchingResult[];
}

/** One text → a single-row batch (no padding) and its token strings. */
function singleRow(m: EmbeddingModel, text: string): { batch: PaddedBatch; tokens: string[] } {
  const e = m.tokenizer.encode(text, { maxLength: m.maxLength });
  return { batch: { inputIds: [Array.from(e.inputIds)], tokenTypeIds: [Array.from(e.tokenTypeIds)] }, tokens: e.tokens };
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** The normalized embedding of row 0, then the output is freed. */
function embeddingOf(out: ForwardOutput): Float32Array {
  try {
    return out.embedding.dataSync().slice(0, out.embedding.shape[1]) as Float32Array;
  } finally {
    out.dispose();
  }
}

/**
 * Where does the corruption's effect on relevance live? For each hook (and position), patch
 * the clean passage's activation into the corrupted passage's run and report the query–passage
 * cosine and the normalized effect (patched − corrupted) / (clean − corrupted).
 */
export function patchingEffect(m: EmbeddingModel, o: PatchingEffectOptions): PatchingReport {
  const auto = (o.prefix ?? 'auto') === 'auto';
  const prep = (t: string, p: Prefix) => (auto ? m.prepare([t], p, () => {})[0] : t);
  const query = singleRow(m, prep(o.query, 'query'));
  const clean = singleRow(m, prep(o.cleanPassage, 'passage'));
  const corrupted = singleRow(m, prep(o.corruptedPassage, 'passage'));
  const { T } = checkEqualShapes(clean.batch, corrupted.batch);
  const L = m.config.numHiddenLayers;
  const hooks = o.hooks === undefined || o.hooks === 'resid_pre per layer' ? range(L).map((l) => blockHook(l, 'hook_resid_pre')) : o.hooks;
  for (const h of hooks) planPatch({ hook: h }, L, T, m.config.numAttentionHeads);

  const q = embeddingOf(m.bert.forward(query.batch));
  // Clean and corrupted op by op, as the patched runs are: an effect of 1 then means the clean bits.
  const { output, cache } = m.bert.runWithCache(clean.batch, { names: hooks, compiled: false });
  const results: PatchingResult[] = [];
  try {
    const cleanSim = dot(q, embeddingOf(output));
    const corruptedSim = dot(q, embeddingOf(m.bert.forward(corrupted.batch, { compiled: false })));
    for (const hook of hooks) {
      for (const positions of o.positions === 'each' ? range(T).map((t) => [t]) : [undefined]) {
        const spec: PatchSpec = { hook, positions };
        const patched = m.bert.runWithHooks(corrupted.batch, [[hook, (x) => patchTensor(x, cache.get(hook), hook, spec)]]);
        const similarity = dot(q, embeddingOf(patched));
        results.push({
          hook, layer: parseHookName(hook)?.layer, ...(positions ? { position: positions[0] } : {}),
          similarity, effect: (similarity - corruptedSim) / (cleanSim - corruptedSim),
        });
      }
    }
    return { tokens: clean.tokens, corruptedTokens: corrupted.tokens, clean: cleanSim, corrupted: corruptedSim, results };
  } finally {
    cache.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Layer-wise similarity

export interface LayerwiseOptions {
  /** 'auto' (default) prepends `query: ` / `passage: `; 'none' uses the texts as given. */
  prefix?: 'auto' | 'none';
  /** Pooling of each depth's hidden state (default: the model's, i.e. mean for e5). */
  pooling?: PoolingMode;
  /** Rows per forward pass (default 16). */
  batchSize?: number;
  maxLength?: number;
  /** Hook functions applied in the same runs (these run op by op). */
  hooks?: Hooks;
  /** Heads ablated in the same runs, as an input of the forward (headIntervention; [L, H] mask). */
  heads?: HeadIntervention;
  onWarning?: (message: string) => void;
}

export interface LayerwiseSimilarity {
  queries: string[];
  passages: string[];
  /** What each depth is: `hook_full_embed`, then `blocks.{l}.hook_normalized_resid_post`. */
  depths: HookName[];
  /** scores[q][p][d] = cosine of the pooled, L2-normalized hidden states at depth d (L+1 depths). */
  scores: number[][][];
}

/** The hook names of the L+1 depths: HF's hidden_states. */
export function depthHooks(L: number): HookName[] {
  return range(L + 1).map(depthHook);
}

/**
 * Pooled, L2-normalized hidden states at every depth: vectors[text][depth] (each [D]), with the
 * functions the model applies to its output (engine/pooling.ts), so the last depth is the
 * embedding. The rows are packed (no padding to compute) and the depths are read from the cache,
 * so without hook functions the run is compiled where the backend compiles.
 */
export function depthEmbeddings(m: EmbeddingModel, texts: string[], opts: Omit<LayerwiseOptions, 'prefix' | 'onWarning'> = {}): Float32Array[][] {
  const L = m.config.numHiddenLayers, D = m.config.hiddenSize;
  const depths = depthHooks(L);
  const mode = opts.pooling ?? m.bert.defaultPooling;
  const size = opts.batchSize ?? 16;
  const out: Float32Array[][] = [];
  for (let start = 0; start < texts.length; start += size) {
    const encodings = texts.slice(start, start + size).map((t) => m.tokenizer.encode(t, { maxLength: opts.maxLength ?? m.maxLength }));
    const packed = packSequences(encodings);
    // Hook functions (interventions) run first, so the cache holds what flows on.
    const ctx = new HookContext({ hooks: opts.hooks, cache: depths });
    try {
      m.bert.run(packed, { heads: opts.heads, poolerOutput: false }, ctx).dispose();
      const data = depths.map((d) => tf.tidy(() => l2Normalize(pool(mode, tf.reshape(ctx.cache.get(d)!, [-1, D]) as tf.Tensor2D, packed)).dataSync() as Float32Array));
      for (let r = 0; r < encodings.length; r++) out.push(data.map((a) => a.slice(r * D, (r + 1) * D)));
    } finally {
      ctx.dispose();
    }
  }
  return out;
}

/**
 * For each query and passage, the similarity at every depth — where does relevance emerge?
 * The last depth equals the cosine of the model's own embeddings.
 */
export function layerwiseSimilarity(m: EmbeddingModel, queries: string[], passages: string[], opts: LayerwiseOptions = {}): LayerwiseSimilarity {
  if (!queries.length) throw new InspectError('queries', 'no query given');
  if (!passages.length) throw new InspectError('passages', 'no passage given');
  const warn = opts.onWarning ?? (() => {});
  const auto = (opts.prefix ?? 'auto') === 'auto';
  const q = depthEmbeddings(m, auto ? m.prepare(queries, 'query', warn) : queries, opts);
  const p = depthEmbeddings(m, auto ? m.prepare(passages, 'passage', warn) : passages, opts);
  const L = m.config.numHiddenLayers;
  const scores = q.map((qv) => p.map((pv) => range(L + 1).map((d) => dot(qv[d], pv[d]))));
  return { queries, passages, depths: depthHooks(L), scores };
}

// ---------------------------------------------------------------------------------------------
// Attention view data (inspect/html.ts, inspect/bertviz.ts)

/** "wasm (2 threads)", "tensorflow (TensorFlow 2.21.0, 2 threads)", "cpu": the backend as notes and reports name it. */
export function describeBackendInfo(b = backendInfo()): string {
  const threads = `${b.threads} thread${b.threads === 1 ? '' : 's'}`;
  if (b.name === 'tensorflow') return `tensorflow (TensorFlow ${b.nativeVersion ?? '?'}, ${threads})`;
  return b.name === 'wasm' ? `wasm (${threads})` : b.name;
}

export interface PatternsForView {
  model: string;
  backend: string;
  title?: string;
  texts: string[];
  /** Token strings per row, padding included ([B][T]). */
  tokens: string[][];
  /** [B][T] (1 = real token); the view keeps only real tokens, wherever the padding is. */
  attentionMask: number[][];
  /** One post-softmax pattern [B,H,T,T] per layer shown. */
  patterns: tf.Tensor[];
  numHeads: number;
  /** The model's layer number of each pattern (default 0..L-1). */
  layerIndices?: number[];
  layerwise?: AttentionViewData['layerwise'];
}

/** Cut each row's [H,T,T] patterns down to its real tokens (rows and columns where mask = 1). */
export function attentionViewFromPatterns(p: PatternsForView): AttentionViewData {
  const H = p.numHeads;
  const real = p.attentionMask.map((row) => row.flatMap((m, t) => (m === 1 ? [t] : [])));
  const attention = p.patterns.map((pattern) => {
    const [B, , T] = pattern.shape;
    const a = pattern.dataSync() as Float32Array; // [B,H,T,T]
    return range(B).map((r) => {
      const idx = real[r], n = idx.length;
      const out = new Float32Array(H * n * n);
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < n; i++) {
          const src = ((r * H + h) * T + idx[i]) * T;
          for (let j = 0; j < n; j++) out[(h * n + i) * n + j] = a[src + idx[j]];
        }
      }
      return out;
    });
  });
  return {
    title: p.title, model: p.model, backend: p.backend, texts: p.texts, numHeads: H, attention,
    tokens: p.tokens.map((row, r) => real[r].map((t) => row[t])),
    ...(p.layerIndices ? { layerIndices: p.layerIndices } : {}),
    ...(p.layerwise ? { layerwise: p.layerwise } : {}),
  };
}

export interface AttentionViewOptions {
  /** Layers to show (default all). */
  layers?: number[];
  /** Prefix for every text (default 'none': texts as given). */
  prefix?: Prefix;
  maxLength?: number;
  /** Hook functions applied in the run (op by op). */
  hooks?: Hooks;
  /** Heads ablated in the run, as an input of the forward (headIntervention). */
  heads?: HeadIntervention;
  title?: string;
  layerwise?: AttentionViewData['layerwise'];
}

/** Run `texts` once and collect their attention patterns for renderAttentionHtml / toBertvizJson. */
export function attentionViewData(m: EmbeddingModel, texts: string[], opts: AttentionViewOptions = {}): AttentionViewData {
  if (!texts.length) throw new InspectError('texts', 'no text given');
  const L = m.config.numHiddenLayers;
  const layers = opts.layers ?? range(L);
  layers.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new InspectError(`layers[${i}]`, `layer ${l} is out of range (the model has layers 0-${L - 1})`);
  });
  const prepared = m.prepare(texts, opts.prefix ?? 'none', () => {});
  const enc = m.tokenizer.encodeBatch(prepared, { maxLength: opts.maxLength ?? m.maxLength });
  const B = enc.batchSize, T = enc.seqLen;
  const rows = (a: Int32Array) => range(B).map((r) => Array.from(a.subarray(r * T, (r + 1) * T)));
  const batch = { inputIds: rows(enc.inputIds), attentionMask: rows(enc.attentionMask), tokenTypeIds: rows(enc.tokenTypeIds) };
  const names = layers.map((l) => blockHook(l, 'attn.hook_pattern'));
  const { output, cache } = m.bert.runWithCache(batch, { names, hooks: opts.hooks, heads: opts.heads });
  try {
    return attentionViewFromPatterns({
      model: m.info.repoId ?? m.info.dir, backend: describeBackendInfo(), title: opts.title, texts: prepared,
      tokens: enc.encodings.map((e) => [...e.tokens, ...new Array<string>(T - e.nTokens).fill('[PAD]')]),
      attentionMask: batch.attentionMask, patterns: names.map((n) => cache.get(n)),
      numHeads: m.config.numAttentionHeads, layerwise: opts.layerwise,
    });
  } finally {
    output.dispose();
    cache.dispose();
  }
}
