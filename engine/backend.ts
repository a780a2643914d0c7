/**
 * Backends as plug-ins. `initBackend()` sets up one tfjs backend and returns a Runtime: which
 * backend and how many threads it really got, the operations the encoder runs on it
 * (engine/ops.ts) and how weights are best loaded into it. Each backend lives in its own folder
 * (engine/backends/<name>/) and is listed once, in BACKENDS below; the model never names one.
 *
 * The library never calls tf.setBackend on its own: whoever owns the process (the CLI, a test, a
 * user's script) calls initBackend, or sets a tfjs backend itself — the model then runs on the
 * generic tfjs-ops set. tfjs's backend is process-wide, so the Runtime made for it is kept with
 * it (`currentRuntime()`), and a process has one.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import { BertParams, freshTensor, Linear, ParamsPlan } from '../weights/params';
import type { Ops } from './ops';
import type { PackedInput } from './rows';
import { genericOps } from './backends/generic/ops';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
/** Preference order when none is asked for: native, then WebAssembly, then plain JavaScript. */
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** Threads the backend really uses (read back where the backend can tell). */
  threads: number;
  /** tfjs-core version that computed the result. */
  tfjsVersion: string;
  /** The native library's version (tensorflow: TensorFlow's). */
  nativeVersion?: string;
}

export interface BackendOptions {
  /** Force a backend; default: the first of BACKEND_NAMES that loads. */
  backend?: BackendName;
  /**
   * Threads (wasm: its thread pool; tensorflow: TensorFlow's intra-op threads). Default: the number
   * of cores, which is also the most accepted (maxThreads): more only makes threads fight for them.
   */
  threads?: number;
  /** wasm: our SIMD module for attention, GELU and LayerNorm (default true; false measures without it). */
  simd?: boolean;
  /** wasm: keep tfjs-wasm's stock kernels, none of ours (default false; for measuring). */
  stockKernels?: boolean;
  /** tensorflow: let TensorFlow's load-time log lines through to stderr (default false). */
  nativeLogs?: boolean;
  /**
   * tensorflow: run forwards no hook looks into as one TensorFlow graph (./backends/tensorflow/graph/),
   * which TensorFlow fuses (default true; false runs them op by op, as hooked forwards always do).
   */
  graph?: boolean;
}

/** The whole encoder as one computation, made by a backend for forwards no hook looks into. */
export interface CompiledEncoder {
  /**
   * Whether `input` should run compiled; asked once per hook-free forward. Compiling costs a second
   * or more on the first run, so a backend may wait until the work it sees pays for that; once
   * compiled, it takes every one.
   */
  takes(input: PackedInput): boolean;
  /** The last hidden state [N, D] of a packed input (engine/rows.ts), as engine/bert.ts's encoder computes it. */
  run(input: PackedInput): tf.Tensor2D;
  /** Nodes in the compiled computation (for reports). */
  nodes: number;
  dispose(): void;
}

