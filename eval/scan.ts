/**
 * Ablation scans: every head (L×H cells) or every whole layer's heads (L cells) removed in turn, each
 * cell a full evaluation (eval/ablation.ts semantics), collected into a grid of one metric and its
 * difference from the plain run.
 *
 * Query side: the corpus is read once per pass (from the corpus cache the plain run fills) and the
 * queries of many cells are embedded together (HeadEmbedder.embedMasked: rows = cells × queries of a
 * batch, each row with its own head mask) and searched in the same pass (evaluateQuerySets). A cell
 * equals evaluateAblation() with its heads: a query's embedding has the same batch-mates and padding
 * whatever the number of cells beside it, and its search does not depend on the other rows.
 * Passage / both: each cell embeds the corpus under its intervention (cached under its own key).
 *
 * Resumable and shardable like the corpus cache (eval/cache.ts): each finished cell is a file
 *
 *   <cacheDir>/scan-<sha256(key) first 32 hex>/key.json            the key, human-readable
 *   <cacheDir>/scan-<...>/cell-<label>.json                          the cell's per-query metrics
 *
 * written whole (temp file + rename), carrying the key hash, its label and the sha256 of its result,
 * all re-checked on reuse (a cell that fails is recomputed, with a warning). The key is everything the
 * numbers depend on: embedder id (model + weights fingerprint), engine, pooling, scan kind, mode,
 * side, the mean fill's hash, split, cutoffs, settings, and the hashes of the corpus, the evaluated
 * queries and the judgements. A worker (`worker: {index, count}`) computes the cells c with
 * c mod count = index; a run without `worker` reuses every cached cell, computes the rest and
 * returns the whole grid.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ablationFill, AblatedEmbedder, type AblationMode, type AblationSide, checkAblatable, checkModeSide, evaluatedQueries, evaluateSide,
  fillSha256, headLabels, headMask, type HeadRef, MEAN_REFERENCE, metricDelta, type MetricDelta,
} from './ablation';
import { BeirDataset, loadBeir } from './beir';
import { hashTexts, openKeyDir, writeFileAtomic } from './cache';
import { corpusInputs } from './e5_format';
import type { HeadEmbedder } from './embedder';
import { EvalError } from './errors';
import { checkEmbeddings, checkPositiveInt, evaluate, evaluateQuerySets, EvalResult, EvaluateOptions, QueryResult } from './evaluate';
import { METRIC_LABELS, METRIC_NAMES, MetricName } from './metrics';
import { makeProgress } from './progress';

export type ScanKind = 'heads' | 'layers';
export const SCAN_CELL_FORMAT = 'e5-eval-scan-cell/1';
/** Cells whose queries are embedded and searched in one pass over the corpus (query side), at most. */
export const DEFAULT_CELLS_PER_PASS = 64;
/** Heap entries (query rows × max k) a pass may hold: 4 M ≈ 50 MB of top-k lists. */
const PASS_HEAP_ENTRIES = 1 << 22;

export interface ScanMetric {
  name: MetricName;
  k: number;
}

/** "ndcg@10" (or BEIR's "NDCG@10") → {name: 'ndcg', k: 10}. */
export function parseScanMetric(text: string): ScanMetric {
  const m = /^\s*([A-Za-z]+)@(\d+)\s*$/.exec(text);
  const byLabel = m && METRIC_NAMES.find((n) => n === m[1].toLowerCase() || METRIC_LABELS[n].toLowerCase() === m[1].toLowerCase());
  if (!m || !byLabel) {
    throw new EvalError('bad_option', `metric ${JSON.stringify(text)} is not METRIC@K with METRIC one of ${METRIC_NAMES.join(', ')} (or ${Object.values(METRIC_LABELS).join(', ')})`);
  }
  return { name: byLabel, k: checkPositiveInt('metric cutoff', Number(m[2])) };
}

export interface ScanCellSpec {
  /** "3.5" (a head) or "3" (a layer). */
  label: string;
  layer: number;
  /** The head, or null for a whole layer. */
  head: number | null;
  heads: HeadRef[];
}

/** The cells of a scan of a model with L layers of H heads, in grid order (layer, then head). */
export function scanCells(kind: ScanKind, L: number, H: number): ScanCellSpec[] {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  if (kind === 'layers') return range(L).map((layer) => ({ label: String(layer), layer, head: null, heads: range(H).map((head) => ({ layer, head })) }));
  return range(L).flatMap((layer) => range(H).map((head) => ({ label: `${layer}.${head}`, layer, head, heads: [{ layer, head }] })));
}

