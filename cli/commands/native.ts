/**
 * `e5 native`: make the native 'tensorflow' backend (@tensorflow/tfjs-node) work where e5-tfjs is
 * installed, offline too — the route of `make native` in a checkout (scripts/native.sh, shipped in the
 * package): tfjs-node's own install where its libtensorflow download works, else tfjs-node built from
 * the TensorFlow C library inside a tensorflow-cpu wheel (TF_WHEEL=path, or one pip fetches), plus
 * the small dup()/page-memory addon. npm drops the optional dependency silently where its download
 * fails; this is how an installed package gets it back.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Command } from 'commander';

/** The e5-tfjs package folder (a checkout, or node_modules/e5-tfjs), from cli/commands or dist/cli/commands. */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'scripts', 'native.sh'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`scripts/native.sh is not in any folder above ${__dirname}: this copy of e5-tfjs does not ship it`);
  }
}

export function register(program: Command): Command {
  const cmd = program.command('native')
    .description("make the native 'tensorflow' backend (@tensorflow/tfjs-node) work here, offline too")
    .option('--check', 'only check: exit 0 when tfjs-node loads and computes right, 1 when not');
  cmd.addHelpText('after', `
In a project that installed e5-tfjs (npx e5 native), tfjs-node goes into that project's node_modules;
in a checkout this is 'make native'. The route:
  1. tfjs-node already loads: checked, done (run it again after npm install/ci, which may drop it);
  2. tfjs-node's own install, which downloads libtensorflow (where that download works);
  3. else from a tensorflow-cpu wheel: TF_WHEEL=path/to/tensorflow_cpu-2.21.0-*.whl, or one that
     pip downloads from its configured indexes; needs python3, g++ and make. Nothing is installed
     outside the project; the wheel's licence files are kept beside the libraries.
Exit 0 when the backend works, 1 (saying what is missing) when not: e5 keeps working on wasm.

Examples (npx e5 ... in a project):
  $ e5 native
  $ TF_WHEEL=/mnt/wheels/tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl e5 native
  $ e5 native --check`);
  return cmd.action((o: { check?: boolean }) => native(!!o.check));
}

function native(checkOnly: boolean): void {
  const root = packageRoot();
  const script = path.join(root, 'scripts', checkOnly ? 'native-check.js' : 'native.sh');
  // --check: TensorFlow's load-time lines only when it fails (they may say why)
  const r = spawnSync(checkOnly ? process.execPath : 'bash', [script], {
    stdio: ['inherit', 'inherit', checkOnly ? 'pipe' : 'inherit'], env: { ...process.env, E5_NATIVE_NAME: 'e5 native' },
  });
  if (r.error) throw new Error(`could not run ${script}: ${r.error.message}`);
  if (r.status !== 0 && r.stderr) process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`the native backend does not work here (above: why); e5 keeps working on wasm`);
}
