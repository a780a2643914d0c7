/** Markdown for the benchmark's reports (bench/README.md says what every column means). */
import type { CeilingReport } from './ceiling';
import type { CompareReport, EngineWorkloadResult } from './compare';
import type { EngineName } from './engines';
import type { ProfileReport } from './profile';
import { MachineInfo, noiseNote } from './stats';
import type { WholeRunReport } from './whole_run';

export function table(head: string[], rows: string[][], rightAligned: Set<number> = new Set()): string {
  const sep = head.map((_, i) => (rightAligned.has(i) ? '---:' : '---'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Milliseconds with 3–4 significant figures. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}
const fmtRatio = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);
const fmtPct = (x: number) => `${(x * 100).toFixed(0)}%`;
const mib = (kib: number) => `${(kib / 1024).toFixed(0)}`;
const intFmt = (x: number) => Math.round(x).toLocaleString('en-US');

function ratioTo(r: EngineWorkloadResult, results: EngineWorkloadResult[], peer: EngineName): number | undefined {
  const p = results.find((x) => x.engine === peer);
  return p ? p.medianSeconds / r.medianSeconds : undefined;
}

export function compareMarkdown(c: CompareReport): string {
  const has = (n: EngineName) => c.engines.some((e) => e.name === n);
  const threads = new Map(c.engines.map((e) => [e.name, e.threads]));
  const head = ['workload', 'engine', 'threads', 'median ms', 'spread', 'tokens/s', ...(has('st') ? ['× st'] : []), ...(has('torch') ? ['× torch'] : []),
    ...(has('ort-web') ? ['× ort-web'] : []), ...(has('ort-fp32') ? ['× ort-fp32'] : []), ...(has('ort-int8') ? ['× ort-int8'] : []), 'padded tokens', 'max abs Δ vs ours'];
  const rows: string[][] = [];
  for (const w of c.workloads) {
    for (const r of w.results) {
      rows.push([
        w.workload, r.engine, String(threads.get(r.engine)), fmtMs(r.medianSeconds * 1000), fmtPct(r.spread), intFmt(r.tokensPerSecond),
        ...(has('st') ? [fmtRatio(ratioTo(r, w.results, 'st'))] : []),
        ...(has('torch') ? [fmtRatio(ratioTo(r, w.results, 'torch'))] : []),
        ...(has('ort-web') ? [fmtRatio(ratioTo(r, w.results, 'ort-web'))] : []),
        ...(has('ort-fp32') ? [fmtRatio(ratioTo(r, w.results, 'ort-fp32'))] : []),
        ...(has('ort-int8') ? [fmtRatio(ratioTo(r, w.results, 'ort-int8'))] : []),
        `${intFmt(r.paddedTokens)}${r.paddedTokens > r.realTokens ? ` (+${fmtPct(r.paddedTokens / r.realTokens - 1)})` : ''}`,
        r.maxAbsDiffVsOurs === undefined ? '' : r.maxAbsDiffVsOurs.toExponential(1),
      ]);
    }
  }
  const right = new Set(head.map((_, i) => i).filter((i) => i >= 2 && i < head.length - 2).concat([head.length - 2]));
  const engines = table(['engine', 'what ran', 'threads', 'OS threads', 'load s', 'first forward ms', 'peak RSS MiB', 'details'],
    c.engines.map((e) => [e.name, e.label, String(e.threads), e.osThreads === undefined ? '—' : String(e.osThreads), e.loadSeconds.toFixed(2),
      fmtMs(e.firstForwardSeconds * 1000), mib(e.peakRssKiB), detailText(e.details)]), new Set([2, 3, 4, 5, 6]));
  const out = [
    `Median of ${c.repeats} repeat${c.repeats === 1 ? '' : 's'} (engines alternating; ${c.warmup} untimed warm-up run${c.warmup === 1 ? '' : 's'} per batch workload, none for the corpus). ` +
      '× = throughput relative to that engine (its median time ÷ this one\'s; > 1 is faster).',
    '',
    table(head, rows, right),
    '',
    engines,
  ];
  if (c.notes.length) out.push('', ...c.notes.map((n) => `- note: ${n}`));
  return out.join('\n');
}

function detailText(d: Record<string, unknown>): string {
  return Object.entries(d).filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(2)) : String(v)}`).join('; ');
}

export function profileMarkdown(p: ProfileReport, topKernels = 12): string {
  const cats = table(['category', 'ms', '% of forward', 'calls'],
    p.byCategory.map((c) => [c.category, fmtMs(c.ms), fmtPct(c.ms / p.wallMs), c.calls ? String(c.calls) : '']), new Set([1, 2, 3]));
  const kernels = table(['kernel', 'category', 'ms', '% of forward', 'calls'],
    p.byKernel.slice(0, topKernels).map((k) => [k.kernel, k.category, fmtMs(k.ms), fmtPct(k.ms / p.wallMs), String(k.calls)]), new Set([2, 3, 4]));
  return [`Profile of one forward of ${p.workload}: ${fmtMs(p.wallMs)} ms wall, ${fmtMs(p.kernelMs)} ms inside kernels.`, '', cats, '',
    `Top ${Math.min(topKernels, p.byKernel.length)} kernels:`, '', kernels].join('\n');
}

export function ceilingMarkdown(cs: CeilingReport[]): string {
  return table(['workload', 'tokens', 'forward ms', 'linear GEMMs ms', 'GEMM GFLOPS', 'attention matmuls ms', 'overhead vs GEMMs', 'overhead vs all matmuls'],
    cs.map((c) => [c.workload, String(c.tokensPerForward.reduce((a, b) => a + b, 0)), fmtMs(c.forwardMs), fmtMs(c.linearMs), c.linearGflops.toFixed(1),
      fmtMs(c.attentionMatmulMs), fmtPct(c.overheadVsLinear), fmtPct(c.overheadVsAllMatmuls)]), new Set([1, 2, 3, 4, 5, 6, 7]));
}

export function wholeRunMarkdown(w: WholeRunReport): string {
  const rss = (xs: Array<{ maxRssKiB?: number }>) => (xs[0]?.maxRssKiB === undefined ? '—' : mib(Math.max(...xs.map((x) => x.maxRssKiB ?? 0))));
  const row = (who: string, median: number, runs: Array<{ seconds: number; maxRssKiB?: number }>, ratio: number) =>
    [who, median.toFixed(2), runs.map((r) => r.seconds.toFixed(2)).join(', '), rss(runs), ratio.toFixed(2)];
  const what = w.input ? `${w.input.texts} generated passages (${w.input.tokens.toLocaleString('en-US')} tokens), \`--input\`` : JSON.stringify(w.text);
  return [
    `Whole process, ${w.ours.length} run${w.ours.length === 1 ? '' : 's'} each, alternating: ${what} (bin/e5 ran ${w.e5Build === 'dist' ? 'the compiled dist/' : 'the TypeScript sources through ts-node — run `make build` first for a fair start-up'}).`,
    '',
    table(['engine', 'median s', 'runs s', 'peak RSS MiB', 'time ÷ ours'], [
      row(`ours (bin/e5 embed${w.oursFp32 ? ' --precision bf16' : ''})`, w.oursMedianSeconds, w.ours, 1),
      ...(w.oursFp32 ? [row('ours at fp32 (bin/e5 embed)', w.oursFp32.medianSeconds, w.oursFp32.runs, w.oursFp32.speedup)] : []),
      ...(w.torch ? [row('torch (python3 start + import + load + forward)', w.torchMedianSeconds!, w.torch, w.speedupVsTorch!)] : []),
      ...(w.st ? [row('sentence-transformers (start + import + load + encode)', w.stMedianSeconds!, w.st, w.speedupVsSt!)] : []),
      ...Object.entries(w.ort ?? {}).map(([n, r]) => row(`${n} (python3 start + import + session + tokenize + encode)`, r!.medianSeconds, r!.runs, r!.speedup)),
    ], new Set([1, 3, 4])),
    '',
    `max |Δ| of the printed embeddings vs ours${w.oursFp32 ? ' at fp32' : ''}: ${w.maxAbsDiff.toExponential(1)}${w.oursFp32 ? `; ours bf16: ${w.oursFp32.bf16MaxAbsDiff.toExponential(1)}` : ''}${w.int8MaxAbsDiff === undefined ? '' : `; onnxruntime int8: ${w.int8MaxAbsDiff.toExponential(1)}`}`,
  ].join('\n');
}

export function headerMarkdown(m: MachineInfo, model: string, config: string): string {
  return [`# e5-tfjs benchmark`, '', `- model: ${model} (${config})`, `- machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}, ${m.platform}`,
    `- ${noiseNote(m)}`, `- started ${m.startedAt}`].join('\n');
}
