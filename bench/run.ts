/**
 * The benchmark harness: our engine next to PyTorch (and onnxruntime-web / -node when they are
 * installed) on the same model folder, in one run, engines alternating. See bench/README.md.
 *
 *   npx ts-node --transpile-only bench/run.ts --model DIR [--repeats 3] [--workloads query,8x128,32x64,corpus]
 *       [--peers torch,ort-web,ort-node] [--threads N] [--json FILE] [--profile] [--ceiling] [--whole-run]
 *
 * Markdown goes to stdout, progress to stderr. `make bench` runs it on the e5-large-shaped model.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import { BackendInfo, initBackend } from '../engine/backend';
import { EmbeddingModel, loadModel } from '../e5/model';
import { resolveModel } from '../weights/folder';
import { BertTokenizer } from '../tokenizer';
import { CeilingReport, measureCeiling } from './ceiling';
import { compare, CompareReport } from './compare';
import { Engine, exportOrtModels, ORT_PACKAGES, ortInstalled, OrtEngine, OrtKind, OrtPyEngine, OrtPyVariant, OursEngine, PeerName, StEngine, TorchEngine } from './engines';
import { addBenchOptions, BenchOptions, benchOptions } from './options';
import { profileWorkload, ProfileReport } from './profile';
import { ceilingMarkdown, compareMarkdown, headerMarkdown, profileMarkdown, wholeRunMarkdown } from './report';
import { machineInfo, MachineInfo } from './stats';
import { wholeRun, WholeRunReport } from './whole_run';
import { makeWorkload, parseWorkload, Workload } from './workloads';

export interface BenchReport {
  format: 'e5-tfjs-bench';
  formatVersion: 1;
  machine: MachineInfo;
  model: { dir: string; config: Record<string, number | string> };
  backend?: BackendInfo;
  options: Omit<BenchOptions, 'onnxDir'>;
  skipped: string[];
  compare?: CompareReport;
  ceiling?: CeilingReport[];
  profile?: ProfileReport[];
  wholeRun?: WholeRunReport;
  markdown: string;
}

export interface BenchIO {
  /** The report (markdown). */
  out: (s: string) => void;
  /** Progress and notes. */
  log: (s: string) => void;
}

const STDIO: BenchIO = { out: (s) => process.stdout.write(s + '\n'), log: (s) => process.stderr.write(s + '\n') };

export async function runBench(o: BenchOptions, io: BenchIO = STDIO): Promise<BenchReport> {
  const machine = machineInfo();
  const dir = (await resolveModel(o.model)).dir;
  const configRaw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const config = pick(configRaw, ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size', 'vocab_size']);
  const skipped: string[] = [];
  const sections: string[] = [];
  const report: Partial<BenchReport> = {};

  let m: EmbeddingModel | undefined;
  let workloads: Workload[] = [];
  let first: Workload | undefined;
  if (o.compare || o.profile || o.ceiling) {
    const backend = await initBackend({ backend: o.backend, threads: o.threads });
    report.backend = backend;
    io.log(`ours: ${backend.name}, ${backend.threads} thread${backend.threads === 1 ? '' : 's'} (read back from the backend)`);
    const t0 = performance.now();
    m = await loadModel(dir, { keepLinearWeights: false, precision: o.precision }); // as `e5 embed` loads it
    const loadWall = (performance.now() - t0) / 1000;
    io.log(`ours: loaded ${dir} in ${loadWall.toFixed(2)} s`);
    first = makeWorkload({ kind: 'batch', name: 'first', rows: 1, tokens: 16 }, m.tokenizer, o.seed);
    workloads = o.workloads.map((w) => makeWorkload(parseWorkload(w, o.corpusSize), m!.tokenizer, o.seed, o.batchSize));

    if (o.compare) {
      const engines: Engine[] = [new OursEngine(m, backend, loadWall)];
      try {
        engines.push(...(await startPeers(o, dir, backend.threads, skipped, io)));
        report.compare = await compare(engines, first, workloads, { repeats: o.repeats, warmup: o.warmup, settleMs: o.settleMs, log: io.log });
      } finally {
        for (const e of engines.slice(1)) await e.close();
      }
      sections.push('## Engines side by side', '', compareMarkdown(report.compare), '');
    }
    if (o.ceiling) {
      report.ceiling = [];
      for (const w of workloads) report.ceiling.push(await measureCeiling(m, w, o.repeats, io.log));
      sections.push('## At the ceiling: forward vs the same matmuls alone', '', ceilingMarkdown(report.ceiling), '');
    }
    if (o.profile) {
      report.profile = [];
      for (const w of workloads) {
        io.log(`profiling ${w.name}`);
        const p = await profileWorkload(m, w);
        report.profile.push(p);
        sections.push(`## Profile: ${w.name}`, '', profileMarkdown(p), '');
      }
    }
    m.dispose(); // before whole runs: their processes need the memory
  }
  if (o.wholeRun) {
    const threads = report.backend?.threads ?? o.threads ?? require('os').cpus().length;
    const input = o.wholeRunTexts ? wholeRunInput(dir, o.wholeRunTexts, o.seed) : undefined;
    try {
      const ort = await wholeRunOrt(o, dir, threads, skipped, io);
      report.wholeRun = await wholeRun({ modelDir: dir, threads, backend: o.backend, precision: o.precision, python: o.python, stPython: o.stPython, repeats: o.repeats, input, ort, log: io.log });
    } finally {
      if (input) fs.rmSync(path.dirname(input.file), { recursive: true, force: true });
    }
    sections.push(`## Whole runs (${input ? `${input.texts} passages` : 'one query'}, whole process)`, '', wholeRunMarkdown(report.wholeRun), '');
  }

  machine.loadAvgEnd = require('os').loadavg()[0];
  const configText = `${config.num_hidden_layers} layers, hidden ${config.hidden_size}, ${config.num_attention_heads} heads, FFN ${config.intermediate_size}`;
  const markdown = [headerMarkdown(machine, dir, configText), ...(skipped.length ? ['', ...skipped.map((s) => `- skipped: ${s}`)] : []), '', ...sections].join('\n');
  const { onnxDir: _, ...options } = o;
  const full: BenchReport = {
    format: 'e5-tfjs-bench', formatVersion: 1, machine, model: { dir, config }, options, skipped, ...report, markdown,
  };
  io.out(markdown);
  if (o.json) writeJsonAtomic(o.json, full);
  return full;
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, number | string> {
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k] as number | string]));
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, (_, v) => (v instanceof Float32Array ? Array.from(v) : v), 2) + '\n');
  fs.renameSync(tmp, file);
}

