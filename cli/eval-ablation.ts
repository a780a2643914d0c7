/**
 * `e5 eval --ablate` and `e5 eval --scan`: head ablation measured in retrieval metrics (eval/ablation.ts,
 * eval/scan.ts). Option checks that need no model are usage errors before the model loads; heads
 * outside the model and a model without heads are usage errors (exit 2) once it is loaded, as
 * `e5 inspect --ablate` does. A scan with --shard I/N (or the scheduler's variables) computes its share
 * of the cells into the cache and prints one line; the final run without --shard merges the grid.
 */
import type { Command } from 'commander';
import {
  backendInfo, EngineEmbedder, evaluateAblation, formatAblationTable, formatScanTable, InspectError, loadBeir, parseHeadList,
  parseScanMetric, scanAblations,
} from '../index';
import type { AblationResult, AblationSide, EmbeddingModel, EvalError, ScanKind, ScanMetric, ScanResult } from '../index';
import { describeBackend, modelLabel, openModel, Reporter, usageError } from './common';
import type { EvalShardOptions } from './shard-eval';
import { checkWritableFolder, outputConflict, removeStaleTempFiles } from './output';
import { shardLabel, ShardSpec } from './shard';
import { WarningTally } from './warnings';

/** What the ablation runs read of `e5 eval`'s options (cli/commands/eval.ts EvalOptions has them all). */
export interface EvalOptions extends EvalShardOptions, AblationCliOptions {
  k: number[];
  saveRun?: string;
  force?: boolean;
}

export interface AblationCliOptions {
  ablate?: string;
  ablateMode: 'zero' | 'mean';
  ablateSide: AblationSide;
  scan?: ScanKind;
  metric: string;
  html?: string;
  cellsPerPass?: number;
}

/** Usage errors of the ablation options that the model is not needed for (before the data and model load). */
export function checkAblationUsage(o: EvalOptions, cmd: Command, shard: ShardSpec | undefined, r: Reporter): ScanMetric | undefined {
  const ablating = o.ablate !== undefined || o.scan !== undefined;
  if (!ablating) {
    for (const [flag, set] of [['--ablate-mode', o.ablateMode !== 'zero'], ['--ablate-side', o.ablateSide !== 'query'], ['--html', o.html !== undefined], ['--metric', o.metric !== 'ndcg@10']] as const) {
      if (set) usageError(cmd, `${flag} goes with --ablate or --scan`);
    }
    return undefined;
  }
  if (o.ablate !== undefined && o.scan !== undefined) usageError(cmd, '--ablate and --scan exclude each other: --scan ablates every head (or layer) in turn');
  if (o.saveRun !== undefined) usageError(cmd, `--save-run writes the plain run's ranking; it does not go with ${o.scan ? '--scan' : '--ablate'}`);
  if (o.html !== undefined && o.scan === undefined) usageError(cmd, '--html draws the heat grid of a --scan');
  if (shard && o.scan === undefined) usageError(cmd, `shard ${shardLabel(shard)} (${shard.source}) with --ablate: shards split the corpus cache (without --ablate) or the cells of a --scan`);
  if (shard && o.html !== undefined) usageError(cmd, `shard ${shardLabel(shard)} (${shard.source}) computes cells into the cache; the final run without --shard writes --html`);
  let metric: ScanMetric;
  try {
    metric = parseScanMetric(o.metric);
  } catch (e) {
    usageError(cmd, `--metric: ${(e as EvalError).message.replace(/ \[bad_option\]$/, '')}`);
  }
  if (o.scan !== undefined && !o.k.includes(metric.k)) usageError(cmd, `--metric ${o.metric}: ${metric.k} is not one of --k (${o.k.join(',')})`);
  if (o.html) {
    const conflict = outputConflict(o.html, !!o.force);
    if (conflict) usageError(cmd, conflict.replace('--output', '--html'));
    checkWritableFolder(o.html);
    removeStaleTempFiles(o.html).forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  }
  if (o.ablate !== undefined) {
    try {
      parseHeadList(o.ablate);
    } catch (e) {
      usageError(cmd, `--ablate ${o.ablate}: ${(e as Error).message}`);
    }
  }
  return metric;
}

/** The model's own checks: heads inside it, heads to remove at all. */
function checkModelHeads(o: EvalOptions, cmd: Command, m: EmbeddingModel): void {
  const { numHiddenLayers: L, numAttentionHeads: H } = m.config;
  if (!(L > 0 && H > 0)) usageError(cmd, `${o.scan ? `--scan ${o.scan}` : '--ablate'}: the model ${modelLabel(m)} has no attention heads to ablate (${L} layers of ${H} heads)`);
  if (o.ablate !== undefined) {
    try {
      parseHeadList(o.ablate, m.config);
    } catch (e) {
      if (e instanceof InspectError) usageError(cmd, `--ablate ${o.ablate}: ${e.message}`);
      throw e;
    }
  }
}

