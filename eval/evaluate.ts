/**
 * evaluate(): BEIR-style dense retrieval evaluation of an e5 embedder, as unilm/e5's
 * mteb_beir_eval.py runs it (queries 'query: ' + text; passages 'passage: ' + strip(title + ' ' + text);
 * exact cosine search; pytrec_eval metrics + BEIR's MRR; BEIR's ignore_identical_ids), with the
 * corpus embeddings cached in resumable shards.
 *
 *   1. queries: every query of queries.jsonl that has judgements in the split (others are counted);
 *   2. query embeddings (cheap, never cached);
 *   3. corpus, shard by shard: load from the cache or embed + save, then score against all queries;
 *   4. per-query metrics at each k, then their means.
 */
import { performance } from 'node:perf_hooks';
import { BeirDataset, loadBeir } from './beir';
import { CorpusCacheKey, CACHE_FORMAT, CorpusEmbeddingCache, hashTexts, LoadedShard, ShardMeta } from './cache';
import { corpusInputs } from './e5_format';
import type { EmbedCallResult, Embedder, EmbedPrefix } from './embedder';
import { EvalError } from './errors';
import { Hit, meanMetrics, METRIC_LABELS, METRIC_NAMES, MetricName, queryMetrics } from './metrics';
import { makeProgress, Progress } from './progress';
import { ExactTopK, idRanks, stackRows } from './search';

/** BEIR's EvaluateRetrieval default k_values (also MTEB's for retrieval). */
export const DEFAULT_K: readonly number[] = [1, 3, 5, 10, 100, 1000];
export const DEFAULT_SHARD_SIZE = 1024;
export const TIE_BREAK = 'score descending, then doc id descending (trec_eval comp_sim_docno)';

export interface CheckedEmbeddings {
  data: Float32Array; // [n, dim]
  dim: number;
  nTruncated: number;
  nTokens: number;
}

export interface EvaluateOptions {
  /** qrels/<split>.tsv (default 'test'). Ignored when a loaded dataset is passed, except as a check. */
  split?: string;
  /** Cutoffs (default BEIR's 1,3,5,10,100,1000). Positive integers; sorted, duplicates refused. */
  k?: number[];
  /** Rows per forward pass, passed to the embedder. */
  batchSize?: number;
  /** Token limit per input, passed to the embedder (e5's evaluation uses 512, the model's limit). */
  maxLength?: number;
  /** Where corpus embeddings are cached and resumed from; no cache when absent. */
  cacheDir?: string;
  /** Passages per cache shard (default 1024); part of the cache key. */
  shardSize?: number;
  /** Never return a document whose id equals the query id (BEIR's default, true). */
  ignoreIdenticalIds?: boolean;
  /** e5's Quora setting: embed documents as 'query: ' + text (no title). Default false. */
  docAsQuery?: boolean;
  /** Progress bars on stderr: true forces them, 'auto' (default) shows them only on a TTY. */
  progress?: boolean | 'auto';
  progressStream?: NodeJS.WritableStream;
  /** Called for each warning as it happens (they are also collected in the result). */
  onWarning?: (message: string) => void;
  /** Keep each query's ranked hits in `perQuery[].hits` (true: all max(k); a number: that many). */
  keepHits?: boolean | number;
  /**
   * What embeds the queries (default `model`, which embeds the corpus). The corpus cache is keyed by
   * `model` alone, so queries embedded otherwise (e.g. with heads removed) reuse a plain run's cache.
   */
  queryModel?: Embedder;
}

/** Several query embeddings of the same queries: one result per set, the corpus read once for all. */
export type QuerySets = (texts: string[], embedOpts: { batchSize?: number; maxLength?: number; onProgress?: (done: number, total: number) => void }) => Promise<CheckedEmbeddings[]>;

export interface QueryResult {
  queryId: string;
  /** Judgements ≥ 1 (including documents not in the corpus). */
  numRelevant: number;
  /** One value per `settings.k`. */
  metrics: Record<MetricName, number[]>;
  hits?: Hit[];
}

