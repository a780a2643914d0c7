/**
 * Head ablation measured in retrieval metrics: evaluate() with attention heads removed on the query
 * side, the passage side or both, beside the plain run and the difference (per query too).
 *
 * Semantics are `e5 inspect --ablate`'s (inspect/analysis.ts): at `blocks.{l}.attn.hook_z` a removed
 * head's output becomes zeros ('zero') or its mean output ('mean') at every position.
 *
 * Mean ablation's reference set (MEAN_REFERENCE): the head means are taken over the evaluated
 * queries — every query of the split that has judgements, embedded as the run embeds it ('query: ' +
 * text, truncated at maxLength) — averaging attn.hook_z over all their real tokens ([CLS] and [SEP]
 * included; padding excluded). The same means serve every side and every cell of a scan, so a scan
 * cell, a single run and a shard worker all replace a head by the same vector, and the corpus (which
 * may be sharded over machines) never has to be read to compute them. `e5 inspect --ablate mean`
 * does the same over its own batch. test/parity/eval_ablate.py computes them the same way.
 *
 * Query side: the corpus is embedded (or read from the corpus cache) by the plain model, so an
 * ablated run reuses the plain run's cache. Passage / both: the corpus is embedded under the
 * intervention, cached under a key that names it (AblatedEmbedder.id).
 */
import { checkHeads, type AblationMode, type HeadRef } from '../inspect/analysis';
import { BeirDataset, loadBeir } from './beir';
import { dataSha256 } from './cache';
import { type EmbedCallOptions, type EmbedCallResult, type Embedder, type HeadEmbedder, isHeadEmbedder } from './embedder';
import { EvalError } from './errors';
import { evaluate, EvalResult, EvaluateOptions } from './evaluate';
import { METRIC_NAMES, MetricName } from './metrics';

export type { AblationMode, HeadRef };
export type AblationSide = 'query' | 'passage' | 'both';
export const ABLATION_SIDES: readonly AblationSide[] = ['query', 'passage', 'both'];

/** "the query side", "the passage side", "both sides": for messages. */
export function sideText(side: AblationSide): string {
  return side === 'both' ? 'both sides' : `the ${side} side`;
}

export const MEAN_REFERENCE = "the evaluated queries ('query: ' + text, truncated as embedded): attn.hook_z averaged over all their real tokens, [CLS] and [SEP] included";

/** "3.5" per head, in the order given. */
export function headLabels(heads: readonly HeadRef[]): string[] {
  return heads.map((h) => `${h.layer}.${h.head}`);
}

/** [L*H] mask: 1 keeps a head, 0 at each of `heads`. */
export function headMask(model: HeadEmbedder, heads: readonly HeadRef[]): Float32Array {
  const { numHiddenLayers: L, numAttentionHeads: H } = model.headShape;
  const mask = new Float32Array(L * H).fill(1);
  for (const { layer, head } of heads) mask[layer * H + head] = 0;
  return mask;
}

/** The model as a HeadEmbedder with heads to remove, and `heads` inside it; EvalError('bad_option') otherwise. */
export function checkAblatable(model: Embedder, heads?: HeadRef[]): HeadEmbedder {
  if (!isHeadEmbedder(model)) throw new EvalError('bad_option', `embedder ${model.id} cannot remove attention heads (it is not an engine model)`);
  const { numHiddenLayers: L, numAttentionHeads: H } = model.headShape;
  if (!(L > 0 && H > 0)) throw new EvalError('bad_option', `model ${model.id} has no attention heads to ablate (${L} layers of ${H} heads)`);
  if (heads) {
    try {
      checkHeads(heads, { numHiddenLayers: L, numAttentionHeads: H });
    } catch (e) {
      throw new EvalError('bad_option', `ablate: ${(e as Error).message}`);
    }
  }
  return model;
}

/** The evaluated queries of a data set (judged in its split), in queries.jsonl order: the mean-ablation reference. */
export function evaluatedQueries(data: BeirDataset): { ids: string[]; texts: string[] } {
  const ids = [...data.queries.keys()].filter((q) => data.qrels.has(q));
  return { ids, texts: ids.map((q) => data.queries.get(q)!) };
}

/** What a removed head becomes: undefined for 'zero', the MEAN_REFERENCE means [L*D] for 'mean'. */
export async function ablationFill(model: HeadEmbedder, data: BeirDataset, mode: AblationMode, opts: Pick<EvaluateOptions, 'batchSize' | 'maxLength'> = {}): Promise<Float32Array | undefined> {
  if (mode === 'zero') return undefined;
  const { texts } = evaluatedQueries(data);
  if (texts.length === 0) throw new EvalError('bad_option', `no query of ${data.name} has judgements in split ${JSON.stringify(data.split)}: mean ablation has nothing to average`);
  return model.headMeans(texts, { prefix: 'query', batchSize: opts.batchSize, maxLength: opts.maxLength });
}

/** sha256 (hex) of float32 values: names a mean-ablation fill in cache keys. */
export function fillSha256(fill: Float32Array | undefined): string | null {
  return fill ? dataSha256(fill) : null;
}

/**
 * `base` with the heads of `mask` removed, as a plain Embedder. Its id names the intervention (and the
 * mean fill's hash), so a corpus cached under it is never taken for another intervention's.
 */
