/**
 * The tensorflow backend: @tensorflow/tfjs-node, TensorFlow's C library (oneDNN's AVX-512 GEMMs)
 * behind tfjs. An optional dependency: npm installs it where its libtensorflow download works,
 * `make native` builds it from a tensorflow-cpu wheel where it does not (scripts/native.sh).
 *
 * TensorFlow reads its thread count when the library loads, so `threads` is set (as
 * TF_NUM_INTRAOP_THREADS, with one inter-op thread) before the first require. Loading the library prints log lines on
 * stderr that TF_CPP_MIN_LOG_LEVEL does not reach; unless `nativeLogs` is set, stderr is pointed
 * at /dev/null for the duration of the load (./quiet.ts) and restored right after.
 */
import * as os from 'os';
import * as tf from '@tensorflow/tfjs-core';
import { BackendOptions, BackendPlugin, genericRuntime, resolvePackage, Runtime, setTfBackend } from '../../runtime';
import { compileEncoderGraph } from './graph/encoder';
import { withStderrSilenced } from './quiet';
import { bf16Kernels } from './bf16';
import { tensorflowOps } from './ops';
import { tfOps } from './tf-ops';
import { tensorflowWeightSink } from './weights';

const HOW_TO_GET_IT = "the 'tensorflow' backend needs @tensorflow/tfjs-node: `npm install @tensorflow/tfjs-node` where its download works, or `npx e5 native` (`make native` in a checkout; builds it offline from a tensorflow-cpu wheel)";

export const plugin: BackendPlugin = {
  name: 'tensorflow',
  async init(opts: BackendOptions): Promise<Runtime> {
    const threads = opts.threads ?? os.cpus().length;
    const main = resolvePackage('@tensorflow/tfjs-node');
    // Not installed (every npm user without the optional dependency): nothing to load, nothing to silence.
    if (main === undefined) throw new Error(HOW_TO_GET_IT);
    const loaded = require.cache[main] !== undefined;
    if (!loaded) {
      process.env.TF_NUM_INTRAOP_THREADS = String(threads);
      // One op at a time, each on all the threads: a graph run (./graph/) would otherwise start q, k
      // and v's GEMMs side by side on a pool per core, each wanting every core (8×128: 2.86 → 2.39 s).
      process.env.TF_NUM_INTEROP_THREADS ??= '1';
      process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    }
    const load = () => require('@tensorflow/tfjs-node');
    try {
      if (opts.nativeLogs) load();
      else withStderrSilenced(load);
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && /tfjs-node/.test((e as Error).message);
      throw new Error(missing ? HOW_TO_GET_IT : `@tensorflow/tfjs-node does not load (${firstLine(e)}); ${HOW_TO_GET_IT}`);
    }
    await setTfBackend('tensorflow');
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    const info = { name: 'tensorflow' as const, threads: Number(process.env.TF_NUM_INTRAOP_THREADS) || threads, tfjsVersion: tf.version_core, nativeVersion: binding?.TF_Version };
    return {
      ...genericRuntime(info, tensorflowOps(tfOps(), bf16Kernels())),
      weightSink: (c, plan, o) => tensorflowWeightSink(plan, { precision: o.precision, config: c, background: o.background }),
      compileEncoder: opts.graph === false ? undefined : compileEncoderGraph,
    };
  },
};

function firstLine(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0];
}