export interface ScanOptions extends Omit<EvaluateOptions, 'queryModel' | 'keepHits'> {
  scan: ScanKind;
  /** Default 'zero'. */
  mode?: AblationMode;
  /** Default 'query'. */
  side?: AblationSide;
  /** The metric of the grid (default ndcg@10); its cutoff must be one of `k`. */
  metric?: ScanMetric;
  /** Only the cells c with c mod count = index (a shard worker); every cell when absent. */
  worker?: { index: number; count: number };
  /** Query side: cells embedded and searched per pass over the corpus (default 64, fewer when the
   *  pass's top-k lists — cells × queries × max k entries — would pass 4 M). */
  cellsPerPass?: number;
  /** Called after each cell is available (cached or computed). */
  onCell?: (done: number, total: number) => void;
}

export interface ScanCellResult extends ScanCellSpec {
  means: Record<MetricName, number[]>;
  /** means − baseline means. */
  delta: MetricDelta;
  /** Per evaluated query: the scan metric ablated − baseline. */
  perQueryDelta: number[];
  perQuery: QueryResult[];
  cached: boolean;
}

export interface ScanResult {
  scan: ScanKind;
  mode: AblationMode;
  side: AblationSide;
  metric: ScanMetric & { label: string };
  meanReference: string | null;
  fillSha256: string | null;
  shape: { layers: number; heads: number };
  baseline: EvalResult;
  /** The query ids of every cell's perQuery / perQueryDelta. */
  queryIds: string[];
  /** The cells this run covered (all of them without `worker`), in grid order. */
  cells: ScanCellResult[];
  /** grid[l][h] (heads) or grid[l][0] (layers): the metric with that cell ablated; null for a cell not covered. */
  grid: Array<Array<number | null>>;
  deltaGrid: Array<Array<number | null>>;
  cache: { dir: string | null; cells: number; reused: number; computed: number; rejected: number };
  worker: { index: number; count: number } | null;
  timing: { totalSeconds: number; cellSeconds: number };
  warnings: string[];
}

