/**
 * Renderings of an EvalResult: an aligned markdown table for people, JSON for machines, and a TREC
 * run file (qid Q0 docid rank score run) for trec_eval / pytrec_eval cross-checks.
 */
import { type AblationResult, sideText } from './ablation';
import type { EvalResult } from './evaluate';
import type { ScanResult } from './scan';
import { METRIC_LABELS, METRIC_NAMES } from './metrics';

export interface TableOptions {
  /** Decimals (default 5, as BEIR rounds its means). */
  digits?: number;
}

/** A markdown table (metrics × cutoffs) with the counts, cache use and timing around it. */
export function formatEvalTable(result: EvalResult, opts: TableOptions = {}): string {
  const digits = opts.digits ?? 5;
  const header = ['metric', ...result.settings.k.map((k) => `@${k}`)];
  const rows = METRIC_NAMES.map((m) => [METRIC_LABELS[m], ...result.means[m].map((v) => v.toFixed(digits))]);
  const { before, after } = evalTableLines(result);
  return [...before, ...markdownTable(header, rows), ...after].join('\n');
}

/** The lines of formatEvalTable above its table (counts, model, a blank line) and below it (blank, cache, timing, warnings). */
function evalTableLines(result: EvalResult): { before: string[]; after: string[] } {
  const { dataset, counts, cache, timing, settings } = result;
  const before: string[] = [];
  before.push(`${dataset.name} (split ${dataset.split}): ${counts.queriesEvaluated} queries evaluated, ${dataset.corpusSize} passages, ${dataset.judgements} judgements`);
  const skipped = [
    counts.queriesSkippedNoQrels && `${n(counts.queriesSkippedNoQrels, 'query', 'queries')} without judgements skipped`,
    counts.qrelsQueriesWithoutText && `${n(counts.qrelsQueriesWithoutText, 'judged query', 'judged queries')} missing from queries.jsonl`,
    counts.queriesWithoutRelevant && `${n(counts.queriesWithoutRelevant, 'query', 'queries')} with no relevant document (scored 0)`,
    counts.judgementsUnknownDoc && `${n(counts.judgementsUnknownDoc, 'judgement', 'judgements')} of documents not in the corpus`,
    counts.identicalIdsExcluded && `${n(counts.identicalIdsExcluded, 'query', 'queries')} with its own id excluded from the ranking`,
  ].filter(Boolean);
  if (skipped.length) before.push(skipped.join('; '));
  before.push(`model ${result.model.id}${result.model.pooling ? ` (${result.model.pooling} pooling)` : ''}; exact ${settings.scoreFunction} search; ties: ${settings.tieBreak}`);
  before.push('');
  const after: string[] = [''];
  const trunc = counts.passagesTruncated || counts.queriesTruncated
    ? `; truncated to ${settings.maxLength ?? 'the model limit'} tokens: ${counts.passagesTruncated} passages, ${counts.queriesTruncated} queries` : '';
  if (cache.dir) after.push(`cache: ${cache.dir} (${cache.shards} shards: ${cache.reused} reused, ${cache.computed} computed${cache.rejected ? `, ${cache.rejected} rejected` : ''})${trunc}`);
  else if (trunc) after.push(trunc.slice(2));
  const rate = timing.passagesPerSecond === null ? '' : `, ${timing.passagesPerSecond.toFixed(1)} passages/s`;
  after.push(`time: ${timing.totalSeconds.toFixed(1)} s (queries ${timing.queryEmbedSeconds.toFixed(1)} s, corpus ${timing.corpusEmbedSeconds.toFixed(1)} s${rate}, search ${timing.searchSeconds.toFixed(1)} s)`);
  for (const w of result.warnings) after.push(`warning: ${w}`);
  return { before, after };
}

