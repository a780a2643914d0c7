/**
 * `e5 eval`: BEIR retrieval evaluation (eval/) of a model with this engine — the numbers to hold
 * against the E5 paper. The data set is read and checked before the model is loaded, so a broken
 * file fails in a second (exit 1, naming file:line), not after a 1.34 GB load. Corpus embeddings
 * go to a resumable cache (default $E5_CACHE/eval, else ~/.cache/e5-tfjs/eval): run the same
 * command again after an interruption and finished shards are reused.
 */
import * as os from 'os';
import * as path from 'path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backendInfo, renderScanHtml } from '../../index';
import type { EmbeddingModel } from '../../index';
import {
  DEFAULT_K, DEFAULT_SHARD_SIZE, EngineEmbedder, evaluate, EvalError, formatEvalJson, formatEvalTable, formatTrecRun, loadBeir, parseKList,
} from '../../index';
import type { EvalResult, ScanMetric } from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, describeBackend, GeneralOptions, intArg,
  ModelOptions, modelLabel, openModel, Reporter, usageError,
} from '../common';
import { toolVersion } from '../format';
import { checkWritableFolder, isStdout, outputConflict, removeStaleTempFiles, textSink } from '../output';
import { addShardOptions, ShardOptions, ShardSpec } from '../shard';
import { parseAblate } from './inspect';
import { evalShardCheck, runEvalShard } from '../shard-eval';
import { ablationJson, AblationCliOptions, ablationTable, checkAblationUsage, runAblation, scanJson, scanShardLine } from '../eval-ablation';
import { WarningTally } from '../warnings';

type EvalFormat = 'table' | 'json';

export interface EvalOptions extends ModelOptions, BackendOptions, GeneralOptions, ShardOptions, AblationCliOptions {
  data: string;
  split: string;
  k: number[];
  batchSize: number;
  maxLength?: number;
  /** A folder, or false for --no-cache. */
  cache: string | false;
  docAsQuery?: boolean;
  format?: EvalFormat;
  output?: string;
  force?: boolean;
  saveRun?: string;
  shardSize: number;
}

/** $E5_CACHE/eval, else $XDG_CACHE_HOME/e5-tfjs/eval (as the Hugging Face cache), else ~/.cache/e5-tfjs/eval. */
export function defaultEvalCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.E5_CACHE) return path.join(env.E5_CACHE, 'eval');
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'e5-tfjs', 'eval');
}

/** --k parser: eval's own check, reported by commander as a bad option value (exit 2). */
function kListArg(value: string): number[] {
  try {
    return parseKList(value);
  } catch (e) {
    if (e instanceof EvalError) throw new InvalidArgumentError(e.message.replace(/ \[bad_option\]$/, ''));
    throw e;
  }
}