export interface EvalResult {
  dataset: { name: string; dir?: string; split: string; corpusSize: number; queriesInFile: number; judgements: number };
  model: { id: string; pooling: string | null };
  settings: {
    k: number[];
    ignoreIdenticalIds: boolean;
    docAsQuery: boolean;
    maxLength: number | null;
    batchSize: number | null;
    shardSize: number;
    scoreFunction: 'cosine';
    tieBreak: string;
  };
  /** Mean over evaluated queries, one value per `settings.k`. */
  means: Record<MetricName, number[]>;
  /** The same means under BEIR's labels: 'NDCG@10', 'MAP@10', 'Recall@10', 'P@10', 'MRR@10'. */
  scores: Record<string, number>;
  perQuery: QueryResult[];
  counts: {
    /** Queries with judgements in this split: the denominator of every mean. */
    queriesEvaluated: number;
    /** Queries of queries.jsonl without judgements in this split (BEIR drops them too). */
    queriesSkippedNoQrels: number;
    /** Evaluated queries whose judgements are all < 1 (they score 0, as in pytrec_eval). */
    queriesWithoutRelevant: number;
    /** Queries judged in qrels but absent from queries.jsonl (dropped). */
    qrelsQueriesWithoutText: number;
    /** Judgements naming documents absent from the corpus (kept, as pytrec_eval does). */
    judgementsUnknownDoc: number;
    /** Queries for which a document with the query's own id was excluded. */
    identicalIdsExcluded: number;
    passagesTruncated: number;
    queriesTruncated: number;
  };
  cache: { dir: string | null; shards: number; reused: number; computed: number; rejected: number };
  timing: { queryEmbedSeconds: number; corpusEmbedSeconds: number; searchSeconds: number; totalSeconds: number; passagesPerSecond: number | null };
  warnings: string[];
}

export async function evaluate(model: Embedder, dataset: string | BeirDataset, opts: EvaluateOptions = {}): Promise<EvalResult> {
  const queryModel = opts.queryModel ?? model;
  const [result] = await evaluateQuerySets(model, dataset, opts, async (texts, o) => [await embedChecked(queryModel, texts, 'query', o)]);
  return result;
}

/**
 * evaluate() for several embeddings of the same queries at once (a scan of interventions on the
 * query side): the corpus is read (or embedded) once and every set is searched in the same pass.
 * Each result equals evaluate() with that set's embeddings: a query's search does not depend on the
 * other queries searched beside it (eval/search.ts).
 */
