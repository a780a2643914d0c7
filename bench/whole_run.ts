/**
 * Whole runs: what a user waits for when embedding one query from the shell.
 *
 *   ours   node bin/e5 embed "query: …" --model DIR --threads N   (start, load, tokenize, encode, print);
 *          at --precision bf16, ours at fp32 too (ours-fp32), the baseline bf16 is measured against
 *   torch  python3 bench/torch_bench.py --whole-run --model DIR --threads N "query: …"
 *          (interpreter start, import torch, load, tokenize, one forward, print)
 *   st     PY bench/st_bench.py --whole-run ... (sentence-transformers: import, load, encode, print)
 *   ort-fp32, ort-int8   PY bench/ort_bench.py --whole-run --onnx FILE ... (onnxruntime: import, session,
 *          tokenize, encode, print), when those peers are asked for and the bench venv exists
 *
 * With `texts` (--whole-run-texts N) every engine embeds N generated passages of 16–256 tokens
 * (the corpus workload's texts, one per line of a temp file, `--input`) instead of one query;
 * torch_bench.py embeds one text only, so torch sits that out.
 *
 * Each is a fresh process, run alternately `repeats` times; wall time from spawn to exit,
 * medians. Peak RSS comes from /usr/bin/time when it is installed. The two embeddings printed
 * are compared, so a run that printed garbage cannot pass for a fast one.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { repoRoot } from './engines';
import { maxAbsDiff, median } from './stats';

export const WHOLE_RUN_TEXT = 'query: how much protein should a female eat';

export interface WholeRunOptions {
  modelDir: string;
  threads: number;
  backend?: string;
  /** Our --precision (default fp32). */
  precision?: string;
  python: string;
  /** The reference venv's python, for sentence-transformers (skipped when absent). */
  stPython?: string;
  repeats: number;
  text?: string;
  /** A file of texts, one a line, for every engine instead of `text` (torch is skipped). */
  input?: { file: string; texts: number; tokens: number };
  /** onnxruntime peers: the bench venv's python and the exported model of each variant. */
  ort?: { python: string; models: Partial<Record<'ort-fp32' | 'ort-int8', string>> };
  log: (s: string) => void;
}

export interface ProcessRun {
  seconds: number;
  maxRssKiB?: number;
}

export type WholeRunEngine = 'ours' | 'ours-fp32' | 'torch' | 'st' | 'ort-fp32' | 'ort-int8';

export interface WholeRunReport {
  text: string;
  /** Set when every engine embedded a file of passages instead of `text`. */
  input?: { texts: number; tokens: number };
  /** How bin/e5 ran: the compiled dist/ or the TypeScript sources through ts-node (slower start). */
  e5Build: 'dist' | 'ts-node';
  ours: ProcessRun[];
  torch?: ProcessRun[];
  oursMedianSeconds: number;
  torchMedianSeconds?: number;
  /** torch / ours: > 1 means our whole run is faster. */
  speedupVsTorch?: number;
  /** The onnxruntime peers that ran: runs, median, and median ÷ ours. */
  ort?: Partial<Record<'ort-fp32' | 'ort-int8', { runs: ProcessRun[]; medianSeconds: number; speedup: number }>>;
  /** sentence-transformers (bench/st_bench.py), when its python was there. */
  st?: ProcessRun[];
  stMedianSeconds?: number;
  /** st / ours: > 1 means our whole run is faster. */
  speedupVsSt?: number;
  /** Largest difference between ours and another float engine's printed embedding. */
  maxAbsDiff: number;
  /** The same for onnxruntime int8, when it ran. */
  int8MaxAbsDiff?: number;
  /**
   * At --precision bf16, ours at fp32 runs beside it as the baseline: its runs, median, its time ÷
   * bf16's (> 1: bf16 is faster), and the bf16 embedding's max |Δ| to it. The float peers are then
   * compared with ours at fp32.
   */
  oursFp32?: { runs: ProcessRun[]; medianSeconds: number; speedup: number; bf16MaxAbsDiff: number };
}

const TIME = '/usr/bin/time';
const RSS_MARK = '__bench_maxrss_kib=';

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<ProcessRun & { stdout: string }> {
  const useTime = fs.existsSync(TIME);
  const [cmd, argv] = useTime ? [TIME, ['-f', `${RSS_MARK}%M`, command, ...args]] : [command, args];
  const t0 = performance.now();
  const child = spawn(cmd, argv, { env, cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? -1));
  });
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
  const rss = new RegExp(`${RSS_MARK}(\\d+)`).exec(stderr);
  return { seconds, maxRssKiB: rss ? Number(rss[1]) : undefined, stdout };
}

/** The first "embedding" array printed as JSON on stdout. */
function embeddingOf(stdout: string, who: string): number[] {
  const line = stdout.split('\n').find((l) => l.includes('"embedding"'));
  if (!line) throw new Error(`${who} printed no embedding: ${stdout.slice(0, 200)}`);
  return JSON.parse(line).embedding as number[];
}