/** Runs a scan: the plain run first (it fills the corpus cache), then each missing cell. */
export async function scanAblations(model: HeadEmbedder, dataset: string | BeirDataset, opts: ScanOptions): Promise<ScanResult> {
  const t0 = performance.now();
  const m = checkAblatable(model);
  const mode = opts.mode ?? 'zero', side = opts.side ?? 'query';
  checkModeSide(mode, side);
  if (opts.scan !== 'heads' && opts.scan !== 'layers') throw new EvalError('bad_option', `scan must be heads or layers, got ${JSON.stringify(opts.scan)}`);
  const metric = opts.metric ?? { name: 'ndcg', k: 10 };
  const worker = opts.worker ?? null;
  if (worker) {
    checkPositiveInt('worker count', worker.count);
    if (!Number.isSafeInteger(worker.index) || worker.index < 0 || worker.index >= worker.count) throw new EvalError('bad_option', `worker index must be in [0, ${worker.count}), got ${worker.index}`);
  }
  if (opts.cellsPerPass !== undefined) checkPositiveInt('cellsPerPass', opts.cellsPerPass);
  const data = typeof dataset === 'string' ? await loadBeir(dataset, { split: opts.split }) : dataset;
  const { scan: _s, mode: _m, side: _d, metric: _x, worker: _w, cellsPerPass: _c, onCell, ...evalOpts } = opts;

  const baseline = await evaluate(m, data, evalOpts);
  const ki = baseline.settings.k.indexOf(metric.k);
  if (ki < 0) throw new EvalError('bad_option', `metric ${metric.name}@${metric.k}: ${metric.k} is not one of the cutoffs (${baseline.settings.k.join(', ')})`);
  const warnings = [...baseline.warnings];
  const warn = (w: string) => {
    warnings.push(w);
    opts.onWarning?.(w);
  };
  const fill = await ablationFill(m, data, mode, evalOpts);
  const { numHiddenLayers: L, numAttentionHeads: H } = m.headShape;
  const all = scanCells(opts.scan, L, H);
  const mine = all.filter((_, c) => !worker || c % worker.count === worker.index);
  const cache = opts.cacheDir === undefined ? undefined
    : ScanCellCache.open(opts.cacheDir, scanKey(m, data, baseline, { scan: opts.scan, mode, side, fill }));
  const queryIds = baseline.perQuery.map((q) => q.queryId);
  const kmax = baseline.settings.k[baseline.settings.k.length - 1];
  const cellsPerPass = opts.cellsPerPass ?? Math.max(1, Math.min(DEFAULT_CELLS_PER_PASS, Math.floor(PASS_HEAP_ENTRIES / (queryIds.length * kmax))));

  // Cached cells first; the rest computed in passes.
  const found = new Map<string, CellPayload>();
  let rejected = 0;
  for (const cell of mine) {
    const hit = cache?.load(cell.label, queryIds);
    if (hit?.status === 'hit') found.set(cell.label, hit.payload);
    else if (hit?.status === 'invalid') {
      rejected++;
      warn(`scan cell ${cache!.cellPath(cell.label)} is unusable and is recomputed: ${hit.reason}`);
    }
  }
  const reused = found.size;
  onCell?.(reused, mine.length);
  const tc = performance.now();
  const todo = mine.filter((c) => !found.has(c.label));
  const passes = side === 'query' ? chunk(todo, cellsPerPass) : todo.map((c) => [c]);
  // One bar for the cells; the evaluations inside run without their own.
  const bar = makeProgress('cells', opts.progress ?? 'auto', opts.progressStream);
  bar.start(mine.length, reused);
  try {
    for (const pass of passes) {
      const results = await evaluateCells(m, data, { ...evalOpts, progress: false }, side, fill, pass);
      pass.forEach((cell, i) => {
        const payload: CellPayload = { means: results[i].means, perQuery: results[i].perQuery };
        cache?.save(cell.label, payload);
        found.set(cell.label, payload);
      });
      bar.update(found.size);
      onCell?.(found.size, mine.length);
    }
  } finally {
    bar.stop();
  }
  const cellSeconds = (performance.now() - tc) / 1000;

  const cells = mine.map((cell): ScanCellResult => {
    const p = found.get(cell.label)!;
    return {
      ...cell, means: p.means, delta: metricDelta(p.means, baseline.means), perQuery: p.perQuery,
      perQueryDelta: p.perQuery.map((q, i) => q.metrics[metric.name][ki] - baseline.perQuery[i].metrics[metric.name][ki]),
      cached: !todo.includes(cell),
    };
  });
  const cols = opts.scan === 'heads' ? H : 1;
  const grid = Array.from({ length: L }, () => new Array<number | null>(cols).fill(null));
  const deltaGrid = Array.from({ length: L }, () => new Array<number | null>(cols).fill(null));
  for (const c of cells) {
    grid[c.layer][c.head ?? 0] = c.means[metric.name][ki];
    deltaGrid[c.layer][c.head ?? 0] = c.delta[metric.name][ki];
  }
  return {
    scan: opts.scan, mode, side, metric: { ...metric, label: `${METRIC_LABELS[metric.name]}@${metric.k}` },
    meanReference: fill ? MEAN_REFERENCE : null, fillSha256: fillSha256(fill), shape: { layers: L, heads: H },
    baseline, queryIds, cells, grid, deltaGrid,
    cache: { dir: cache?.dir ?? null, cells: mine.length, reused, computed: todo.length, rejected },
    worker, timing: { totalSeconds: (performance.now() - t0) / 1000, cellSeconds }, warnings,
  };
}