export async function evaluateQuerySets(model: Embedder, dataset: string | BeirDataset, opts: EvaluateOptions, querySets: QuerySets): Promise<EvalResult[]> {
  const t0 = performance.now();
  const ks = checkKs(opts.k ?? [...DEFAULT_K]);
  const shardSize = checkPositiveInt('shardSize', opts.shardSize ?? DEFAULT_SHARD_SIZE);
  if (opts.batchSize !== undefined) checkPositiveInt('batchSize', opts.batchSize);
  if (opts.maxLength !== undefined) checkPositiveInt('maxLength', opts.maxLength);
  const ignoreIdenticalIds = opts.ignoreIdenticalIds ?? true;
  const docAsQuery = opts.docAsQuery ?? false;

  const data = typeof dataset === 'string' ? await loadBeir(dataset, { split: opts.split }) : dataset;
  if (typeof dataset !== 'string' && opts.split !== undefined && opts.split !== data.split) {
    throw new EvalError('bad_option', `split ${JSON.stringify(opts.split)} asked for, but the dataset was loaded with split ${JSON.stringify(data.split)}`);
  }
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  data.warnings.forEach(warn);

  // 1. Queries with judgements, in queries.jsonl order.
  const queryIds = [...data.queries.keys()].filter((q) => data.qrels.has(q));
  const skipped = data.queries.size - queryIds.length;
  const orphanQrels = [...data.qrels.keys()].filter((q) => !data.queries.has(q)).length; // only for hand-built datasets
  if (queryIds.length === 0) throw new EvalError('bad_option', `no query of ${data.name} has judgements in split ${JSON.stringify(data.split)}`);

  const embedOpts = { batchSize: opts.batchSize, maxLength: opts.maxLength };
  const progressOn = opts.progress ?? 'auto';

  // 2. Query embeddings.
  const tq = performance.now();
  const qBar = makeProgress('queries', progressOn, opts.progressStream);
  qBar.start(queryIds.length, 0);
  const qSets = await querySets(queryIds.map((q) => data.queries.get(q)!), { ...embedOpts, onProgress: (d) => qBar.update(d) });
  qBar.stop();
  const qOut = qSets[0];
  const dim = qOut.dim;
  if (qSets.some((s) => s.dim !== dim || s.data.length !== queryIds.length * dim)) {
    throw new EvalError('bad_embedding', `query embedding sets differ in shape (expected ${queryIds.length} × ${dim} each)`);
  }
  const S = qSets.length, nq = queryIds.length;
  const queryEmbedSeconds = (performance.now() - tq) / 1000;

  // 3. Corpus: cached or computed shard by shard, each scored as soon as it is available.
  const { corpus } = data;
  const inputs = corpusInputs(corpus, docAsQuery);
  const docIndex = new Map(corpus.ids.map((id, i) => [id, i]));
  const excludeDoc = new Int32Array(queryIds.map((q) => (ignoreIdenticalIds ? docIndex.get(q) ?? -1 : -1)));
  // The sets stacked: set s's query i is search row s*nq + i.
  const allQueries = S === 1 ? qOut.data : new Float32Array(S * nq * dim);
  if (S > 1) qSets.forEach((q, s) => allQueries.set(q.data, s * nq * dim));
  const allExclude = new Int32Array(S * nq);
  for (let s = 0; s < S; s++) allExclude.set(excludeDoc, s * nq);
  const search = new ExactTopK(allQueries, S * nq, dim, idRanks(corpus.ids), { k: ks[ks.length - 1], excludeDoc: allExclude });

  const key = corpusCacheKey(model, corpus.ids, inputs, opts.maxLength, shardSize);
  const cache = opts.cacheDir === undefined ? undefined : CorpusEmbeddingCache.open(opts.cacheDir, key);
  const shards = planShards(corpus.ids, inputs.texts, shardSize);
  const bar = makeProgress('corpus', progressOn, opts.progressStream);
  const stats = await scoreCorpus({ model, texts: inputs.texts, prefix: inputs.prefix, embedOpts, shards, cache, search, dim, bar, warn });

  // 4. Metrics.
  const ts = performance.now();
  const keep = opts.keepHits === true ? ks[ks.length - 1] : typeof opts.keepHits === 'number' ? opts.keepHits : 0;
  const hits = search.results();
  const perSet = qSets.map((_, s) => queryResults(hits.slice(s * nq, (s + 1) * nq), queryIds, corpus.ids, data.qrels, ks, keep));
  stats.searchSeconds += (performance.now() - ts) / 1000;

  const totalSeconds = (performance.now() - t0) / 1000;
  return perSet.map((perQuery, s) => {
    const means = meanMetrics(perQuery.map((q) => ({ ...q.metrics, numRelevant: q.numRelevant })), ks.length);
    return {
      dataset: {
        name: data.name, dir: data.dir, split: data.split, corpusSize: corpus.ids.length, queriesInFile: data.queries.size,
        judgements: [...data.qrels.values()].reduce((n, r) => n + r.size, 0),
      },
      model: { id: model.id, pooling: model.pooling ?? null },
      settings: {
        k: ks, ignoreIdenticalIds, docAsQuery, maxLength: opts.maxLength ?? null, batchSize: opts.batchSize ?? null,
        shardSize, scoreFunction: 'cosine', tieBreak: TIE_BREAK,
      },
      means,
      scores: beirScores(means, ks),
      perQuery,
      counts: {
        queriesEvaluated: queryIds.length,
        queriesSkippedNoQrels: skipped,
        queriesWithoutRelevant: perQuery.filter((q) => q.numRelevant === 0).length,
        qrelsQueriesWithoutText: data.stats.qrelsQueriesWithoutText + orphanQrels,
        judgementsUnknownDoc: data.stats.judgementsUnknownDoc,
        identicalIdsExcluded: Array.from(excludeDoc).filter((d) => d >= 0).length,
        passagesTruncated: stats.truncated,
        queriesTruncated: qSets[s].nTruncated,
      },
      cache: { dir: cache?.dir ?? null, shards: shards.length, reused: stats.reused, computed: stats.computed, rejected: stats.rejected },
      timing: {
        queryEmbedSeconds, corpusEmbedSeconds: stats.embedSeconds, searchSeconds: stats.searchSeconds, totalSeconds,
        passagesPerSecond: stats.computedPassages > 0 && stats.embedSeconds > 0 ? stats.computedPassages / stats.embedSeconds : null,
      },
      warnings: [...warnings],
    };
  });
}