export function register(program: Command): Command {
  const cmd = program.command('eval')
    .description('BEIR retrieval evaluation: nDCG/MAP/Recall/P/MRR@k of exact cosine search, as the e5 authors run it')
    .requiredOption('-d, --data <dir>', 'data set in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv')
    .option('--split <name>', 'qrels/<split>.tsv to evaluate', 'test')
    .addOption(new Option('--k <list>', "cutoffs, comma-separated, e.g. 10,100 (the default is BEIR's list)").argParser(kListArg).default([...DEFAULT_K], DEFAULT_K.join(',')))
    .addOption(new Option('--batch-size <n>', 'rows per forward pass').argParser(intArg(1)).default(32))
    .addOption(new Option('--max-length <n>', "truncate each query/passage to N tokens incl. [CLS] and [SEP] (default: the model's limit, 512, as e5's evaluation)").argParser(intArg(2)))
    .option('--cache <dir>', `corpus embedding cache, resumed after an interruption (default: ${defaultEvalCacheDir()})`)
    .option('--no-cache', 'do not read or write the corpus embedding cache')
    .option('--doc-as-query', "embed documents as 'query: ' + text (e5's setting for Quora)")
    .addOption(new Option('-f, --format <fmt>', 'report format (default: json for an --output ending in .json, else table)').choices(['table', 'json']))
    .option('-o, --output <file>', 'write the report to FILE (via a temp file, renamed when complete) instead of stdout')
    .option('--save-run <file>', 'also write the ranking (top max(k) per query) as a TREC run file, for trec_eval, pytrec_eval or ranx')
    .option('--force', 'replace an existing --output or --save-run file')
    .addOption(new Option('--shard-size <n>', 'passages per corpus cache shard (part of the cache key: keep it the same in every --shard task and the final run)').argParser(intArg(1)).default(DEFAULT_SHARD_SIZE))
    .addOption(new Option('--ablate <heads>', 'also evaluate with attention heads LAYER.HEAD,... (e.g. 3.5,0.1) ablated at attn.hook_z, as e5 inspect --ablate; reports both runs and the difference').argParser(parseAblate))
    .addOption(new Option('--ablate-mode <mode>', "zero: a removed head's output is 0; mean: its mean over the evaluated queries' real tokens").choices(['zero', 'mean']).default('zero'))
    .addOption(new Option('--ablate-side <side>', 'where heads are removed: query (reuses the plain corpus cache), passage or both (the corpus is embedded again, cached under the intervention)').choices(['query', 'passage', 'both']).default('query'))
    .addOption(new Option('--scan <what>', "ablate every head (heads: L×H cells) or every layer's heads (layers: L cells) in turn; a resumable, shardable grid").choices(['heads', 'layers']))
    .option('--metric <m@k>', 'the metric of the --scan grid and its table (ndcg, map, recall, p, mrr; k one of --k)', 'ndcg@10')
    .option('--html <file>', 'write the --scan grid as a self-contained HTML heat grid')
    .addOption(new Option('--cells-per-pass <n>', 'query-side scan: cells embedded and searched per pass over the corpus').argParser(intArg(1)).hideHelp());
  addShardOptions(cmd);
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
The data set is checked before the model loads; a bad line fails with file:line (exit 1).
Queries are embedded as 'query: ' + text, passages as 'passage: ' + strip(title + ' ' + text)
(unilm/e5 mteb_beir_eval.py); a document whose id equals the query's is never returned (BEIR).
Corpus embeddings are cached in shards of ${DEFAULT_SHARD_SIZE} passages keyed by model, weights
fingerprint, settings and corpus: interrupt a run (Ctrl-C, crash) and run it again to resume.

Scale-out: with --shard I/N (or inside a Slurm job array / Kubernetes Indexed Job) this process
only embeds its share of the corpus cache shards (shard s goes to worker s mod N) into the cache and
prints one summary line; a final run without --shard on the same --cache reuses them and reports.
Every task and the final run need the same model, --shard-size, --max-length, --doc-as-query and
--backend (and environment: E5_SHARD_COUNT), or they fill different caches (deploy/README.md).

Ablation: --ablate 3.5,0.1 evaluates twice (plain, and with those heads removed on --ablate-side)
and reports both and the difference (per query in JSON). --scan heads|layers removes each head (or
each layer's heads) in turn: a table of the largest effects on --metric, the grid in JSON and --html.
Mean ablation replaces a head's output by its mean over the evaluated queries ('query: ' + text).
Each scan cell is cached under --cache (keyed by model, intervention, settings and data): a killed
scan resumes; with --shard I/N each worker computes the cells c with c mod N = I, and the final run
without --shard reuses them and reports the whole grid.

Output: a table of the means (BEIR rounds to 5 decimals) with counts, cache use and timing;
json: the full result, with per-query metrics and the run environment ("run").

Examples:
  $ e5 eval --model intfloat/e5-large-unsupervised --data ./scifact --split test --k 10,100
  $ e5 eval --model ./my-e5-folder --data ./nfcorpus --k 10 --batch-size 16 --output nfcorpus.json
  $ e5 eval --model ./my-e5-folder --data ./scifact --k 10,100 --save-run scifact.run && trec_eval -m ndcg_cut.10 scifact/qrels/test.trec scifact.run
  $ e5 eval --model ./my-e5-folder --data ./scifact --k 10 --ablate 3.5,0.1 --ablate-mode mean
  $ e5 eval --model ./my-e5-folder --data ./scifact --k 10,100 --scan heads --metric ndcg@10 --html heads.html`);
  return cmd.action((o: EvalOptions, c: Command) => runEval(o, c));
}

function resolveFormat(o: EvalOptions): EvalFormat {
  return o.format ?? (o.output && path.extname(o.output).toLowerCase() === '.json' ? 'json' : 'table');
}

/** Where and on what the numbers were computed, beside the library's result in JSON. */
function runInfo(m: EmbeddingModel, embedder: EngineEmbedder) {
  return {
    tool: toolVersion(),
    backend: backendInfo(),
    model: modelLabel(m),
    model_dir: m.info.dir,
    revision: m.info.revision ?? null,
    commit: m.info.commit ?? null,
    dtypes: m.info.plan.dtypes,
    parameters: m.info.plan.parameterCount,
    max_length: m.maxLength,
    fingerprint: embedder.fingerprint,
  };
}

async function runEval(o: EvalOptions, cmd: Command): Promise<void> {
  const shard = evalShardCheck(o, cmd);
  const metric = checkAblationUsage(o, cmd, shard, Reporter.from(o));
  if (shard && metric) return runScanShard(o, cmd, shard, metric);
  if (shard) return runEvalShard(o, shard, path.resolve(o.cache || defaultEvalCacheDir()));
  const r = Reporter.from(o);
  if (o.output !== undefined && isStdout(o.output)) o.output = undefined; // '-', /dev/stdout: stdout
  const format = resolveFormat(o);
  if (o.output) {
    const conflict = outputConflict(o.output, !!o.force);
    if (conflict) usageError(cmd, conflict);
    checkWritableFolder(o.output);
    removeStaleTempFiles(o.output).forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  }
  if (o.saveRun) {
    const conflict = outputConflict(o.saveRun, !!o.force);
    if (conflict) usageError(cmd, conflict.replace('--output', '--save-run'));
    checkWritableFolder(o.saveRun);
    removeStaleTempFiles(o.saveRun).forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  }
  const cacheDir = o.cache === false ? undefined : path.resolve(o.cache ?? defaultEvalCacheDir());

  const t0 = performance.now();
  if (metric) return runEvalAblation(o, cmd, r, cacheDir, metric, format, t0);
  const dataset = await loadBeir(o.data, { split: o.split });
  const m = await openModel(o, { embeddingOnly: true });
  if (o.maxLength !== undefined && o.maxLength > m.config.maxPositionEmbeddings) {
    usageError(cmd, `--max-length ${o.maxLength} exceeds the model's ${m.config.maxPositionEmbeddings} positions`);
  }
  const tally = new WarningTally();
  const embedder = new EngineEmbedder(m, { onWarning: (w) => tally.add(w) });
  let result: EvalResult;
  try {
    result = await evaluate(embedder, dataset, {
      k: o.k,
      batchSize: o.batchSize,
      maxLength: o.maxLength,
      cacheDir,
      shardSize: o.shardSize,
      docAsQuery: !!o.docAsQuery,
      // -q also silences the automatic bar, as it does the download bar; --progress on wins.
      progress: o.progress === 'on' ? true : o.progress === 'off' || o.quiet ? false : 'auto',
      progressStream: process.stderr,
      onWarning: (w) => r.warn(w),
      keepHits: !!o.saveRun,
    });
  } finally {
    m.dispose();
  }
  tally.messages().forEach((w) => r.warn(w));

  // Warnings went to stderr as they happened; a report file keeps them too.
  const withRun = { ...result, perQuery: result.perQuery.map(({ hits: _, ...q }) => q), run: runInfo(m, embedder) };
  const text = format === 'json'
    ? `${formatEvalJson(withRun)}\n`
    : `${formatEvalTable(o.output ? result : { ...result, warnings: [] })}\n`;
  await writeText(o.output, text, !!o.force);
  if (o.saveRun) await writeText(o.saveRun, formatTrecRun(result, modelLabel(m).replace(/\s+/g, '_')), !!o.force);
  const seconds = (performance.now() - t0) / 1000;
  const { cache } = result;
  const cacheNote = cache.dir ? ` (cache ${cache.reused}/${cache.shards} shards reused)` : '';
  const files = [o.output, o.saveRun].filter(Boolean).join(', ');
  r.note(`evaluated ${result.counts.queriesEvaluated} queries against ${result.dataset.corpusSize} passages with ${modelLabel(m)} on ${describeBackend(backendInfo())} in ${seconds.toFixed(1)} s${cacheNote}${files ? ` → ${files}` : ''}`);
}

