/**
 * Backend selection for the CLI, tests and benchmarks. The library itself never calls
 * tf.setBackend: whoever owns the process picks a backend here, and every result records
 * `backendInfo()` so a number can always be traced to the kernels that computed it.
 *
 * Order of preference: `tensorflow` (tfjs-node, native, where it installed) → `wasm`
 * (XNNPACK, the default that works everywhere) → `cpu` (plain JS, a correctness fallback).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { registerCpuKernels, registerWasmKernels, WasmBackendLike, wasmMemoryOf } from './kernels';
import { compileSimdModule } from './simd';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** Threads the backend really uses (read back from the backend, not what was asked for). */
  threads: number;
  /** tfjs-core version that computed the result. */
  tfjsVersion: string;
}

export interface BackendOptions {
  /** Force a backend; default: the best one that loads. */
  backend?: BackendName;
  /** Threads for wasm (default: the number of cores). */
  threads?: number;
}

let current: BackendInfo | null = null;

/** Initialise a backend once per process and return what was really set up. */
export async function initBackend(opts: BackendOptions = {}): Promise<BackendInfo> {
  if (current) {
    if (opts.backend && opts.backend !== current.name) {
      throw new Error(`backend '${current.name}' is already initialised in this process; cannot switch to '${opts.backend}'`);
    }
    return current;
  }
  // tfjs prints a banner on stderr when the cpu backend starts in Node ("install tfjs-node");
  // PROD silences tfjs's own console messages and changes no computation.
  tf.env().set('PROD', true);
  const order = opts.backend ? [opts.backend] : BACKEND_NAMES;
  const failures: string[] = [];
  for (const name of order) {
    try {
      current = await tryBackend(name, opts.threads);
      return current;
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend could be initialised (${failures.join('; ')})`);
}

/** The backend this process computes on (throws before initBackend). */
export function backendInfo(): BackendInfo {
  if (current) return current;
  // A library user may have set a backend themselves: describe it.
  const name = tf.getBackend() as BackendName;
  if (!name) throw new Error('no tfjs backend is set: call initBackend() first');
  return { name, threads: 1, tfjsVersion: tf.version_core };
}

async function tryBackend(name: BackendName, threads?: number): Promise<BackendInfo> {
  switch (name) {
    case 'tensorflow': {
      // tfjs-node registers the 'tensorflow' backend on import. It is an optionalDependency
      // that does not install everywhere (its install script downloads libtensorflow).
      require('@tensorflow/tfjs-node');
      await setAndCheck('tensorflow');
      return { name, threads: threads ?? os.cpus().length, tfjsVersion: tf.version_core };
    }
    case 'wasm': {
      const n = threads ?? os.cpus().length;
      const actual = await initWasm(n);
      return { name, threads: actual, tfjsVersion: tf.version_core };
    }
    case 'cpu': {
      require('@tensorflow/tfjs-backend-cpu');
      await setAndCheck('cpu');
      registerCpuKernels();
      return { name, threads: 1, tfjsVersion: tf.version_core };
    }
  }
}

async function setAndCheck(name: string): Promise<void> {
  if (!(await tf.setBackend(name)) || tf.getBackend() !== name) {
    throw new Error(`tf.setBackend('${name}') failed`);
  }
  await tf.ready();
}

/**
 * The wasm backend, multi-threaded in Node.
 *
 * Out of the box tfjs-backend-wasm 4.22 is single-threaded in Node: its pthread workers are
 * `blob:` URLs, which Node's Worker rejects, and the native side caps threads at half the CPU
 * count. Without touching the package we (1) declare thread support, (2) give the pthread
 * workers real files — the package's own worker script and threaded module from `wasm-out/` —
 * by wrapping worker_threads.Worker while the module starts, and (3) let the native side see
 * twice the cores during start-up so the cap is the core count. `getThreadsCount()` is read
 * back, so a trick that stops working shows up as threads = 1 rather than silently.
 * Pinned to tfjs-backend-wasm 4.22.0 (package-lock); test/backend.test.ts checks the count.
 */
async function initWasm(threads: number): Promise<number> {
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  if (threads > 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    const restore = [patchWorkers(), patchCpuCount(threads)];
    try {
      await setAndCheck('wasm');
    } finally {
      restore.forEach((undo) => undo());
    }
  } else {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    await setAndCheck('wasm');
  }
  const actual = wasm.getThreadsCount();
  if (process.env.E5_STOCK_WASM_KERNELS !== '1') registerWasmKernels(actual, await simdModule()); // E5_STOCK_WASM_KERNELS=1: measure the stock kernels
  return actual;
}

/**
 * Our SIMD module (engine/simd.ts) for the memory tfjs-wasm started with; undefined when that
 * memory is not reachable, or with E5_SIMD=0 (to measure without it: attention from tfjs ops, GELU
 * and LayerNorm in JavaScript).
 */
async function simdModule(): Promise<WebAssembly.Module | undefined> {
  const memory = wasmMemoryOf(tf.backend() as unknown as Partial<WasmBackendLike>);
  if (!memory || process.env.E5_SIMD === '0') return undefined;
  return compileSimdModule(memory.buffer instanceof SharedArrayBuffer);
}

function wasmOutDir(): string {
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
}

/** The pthread worker script is shipped as a JS string; Node needs it as a file. */
function workerScriptFile(): string {
  const { wasmWorkerContents: raw } = require(path.join(wasmOutDir(), 'tfjs-backend-wasm-threaded-simd.worker.js'));
  // As tfjs does before making its Blob: the template literal holds real newlines inside string literals.
  const wasmWorkerContents = (raw as string).replace(/\n/g, '\\n');
  const version = require('@tensorflow/tfjs-backend-wasm/package.json').version as string;
  const file = path.join(os.tmpdir(), `e5-tfjs-wasm-worker-${version}-${process.getuid?.() ?? 0}.js`);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== wasmWorkerContents) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, wasmWorkerContents);
    fs.renameSync(tmp, file);
  }
  return file;
}

function patchWorkers(): () => void {
  const wt = require('worker_threads') as typeof import('worker_threads');
  const Original = wt.Worker;
  const workerFile = workerScriptFile();
  const mainScript = path.join(wasmOutDir(), 'tfjs-backend-wasm-threaded-simd.js');
  class FileWorker extends Original {
    constructor(url: string | URL, options?: import('worker_threads').WorkerOptions) {
      super(String(url).startsWith('blob:') ? workerFile : url, options);
    }
    override postMessage(message: unknown, transfer?: readonly import('worker_threads').TransferListItem[]): void {
      const m = message as { cmd?: string; urlOrBlob?: unknown };
      if (m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') {
        message = { ...m, urlOrBlob: mainScript };
      }
      super.postMessage(message, transfer);
    }
  }
  (wt as { Worker: unknown }).Worker = FileWorker;
  return () => {
    (wt as { Worker: unknown }).Worker = Original;
  };
}

function patchCpuCount(threads: number): () => void {
  // The real module object (not an import namespace, whose properties are read-only getters).
  const osModule = require('os') as { cpus: typeof os.cpus };
  const original = osModule.cpus;
  const seen = Math.max(original().length, threads) * 2;
  osModule.cpus = () => {
    const list = original();
    return Array.from({ length: seen }, (_, i) => list[i % list.length]);
  };
  return () => {
    osModule.cpus = original;
  };
}
