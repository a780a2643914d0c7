/**
 * Why this score: attributions of the similarity s = e_q·e_p of a query and a passage, to token
 * pairs, to tokens, or to attention heads, by integrated gradients along a straight path
 * (xsbert's integrated Jacobians for Siamese encoders). The definitions, exactly:
 *
 * - e(·) is the model's normalized embedding (its pooling, then L2); texts are prefixed and
 *   tokenized as `embed` does them.
 * - Attribution layer ℓ: X ∈ R^{T×D} is the text's hidden state at HF's hidden_states[ℓ] (ℓ = 0: the
 *   embedding LayerNorm's output; ℓ = k: block k−1's output); e is a function of X through blocks
 *   ℓ…L−1 (attention mask fixed), pooling and L2 (engine/attribution.ts).
 * - Reference R: X at the positions the post-processor added ([CLS] first, [SEP] last), 0 elsewhere.
 * - Path X(α) = R + α(X − R), midpoint rule with N steps: α_k = (k − ½)/N, k = 1…N.
 * - C_t = (1/N) Σ_k J(X(α_k))[:, t, :]·(X_t − R_t) ∈ R^{Dout}; Σ_t C_t → e(X) − e(R) as N grows.
 * - pairs: A[i][j] = C^q_i·C^p_j (rows = query tokens); ΣA → (e_q − e_q^R)·(e_p − e_p^R).
 * - tokens: query[t] = C^q_t·e_p, passage[t] = C^p_t·e_q (one backward pass per step and text).
 * - heads: gates g ∈ [0,1]^H multiply each head's output at blocks.l.attn.hook_z on both texts;
 *   along g = α·1, attribution_{l,h} = (1/N) Σ_k ∂s/∂g_h(α_k); row l → s − s(layer l's heads zeroed).
 *
 * How pairs are computed (measured in bench/explain.ts; docs/EXPLAIN.md): A needs C of one
 * text in full, but of the other only through its products with the first text's C_i. So C of the
 * shorter text S comes from per-token Jacobian products (n_S JVPs per step, or Dout VJPs when that
 * is fewer: `jacobian`), and the longer text's side from n_S + 1 VJPs per step whose cotangents are
 * the C^S_i and e_S (the last gives that text's token attributions): A[i][j] = Σ_k (1/N)
 * (J_L(α_k)ᵀ C^S_i)[j]·(X_j − R_j). No Jacobian of the longer text is ever formed.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendInfo } from '../engine/backend';
import {
  differentiableOps, embedFrom, EncoderFunction, headGateGrads, jvpRows, vjpContracted,
} from '../engine/attribution';
import { blockHook, depthHook, HookFn, HookName } from '../engine/hooks';
import type { BertModel } from '../engine/model';
import type { BertTokenizer, Encoding } from '../tokenizer';
import type { BertConfig } from '../weights/config';
import type { PoolingMode } from '../weights/sentence_transformers';

/**
 * What explain() reads of an EmbeddingModel (e5/model.ts), by shape: model.ts calls explain(), so
 * naming its class here would be an import cycle.
 */
export interface ExplainableModel {
  readonly config: BertConfig;
  readonly bert: BertModel;
  readonly tokenizer: BertTokenizer;
  readonly info: { name: string; linearWeights: 'kept' | 'released'; precision?: 'fp32' | 'bf16' };
  readonly maxLength: number;
  /** Prefixes as embed() applies them, with its warnings. */
  prepare(texts: string[], prefix: 'query' | 'passage' | 'none', warn: (m: string) => void): string[];
}
type EmbeddingModel = ExplainableModel;

export type ExplainMode = 'pairs' | 'tokens' | 'heads';
export const EXPLAIN_MODES: readonly ExplainMode[] = ['pairs', 'tokens', 'heads'];
/** How C of the shorter text is computed in pairs mode: per-token JVPs, or VJPs over the output dimensions. */
export type JacobianMethod = 'jvp' | 'vjp';
/** The largest step count accepted: past a few hundred the midpoint rule's error is below float32's. */
export const MAX_STEPS = 4096;

