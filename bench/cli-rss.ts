/**
 * Memory of `e5 embed` on a long JSONL input: RSS must stay flat (the input is read, embedded
 * and written in chunks), and order and count must survive. Runs the CLI on N-line inputs
 * (default 1k and 10k, mixed lengths, with ids) on the generated tiny model, samples the
 * child's VmRSS from /proc every 50 ms, and prints RSS over the run plus the order/count check.
 *
 *   npx ts-node --transpile-only bench/cli-rss.ts [--lines 1000,10000] [--backend wasm|cpu] [--preset tiny|small]
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import { BIN, cliBuild } from '../devtools/cli-build';
import { cachedModel, Preset, Rng } from '../devtools/generate-model';

const WORDS = 'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their'.split(' ');

function writeInput(file: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rng.uniform() ** 2 * 120); // mostly short, some long
    const words = Array.from({ length: len }, () => WORDS[Math.floor(rng.uniform() * WORDS.length)]);
    fs.writeSync(fd, JSON.stringify({ id: `doc-${i}`, text: words.join(' ') }) + '\n');
  }
  fs.closeSync(fd);
}

function rssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

interface Sample { t: number; rss: number; outBytes: number }

async function run(args: string[], outFile: string, env: NodeJS.ProcessEnv): Promise<{ code: number; seconds: number; samples: Sample[]; stderr: string }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const samples: Sample[] = [];
  const outDir = path.dirname(outFile);
  const timer = setInterval(() => {
    const rss = rssKiB(child.pid!);
    if (rss === undefined) return;
    // The output grows in a temp file next to the target until it is renamed.
    const tmp = fs.readdirSync(outDir).find((f) => f.startsWith(`.${path.basename(outFile)}.`));
    const outBytes = tmp ? fs.statSync(path.join(outDir, tmp), { throwIfNoEntry: false })?.size ?? 0 : 0;
    samples.push({ t: (performance.now() - t0) / 1000, rss, outBytes });
  }, 50);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  clearInterval(timer);
  return { code, seconds: (performance.now() - t0) / 1000, samples, stderr };
}

function checkOutput(file: string, n: number): string {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  if (lines.length !== n) return `FAIL: ${lines.length} lines, expected ${n}`;
  for (let i = 0; i < n; i++) {
    const o = JSON.parse(lines[i]) as { index: number; id: string };
    if (o.index !== i || o.id !== `doc-${i}`) return `FAIL: line ${i + 1} is index ${o.index} id ${o.id}`;
  }
  return `ok: ${n} lines, index and id in input order`;
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--lines <list>', 'input sizes', '1000,10000')
    .option('--backend <name>', 'wasm | cpu', 'wasm')
    .option('--threads <n>', 'wasm threads', '2')
    .option('--preset <name>', 'generated model', 'tiny')
    .parse().opts();
  const model = cachedModel({ preset: o.preset as Preset });
  const dist = cliBuild();
  const env = { ...process.env, ...(dist ? { E5_DIST: dist } : { E5_FROM_SOURCE: '1' }), HF_HUB_OFFLINE: '1' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-cli-rss-'));
  console.log(`e5 embed RSS on ${o.preset} model, backend ${o.backend} (${o.threads} threads), ${dist ? 'compiled CLI' : 'ts-node'}; node ${process.version}`);
  try {
    for (const n of String(o.lines).split(',').map(Number)) {
      const input = path.join(dir, `in-${n}.jsonl`);
      const out = path.join(dir, `out-${n}.jsonl`);
      writeInput(input, n, 7);
      const r = await run(['embed', '--model', model, '--backend', o.backend, '--threads', o.threads, '--input', input, '--output', out, '-q'], out, env);
      if (r.code !== 0) throw new Error(`e5 embed exited ${r.code}: ${r.stderr}`);
      const s = r.samples;
      const peak = Math.max(...s.map((x) => x.rss));
      // RSS when the output had reached 10%, 50% and 90% of its final size.
      const final = fs.statSync(out).size;
      const at = (f: number) => s.find((x) => x.outBytes >= f * final)?.rss;
      const mb = (k?: number) => (k === undefined ? '   -  ' : `${(k / 1024).toFixed(0).padStart(4)} MB`);
      console.log(`${String(n).padStart(6)} lines: ${r.seconds.toFixed(1).padStart(5)} s, peak RSS ${mb(peak)}; RSS at 10% ${mb(at(0.1))}, 50% ${mb(at(0.5))}, 90% ${mb(at(0.9))} of the output; ${(final / 1e6).toFixed(1)} MB written; ${checkOutput(out, n)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
