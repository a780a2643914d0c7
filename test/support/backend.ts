/**
 * The backend tests run on: E5_TEST_BACKEND (wasm | cpu | tensorflow), default wasm;
 * E5_TEST_THREADS, default 2. `make test` runs the engine suites once more on cpu.
 */
import { BackendInfo, BackendName, initBackend } from '../../engine/backend';

export async function testBackend(): Promise<BackendInfo> {
  const backend = (process.env.E5_TEST_BACKEND ?? 'wasm') as BackendName;
  return initBackend({ backend, threads: Number(process.env.E5_TEST_THREADS ?? 2) });
}
