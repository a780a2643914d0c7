/**
 * The engines the benchmark compares, behind one interface: ours in this process, PyTorch and
 * onnxruntime in child processes (bench/torch_bench.py, bench/ort_child.ts).
 *
 * Every run returns the engine's own wall time (`seconds`: performance.now() here, or measured
 * inside the child), the real and padded token counts, and `probe`: the embedding of the first
 * text, so the report can show that all engines computed the same thing.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BackendInfo } from '../engine/backend';
import { HookContext } from '../engine/hooks';
import type { EmbeddingModel } from '../e5/model';
import { packSequences } from '../engine/rows';
import { JsonLinesChild, osThreads, Reply } from './child';
import { paddedLists, Workload } from './workloads';

export type EngineName = 'ours' | 'st' | 'torch' | 'ort-web' | 'ort-node' | 'ort-fp32' | 'ort-int8';
export type PeerName = Exclude<EngineName, 'ours'>;
export const PEER_NAMES: readonly PeerName[] = ['st', 'torch', 'ort-web', 'ort-node', 'ort-fp32', 'ort-int8'];

export interface RunResult {
  /** Wall seconds of the work, measured by the engine's own process. */
  seconds: number;
  /** Wall seconds seen from the harness (includes the JSON round trip for child engines). */
  outsideSeconds: number;
  realTokens: number;
  /** Tokens the engine computed on, padding included. */
  paddedTokens: number;
  /** Seconds of tokenization inside `seconds` (corpus only, where the engine reports it). */
  tokenizeSeconds?: number;
  /** Embedding of the workload's first text. */
  probe: Float32Array;
}

export interface EngineInfo {
  name: EngineName;
  /** What ran, e.g. "e5-tfjs wasm" or "torch 1.13.0 (plain torch BERT), OpenBLAS". */
  label: string;
  /** Threads the engine reports it uses (read back where the engine allows it). */
  threads: number;
  /** Seconds to load the model (ours: loadModel; torch: build + read weights; ort: session create). */
  loadSeconds: number;
  details: Record<string, unknown>;
}

export interface Engine {
  readonly info: EngineInfo;
  prepare(w: Workload): Promise<void>;
  run(name: string): Promise<RunResult>;
  /** Peak resident set of the engine's process so far, KiB. */
  peakRssKiB(): Promise<number>;
  /** Threads of the engine's process as the OS counts them (workers/pools included). */
  osThreads(): number | undefined;
  close(): Promise<void>;
}

/** The repository root (where package.json is), from the sources or from dist/. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the repository root above ${__dirname}`);
    dir = up;
  }
  return dir;
}

// ---------------------------------------------------------------- ours, in this process

export class OursEngine implements Engine {
  private readonly workloads = new Map<string, Workload>();
  constructor(private readonly m: EmbeddingModel, backend: BackendInfo, loadWallSeconds: number) {
    this.info = {
      name: 'ours', label: `e5-tfjs ${backend.name}${m.info.precision === 'bf16' ? ', bf16' : ''}`, threads: backend.threads, loadSeconds: loadWallSeconds,
      details: { backend: backend.name, tfjs: backend.tfjsVersion, weightsSeconds: m.info.loadSeconds, prepackSeconds: m.info.prepackSeconds },
    };
  }
  readonly info: EngineInfo;

  async prepare(w: Workload): Promise<void> {
    this.workloads.set(w.name, w);
  }

  async run(name: string): Promise<RunResult> {
    const w = this.workloads.get(name);
    if (!w) throw new Error(`no workload '${name}' prepared`);
    const t0 = performance.now();
    if (w.kind === 'batch') {
      const probe = await forwardBatch(this.m, w);
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, outsideSeconds: seconds, realTokens: w.realTokens, paddedTokens: w.realTokens, probe };
    }
    // End to end through the public API: tokenize, length-sorted batches, unpadded packing, pool.
    const r = await this.m.embed(w.texts, { batchSize: w.batchSize });
    const seconds = (performance.now() - t0) / 1000;
    const real = r.nTokens.reduce((a, b) => a + b, 0);
    return { seconds, outsideSeconds: seconds, realTokens: real, paddedTokens: real, probe: r.embeddings[0] };
  }

  async peakRssKiB(): Promise<number> {
    return process.resourceUsage().maxRSS;
  }
  osThreads(): number | undefined {
    return osThreads(process.pid);
  }
  async close(): Promise<void> {
    this.m.dispose();
  }
}

/** One forward of a fixed batch (every row has the same length: no padding) → row 0's embedding. */
export async function forwardBatch(m: EmbeddingModel, w: Extract<Workload, { kind: 'batch' }>): Promise<Float32Array> {
  const out = m.bert.run(packSequences(w.encodings), { poolerOutput: false }, new HookContext());
  try {
    const data = (await out.embedding.data()) as Float32Array;
    return data.slice(0, out.embedding.shape[1]);
  } finally {
    out.dispose();
  }
}

