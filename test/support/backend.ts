/**
 * The backend tests run on: E5_TEST_BACKEND (wasm | cpu | tensorflow), default wasm;
 * E5_TEST_THREADS, default 2. `make test` runs the engine suites once more on cpu.
 */
import { BackendInfo, BackendName, currentRuntime, initBackend, Runtime } from '../../engine/backend';

export async function testBackend(): Promise<BackendInfo> {
  const backend = (process.env.E5_TEST_BACKEND ?? 'wasm') as BackendName;
  try {
    return await initBackend({ backend, threads: Number(process.env.E5_TEST_THREADS ?? 2) });
  } catch (e) {
    // A suite asked to run on a backend it cannot get fails, saying how to get it (never passes silently).
    const hint = backend === 'tensorflow' ? " — run 'make native' (it says what is missing)" : '';
    throw new Error(`E5_TEST_BACKEND=${backend}: ${(e as Error).message}${hint}`);
  }
}

/**
 * In a suite's before(): the tensorflow runtime, or the suite skipped with a line saying how to run
 * it (`what` runs on the tensorflow backend).
 */
export async function tensorflowOrSkip(ctx: Mocha.Context, what = 'these run'): Promise<Runtime> {
  await testBackend();
  const runtime = currentRuntime();
  if (runtime.name !== 'tensorflow') {
    console.log(`      (skipped: ${what} on the tensorflow backend: E5_TEST_BACKEND=tensorflow after 'make native'; this run is on ${runtime.name})`);
    ctx.skip();
  }
  return runtime;
}