/** --ablate / --scan without --shard: the report in the chosen format, and the --html grid. */
async function runEvalAblation(o: EvalOptions, cmd: Command, r: Reporter, cacheDir: string | undefined, metric: ScanMetric, format: EvalFormat, t0: number): Promise<void> {
  const run = await runAblation(o, cmd, r, cacheDir, metric);
  const info = runInfo(run.model, run.embedder);
  const text = format === 'json'
    ? `${JSON.stringify({ ...(run.ablation ? ablationJson(run.ablation) : scanJson(run.scan!)) as object, run: info }, null, 2)}\n`
    : `${ablationTable(run, !!o.output)}\n`;
  await writeText(o.output, text, !!o.force);
  if (run.scan && o.html) await writeText(o.html, renderScanHtml(run.scan), !!o.force);
  const seconds = (performance.now() - t0) / 1000;
  const base = run.ablation?.baseline ?? run.scan!.baseline;
  const what = run.ablation ? `heads ${run.ablation.intervention.heads.join(',')} ablated` : `${run.scan!.cells.length} ${o.scan === 'heads' ? 'head' : 'layer'} cells (cache: ${run.scan!.cache.reused} reused, ${run.scan!.cache.computed} computed)`;
  const files = [o.output, o.html].filter(Boolean).join(', ');
  r.note(`evaluated ${base.counts.queriesEvaluated} queries against ${base.dataset.corpusSize} passages, ${what} (${o.ablateMode}, ${o.ablateSide === 'both' ? 'both sides' : `${o.ablateSide} side`}), with ${modelLabel(run.model)} on ${describeBackend(backendInfo())} in ${seconds.toFixed(1)} s${files ? ` → ${files}` : ''}`);
}

/** A scan worker: its cells into the cache, one line on stdout. */
async function runScanShard(o: EvalOptions, cmd: Command, shard: ShardSpec, metric: ScanMetric): Promise<void> {
  const r = Reporter.from(o);
  const run = await runAblation(o, cmd, r, path.resolve(o.cache || defaultEvalCacheDir()), metric, shard);
  process.stdout.write(scanShardLine(run.scan!, shard, run.model));
}

/** `text` to stdout (no file) or written whole to `file` (temp file, then put in place). */
async function writeText(file: string | undefined, text: string, replace: boolean): Promise<void> {
  const sink = textSink(file, { replace });
  try {
    await sink.write(text);
    await sink.commit();
  } catch (e) {
    sink.abort();
    throw e;
  }
}