// ---------------------------------------------------------------- child engines

abstract class ChildEngine implements Engine {
  info!: EngineInfo;
  constructor(protected readonly child: JsonLinesChild) {}

  async prepare(w: Workload): Promise<void> {
    if (w.kind === 'batch') {
      await this.child.request({ cmd: 'prepare', name: w.name, ...snake(paddedLists(w.encodings)) });
    } else {
      await this.child.request({ cmd: 'prepare_texts', name: w.name, texts: w.texts, batch_size: w.batchSize });
    }
  }

  async run(name: string): Promise<RunResult> {
    const { reply, outsideSeconds } = await this.child.request({ cmd: 'run', name });
    return {
      seconds: num(reply, 'seconds'), outsideSeconds,
      realTokens: num(reply, 'real_tokens'), paddedTokens: num(reply, 'padded_tokens'),
      tokenizeSeconds: typeof reply.tokenize_seconds === 'number' ? reply.tokenize_seconds : undefined,
      probe: Float32Array.from(reply.probe as number[]),
    };
  }

  async peakRssKiB(): Promise<number> {
    return num((await this.child.request({ cmd: 'stats' })).reply, 'maxrss_kib');
  }
  osThreads(): number | undefined {
    return osThreads(this.child.pid);
  }
  close(): Promise<void> {
    return this.child.close();
  }
}

function snake(l: { inputIds: number[][]; attentionMask: number[][] }): Record<string, unknown> {
  return { input_ids: l.inputIds, attention_mask: l.attentionMask };
}

function num(reply: Reply, key: string): number {
  const v = reply[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`reply field '${key}' is ${JSON.stringify(v)}, expected a number`);
  return v;
}

export interface TorchOptions {
  python: string;
  threads: number;
  /** auto | transformers | torch (test/parity/reference.py's loader). */
  impl: string;
}

/** PyTorch in a persistent `python3 bench/torch_bench.py`, OMP_WAIT_POLICY=PASSIVE. */
export class TorchEngine extends ChildEngine {
  static async start(modelDir: string, o: TorchOptions): Promise<TorchEngine> {
    const script = path.join(repoRoot(), 'bench', 'torch_bench.py');
    // PASSIVE: idle OpenMP threads sleep instead of spinning against OpenBLAS's own threads
    // (4.7 s instead of 2.9 s for e5-large 8×128 without it) and against the other engines.
    const env = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
    const e = new TorchEngine(new JsonLinesChild('torch_bench.py', o.python, [script], env));
    const { reply } = await e.child.request({ cmd: 'load', model: modelDir, threads: o.threads, impl: o.impl });
    e.info = {
      name: 'torch', label: `torch ${reply.torch_version}, ${reply.impl === 'torch' ? 'plain-torch BERT (test/parity/bert_torch.py)' : reply.impl}`, threads: num(reply, 'threads'),
      loadSeconds: num(reply, 'load_seconds'),
      details: {
        importSeconds: reply.import_seconds, interopThreads: reply.interop_threads, blas: reply.blas,
        tokenizer: reply.tokenizer, ompWaitPolicy: reply.omp_wait_policy,
      },
    };
    return e;
  }

  /** Export the model (+ mean pool + normalise) to ONNX at `file` for the onnxruntime peers. */
  async exportOnnx(file: string): Promise<{ seconds: number; bytes: number }> {
    const { reply } = await this.child.request({ cmd: 'export_onnx', path: file });
    return { seconds: num(reply, 'seconds'), bytes: num(reply, 'bytes') };
  }
}