export interface ExplainOptions {
  /** 'pairs' (default): token-pair matrix and token attributions; 'tokens': token attributions only; 'heads': L×H grid. */
  mode?: ExplainMode;
  /** Attribution layer ℓ ∈ [0, L] (default 0): HF hidden_states[ℓ]. Not used by heads mode. */
  layer?: number;
  /** Midpoint-rule steps N (default 32), 1…MAX_STEPS. */
  steps?: number;
  /** 'auto' (default): 'query: ' before the query, 'passage: ' before the passage; 'none': as given. */
  prefix?: 'auto' | 'none';
  /** Truncate each text to this many tokens (default: the model's limit). */
  maxLength?: number;
  /** pairs: how C of the shorter text is computed (default 'auto': whichever needs fewer passes). */
  jacobian?: 'auto' | JacobianMethod;
  /**
   * Tokens per batched backward pass through all L blocks (default 512; fewer blocks take
   * proportionally more): bounds the memory the gradient tape holds.
   */
  maxBatchTokens?: number;
  /** Called as work is done: units are rows of the batched passes. */
  onProgress?: (done: number, total: number) => void;
  onWarning?: (message: string) => void;
}

export interface ExplainedText {
  /** As given. */
  text: string;
  /** As the model saw it (prefixed). */
  modelText: string;
  tokens: string[];
  /** [start, end) in code points of `modelText`; [0, 0] for [CLS]/[SEP]. */
  offsets: Array<[number, number]>;
  /** True at the tokens the post-processor added ([CLS], [SEP]): the reference keeps them. */
  special: boolean[];
  /** pairs, tokens: C_t·e_other per token; heads: null. */
  attributions: number[] | null;
}

export interface Completeness {
  /** The attributions' sum. */
  sum: number;
  /** What it tends to as the step count grows. */
  target: number;
  /** |sum − target|: the midpoint rule's error (and float rounding). */
  error: number;
}

export interface ExplainResult {
  mode: ExplainMode;
  /** ℓ (null in heads mode, which gates every layer). */
  layer: number | null;
  steps: number;
  /** s = e_q·e_p (cosine of the normalized embeddings). */
  score: number;
  query: ExplainedText;
  passage: ExplainedText;
  /** pairs: A [n_q][n_p], rows = query tokens, special tokens included. */
  pairs: number[][] | null;
  /** heads: [L][H]. */
  heads: number[][] | null;
  /**
   * pairs: ΣA vs (e_q − e_q^R)·(e_p − e_p^R); tokens: Σquery + Σpassage vs (e_q − e_q^R)·e_p +
   * (e_p − e_p^R)·e_q, each side also on its own; heads: the grid's sum vs Σ_l (s − s_l), each layer
   * on its own (s_l: layer l's heads zeroed).
   */
  completeness: Completeness & { query?: Completeness; passage?: Completeness; layers?: Array<Completeness & { layer: number }> };
  /**
   * pairs and tokens: the reference's share of s. s = target + queryRef + passageRef + refRef with
   * queryRef = e_q^R·(e_p − e_p^R), passageRef = (e_q − e_q^R)·e_p^R, refRef = e_q^R·e_p^R.
   */
  reference: { queryRef: number; passageRef: number; refRef: number } | null;
  /** pairs: how C of the shorter text was computed, and which text that was. */
  jacobian: { method: JacobianMethod; text: 'query' | 'passage' } | null;
  pooling: PoolingMode;
  backend: BackendInfo;
  seconds: number;
  warnings: string[];
}

export type ExplainErrorCode = 'bad_option' | 'empty_text' | 'no_tokens' | 'weights_released' | 'precision';

/** Bad input to explain(): `field` names the option or text. */
export class ExplainError extends Error {
  override readonly name = 'ExplainError';
  constructor(readonly code: ExplainErrorCode, readonly field: string, detail: string) {
    super(`${field}: ${detail}`);
  }
}

/** The midpoints α_k = (k − ½)/N, k = 1…N. */
export function midpoints(N: number): number[] {
  return Array.from({ length: N }, (_, k) => (k + 0.5) / N);
}

interface Settings {
  mode: ExplainMode;
  layer: number;
  steps: number;
  prefix: 'auto' | 'none';
  maxLength: number;
  jacobian: 'auto' | JacobianMethod;
  maxBatchTokens: number;
}