/** BEIR's flat labels: NDCG@k, MAP@k, Recall@k, P@k, MRR@k. */
export function beirScores(means: Record<MetricName, number[]>, ks: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of METRIC_NAMES) ks.forEach((k, i) => (out[`${METRIC_LABELS[m]}@${k}`] = means[m][i]));
  return out;
}

/** Each query's metrics at every cutoff (and its top `keep` hits), from the finished search. */
function queryResults(
  ranked: ReturnType<ExactTopK['results']>,
  queryIds: readonly string[],
  docIds: readonly string[],
  qrels: BeirDataset['qrels'],
  ks: readonly number[],
  keep: number,
): QueryResult[] {
  return ranked.map((hits, qi) => {
    const queryId = queryIds[qi];
    const { numRelevant, ...metrics } = queryMetrics(hits.map((h) => docIds[h.doc]), qrels.get(queryId)!, ks);
    const r: QueryResult = { queryId, numRelevant, metrics };
    if (keep > 0) r.hits = hits.slice(0, keep).map((h) => ({ id: docIds[h.doc], score: h.score }));
    return r;
  });
}

/** Everything the corpus vectors depend on (see cache.ts): the cache directory's key. */
export function corpusCacheKey(
  model: Embedder,
  ids: readonly string[],
  inputs: { prefix: 'query' | 'passage'; texts: string[] },
  maxLength: number | undefined,
  shardSize: number,
): CorpusCacheKey {
  return {
    format: CACHE_FORMAT, embedder: model.id, engine: model.engine ?? null, pooling: model.pooling ?? null, prefix: inputs.prefix,
    maxLength: maxLength ?? null, shardSize, nDocs: ids.length, corpusSha256: hashTexts(ids, inputs.texts),
  };
}

/** Consecutive runs of `shardSize` passages, each with the hash of its (id, text) pairs. */
export function planShards(ids: readonly string[], texts: readonly string[], shardSize: number): ShardMeta[] {
  const metas: ShardMeta[] = [];
  for (let start = 0; start < ids.length; start += shardSize) {
    const count = Math.min(shardSize, ids.length - start);
    metas.push({ start, count, textsSha256: hashTexts(ids, texts, start, start + count) });
  }
  return metas;
}

interface CorpusStats {
  reused: number;
  computed: number;
  rejected: number;
  truncated: number;
  computedPassages: number;
  embedSeconds: number;
  searchSeconds: number;
}

/**
 * Feeds every shard to the search: from the cache when it holds a valid copy, else embedded (and
 * saved) now. One shard in memory at a time. The progress bar starts at the passages already cached
 * so its rate and ETA only count work done in this run.
 */