/** sentence-transformers on PyTorch 2.x in a persistent `PY bench/st_bench.py` (PY: the reference venv's python). */
export class StEngine extends ChildEngine {
  static async start(modelDir: string, o: { python: string; threads: number }): Promise<StEngine> {
    const script = path.join(repoRoot(), 'bench', 'st_bench.py');
    const e = new StEngine(new JsonLinesChild('st_bench.py', o.python, [script], { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' }));
    const { reply } = await e.child.request({ cmd: 'load', model: modelDir, threads: o.threads });
    e.info = {
      name: 'st', label: `sentence-transformers ${reply.st_version} (transformers ${reply.transformers_version}, torch ${reply.torch_version})`,
      threads: num(reply, 'threads'), loadSeconds: num(reply, 'load_seconds'), details: { importSeconds: reply.import_seconds },
    };
    return e;
  }

  /** Loads the model again in the same process (bench/load.ts); its load_seconds. */
  async reload(modelDir: string, threads: number): Promise<number> {
    return num((await this.child.request({ cmd: 'load', model: modelDir, threads })).reply, 'load_seconds');
  }
}

export type OrtPyVariant = 'fp32' | 'int8';

/**
 * Python onnxruntime on the fused export (fp32) or its dynamic int8 quantization, in a persistent
 * `PY bench/ort_bench.py` (PY: the bench venv's python, make bench-env). `onnxFile` comes from
 * `exportOrtModels`.
 */
export class OrtPyEngine extends ChildEngine {
  static async start(variant: OrtPyVariant, onnxFile: string, modelDir: string, o: { python: string; threads: number }): Promise<OrtPyEngine> {
    const script = path.join(repoRoot(), 'bench', 'ort_bench.py');
    const e = new OrtPyEngine(new JsonLinesChild(`ort_bench.py (${variant})`, o.python, [script], process.env));
    const { reply } = await e.child.request({ cmd: 'load', onnx: onnxFile, model: modelDir, threads: o.threads });
    e.info = {
      name: `ort-${variant}`,
      label: `onnxruntime ${reply.ort_version} (Python), ${variant === 'fp32' ? 'fused fp32' : 'fused, dynamic int8 (QInt8 weights)'}`,
      threads: num(reply, 'threads'), loadSeconds: num(reply, 'load_seconds'),
      details: { importSeconds: reply.import_seconds, onnx: onnxFile, tokenizer: 'transformers (model folder)' },
    };
    return e;
  }

  /** Normalised embeddings of `texts` (tokenized by transformers, padded per batch), in input order. */
  async embed(texts: string[], batchSize = 32, maxLength = 512): Promise<{ embeddings: Float32Array[]; nTokens: number[]; truncated: boolean[] }> {
    const { reply } = await this.child.request({ cmd: 'embed', texts, batch_size: batchSize, max_length: maxLength });
    return { embeddings: (reply.embeddings as number[][]).map((e) => Float32Array.from(e)), nTokens: reply.n_tokens as number[], truncated: reply.truncated as boolean[] };
  }
}

export interface OrtExport {
  fp32: string;
  int8: string;
  /** What this call did (absent parts were already cached): seconds per step, fused op counts. */
  report: Record<string, unknown>;
}

/**
 * The fused fp32 and int8 ONNX models for `modelDir`, made once into `outDir` by a one-shot
 * `PY bench/ort_bench.py --export` (its own process, so the export's memory is not counted in the
 * peer's peak RSS).
 */
export async function exportOrtModels(python: string, modelDir: string, outDir: string, threads: number): Promise<OrtExport> {
  const script = path.join(repoRoot(), 'bench', 'ort_bench.py');
  const { stdout } = await runChild(python, [script, '--export', '--model', modelDir, '--out', outDir, '--threads', String(threads)]);
  const last = stdout.trim().split('\n').pop() ?? '';
  let report: Record<string, unknown>;
  try {
    report = JSON.parse(last);
  } catch {
    throw new Error(`ort_bench.py --export printed no JSON report: ${last.slice(0, 200)}`);
  }
  return { fp32: String(report.fp32), int8: String(report.int8), report };
}

function runChild(cmd: string, args: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr = (stderr + b).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ stdout }) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stderr.trim().split('\n').slice(-10).join('\n')}`))));
  });
}

export type OrtKind = 'web' | 'node';
export const ORT_PACKAGES: Record<OrtKind, string> = { web: 'onnxruntime-web', node: 'onnxruntime-node' };

/** Whether an optional onnxruntime package can be required from here (node_modules or NODE_PATH). */
export function ortInstalled(kind: OrtKind): boolean {
  try {
    require.resolve(ORT_PACKAGES[kind]);
    return true;
  } catch {
    return false;
  }
}

/** onnxruntime-web (wasm) or onnxruntime-node in a child Node process (bench/ort_child.ts). */
export class OrtEngine extends ChildEngine {
  static async start(kind: OrtKind, onnxFile: string, modelDir: string, threads: number): Promise<OrtEngine> {
    const fromSource = __filename.endsWith('.ts');
    const script = path.join(__dirname, `ort_child.${fromSource ? 'ts' : 'js'}`);
    const args = fromSource ? ['-r', 'ts-node/register/transpile-only', script] : [script];
    const child = new JsonLinesChild(`ort_child (${kind})`, process.execPath, args, process.env, repoRoot());
    const e = new OrtEngine(child);
    const { reply } = await child.request({ cmd: 'load', kind, onnx: onnxFile, model_dir: modelDir, threads });
    e.info = {
      name: kind === 'web' ? 'ort-web' : 'ort-node',
      label: `${ORT_PACKAGES[kind]} ${reply.version}${kind === 'web' ? ' (wasm)' : ' (cpu)'}`,
      threads: num(reply, 'threads'), loadSeconds: num(reply, 'load_seconds'),
      details: { onnx: onnxFile, tokenizer: 'ours (BertTokenizer)' },
    };
    return e;
  }
}

export function cpuCount(): number {
  return os.cpus().length;
}