/** Whether bin/e5 will run dist/ (built and newer than every source), by bin/e5's own rule. */
export function e5RunsDist(): boolean {
  const { cliEntry } = require('../bin/entry') as { cliEntry: (root?: string) => { kind: 'dist' | 'source' } };
  return cliEntry(repoRoot()).kind === 'dist';
}

export async function wholeRun(o: WholeRunOptions): Promise<WholeRunReport> {
  const root = repoRoot();
  const text = o.text ?? WHOLE_RUN_TEXT;
  const env = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
  const script = (name: string) => path.join(root, 'bench', name);
  const source = o.input ? ['--input', o.input.file] : [text];
  const e5 = [path.join(root, 'bin', 'e5'), 'embed', ...source, '--model', o.modelDir, '--threads', String(o.threads), '--progress', 'off', '-q', ...(o.backend ? ['--backend', o.backend] : [])];
  const lowPrecision = o.precision !== undefined && o.precision !== 'fp32';
  const contenders: Array<{ who: WholeRunEngine; cmd: string; args: string[]; env: NodeJS.ProcessEnv }> = [
    { who: 'ours', cmd: process.execPath, env: process.env, args: [...e5, ...(lowPrecision ? ['--precision', o.precision!] : [])] },
    ...(lowPrecision ? [{ who: 'ours-fp32' as const, cmd: process.execPath, env: process.env, args: e5 }] : []),
  ];
  if (!o.input) contenders.push({ who: 'torch', cmd: o.python, env, args: [script('torch_bench.py'), '--whole-run', '--model', o.modelDir, '--threads', String(o.threads), text] });
  if (o.stPython && fs.existsSync(o.stPython)) {
    contenders.push({ who: 'st', cmd: o.stPython, env, args: [script('st_bench.py'), '--whole-run', '--model', o.modelDir, '--threads', String(o.threads), ...source] });
  }
  for (const [who, onnx] of Object.entries(o.ort?.models ?? {}) as Array<['ort-fp32' | 'ort-int8', string]>) {
    contenders.push({ who, cmd: o.ort!.python, env: process.env, args: [script('ort_bench.py'), '--whole-run', '--onnx', onnx, '--model', o.modelDir, '--threads', String(o.threads), ...source] });
  }
  const runs: Record<string, ProcessRun[]> = Object.fromEntries(contenders.map((c) => [c.who, []]));
  let diff = 0, int8Diff: number | undefined, bf16Diff = 0;
  for (let r = 0; r < o.repeats; r++) {
    // Rotate who goes first, so a warm page cache favours no one.
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    const printed = new Map<WholeRunEngine, number[]>();
    for (const c of order) {
      const run = await timed(c.cmd, c.args, c.env);
      printed.set(c.who, embeddingOf(run.stdout, c.who));
      runs[c.who].push({ seconds: run.seconds, maxRssKiB: run.maxRssKiB });
    }
    // int8 weights move the embedding by ~1e-2: compared with ours apart, so it cannot hide a float engine's error.
    // So does bf16 by ~1e-3: the float peers are compared with ours at fp32 when it ran.
    const ours = printed.get('ours-fp32') ?? printed.get('ours')!;
    for (const [who, e] of printed) {
      if (who === 'ort-int8') int8Diff = Math.max(int8Diff ?? 0, maxAbsDiff(ours, e));
      else if (who === 'ours' && lowPrecision) bf16Diff = Math.max(bf16Diff, maxAbsDiff(ours, e));
      else diff = Math.max(diff, maxAbsDiff(ours, e));
    }
    o.log(`whole run ${r + 1}/${o.repeats}: ${contenders.map((c) => `${c.who} ${runs[c.who][r].seconds.toFixed(2)} s`).join(', ')}`);
  }
  const med = (who: string) => median(runs[who].map((x) => x.seconds));
  const oursMedianSeconds = med('ours');
  const has = (who: WholeRunEngine) => contenders.some((c) => c.who === who);
  const torch = has('torch') ? { torch: runs.torch, torchMedianSeconds: med('torch'), speedupVsTorch: med('torch') / oursMedianSeconds } : {};
  const st = has('st') ? { st: runs.st, stMedianSeconds: med('st'), speedupVsSt: med('st') / oursMedianSeconds } : {};
  const ortNames = (['ort-fp32', 'ort-int8'] as const).filter(has);
  const ort = ortNames.length ? { ort: Object.fromEntries(ortNames.map((n) => [n, { runs: runs[n], medianSeconds: med(n), speedup: med(n) / oursMedianSeconds }])) } : {};
  return {
    text, ...(o.input ? { input: { texts: o.input.texts, tokens: o.input.tokens } } : {}), e5Build: e5RunsDist() ? 'dist' : 'ts-node',
    ours: runs.ours, oursMedianSeconds, ...torch, ...st, ...ort, maxAbsDiff: diff, ...(int8Diff === undefined ? {} : { int8MaxAbsDiff: int8Diff }),
    ...(lowPrecision ? { oursFp32: { runs: runs['ours-fp32'], medianSeconds: med('ours-fp32'), speedup: med('ours-fp32') / oursMedianSeconds, bf16MaxAbsDiff: bf16Diff } } : {}),
  };
}
