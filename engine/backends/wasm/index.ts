/**
 * The wasm backend (tfjs-backend-wasm: XNNPACK, WebAssembly SIMD), multi-threaded in Node, with
 * our kernels (./kernels.ts, ./simd.ts) and weights written straight into its heap (./heap.ts).
 *
 * Out of the box tfjs-backend-wasm 4.22 is single-threaded in Node: its pthread workers are
 * `blob:` URLs, which Node's Worker rejects, and the native side caps threads at half the CPU
 * count. Without touching the package, while the module starts (and only then: both patches are
 * undone before init returns) we (1) declare thread support, (2) give the pthread workers real
 * files — the package's own worker script and threaded module from `wasm-out/` — by wrapping
 * worker_threads.Worker, and (3) let the native side see twice the cores so the cap is the core
 * count. The pthread workers are unref'd: they never keep a script's process alive.
 * `getThreadsCount()` is read back, so a trick that stops working shows up as threads = 1.
 * Pinned to tfjs-backend-wasm 4.22.0 (package-lock); test/engine/backend.test.ts checks the count.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../../../weights/config';
import { linearParameterCount, ParamsPlan } from '../../../weights/params';
import { BackendOptions, BackendPlugin, currentRuntime, genericRuntime, plainWeightSink, Runtime, setTfBackend, WeightOptions, WeightSink } from '../../runtime';
import { genericOps } from '../generic/ops';
import { filledTensor, prefaultWasmHeap, prepackLinear, releaseLinearWeight } from './heap';
import { registerWasmKernels, WasmBackendLike, wasmMemoryOf, WasmKernelState } from './kernels';
import { wasmOps } from './ops';
import { compileSimdModule } from './simd';

/** The wasm Runtime carries the state its kernels share. */
export interface WasmRuntime extends Runtime {
  kernels: WasmKernelState;
}

/** The wasm kernels' state of `runtime` (default: the current one); undefined off wasm or with the stock kernels. */
export function wasmKernels(runtime: Runtime = currentRuntime()): WasmKernelState | undefined {
  return (runtime as Partial<WasmRuntime>).kernels;
}

/** Threads the wasm GELU/LayerNorm kernels have used for large inputs so far (1 until one ran split). */
export function elementwiseThreads(runtime?: Runtime): number {
  return wasmKernels(runtime)?.elementwiseThreads() ?? 1;
}

/** Whether our attention kernels run for heads of Dh floats (wasm, the SIMD module assembled, Dh a multiple of 8). */
export function simdAttentionAvailable(Dh: number, runtime?: Runtime): boolean {
  return wasmKernels(runtime)?.simdAttention(Dh) ?? false;
}

export const plugin: BackendPlugin = {
  name: 'wasm',
  async init(opts: BackendOptions): Promise<Runtime> {
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    const asked = opts.threads ?? os.cpus().length;
    await startWasm(wasm, asked);
    const threads = wasm.getThreadsCount();
    const info = { name: 'wasm' as const, threads, tfjsVersion: tf.version_core };
    if (opts.stockKernels) return genericRuntime(info, genericOps);
    const kernels = new WasmKernelState(threads, opts.simd === false ? undefined : await simdModule());
    registerWasmKernels(kernels);
    const runtime: WasmRuntime = {
      ...genericRuntime(info, wasmOps(kernels)),
      kernels,
      weightSink: (c, plan, o) => heapWeightSink(c, plan, o, threads),
      shutdown: () => kernels.shutdown(),
    };
    return runtime;
  },
};

async function startWasm(wasm: typeof import('@tensorflow/tfjs-backend-wasm'), threads: number): Promise<void> {
  if (threads <= 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    await setTfBackend('wasm');
    return;
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const restore = [patchWorkers(), patchCpuCount(threads)];
  try {
    await setTfBackend('wasm');
  } finally {
    restore.forEach((undo) => undo());
  }
}

/** Our SIMD module (./simd.ts) for the memory tfjs-wasm started with; undefined when that memory is not reachable. */
async function simdModule(): Promise<WebAssembly.Module | undefined> {
  const memory = wasmMemoryOf(tf.backend() as unknown as Partial<WasmBackendLike>);
  return memory ? compileSimdModule(memory.buffer instanceof SharedArrayBuffer) : undefined;
}

/**
 * Weights straight into the wasm heap, the heap faulted in by worker threads meanwhile, each
 * Linear handed to XNNPACK as it is read and — without keepLinearWeights — its own memory given
 * back once packed (./heap.ts).
 */
function heapWeightSink(c: BertConfig, plan: ParamsPlan, opts: WeightOptions, threads: number): WeightSink {
  const release = !opts.keepLinearWeights;
  if (!release && !opts.prepack) return { ...plainWeightSink(), newTensor: filledTensor };
  const linearWeights = release ? 'released' : 'kept';
  const prefault = prefaultWasmHeap(heapBytes(c, plan, linearWeights), threads);
  let ms = 0;
  return {
    newTensor: filledTensor,
    onLinear(lin, name) {
      const t = performance.now();
      if (!(release && releaseLinearWeight(lin, name))) prepackLinear(lin);
      ms += performance.now() - t;
    },
    done: prefault?.done ?? Promise.resolve(),
    linearWeights,
    prepareSeconds: () => ms / 1000,
  };
}

/**
 * Heap bytes the loaded model will occupy: every parameter as float32, plus XNNPACK's packed
 * copy of each Linear (weight + bias; 1024/4096 are multiples of its tile widths). With the
 * weights released, their memory is reused from one Linear to the next: only the largest counts.
 */
export function heapBytes(c: BertConfig, plan: ParamsPlan, linearWeights: 'kept' | 'released' = 'kept'): number {
  const released = linearWeights === 'released'
    ? linearParameterCount(c, plan.hasPooler, 'weights') - c.hiddenSize * Math.max(c.hiddenSize, c.intermediateSize) : 0;
  return 4 * (plan.parameterCount + linearParameterCount(c, plan.hasPooler) - released);
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
      super.unref();
    }
    // A pthread of tfjs-wasm's pool waits for work for ever; Emscripten ref()s a worker when its
    // thread starts, which would keep every script's process alive. Kernels never need the event
    // loop (the main thread waits for its pool synchronously), so these workers stay unref'd.
    override ref(): void {}
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