/** Start the requested peers that are available; every one that is not becomes a `skipped` note. */
async function startPeers(o: BenchOptions, dir: string, threads: number, skipped: string[], io: BenchIO): Promise<Engine[]> {
  const peers: Engine[] = [];
  let torch: TorchEngine | undefined;
  const skip = (why: string) => {
    skipped.push(why);
    io.log(`skipped: ${why}`);
  };
  const startTorch = async () => {
    try {
      torch ??= await TorchEngine.start(dir, { python: o.python, threads, impl: o.impl });
      return torch;
    } catch (e) {
      skip(`torch (${o.python} bench/torch_bench.py could not load the model): ${(e as Error).message.split('\n')[0]}`);
      return undefined;
    }
  };
  try {
    if (o.peers.includes('st') && !o.stPython) skip('st: no --st-python given');
    if (o.peers.includes('st') && o.stPython) {
      try {
        const st = await StEngine.start(dir, { python: o.stPython, threads });
        peers.push(st);
        io.log(`st: ${st.info.label}, ${st.info.threads} threads, loaded in ${st.info.loadSeconds.toFixed(2)} s`);
      } catch (e) {
        skip(`st (${o.stPython} bench/st_bench.py could not load the model; make reference-env makes that python): ${(e as Error).message.split('\n')[0]}`);
      }
    }
    if (o.peers.includes('torch') && (await startTorch())) {
      peers.push(torch!);
      io.log(`torch: ${torch!.info.label}, ${torch!.info.threads} threads, loaded in ${torch!.info.loadSeconds.toFixed(2)} s`);
    }
    const variants = ortPyVariants(o);
    if (variants.length && !fs.existsSync(o.ortPython)) {
      skip(`ort-${variants.join(', ort-')}: no ${o.ortPython} (make bench-env makes it: the reference pins plus onnx and onnxruntime)`);
    } else if (variants.length) {
      const out = modelCacheDir(dir, o.onnxDir, ORT_CACHE_TAG);
      io.log(`onnxruntime (Python): the fused fp32 and int8 exports of ${dir} in ${out} (made once: export, fuse, quantize)`);
      const made = await exportOrtModels(o.ortPython, dir, out, threads);
      if (Object.keys(made.report).some((k) => k.endsWith('_seconds'))) io.log(`ort export: ${JSON.stringify(made.report)}`);
      for (const v of variants) {
        const e = await OrtPyEngine.start(v, made[v], dir, { python: o.ortPython, threads });
        peers.push(e);
        io.log(`ort-${v}: ${e.info.label}, ${e.info.threads} threads, session in ${e.info.loadSeconds.toFixed(2)} s`);
      }
    }
    const kinds = (['web', 'node'] as OrtKind[]).filter((k) => o.peers.includes(`ort-${k}` as 'ort-web' | 'ort-node'));
    const present = kinds.filter((k) => {
      if (ortInstalled(k)) return true;
      skip(`ort-${k}: ${ORT_PACKAGES[k]} is not installed (optional peer: npm install --no-save --ignore-scripts onnxruntime-web onnxruntime-node)`);
      return false;
    });
    if (present.length) {
      const onnx = await ensureOnnx(dir, o.onnxDir, startTorch, io);
      if (!onnx) skip(`ort-${present.join(', ort-')}: no ONNX export (it needs the torch side)`);
      for (const k of onnx ? present : []) {
        try {
          const e = await OrtEngine.start(k, onnx!, dir, threads);
          peers.push(e);
          io.log(`ort-${k}: ${e.info.label}, ${e.info.threads} threads, session in ${e.info.loadSeconds.toFixed(2)} s`);
        } catch (e) {
          skip(`ort-${k}: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    }
  } catch (e) {
    for (const p of peers) await p.close();
    throw e;
  }
  // torch was started only to export the model: not a peer this run.
  if (torch && !peers.includes(torch)) await torch.close();
  return peers;
}

/** The corpus workload's texts (seeded, 16–256 tokens each) in a temp file, one a line, for whole runs. */
function wholeRunInput(dir: string, texts: number, seed: number): { file: string; texts: number; tokens: number } {
  const w = makeWorkload(parseWorkload('corpus', texts), BertTokenizer.fromFolder(dir), seed);
  if (w.kind !== 'corpus') throw new Error('the corpus workload has texts');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'e5-bench-whole-')), 'passages.txt');
  fs.writeFileSync(file, w.texts.join('\n') + '\n');
  return { file, texts, tokens: w.realTokens };
}

/** The onnxruntime (Python) variants --peers asks for: ort-fp32, ort-int8. */
function ortPyVariants(o: BenchOptions): OrtPyVariant[] {
  return (['fp32', 'int8'] as OrtPyVariant[]).filter((v) => o.peers.includes(`ort-${v}` as PeerName));
}

/** The onnxruntime peers asked for in whole runs, with their exported models (made once). */
async function wholeRunOrt(o: BenchOptions, dir: string, threads: number, skipped: string[], io: BenchIO): Promise<{ python: string; models: Partial<Record<'ort-fp32' | 'ort-int8', string>> } | undefined> {
  const variants = ortPyVariants(o);
  if (!variants.length) return undefined;
  if (!fs.existsSync(o.ortPython)) {
    skipped.push(`whole runs: ort-${variants.join(', ort-')}: no ${o.ortPython} (make bench-env)`);
    return undefined;
  }
  const made = await exportOrtModels(o.ortPython, dir, modelCacheDir(dir, o.onnxDir, ORT_CACHE_TAG), threads);
  io.log(`whole runs: onnxruntime ${variants.join(', ')} from ${path.dirname(made.fp32)}`);
  return { python: o.ortPython, models: Object.fromEntries(variants.map((v) => [`ort-${v}`, made[v]])) };
}

export const ORT_CACHE_TAG = 'e5-tfjs-ort-fused-v1';

/** A folder under `cacheDir` for exports of this model's files as they are now (path, size, mtime), per `tag`. */
export function modelCacheDir(dir: string, cacheDir: string, tag: string): string {
  const h = crypto.createHash('sha1').update(tag);
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === 'config.json').sort()) {
    const st = fs.statSync(path.join(dir, f));
    h.update(`${fs.realpathSync(path.join(dir, f))}:${st.size}:${st.mtimeMs}`);
  }
  return path.join(cacheDir, `${path.basename(dir)}-${h.digest('hex').slice(0, 12)}`);
}

/** The model (+ pooling) as ONNX, exported once per model file into `cacheDir`. */
async function ensureOnnx(dir: string, cacheDir: string, startTorch: () => Promise<TorchEngine | undefined>, io: BenchIO): Promise<string | undefined> {
  const file = path.join(modelCacheDir(dir, cacheDir, 'e5-tfjs-onnx-v1'), 'model.onnx');
  if (fs.existsSync(file)) return file;
  const torch = await startTorch();
  if (!torch) return undefined;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  io.log(`exporting ${dir} to ONNX (torch.onnx.export, once per model) → ${file}`);
  const r = await torch.exportOnnx(file);
  io.log(`exported in ${r.seconds.toFixed(1)} s (${(r.bytes / 2 ** 20).toFixed(0)} MiB)`);
  return file;
}

export async function main(argv = process.argv): Promise<void> {
  const program = addBenchOptions(new Command('bench').description('e5-tfjs vs PyTorch (and onnxruntime) benchmark; see bench/README.md'));
  program.parse(argv);
  let o: BenchOptions;
  try {
    o = benchOptions(program.opts());
  } catch (e) {
    return program.error(`error: ${(e as Error).message}`);
  }
  await runBench(o);
}

if (require.main === module) {
  main().then(
    () => process.exit(0), // wasm worker threads would keep Node alive
    (e) => {
      process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
