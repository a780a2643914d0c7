/**
 * A Node script that uses the library exits by itself once its work is done, on every backend
 * (threaded wasm's pthread workers and our own worker threads must not hold the event loop).
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { cachedModel, REPO_ROOT } from '../../devtools/generate-model';

const CHILD = path.join(__dirname, '..', 'support', 'exit-child.ts');

function nativeLoads(): boolean {
  return spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'native-check.js')], { stdio: 'ignore' }).status === 0;
}

describe('a script using the library exits by itself', function () {
  this.timeout(180_000);
  const model = () => cachedModel({ preset: 'small' });

  for (const backend of ['wasm', 'cpu', 'tensorflow', 'default']) {
    it(`on ${backend}`, function () {
      if (backend === 'tensorflow' && !nativeLoads()) {
        console.log("      (skipped: @tensorflow/tfjs-node does not load here; 'make native' builds it)");
        this.skip();
      }
      const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', CHILD, backend, model()], {
        cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL',
      });
      assert.notEqual(r.signal, 'SIGKILL', `still running after 60 s (the event loop is held): ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      if (backend !== 'default') assert.equal(out.backend, backend);
      assert.equal(out.dim, 128);
    });
  }
});
