/**
 * precomputeCorpus(): one worker's share of the corpus embedding cache, for evaluations spread over
 * many processes or machines (a Slurm job array, a Kubernetes Indexed Job). Cache shard s belongs to
 * worker s mod count; each worker embeds and saves only its own shards, then a final evaluate() on
 * the same cache directory finds them all and only embeds the queries.
 *
 * Safe on one shared directory (e.g. NFS): workers never write the same shard (and if two did, as
 * when a final run starts early, each writes a complete file under its own temp name and renames it
 * into place, so the last rename wins with identical contents); a worker killed midway leaves only
 * temp files, which no reader trusts (cache.ts).
 */
import { performance } from 'node:perf_hooks';
import { BeirDataset, loadBeir } from './beir';
import { CorpusEmbeddingCache } from './cache';
import { corpusInputs } from './e5_format';
import { Embedder } from './embedder';
import { EvalError } from './errors';
import { checkPositiveInt, corpusCacheKey, DEFAULT_SHARD_SIZE, embedChecked, planShards } from './evaluate';
import { makeProgress } from './progress';

export interface PrecomputeOptions {
  /** This worker (0-based) of `count`. */
  worker: { index: number; count: number };
  cacheDir: string;
  split?: string;
  /** Must equal the final evaluate()'s settings, or it will not find these shards. */
  shardSize?: number;
  batchSize?: number;
  maxLength?: number;
  docAsQuery?: boolean;
  progress?: boolean | 'auto';
  progressStream?: NodeJS.WritableStream;
  onWarning?: (message: string) => void;
}

export interface PrecomputeResult {
  cacheDir: string;
  /** Cache shards of the whole corpus. */
  shards: number;
  /** The shard indexes this worker owns. */
  owned: number[];
  reused: number;
  computed: number;
  /** Present but unusable, hence recomputed. */
  rejected: number;
  computedPassages: number;
  seconds: number;
}

export async function precomputeCorpus(model: Embedder, dataset: string | BeirDataset, opts: PrecomputeOptions): Promise<PrecomputeResult> {
  const t0 = performance.now();
  const { index, count } = opts.worker;
  checkPositiveInt('worker count', count);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) throw new EvalError('bad_option', `worker index must be in [0, ${count}), got ${index}`);
  const shardSize = checkPositiveInt('shardSize', opts.shardSize ?? DEFAULT_SHARD_SIZE);
  const data = typeof dataset === 'string' ? await loadBeir(dataset, { split: opts.split }) : dataset;
  const { corpus } = data;
  const inputs = corpusInputs(corpus, opts.docAsQuery ?? false);
  const cache = CorpusEmbeddingCache.open(opts.cacheDir, corpusCacheKey(model, corpus.ids, inputs, opts.maxLength, shardSize));
  const metas = planShards(corpus.ids, inputs.texts, shardSize);
  const owned = metas.map((_, s) => s).filter((s) => s % count === index);

  const result: PrecomputeResult = { cacheDir: cache.dir, shards: metas.length, owned, reused: 0, computed: 0, rejected: 0, computedPassages: 0, seconds: 0 };
  const todo = owned.filter((s) => {
    const status = cache.check(s, metas[s]);
    if (status === 'hit') result.reused++;
    if (status === 'invalid') {
      result.rejected++;
      const found = cache.load(s, metas[s]);
      opts.onWarning?.(`cache shard ${cache.shardPath(s)} is unusable and is recomputed: ${found.status === 'invalid' ? found.reason : 'it changed while being checked'}`);
    }
    return status !== 'hit';
  });
  const bar = makeProgress('corpus', opts.progress ?? 'auto', opts.progressStream);
  bar.start(todo.reduce((n, s) => n + metas[s].count, 0), 0);
  let dim: number | undefined;
  try {
    for (const s of todo) {
      const meta = metas[s];
      const done = result.computedPassages;
      const out = await embedChecked(model, inputs.texts.slice(meta.start, meta.start + meta.count), inputs.prefix, {
        batchSize: opts.batchSize, maxLength: opts.maxLength, onProgress: (d) => bar.update(done + d),
      }, dim);
      dim = out.dim;
      cache.save(s, meta, { data: out.data, dim: out.dim, nTruncated: out.nTruncated, nTokens: out.nTokens });
      result.computed++;
      result.computedPassages += meta.count;
    }
  } finally {
    bar.stop();
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