/** How a backend wants weights written while a model loads. */
export interface WeightSink {
  /** A float32 tensor whose values `fill` writes in place. */
  newTensor(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor;
  /** Called as each Linear is read: prepare it for the backend (wasm: XNNPACK packing). */
  onLinear?(lin: Linear, name: string): void;
  /** Resolves when background work the load started is done. */
  done: Promise<void>;
  /** 'released' when the Linear weights live only in the backend's packed copies. */
  linearWeights: 'kept' | 'released';
  /** Seconds spent preparing weights for the backend so far. */
  prepareSeconds(): number;
  /** Linear weights as [in, out] (default) or as stored, [out, in] (weights/params.ts LoadOptions). */
  linearLayout?: 'in-out' | 'out-in';
}

export interface WeightOptions {
  /** Prepare every weight during the load rather than on first use (default true). */
  prepack: boolean;
  /** Keep every Linear weight readable (default true); false lets a backend drop its copy once packed. */
  keepLinearWeights: boolean;
}

/** A backend set up for the encoder: what it is (BackendInfo's fields), and what it runs. */
export interface Runtime extends BackendInfo {
  /** BackendInfo's fields alone, for recording in results. */
  info: BackendInfo;
  ops: Ops;
  /** Where weights go while a model loads; default: a fresh array per tensor. */
  weightSink(c: BertConfig, plan: ParamsPlan, opts: WeightOptions): WeightSink;
  /**
   * The encoder of these weights as one computation (tensorflow: a TensorFlow graph), for
   * forwards no hook looks into; absent, or undefined, where the backend runs op by op only.
   */
  compileEncoder?(c: BertConfig, params: BertParams): CompiledEncoder | undefined;
  /**
   * Stop what the backend runs in the background (worker threads). Nothing the library starts
   * keeps the process alive, so this is needed only to free them early; the backend cannot be
   * used afterwards.
   */
  shutdown(): Promise<void>;
}

/** What a backend folder exports. */
export interface BackendPlugin {
  name: BackendName;
  init(opts: BackendOptions): Promise<Runtime>;
}

/**
 * Each backend: its folder, loaded only when that backend is tried, and whether its package is
 * installed — a cheap check that loads nothing (the CLI's --help asks it at every start).
 */
const BACKENDS: Record<BackendName, { plugin: () => BackendPlugin; installed: () => boolean }> = {
  tensorflow: { plugin: () => require('./backends/tensorflow').plugin, installed: () => tfjsNodeAddon() !== undefined },
  wasm: { plugin: () => require('./backends/wasm').plugin, installed: () => resolvePackage('@tensorflow/tfjs-backend-wasm') !== undefined },
  cpu: { plugin: () => require('./backends/cpu').plugin, installed: () => resolvePackage('@tensorflow/tfjs-backend-cpu') !== undefined },
};

/** The Runtime made for each tfjs backend instance. */
const runtimes = new WeakMap<tf.KernelBackend, Runtime>();

/**
 * Initialise a backend (once per process) and return its Runtime. With no backend named, the
 * first of BACKEND_NAMES that loads; every failure is named when none does.
 */
export async function initBackend(opts: BackendOptions = {}): Promise<Runtime> {
  const t = opts.threads;
  if (t !== undefined && !(Number.isSafeInteger(t) && t >= 1 && t <= maxThreads())) {
    throw new RangeError(`initBackend: threads must be an integer from 1 to ${maxThreads()} (the cores of this machine), got ${t}`);
  }
  const existing = initialised();
  if (existing) {
    if (opts.backend && opts.backend !== existing.info.name) {
      throw new Error(`backend '${existing.info.name}' is already initialised in this process; cannot switch to '${opts.backend}'`);
    }
    return existing;
  }
  // tfjs prints a banner on stderr when the cpu backend starts in Node ("install tfjs-node");
  // PROD silences tfjs's own console messages and changes no computation.
  tf.env().set('PROD', true);
  const failures: string[] = [];
  for (const name of opts.backend ? [opts.backend] : BACKEND_NAMES) {
    try {
      const runtime = await BACKENDS[name].plugin().init(opts);
      runtimes.set(tf.backend(), runtime);
      return runtime;
    } catch (e) {
      if (opts.backend) throw new Error(`backend '${name}' could not be initialised: ${(e as Error).message}`, { cause: e });
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend could be initialised (${failures.join('; ')})`);
}

/** The most threads a backend is given: the cores of this machine (the default). */
export function maxThreads(): number {
  return os.cpus().length || 1;
}

/** The backends whose packages are installed here, in preference order (nothing is loaded). */
export function installedBackends(): BackendName[] {
  return BACKEND_NAMES.filter((name) => BACKENDS[name].installed());
}

/** Where package `name`'s main file is, from here, without loading it (undefined: not installed). */
export function resolvePackage(name: string): string | undefined {
  try {
    return require.resolve(name);
  } catch {
    return undefined;
  }
}

/** tfjs-node's native addon, when the package is there with it built (npm's own install, or make native). */
export function tfjsNodeAddon(): string | undefined {
  const main = resolvePackage('@tensorflow/tfjs-node');
  if (!main) return undefined;
  const lib = path.join(path.dirname(main), '..', 'lib');
  const dirs = fs.existsSync(lib) ? fs.readdirSync(lib) : [];
  return dirs.map((d) => path.join(lib, d, 'tfjs_binding.node')).find((f) => fs.existsSync(f));
}

function initialised(): Runtime | undefined {
  const name = tf.getBackend();
  return name ? runtimes.get(tf.backend()) : undefined;
}

/**
 * The Runtime of the backend tfjs computes on: the one initBackend made, or — when a user set a
 * tfjs backend themselves — the generic tfjs-ops set on it. Throws when no backend is set.
 */
export function currentRuntime(): Runtime {
  const made = initialised();
  if (made) return made;
  const name = tf.getBackend();
  if (!name) throw new Error('no tfjs backend is set: call initBackend() first');
  return genericRuntime({ name: name as BackendName, threads: 1, tfjsVersion: tf.version_core }, genericOps);
}

/** The backend this process computes on (throws before initBackend). */
export function backendInfo(): BackendInfo {
  return currentRuntime().info;
}

/** A Runtime with the given operations, plain weight loading and nothing to shut down. */
export function genericRuntime(info: BackendInfo, ops: Ops): Runtime {
  return {
    ...info,
    info,
    ops,
    weightSink: () => plainWeightSink(),
    shutdown: async () => undefined,
  };
}

/** Each weight in a fresh Float32Array that becomes the tensor. */
export function plainWeightSink(): WeightSink {
  return {
    newTensor: freshTensor,
    done: Promise.resolve(),
    linearWeights: 'kept',
    prepareSeconds: () => 0,
  };
}

/** Make the backend `name` current in tfjs, or throw. */
export async function setTfBackend(name: string): Promise<void> {
  if (!(await tf.setBackend(name)) || tf.getBackend() !== name) {
    throw new Error(`tf.setBackend('${name}') failed`);
  }
  await tf.ready();
}
