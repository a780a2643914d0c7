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
import { BACKEND_NAMES, BackendName, BackendOptions, BackendPlugin, currentRuntime, initialised, keepRuntime, resolvePackage, Runtime } from './runtime';

// The Runtime and what backend folders build it from live in ./runtime.ts (which the backend
// folders import: this registry imports them, so they must not import it).
export * from './runtime';

/**
 * Each backend: its folder, loaded only when that backend is tried, and whether its package is
 * installed — a cheap check that loads nothing (the CLI's --help asks it at every start).
 */
const BACKENDS: Record<BackendName, { plugin: () => BackendPlugin; installed: () => boolean }> = {
  tensorflow: { plugin: () => require('./backends/tensorflow').plugin, installed: () => tfjsNodeAddon() !== undefined },
  wasm: { plugin: () => require('./backends/wasm').plugin, installed: () => resolvePackage('@tensorflow/tfjs-backend-wasm') !== undefined },
  cpu: { plugin: () => require('./backends/cpu').plugin, installed: () => resolvePackage('@tensorflow/tfjs-backend-cpu') !== undefined },
};


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
      keepRuntime(runtime);
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

/** tfjs-node's native addon, when the package is there with it built (npm's own install, or make native). */
export function tfjsNodeAddon(): string | undefined {
  const main = resolvePackage('@tensorflow/tfjs-node');
  if (!main) return undefined;
  const lib = path.join(path.dirname(main), '..', 'lib');
  const dirs = fs.existsSync(lib) ? fs.readdirSync(lib) : [];
  return dirs.map((d) => path.join(lib, d, 'tfjs_binding.node')).find((f) => fs.existsSync(f));
}