function checkOptions(m: EmbeddingModel, opts: ExplainOptions): Settings {
  const L = m.config.numHiddenLayers;
  const known = new Set(['mode', 'layer', 'steps', 'prefix', 'maxLength', 'jacobian', 'maxBatchTokens', 'onProgress', 'onWarning']);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw new ExplainError('bad_option', k, `unknown option (known: ${[...known].join(', ')})`);
  const oneOf = <T extends string>(field: string, v: unknown, allowed: readonly T[], dflt: T): T => {
    if (v === undefined) return dflt;
    if (!allowed.includes(v as T)) throw new ExplainError('bad_option', field, `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
    return v as T;
  };
  const int = (field: string, v: unknown, lo: number, hi: number, dflt: number, what: string): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      throw new ExplainError('bad_option', field, `${JSON.stringify(v)} is out of range: ${what} is an integer in [${lo}, ${hi}]`);
    }
    return v;
  };
  return {
    mode: oneOf('mode', opts.mode, EXPLAIN_MODES, 'pairs'),
    layer: int('layer', opts.layer, 0, L, 0, `the attribution layer of this ${L}-layer model (HF hidden_states index)`),
    steps: int('steps', opts.steps, 1, MAX_STEPS, 32, 'the number of integration steps'),
    prefix: oneOf('prefix', opts.prefix, ['auto', 'none'] as const, 'auto'),
    maxLength: int('maxLength', opts.maxLength, 3, m.maxLength, m.maxLength, "the token limit (the model's at most)"),
    jacobian: oneOf('jacobian', opts.jacobian, ['auto', 'jvp', 'vjp'] as const, 'auto'),
    maxBatchTokens: int('maxBatchTokens', opts.maxBatchTokens, 1, 1 << 20, 512, 'the batch budget'),
  };
}

/** One text at the attribution layer: X, R, X − R [T, D], and which tokens are special. */
interface Side {
  name: 'query' | 'passage';
  enc: Encoding;
  T: number;
  x: tf.Tensor2D;
  r: tf.Tensor2D;
  delta: tf.Tensor2D;
  /** Positions whose X − R can be non-zero (the text's own tokens). */
  own: number[];
  /** e(X), e(R). */
  e: Float64Array;
  eR: Float64Array;
}

/** Explain s = e_q·e_p; see the file comment for the definitions. */
export async function explain(m: EmbeddingModel, query: string, passage: string, opts: ExplainOptions = {}): Promise<ExplainResult> {
  const t0 = performance.now();
  const o = checkOptions(m, opts);
  if (m.info.linearWeights === 'released') {
    throw new ExplainError('weights_released', 'model', `${m.info.name} was loaded with keepLinearWeights: false; gradients need the Linear weights: load it with them kept (the default)`);
  }
  if (m.info.precision === 'bf16') {
    throw new ExplainError('precision', 'model', `${m.info.name} was loaded with precision 'bf16': attributions are gradients, and bf16's rounding has none worth the name (zero almost everywhere): load it with precision 'fp32' (the default)`);
  }
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    opts.onWarning?.(w);
  };
  const encQ = encodeText(m, 'query', query, o, warn), encP = encodeText(m, 'passage', passage, o, warn);
  const fn: EncoderFunction = { config: m.config, params: m.bert.params, ops: differentiableOps(), pooling: m.bert.defaultPooling };
  const progress = new Progress(opts.onProgress);
  const owned: tf.Tensor[] = [];
  try {
    const base = {
      steps: o.steps, pooling: fn.pooling, backend: m.bert.runtime.info, warnings,
      query: describe(query, encQ), passage: describe(passage, encP),
    };
    if (o.mode === 'heads') {
      const out = explainHeads(m, fn, encQ.enc, encP.enc, o, progress, owned);
      return { ...base, ...out, mode: 'heads', layer: null, pairs: null, reference: null, jacobian: null, seconds: (performance.now() - t0) / 1000 };
    }
    const q = side(m, fn, 'query', encQ.enc, o.layer, owned), p = side(m, fn, 'passage', encP.enc, o.layer, owned);
    const score = dot(q.e, p.e);
    const out = o.mode === 'pairs' ? explainPairs(fn, q, p, o, progress) : explainTokens(fn, q, p, o, progress);
    const dq = sub(q.e, q.eR), dp = sub(p.e, p.eR);
    return {
      ...base, mode: o.mode, layer: o.layer, score, pairs: out.pairs, heads: null,
      query: { ...base.query, attributions: out.query }, passage: { ...base.passage, attributions: out.passage },
      completeness: out.completeness,
      reference: { queryRef: dot(q.eR, dp), passageRef: dot(dq, p.eR), refRef: dot(q.eR, p.eR) },
      jacobian: out.jacobian, seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    tf.dispose(owned);
  }
}

// ---------------------------------------------------------------------------------------------
// Texts

function encodeText(m: EmbeddingModel, which: 'query' | 'passage', text: unknown, o: Settings, warn: (w: string) => void): { modelText: string; enc: Encoding } {
  if (typeof text !== 'string') throw new ExplainError('empty_text', which, `expected a string, got ${text === null ? 'null' : typeof text}`);
  if (text.trim() === '') throw new ExplainError('empty_text', which, 'is empty: there is nothing to attribute the score to');
  const [modelText] = m.prepare([text], o.prefix === 'auto' ? which : 'none', (w) => warn(`${which}: ${w}`));
  const enc = m.tokenizer.encode(modelText, { maxLength: o.maxLength });
  if (enc.truncated) warn(`${which} was truncated to ${o.maxLength} tokens`);
  if (enc.specialTokensMask.every((s) => s === 1)) throw new ExplainError('no_tokens', which, `'${text}' has no tokens of its own after tokenization`);
  return { modelText, enc };
}

function describe(text: string, e: { modelText: string; enc: Encoding }): ExplainedText {
  return {
    text, modelText: e.modelText, tokens: [...e.enc.tokens], offsets: e.enc.offsets.map(([a, b]) => [a, b] as [number, number]),
    special: Array.from(e.enc.specialTokensMask, (s) => s === 1), attributions: null,
  };
}

/** Hidden states of one text at the given depths [T, D] (a forward with the runtime's fast ops; no gradient needed). */
function hiddenStates(m: EmbeddingModel, enc: Encoding, depths: number[]): tf.Tensor2D[] {
  const T = enc.nTokens, D = m.config.hiddenSize;
  const names = depths.map(depthHook);
  const { output, cache } = m.bert.runWithCache(
    { inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, batchSize: 1, seqLen: T },
    { names, poolerOutput: false },
  );
  try {
    return names.map((n) => tf.reshape(cache.get(n), [T, D]) as tf.Tensor2D);
  } finally {
    output.dispose();
    cache.dispose();
  }
}

function side(m: EmbeddingModel, fn: EncoderFunction, name: 'query' | 'passage', enc: Encoding, layer: number, owned: tf.Tensor[]): Side {
  const [x] = hiddenStates(m, enc, [layer]);
  owned.push(x);
  const T = enc.nTokens;
  const keep = tf.tensor2d(Float32Array.from(enc.specialTokensMask), [T, 1]); // 1 at [CLS]/[SEP]
  const r = tf.mul(x, keep) as tf.Tensor2D, delta = tf.sub(x, r) as tf.Tensor2D;
  keep.dispose();
  owned.push(r, delta);
  const embed = (t: tf.Tensor2D) => read(() => embedFrom(fn, tf.expandDims(t, 0) as tf.Tensor3D, layer));
  const own = [...enc.specialTokensMask.keys()].filter((t) => enc.specialTokensMask[t] === 0);
  return { name, enc, T, x, r, delta, own, e: embed(x), eR: embed(r) };
}

// ---------------------------------------------------------------------------------------------
// pairs and tokens

/** X(α) for each α: [n, T, D]. */
function pathPoints(s: Side, alphas: number[]): tf.Tensor3D {
  return tf.tidy(() => {
    const a = tf.tensor3d(Float32Array.from(alphas), [alphas.length, 1, 1]);
    return tf.add(tf.expandDims(s.r, 0), tf.mul(a, tf.expandDims(s.delta, 0))) as tf.Tensor3D;
  });
}

/** Rows per chunk for `T`-token rows through blocks layer…L−1, `passes` tapes deep. */
function chunkTokens(fn: EncoderFunction, o: Settings, layer: number, passes = 1): number {
  const L = fn.config.numHiddenLayers;
  return Math.max(1, Math.floor((o.maxBatchTokens * L) / (Math.max(1, L - layer) * passes)));
}

/**
 * Σ_k (1/N) (J(α_k)ᵀ u_c)[t]·(X_t − R_t) for each cotangent u_c (rows of `us`, Dout each) → [c][t].
 */
function vjpAveraged(fn: EncoderFunction, s: Side, us: Float64Array[], o: Settings, progress: Progress): Float64Array[] {
  const alphas = midpoints(o.steps), nU = us.length, Dout = fn.config.hiddenSize;
  const rows = o.steps * nU; // row = k·nU + c
  const flatU = new Float32Array(nU * Dout);
  us.forEach((u, c) => flatU.set(u, c * Dout));
  const out = vjpContracted(
    fn, o.layer, rows, s.T,
    (r0, r1) => pathPoints(s, range(r0, r1).map((r) => alphas[Math.floor(r / nU)])),
    (r0, r1) => tf.tensor2d(Float32Array.from(range(r0, r1).flatMap((r) => Array.from(flatU.subarray((r % nU) * Dout, (r % nU + 1) * Dout)))), [r1 - r0, Dout]),
    s.delta, chunkTokens(fn, o, o.layer), progress.chunk(),
  );
  const avg = us.map(() => new Float64Array(s.T));
  for (let r = 0; r < rows; r++) {
    const a = avg[r % nU];
    for (let t = 0; t < s.T; t++) a[t] += out[r * s.T + t] / o.steps;
  }
  return avg;
}

/** C_t for every token t of `s` [T][Dout] (zero at special tokens), by the method asked for. */
function contributions(fn: EncoderFunction, s: Side, method: JacobianMethod, o: Settings, progress: Progress): Float64Array[] {
  const Dout = fn.config.hiddenSize;
  const C = Array.from({ length: s.T }, () => new Float64Array(Dout));
  if (method === 'vjp') {
    const basis = Array.from({ length: Dout }, (_, d) => Float64Array.from({ length: Dout }, (_, i) => (i === d ? 1 : 0)));
    const cols = vjpAveraged(fn, s, basis, o, progress); // [Dout][T]
    cols.forEach((col, d) => col.forEach((v, t) => (C[t][d] = v)));
    return C;
  }
  const alphas = midpoints(o.steps), own = s.own, n = own.length;
  const rows = o.steps * n; // row = k·n + i: step k, token own[i]
  const oneHot = (i: number) => Float32Array.from({ length: s.T }, (_, t) => (t === own[i] ? 1 : 0));
  const jv = jvpRows(
    fn, o.layer, rows, s.T,
    (r0, r1) => pathPoints(s, range(r0, r1).map((r) => alphas[Math.floor(r / n)])),
    (r0, r1) => tf.tidy(() => {
      const sel = tf.tensor3d(Float32Array.from(range(r0, r1).flatMap((r) => Array.from(oneHot(r % n)))), [r1 - r0, s.T, 1]);
      return tf.mul(sel, tf.expandDims(s.delta, 0)) as tf.Tensor3D; // X_t − R_t at token t, 0 elsewhere
    }),
    chunkTokens(fn, o, o.layer, 2), progress.chunk(),
  );
  for (let r = 0; r < rows; r++) {
    const c = C[own[r % n]];
    for (let d = 0; d < Dout; d++) c[d] += jv[r * Dout + d] / o.steps;
  }
  return C;
}

interface TextAttributions {
  pairs: number[][] | null;
  query: number[];
  passage: number[];
  completeness: ExplainResult['completeness'];
  jacobian: ExplainResult['jacobian'];
}

function explainPairs(fn: EncoderFunction, q: Side, p: Side, o: Settings, progress: Progress): TextAttributions {
  const [S, Lg] = q.T <= p.T ? [q, p] : [p, q]; // the shorter text gets its C in full
  const Dout = fn.config.hiddenSize;
  // Passes per step: n_S JVPs (~3 passes each) or Dout VJPs (~2 each); then n_S + 1 VJPs on the longer text.
  const method: JacobianMethod = o.jacobian !== 'auto' ? o.jacobian : 3 * S.own.length <= 2 * Dout ? 'jvp' : 'vjp';
  progress.expect(o.steps * ((method === 'jvp' ? S.own.length : Dout) + S.own.length + 1));
  const C = contributions(fn, S, method, o, progress);
  // M[i][j] = C^S_{own[i]}·C^L_j; the last row: e_S·C^L_j (the longer text's token attributions).
  const M = vjpAveraged(fn, Lg, [...S.own.map((t) => C[t]), S.e], o, progress);
  const byOwn = new Map(S.own.map((t, i) => [t, M[i]]));
  const A = Array.from({ length: q.T }, (_, i) => Array.from({ length: p.T }, (_, j) => {
    const [s, l] = S === q ? [i, j] : [j, i];
    return byOwn.get(s)?.[l] ?? 0;
  }));
  const eOther = S === q ? p.e : q.e; // the longer text's embedding
  const attrS = C.map((c) => dot(c, eOther)), attrL = Array.from(M[M.length - 1]);
  const [query, passage] = S === q ? [attrS, attrL] : [attrL, attrS];
  const sum = A.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
  const target = dot(sub(q.e, q.eR), sub(p.e, p.eR));
  return {
    pairs: A, query, passage, jacobian: { method, text: S.name },
    completeness: { ...completeness(sum, target), ...sideCompleteness(q, p, query, passage) },
  };
}

function explainTokens(fn: EncoderFunction, q: Side, p: Side, o: Settings, progress: Progress): TextAttributions {
  progress.expect(2 * o.steps);
  const [query] = vjpAveraged(fn, q, [p.e], o, progress), [passage] = vjpAveraged(fn, p, [q.e], o, progress);
  const sides = sideCompleteness(q, p, Array.from(query), Array.from(passage));
  return {
    pairs: null, query: Array.from(query), passage: Array.from(passage), jacobian: null,
    completeness: { ...completeness(sides.query.sum + sides.passage.sum, sides.query.target + sides.passage.target), ...sides },
  };
}

/** Σ query[t] → (e_q − e_q^R)·e_p and Σ passage[t] → (e_p − e_p^R)·e_q. */
function sideCompleteness(q: Side, p: Side, query: number[], passage: number[]): { query: Completeness; passage: Completeness } {
  return {
    query: completeness(query.reduce((a, b) => a + b, 0), dot(sub(q.e, q.eR), p.e)),
    passage: completeness(passage.reduce((a, b) => a + b, 0), dot(sub(p.e, p.eR), q.e)),
  };
}

// ---------------------------------------------------------------------------------------------
// heads

function explainHeads(
  m: EmbeddingModel, fn: EncoderFunction, encQ: Encoding, encP: Encoding, o: Settings, progress: Progress, owned: tf.Tensor[],
): Pick<ExplainResult, 'score' | 'heads' | 'completeness'> {
  const L = m.config.numHiddenLayers, H = m.config.numAttentionHeads;
  const depths = Array.from({ length: L }, (_, l) => l);
  const hq = hiddenStates(m, encQ, depths), hp = hiddenStates(m, encP, depths);
  owned.push(...hq, ...hp);
  const alphas = midpoints(o.steps);
  progress.expect(L * o.steps);
  const score = gatedScore(fn, 0, hq[0], hp[0], undefined);
  const heads: number[][] = [], layers: Array<Completeness & { layer: number }> = [];
  for (let l = 0; l < L; l++) {
    const g = headGateGrads(fn, l, hq[l], hp[l], alphas, chunkTokens(fn, o, l), progress.chunk());
    const row = Array.from({ length: H }, (_, h) => alphas.reduce((s, _, k) => s + g[k * H + h], 0) / o.steps);
    heads.push(row);
    const target = score - gatedScore(fn, l, hq[l], hp[l], 0);
    layers.push({ layer: l, ...completeness(row.reduce((a, b) => a + b, 0), target) });
  }
  const total = completeness(layers.reduce((s, c) => s + c.sum, 0), layers.reduce((s, c) => s + c.target, 0));
  return { score, heads, completeness: { ...total, layers } };
}

/** e_q·e_p from depth `layer`, with that layer's heads multiplied by `gate` (undefined: no gate). */
function gatedScore(fn: EncoderFunction, layer: number, xq: tf.Tensor2D, xp: tf.Tensor2D, gate: number | undefined): number {
  return tf.tidy(() => {
    const hooks: Array<[HookName, HookFn]> = gate === undefined ? [] : [[blockHook(layer, 'attn.hook_z'), (z) => tf.mul(z, gate)]];
    const eq = embedFrom(fn, tf.expandDims(xq, 0) as tf.Tensor3D, layer, hooks), ep = embedFrom(fn, tf.expandDims(xp, 0) as tf.Tensor3D, layer, hooks);
    return dot(eq.dataSync(), ep.dataSync());
  });
}

// ---------------------------------------------------------------------------------------------
// small helpers

/** A tensor computed in its own tidy, read into float64. */
function read(f: () => tf.Tensor): Float64Array {
  const t = tf.tidy(f);
  try {
    return Float64Array.from(t.dataSync());
  } finally {
    t.dispose();
  }
}

function completeness(sum: number, target: number): Completeness {
  return { sum, target, error: Math.abs(sum - target) };
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function sub(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v - b[i]);
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/** Rows done over every batched pass of one explanation. */
class Progress {
  private done = 0;
  private total = 0;
  constructor(private readonly report?: (done: number, total: number) => void) {}
  expect(rows: number): void {
    this.total += rows;
  }
  /** A callback for one batched pass (its onChunk gets the pass's rows done so far). */
  chunk(): ((rowsDone: number) => void) | undefined {
    if (!this.report) return undefined;
    const start = this.done;
    return (rowsDone) => {
      this.done = start + rowsDone;
      this.report!(this.done, Math.max(this.total, this.done));
    };
  }
}