/** The evaluations of `cells`: query side in one pass (their queries embedded together), else one by one. */
async function evaluateCells(m: HeadEmbedder, data: BeirDataset, opts: EvaluateOptions, side: AblationSide, fill: Float32Array | undefined, cells: ScanCellSpec[]): Promise<EvalResult[]> {
  const masks = cells.map((c) => headMask(m, c.heads));
  if (side === 'query') {
    return evaluateQuerySets(m, data, opts, async (texts, o) => {
      const outs = await m.embedMasked(texts, masks, fill, { prefix: 'query', ...o });
      return outs.map((out) => checkEmbeddings(m.id, texts.length, out, 'query'));
    });
  }
  const [cell] = cells;
  return [await evaluateSide(m, new AblatedEmbedder(m, masks[0], fill, headLabels(cell.heads).join(',')), side, data, opts)];
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

// ------------------------------------------------------------------------------------ cell cache

export interface ScanCacheKey {
  format: typeof SCAN_CELL_FORMAT;
  embedder: string;
  engine: string | null;
  pooling: string | null;
  scan: ScanKind;
  mode: AblationMode;
  side: AblationSide;
  /** sha256 of the mean fill (null for zero ablation). */
  fillSha256: string | null;
  split: string;
  k: number[];
  ignoreIdenticalIds: boolean;
  docAsQuery: boolean;
  maxLength: number | null;
  /** sha256 of the embedded (doc id, text) pairs, of the evaluated (query id, text) pairs, of the judgements. */
  corpusSha256: string;
  queriesSha256: string;
  qrelsSha256: string;
}

function scanKey(m: HeadEmbedder, data: BeirDataset, baseline: EvalResult, o: { scan: ScanKind; mode: AblationMode; side: AblationSide; fill?: Float32Array }): ScanCacheKey {
  const s = baseline.settings;
  const inputs = corpusInputs(data.corpus, s.docAsQuery);
  const q = evaluatedQueries(data);
  const qrels = createHash('sha256');
  for (const id of q.ids) qrels.update(`${JSON.stringify([id, [...data.qrels.get(id)!.entries()].sort()])}\n`);
  return {
    format: SCAN_CELL_FORMAT, embedder: m.id, engine: m.engine ?? null, pooling: m.pooling ?? null,
    scan: o.scan, mode: o.mode, side: o.side, fillSha256: fillSha256(o.fill), split: data.split, k: s.k,
    ignoreIdenticalIds: s.ignoreIdenticalIds, docAsQuery: s.docAsQuery, maxLength: s.maxLength,
    corpusSha256: hashTexts(data.corpus.ids, inputs.texts), queriesSha256: hashTexts(q.ids, q.texts), qrelsSha256: qrels.digest('hex'),
  };
}

interface CellPayload {
  means: Record<MetricName, number[]>;
  perQuery: QueryResult[];
}

interface CellFile {
  format: string;
  key_sha256: string;
  cell: string;
  result_sha256: string;
  result: CellPayload;
}

type CellLookup = { status: 'hit'; payload: CellPayload } | { status: 'missing' } | { status: 'invalid'; reason: string };

export class ScanCellCache {
  private constructor(readonly dir: string, readonly key: ScanCacheKey, readonly keySha256: string) {}

  /** Opens (creating if needed) the directory for `key` under `cacheDir`; a key.json that disagrees is an error. */
  static open(cacheDir: string, key: ScanCacheKey): ScanCellCache {
    const { dir, keySha256 } = openKeyDir(cacheDir, 'scan-', key, ' (another model, intervention or data set)');
    return new ScanCellCache(dir, key, keySha256);
  }

  cellPath(label: string): string {
    return path.join(this.dir, `cell-${label}.json`);
  }

  /** The cell's metrics when its file is whole and belongs to this key, this cell and these queries. */
  load(label: string, queryIds: readonly string[]): CellLookup {
    const file = this.cellPath(label);
    if (!fs.existsSync(file)) return { status: 'missing' };
    let doc: CellFile;
    try {
      doc = JSON.parse(fs.readFileSync(file, 'utf8')) as CellFile;
    } catch (e) {
      return { status: 'invalid', reason: `not JSON (${(e as Error).message})` };
    }
    if (doc?.format !== SCAN_CELL_FORMAT) return { status: 'invalid', reason: `format ${JSON.stringify(doc?.format)}, expected ${SCAN_CELL_FORMAT}` };
    if (doc.key_sha256 !== this.keySha256) return { status: 'invalid', reason: `written for key ${String(doc.key_sha256).slice(0, 16)}…, not this scan's ${this.keySha256.slice(0, 16)}… (another model, intervention or data set)` };
    if (doc.cell !== label) return { status: 'invalid', reason: `holds cell ${JSON.stringify(doc.cell)}, not ${label}` };
    if (sha256(JSON.stringify(doc.result)) !== doc.result_sha256) return { status: 'invalid', reason: 'its result does not match the sha256 it carries (damaged)' };
    const ids = doc.result.perQuery?.map((q) => q.queryId);
    if (!ids || ids.length !== queryIds.length || ids.some((id, i) => id !== queryIds[i])) return { status: 'invalid', reason: 'its queries are not the evaluated ones' };
    return { status: 'hit', payload: doc.result };
  }

  /** Writes a finished cell whole (temp file + rename). */
  save(label: string, payload: CellPayload): void {
    const doc: CellFile = { format: SCAN_CELL_FORMAT, key_sha256: this.keySha256, cell: label, result_sha256: sha256(JSON.stringify(payload)), result: payload };
    writeFileAtomic(this.cellPath(label), `${JSON.stringify(doc)}\n`);
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