async function scoreCorpus(args: {
  model: Embedder;
  texts: string[];
  prefix: EmbedPrefix;
  embedOpts: { batchSize?: number; maxLength?: number };
  shards: ShardMeta[];
  cache: CorpusEmbeddingCache | undefined;
  search: ExactTopK;
  dim: number;
  bar: Progress;
  warn: (m: string) => void;
}): Promise<CorpusStats> {
  const { model, texts, prefix, embedOpts, shards, cache, search, dim, bar, warn } = args;
  const stats: CorpusStats = { reused: 0, computed: 0, rejected: 0, truncated: 0, computedPassages: 0, embedSeconds: 0, searchSeconds: 0 };
  const cachedPassages = shards.reduce((n, m, s) => n + (cache?.check(s, m) === 'hit' ? m.count : 0), 0);
  bar.start(texts.length, cachedPassages);
  try {
    for (const [s, meta] of shards.entries()) {
      let shard: LoadedShard;
      const found = cache?.load(s, meta);
      if (found?.status === 'hit' && found.shard.dim === dim) {
        shard = found.shard;
        stats.reused++;
      } else {
        if (found?.status === 'invalid' || found?.status === 'hit') {
          stats.rejected++;
          const why = found.status === 'invalid' ? found.reason : `dimension ${found.shard.dim}, queries have ${dim}`;
          warn(`cache shard ${cache!.shardPath(s)} is unusable and is recomputed: ${why}`);
        }
        const te = performance.now();
        const done = cachedPassages + stats.computedPassages;
        const out = await embedChecked(model, texts.slice(meta.start, meta.start + meta.count), prefix, {
          ...embedOpts, onProgress: (d) => bar.update(done + d),
        }, dim);
        shard = { data: out.data, dim, nTruncated: out.nTruncated, nTokens: out.nTokens };
        cache?.save(s, meta, shard);
        stats.embedSeconds += (performance.now() - te) / 1000;
        stats.computed++;
        stats.computedPassages += meta.count;
        bar.update(cachedPassages + stats.computedPassages);
      }
      stats.truncated += shard.nTruncated;
      const ts = performance.now();
      search.add({ start: meta.start, count: meta.count, dim, data: shard.data });
      stats.searchSeconds += (performance.now() - ts) / 1000;
    }
  } finally {
    bar.stop();
  }
  return stats;
}

/** Calls the embedder and checks what it returns: count, one dimension, finite values. */
export async function embedChecked(
  model: Embedder,
  texts: string[],
  prefix: EmbedPrefix,
  opts: { batchSize?: number; maxLength?: number; onProgress?: (done: number, total: number) => void },
  dim?: number,
): Promise<CheckedEmbeddings> {
  const out = await model.embed(texts, { prefix, ...opts });
  return checkEmbeddings(model.id, texts.length, out, prefix, dim);
}

/** What an embedder returned for `n` texts, checked (count, one dimension, finite values) and stacked. */
export function checkEmbeddings(modelId: string, n: number, out: EmbedCallResult, prefix: EmbedPrefix, dim?: number): CheckedEmbeddings {
  if (out.embeddings.length !== n) throw new EvalError('bad_embedding', `embedder ${modelId} returned ${out.embeddings.length} embeddings for ${n} texts`);
  if (out.nTokens.length !== n || out.truncated.length !== n) {
    throw new EvalError('bad_embedding', `embedder ${modelId} returned ${out.nTokens.length} token counts and ${out.truncated.length} truncation flags for ${n} texts`);
  }
  const d = dim ?? out.embeddings[0]?.length ?? 0;
  if (d === 0) throw new EvalError('bad_embedding', `embedder ${modelId} returned empty embeddings`);
  const data = stackRows(out.embeddings, d);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new EvalError('bad_embedding', `embedder ${modelId} returned a non-finite value (${data[i]}) in embedding ${Math.floor(i / d)} (${prefix} text)`);
    }
  }
  return { data, dim: d, nTruncated: out.truncated.filter(Boolean).length, nTokens: out.nTokens.reduce((a, b) => a + b, 0) };
}

/** Parses a CLI cutoff list such as "10,100" (or "1, 3, 5") into validated, sorted cutoffs. */
export function parseKList(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const ks = parts.map((s) => (/^[0-9]+$/.test(s) ? Number(s) : NaN));
  const bad = parts.find((s, i) => !Number.isSafeInteger(ks[i]) || ks[i] < 1);
  if (bad !== undefined) throw new EvalError('bad_option', `--k ${JSON.stringify(text)}: ${JSON.stringify(bad)} is not a positive integer`);
  return checkKs(ks);
}

function checkKs(ks: number[]): number[] {
  if (!Array.isArray(ks) || ks.length === 0) throw new EvalError('bad_option', 'k must list at least one cutoff');
  for (const k of ks) checkPositiveInt('k', k);
  const sorted = [...ks].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new EvalError('bad_option', `k lists ${sorted[i]} twice (trec_eval: cutoffs must be positive without duplicates)`);
  }
  return sorted;
}

export function checkPositiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new EvalError('bad_option', `${name} must be a positive integer, got ${v}`);
  return v;
}
