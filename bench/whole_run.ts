/**
 * Whole runs: what a user waits for when embedding one query from the shell.
 *
 *   ours   node bin/e5 embed "query: …" --model DIR --threads N   (start, load, tokenize, encode, print)
 *   torch  python3 bench/torch_bench.py --whole-run --model DIR --threads N "query: …"
 *          (interpreter start, import torch, load, tokenize, one forward, print)
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
  python: string;
  repeats: number;
  text?: string;
  log: (s: string) => void;
}

export interface ProcessRun {
  seconds: number;
  maxRssKiB?: number;
}

export interface WholeRunReport {
  text: string;
  /** How bin/e5 ran: the compiled dist/ or the TypeScript sources through ts-node (slower start). */
  e5Build: 'dist' | 'ts-node';
  ours: ProcessRun[];
  torch: ProcessRun[];
  oursMedianSeconds: number;
  torchMedianSeconds: number;
  /** torch / ours: > 1 means our whole run is faster. */
  speedupVsTorch: number;
  maxAbsDiff: number;
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
  const oursArgs = [path.join(root, 'bin', 'e5'), 'embed', text, '--model', o.modelDir, '--threads', String(o.threads), '--progress', 'off', '-q',
    ...(o.backend ? ['--backend', o.backend] : [])];
  const torchArgs = [path.join(root, 'bench', 'torch_bench.py'), '--whole-run', '--model', o.modelDir, '--threads', String(o.threads), text];
  const torchEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
  const ours: ProcessRun[] = [], torch: ProcessRun[] = [];
  let diff = 0;
  for (let r = 0; r < o.repeats; r++) {
    // Alternate which goes first, so a warm page cache favours neither.
    const order: Array<'ours' | 'torch'> = r % 2 === 0 ? ['ours', 'torch'] : ['torch', 'ours'];
    const printed: Record<string, number[]> = {};
    for (const who of order) {
      const run = who === 'ours' ? await timed(process.execPath, oursArgs, process.env) : await timed(o.python, torchArgs, torchEnv);
      printed[who] = embeddingOf(run.stdout, who);
      (who === 'ours' ? ours : torch).push({ seconds: run.seconds, maxRssKiB: run.maxRssKiB });
    }
    diff = Math.max(diff, maxAbsDiff(printed.ours, printed.torch));
    o.log(`whole run ${r + 1}/${o.repeats}: ours ${ours[r].seconds.toFixed(2)} s, torch ${torch[r].seconds.toFixed(2)} s`);
  }
  const oursMedianSeconds = median(ours.map((x) => x.seconds));
  const torchMedianSeconds = median(torch.map((x) => x.seconds));
  return {
    text, e5Build: e5RunsDist() ? 'dist' : 'ts-node', ours, torch, oursMedianSeconds, torchMedianSeconds,
    speedupVsTorch: torchMedianSeconds / oursMedianSeconds, maxAbsDiff: diff,
  };
}