function n(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

export interface JsonOptions {
  /** Include per-query metrics (default true). */
  perQuery?: boolean;
  indent?: number;
}

/** The result as JSON; means also appear under BEIR's labels (`scores`: "NDCG@10" ...). */
export function formatEvalJson(result: EvalResult, opts: JsonOptions = {}): string {
  const { perQuery, ...rest } = result;
  const doc = opts.perQuery === false ? rest : result;
  return JSON.stringify(doc, null, opts.indent ?? 2);
}

/**
 * TREC run lines `qid Q0 docid rank score run` (trec_eval, pytrec_eval, ranx) for queries evaluated
 * with `keepHits`. The format is whitespace-separated: an id or run name holding whitespace is refused.
 */
export function formatTrecRun(result: EvalResult, runName = 'e5-tfjs'): string {
  const plain = (what: string, s: string) => {
    if (s === '' || /\s/.test(s)) throw new Error(`${what} ${JSON.stringify(s)} ${s === '' ? 'is empty' : 'holds whitespace'}: a TREC run file cannot hold it`);
  };
  plain('run name', runName);
  const lines: string[] = [];
  for (const q of result.perQuery) {
    if (!q.hits) throw new Error('formatTrecRun needs per-query hits: call evaluate() with keepHits');
    plain('query id', q.queryId);
    q.hits.forEach((h, i) => {
      plain('document id', h.id);
      lines.push(`${q.queryId} Q0 ${h.id} ${i + 1} ${h.score} ${runName}`);
    });
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

// ------------------------------------------------------------------------------------ ablation

/** Signed, fixed decimals: "+0.01234", "-0.00500", "0.00000" for no change. */
function signed(v: number, digits: number): string {
  const s = v.toFixed(digits);
  return v > 0 && Number(s) !== 0 ? `+${s}` : Number(s) === 0 ? (0).toFixed(digits) : s;
}

/**
 * The plain and ablated means and their difference, one row each per metric, around the ablated
 * run's own table lines (counts, cache, timing, warnings).
 */
export function formatAblationTable(result: AblationResult, opts: TableOptions = {}): string {
  const digits = opts.digits ?? 5;
  const { baseline, ablated, delta, intervention: iv } = result;
  const header = ['metric', ...ablated.settings.k.map((k) => `@${k}`)];
  const rows = METRIC_NAMES.flatMap((m) => [
    [METRIC_LABELS[m], ...baseline.means[m].map((v) => v.toFixed(digits))],
    [`${METRIC_LABELS[m]} ablated`, ...ablated.means[m].map((v) => v.toFixed(digits))],
    [`${METRIC_LABELS[m]} Δ`, ...delta.means[m].map((v) => signed(v, digits))],
  ]);
  const changed = result.perQueryDelta.filter((q) => METRIC_NAMES.some((m) => q.metrics[m].some((v) => v !== 0))).length;
  const { before, after } = evalTableLines(ablated);
  return [
    ...before,
    `ablated: heads ${iv.heads.join(',')} (${iv.mode}${iv.meanReference ? ` — means over ${iv.meanReference}` : ''}) on ${sideText(iv.side)}; ${changed} of ${result.perQueryDelta.length} queries change`,
    '',
    ...markdownTable(header, rows),
    ...after,
  ].join('\n');
}

/** The largest effects of a scan on its metric: the plain value, then the `top` cells by |Δ| (ties: grid order). */
export function formatScanTable(result: ScanResult, opts: TableOptions & { top?: number } = {}): string {
  const digits = opts.digits ?? 5;
  const top = opts.top ?? 20;
  const { baseline, metric } = result;
  const ki = baseline.settings.k.indexOf(metric.k);
  const base = baseline.means[metric.name][ki];
  const ranked = [...result.cells].sort((a, b) => Math.abs(b.delta[metric.name][ki]) - Math.abs(a.delta[metric.name][ki]));
  const rows = ranked.slice(0, top).map((c) => {
    const down = c.perQueryDelta.filter((v) => v < 0).length, up = c.perQueryDelta.filter((v) => v > 0).length;
    return [result.scan === 'heads' ? `${c.layer}.${c.head}` : `layer ${c.layer}`, c.means[metric.name][ki].toFixed(digits), signed(c.delta[metric.name][ki], digits), String(down), String(up)];
  });
  const what = result.scan === 'heads' ? `each of ${result.shape.layers}×${result.shape.heads} heads` : `each of ${result.shape.layers} layers' heads`;
  const out = [
    `${baseline.dataset.name} (split ${baseline.dataset.split}): ${baseline.counts.queriesEvaluated} queries, ${baseline.dataset.corpusSize} passages; model ${baseline.model.id}`,
    `scan: ${what} ${result.mode}-ablated on ${sideText(result.side)}${result.meanReference ? ` (means over ${result.meanReference})` : ''}${result.worker ? `; worker ${result.worker.index}/${result.worker.count}` : ''}`,
    `${metric.label} without ablation: ${base.toFixed(digits)}; the ${Math.min(top, rows.length)} largest effects of ${result.cells.length} cells:`,
    '',
    ...markdownTable(['cell', metric.label, 'Δ', 'queries ↓', 'queries ↑'], rows),
    '',
    `cache: ${result.cache.dir ?? 'none'} (${result.cache.cells} cells: ${result.cache.reused} reused, ${result.cache.computed} computed${result.cache.rejected ? `, ${result.cache.rejected} rejected` : ''}); time ${result.timing.totalSeconds.toFixed(1)} s (cells ${result.timing.cellSeconds.toFixed(1)} s)`,
  ];
  for (const w of result.warnings) out.push(`warning: ${w}`);
  return out.join('\n');
}

/** An aligned markdown table: first column left, the others right. */
function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => `| ${cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (c === 0 ? `:${'-'.repeat(w - 1)}` : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)];
}