export interface AblationRun {
  ablation?: AblationResult;
  scan?: ScanResult;
  model: EmbeddingModel;
  embedder: EngineEmbedder;
}

/** Loads the data set and model and runs the ablation or the scan (a share of it for a shard). */
export async function runAblation(o: EvalOptions, cmd: Command, r: Reporter, cacheDir: string | undefined, metric: ScanMetric, shard?: ShardSpec): Promise<AblationRun> {
  const dataset = await loadBeir(o.data, { split: o.split });
  if (shard) dataset.warnings.forEach((w) => r.warn(w));
  const m = await openModel(o, { embeddingOnly: true });
  if (o.maxLength !== undefined && o.maxLength > m.config.maxPositionEmbeddings) {
    usageError(cmd, `--max-length ${o.maxLength} exceeds the model's ${m.config.maxPositionEmbeddings} positions`);
  }
  checkModelHeads(o, cmd, m);
  const tally = new WarningTally();
  const embedder = new EngineEmbedder(m, { onWarning: (w) => tally.add(w) });
  const common = {
    k: o.k, batchSize: o.batchSize, maxLength: o.maxLength, cacheDir, shardSize: o.shardSize, docAsQuery: !!o.docAsQuery,
    progress: o.progress === 'on' ? true : o.progress === 'off' || o.quiet ? false : 'auto' as const,
    progressStream: process.stderr,
    onWarning: (w: string) => r.warn(w),
  };
  try {
    if (o.scan === undefined) {
      const ablation = await evaluateAblation(embedder, dataset, { ...common, heads: parseHeadList(o.ablate!, m.config), mode: o.ablateMode, side: o.ablateSide });
      return { ablation, model: m, embedder };
    }
    const scan = await scanAblations(embedder, dataset, {
      ...common, scan: o.scan, mode: o.ablateMode, side: o.ablateSide, metric, cellsPerPass: o.cellsPerPass,
      worker: shard ? { index: shard.index, count: shard.count } : undefined,
    });
    return { scan, model: m, embedder };
  } finally {
    m.dispose();
    tally.messages().forEach((w) => r.warn(w));
  }
}

/** The JSON of an --ablate run: the intervention, both runs (per-query metrics) and the differences. */
export function ablationJson(a: AblationResult): unknown {
  const drop = (e: AblationResult['baseline']) => ({ ...e, perQuery: e.perQuery.map(({ hits: _, ...q }) => q) });
  return { intervention: a.intervention, delta: a.delta, perQueryDelta: a.perQueryDelta, baseline: drop(a.baseline), ablated: drop(a.ablated) };
}

/** The JSON of a scan: every cell's means, differences and per-query difference of the metric (not every per-query metric). */
export function scanJson(s: ScanResult): unknown {
  const { baseline, cells, ...rest } = s;
  return {
    ...rest,
    baseline: { ...baseline, perQuery: baseline.perQuery.map(({ hits: _, ...q }) => q) },
    cells: cells.map(({ perQuery: _, heads, ...c }) => ({ ...c, heads: heads.map((h) => `${h.layer}.${h.head}`) })),
  };
}

export function ablationTable(run: AblationRun, withWarnings: boolean): string {
  if (run.ablation) {
    const a = run.ablation;
    return formatAblationTable(withWarnings ? a : { ...a, ablated: { ...a.ablated, warnings: [] } });
  }
  const s = run.scan!;
  return formatScanTable(withWarnings ? s : { ...s, warnings: [] });
}

/** The one line a scan worker prints. */
export function scanShardLine(s: ScanResult, shard: ShardSpec, m: EmbeddingModel): string {
  return `eval scan shard ${shardLabel(shard)}: ${s.cells.length} of ${s.shape.layers * (s.scan === 'heads' ? s.shape.heads : 1)} ${s.scan === 'heads' ? 'head' : 'layer'} cells `
    + `(${s.mode}, ${s.side === 'both' ? 'both sides' : `${s.side} side`}): ${s.cache.computed} computed${s.cache.rejected ? ` (${s.cache.rejected} of them replacing unusable files)` : ''}, ${s.cache.reused} reused, `
    + `in ${s.timing.totalSeconds.toFixed(1)} s with ${modelLabel(m)} on ${describeBackend(backendInfo())} → ${s.cache.dir}\n`;
}