export class AblatedEmbedder implements Embedder {
  readonly id: string;
  readonly pooling?: string;
  readonly engine?: string;

  constructor(readonly base: HeadEmbedder, readonly mask: Float32Array, readonly fill: Float32Array | undefined, readonly label: string) {
    const fillSha = fillSha256(fill);
    this.id = `${base.id} ablated[${label} ${fill ? `mean:${fillSha!.slice(0, 16)}` : 'zero'}]`;
    this.pooling = base.pooling;
    this.engine = base.engine;
  }

  async embed(texts: string[], opts: EmbedCallOptions): Promise<EmbedCallResult> {
    return (await this.base.embedMasked(texts, [this.mask], this.fill, opts))[0];
  }
}

/** Per metric and cutoff: ablated − baseline. */
export type MetricDelta = Record<MetricName, number[]>;

export function metricDelta(ablated: Record<MetricName, number[]>, baseline: Record<MetricName, number[]>): MetricDelta {
  const out = {} as MetricDelta;
  for (const m of METRIC_NAMES) out[m] = ablated[m].map((v, i) => v - baseline[m][i]);
  return out;
}

export interface Intervention {
  /** "L.H" per removed head. */
  heads: string[];
  mode: AblationMode;
  side: AblationSide;
  /** MEAN_REFERENCE for 'mean', null for 'zero'. */
  meanReference: string | null;
  /** sha256 of the mean fill [L*D] float32 (null for 'zero'). */
  fillSha256: string | null;
}

export interface AblationOptions extends Omit<EvaluateOptions, 'queryModel'> {
  heads: HeadRef[];
  /** Default 'zero'. */
  mode?: AblationMode;
  /** Default 'query'. */
  side?: AblationSide;
  /** The plain run with the same options, when already at hand (evaluated otherwise). */
  baseline?: EvalResult;
}

export interface AblationResult {
  intervention: Intervention;
  baseline: EvalResult;
  ablated: EvalResult;
  /** ablated − baseline: the means (per metric, per cutoff) and BEIR's labels. */
  delta: { means: MetricDelta; scores: Record<string, number> };
  /** ablated − baseline for each evaluated query, in the order of `ablated.perQuery`. */
  perQueryDelta: Array<{ queryId: string; metrics: MetricDelta }>;
}

/** evaluate() with `heads` removed on `side`, beside the plain run and the differences. */
export async function evaluateAblation(model: Embedder, dataset: string | BeirDataset, opts: AblationOptions): Promise<AblationResult> {
  const m = checkAblatable(model, opts.heads);
  const mode = opts.mode ?? 'zero', side = opts.side ?? 'query';
  checkModeSide(mode, side);
  const data = typeof dataset === 'string' ? await loadBeir(dataset, { split: opts.split }) : dataset;
  const { heads: _h, mode: _m, side: _s, baseline: given, ...evalOpts } = opts;
  const baseline = given ?? await evaluate(m, data, evalOpts);
  const fill = await ablationFill(m, data, mode, evalOpts);
  const ablatedModel = new AblatedEmbedder(m, headMask(m, opts.heads), fill, headLabels(opts.heads).join(','));
  const ablated = await evaluateSide(m, ablatedModel, side, data, evalOpts);
  return {
    intervention: { heads: headLabels(opts.heads), mode, side, meanReference: fill ? MEAN_REFERENCE : null, fillSha256: fillSha256(fill) },
    ...compare(baseline, ablated),
  };
}

/** One evaluation with `ablated` embedding the side(s) it is for. */
export function evaluateSide(plain: Embedder, ablated: Embedder, side: AblationSide, data: BeirDataset, opts: EvaluateOptions): Promise<EvalResult> {
  if (side === 'query') return evaluate(plain, data, { ...opts, queryModel: ablated });
  if (side === 'passage') return evaluate(ablated, data, { ...opts, queryModel: plain });
  return evaluate(ablated, data, { ...opts, queryModel: ablated });
}

/** baseline, ablated and their differences (the two must cover the same queries in the same order). */
export function compare(baseline: EvalResult, ablated: EvalResult): Omit<AblationResult, 'intervention'> {
  const means = metricDelta(ablated.means, baseline.means);
  const scores: Record<string, number> = {};
  for (const [label, v] of Object.entries(ablated.scores)) scores[label] = v - baseline.scores[label];
  const perQueryDelta = ablated.perQuery.map((q, i) => {
    const b = baseline.perQuery[i];
    if (b?.queryId !== q.queryId) throw new EvalError('bad_option', `baseline and ablated runs differ in query ${i} (${b?.queryId} vs ${q.queryId})`);
    return { queryId: q.queryId, metrics: metricDelta(q.metrics, b.metrics) };
  });
  return { baseline, ablated, delta: { means, scores }, perQueryDelta };
}

export function checkModeSide(mode: string, side: string): void {
  if (mode !== 'zero' && mode !== 'mean') throw new EvalError('bad_option', `ablation mode must be zero or mean, got ${JSON.stringify(mode)}`);
  if (!(ABLATION_SIDES as readonly string[]).includes(side)) throw new EvalError('bad_option', `ablation side must be query, passage or both, got ${JSON.stringify(side)}`);
}
