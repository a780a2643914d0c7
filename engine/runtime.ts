/**
 * What a backend is once set up: the Runtime value (engine/backend.ts's registry makes one per
 * backend, each backend folder builds it) and the helpers backend folders build it from. Backend
 * folders import this file, never the registry, so the registry's imports of them make no cycle.
 *
 * tfjs's backend is process-wide, so the Runtime made for it is kept with that backend object
 * (`keepRuntime`, `currentRuntime`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import type { NativeF32Read } from '../weights/safetensors';
import { BertParams, DeferredReads, freshTensor, Linear, ParamsPlan } from '../weights/params';
export type { DeferredReads, PendingWeights } from '../weights/params';
import type { HookName } from './hooks';
import type { HeadIntervention, Ops } from './ops';
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

/** What a compiled forward is asked for besides the last hidden state. */
export interface CompiledRunOptions {
  /** Heads removed or scaled at attn.hook_z (an input of the computation, not a hook). */
  heads?: HeadIntervention;
  /** Hook points to return (read only), in the encoder's own layout: [N, C], or attention's [R,H,T,T]. */
  fetch?: HookName[];
}

export interface CompiledRun {
  /** The last hidden state [N, D]. */
  hidden: tf.Tensor2D;
  /** The fetched hook points (the caller owns them). */
  hooks: Map<HookName, tf.Tensor>;
}

/**
 * The whole encoder as one computation, made by a backend from engine/bert.ts for forwards no hook
 * function looks into; hook points that are only read are among its outputs.
 */
export interface CompiledEncoder {
  /**
   * Whether `input` should run compiled; asked once per forward that could. Compiling costs a second
   * or more on the first run, so a backend may wait until the work it sees pays for that; once
   * compiled, it takes every one.
   */
  takes(input: PackedInput): boolean;
  /** A packed input (engine/rows.ts) through engine/bert.ts's encoder. */
  run(input: PackedInput, opts?: CompiledRunOptions): CompiledRun;
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
  /** How F32 weights are read from the file, when the backend has a faster way (weights/params.ts LoadOptions). */
  nativeRead?: NativeF32Read;
  /** Precision 'bf16': the Linear weights as packed bfloat16 (weights/params.ts LoadOptions.packLinear). */
  packLinear?: (shape: [number, number], fill: (dst: Float32Array) => void) => tf.Tensor2D;
  /** F32 weights made at once and read in the background (weights/params.ts LoadOptions.deferred). */
  deferred?: DeferredReads;
}


export interface WeightOptions {
  /** Prepare every weight during the load rather than on first use (default true). */
  prepack: boolean;
  /** Keep every Linear weight readable (default true); false lets a backend drop its copy once packed. */
  keepLinearWeights: boolean;
  /** 'bf16': Linear weights and word table held as bfloat16 where the backend can (tensorflow); default 'fp32'. */
  precision?: Precision;
  /** Read weights in the background where the backend can (default true; LoadModelOptions.backgroundRead). */
  background?: boolean;
}

/** Numeric precision of the encoder's matmuls: float32 (the reference), or bfloat16 operands with float32 accumulation. */
export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

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

/** The Runtime made for each tfjs backend instance. */
const runtimes = new WeakMap<tf.KernelBackend, Runtime>();

/** Keep `runtime` as the Runtime of the tfjs backend now current (initBackend does, once per process). */
export function keepRuntime(runtime: Runtime): void {
  runtimes.set(tf.backend(), runtime);
}

/** The Runtime initBackend made for the tfjs backend now current, if any. */
export function initialised(): Runtime | undefined {
  const name = tf.getBackend();
  return name ? runtimes.get(tf.backend()) : undefined;
}

/** Where package `name`'s main file is, from here, without loading it (undefined: not installed). */
export function resolvePackage(name: string): string | undefined {
  try {
    return require.resolve(name);
  } catch {
    return undefined;
  }
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
