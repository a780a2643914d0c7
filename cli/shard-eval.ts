/**
 * `e5 eval --shard I/N`: one worker of a scaled-out evaluation. It reads and checks the data set
 * like a full run (the cache key needs the whole corpus), embeds only its share of the corpus cache
 * shards into the cache, and prints one summary line; the final `e5 eval` without --shard on the
 * same cache finds every shard and reports.
 */
import type { Command } from 'commander';
import { backendInfo, EngineEmbedder, loadBeir, precomputeCorpus } from '../index';
import type { PrecomputeResult } from '../index';
import { BackendOptions, describeBackend, GeneralOptions, ModelOptions, modelLabel, openModel, Reporter, usageError } from './common';
import { resolveShard, shardLabel, ShardOptions, ShardSpec, ShardUsageError } from './shard';
import { WarningTally } from './warnings';

/** What a worker reads of `e5 eval`'s options (cli/commands/eval.ts EvalOptions has them all). */
export interface EvalShardOptions extends ModelOptions, BackendOptions, GeneralOptions, ShardOptions {
  data: string;
  split: string;
  batchSize: number;
  maxLength?: number;
  cache: string | false;
  docAsQuery?: boolean;
  format?: string;
  output?: string;
  shardSize: number;
}

/** The shard this eval run does (undefined: a full run); options a worker cannot honour are usage errors. */
export function evalShardCheck(o: EvalShardOptions, cmd: Command): ShardSpec | undefined {
  let shard: ShardSpec | undefined;
  try {
    shard = resolveShard(o);
  } catch (e) {
    if (e instanceof ShardUsageError) usageError(cmd, e.message);
    throw e;
  }
  if (!shard) return undefined;
  const why = `shard ${shardLabel(shard)} (${shard.source})`;
  if (o.cache === false) usageError(cmd, `${why} fills the corpus cache: --no-cache leaves it nothing to do`);
  if (o.output !== undefined || o.format !== undefined) {
    usageError(cmd, `${why} writes the corpus cache and one summary line; the final run without --shard reports (--output, --format)`);
  }
  return shard;
}

export async function runEvalShard(o: EvalShardOptions, shard: ShardSpec, cacheDir: string): Promise<void> {
  const r = Reporter.from(o);
  const dataset = await loadBeir(o.data, { split: o.split });
  dataset.warnings.forEach((w) => r.warn(w));
  const m = await openModel(o, { embeddingOnly: true });
  const tally = new WarningTally();
  let res: PrecomputeResult;
  try {
    const embedder = new EngineEmbedder(m, { onWarning: (w) => tally.add(w) });
    res = await precomputeCorpus(embedder, dataset, {
      worker: shard,
      cacheDir,
      shardSize: o.shardSize,
      batchSize: o.batchSize,
      maxLength: o.maxLength,
      docAsQuery: !!o.docAsQuery,
      progress: o.progress === 'on' ? true : o.progress === 'off' || o.quiet ? false : 'auto',
      progressStream: process.stderr,
      onWarning: (w) => r.warn(w),
    });
  } finally {
    m.dispose();
  }
  tally.messages().forEach((w) => r.warn(w));
  const passages = res.owned.reduce((n, s) => n + Math.min(o.shardSize, dataset.corpus.ids.length - s * o.shardSize), 0);
  process.stdout.write(`eval shard ${shardLabel(shard)}: ${res.owned.length} of ${res.shards} cache shards (${passages} of ${dataset.corpus.ids.length} passages of ${dataset.name}): `
    + `${res.computed} computed${res.rejected ? ` (${res.rejected} of them replacing unusable files)` : ''}, ${res.reused} reused, in ${res.seconds.toFixed(1)} s with ${modelLabel(m)} on ${describeBackend(backendInfo())} → ${res.cacheDir}\n`);
}
