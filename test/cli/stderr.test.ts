/**
 * stdout and stderr in one file, as the shell makes them (`cmd > log 2>&1`, and Slurm's default):
 * both descriptors share one open file description, so one offset, and every line lands once, in
 * the order it was written. The tensorflow backend points stderr at /dev/null while TensorFlow
 * loads (engine/backends/tensorflow/quiet.ts); giving it back as a new description of the same
 * file used to make the two streams overwrite each other. Each case runs as installed here, with
 * make native's dup() addon hidden (every npm user's route), and with tfjs-node hidden too (auto
 * then picks wasm; stderr must not be touched at all).
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cachedModel } from '../../devtools/generate-model';
import { BIN, cliEnv, REPO_ROOT, tempDir } from '../support/cli';

/** Lines TensorFlow prints while it loads; they may show where stderr cannot be silenced safely. */
const TF_LOG = /^(WARNING: All log messages before absl|I0000 |.*cpu_feature_guard|.*oneDNN)/;

/** A preload that makes `require` (and require.resolve) of the modules in E5_TEST_HIDE fail, as where they are not installed. */
const HIDE = `
const Module = require('module');
const hidden = (process.env.E5_TEST_HIDE || '').split(',');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (hidden.includes(request)) throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: 'MODULE_NOT_FOUND' });
  return resolve.call(this, request, ...rest);
};
`;

/** How each case runs: as installed here, without make native's dup() addon (every npm user), without tfjs-node at all. */
const SETUPS: Array<[string, string[]]> = [
  ['as installed here', []],
  ["without make native's dup() addon", ['e5-tfjs-posix']],
  ['without @tensorflow/tfjs-node (wasm)', ['e5-tfjs-posix', '@tensorflow/tfjs-node']],
];

/** A library script: a line on each stream before and after the backend starts. */
const SCRIPT = `
require(${JSON.stringify(path.join(REPO_ROOT, 'node_modules', 'ts-node'))}).register({ transpileOnly: true, project: ${JSON.stringify(path.join(REPO_ROOT, 'tsconfig.json'))} });
const { initBackend } = require(${JSON.stringify(path.join(REPO_ROOT, 'index.ts'))});
(async () => {
  console.error('err 1');
  console.log('out 1');
  const runtime = await initBackend();
  console.error('err 2 ' + runtime.name);
  console.log('out 2');
  console.error('err 3');
})();
`;

/** `{ COMMAND; echo next; } > log 2>&1` in `dir`; the log's lines without TensorFlow's own. */
function combinedLog(dir: string, command: string, hide: string[]): string[] {
  const env = cliEnv(hide.length ? { NODE_OPTIONS: `--require ${path.join(dir, 'hide.js')}`, E5_TEST_HIDE: hide.join(',') } : {});
  const r = spawnSync('bash', ['-c', `{ ${command}; echo next; } > log 2>&1`], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const text = fs.readFileSync(path.join(dir, 'log'), 'utf8');
  assert.ok(text.endsWith('next\n'), `the log ends with the shell's own line:\n${text}`);
  return text.split('\n').slice(0, -1).filter((l) => !TF_LOG.test(l));
}

describe('stdout and stderr in one file (cmd > log 2>&1)', function () {
  this.timeout(240_000);
  let dir = '';
  before(() => {
    dir = tempDir('e5-stderr-');
    fs.writeFileSync(path.join(dir, 'hide.js'), HIDE);
    fs.writeFileSync(path.join(dir, 'script.js'), SCRIPT);
    fs.writeFileSync(path.join(dir, 'in.jsonl'), '{"text": "query: hello"}\nnot json\n{"text": "query: bye"}\n');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [how, hide] of SETUPS) {
    it(`e5 embed --on-error skip: every data line, the skip warning, the notes, in order (${how})`, () => {
      const model = cachedModel({ preset: 'tiny' });
      const lines = combinedLog(dir, `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} embed --model ${JSON.stringify(model)} --input in.jsonl --input-format jsonl --on-error skip`, hide);
      const kind = (l: string) => (l.startsWith('{"index":') ? `row ${(JSON.parse(l) as { index: number }).index}` : l.startsWith('embedded ') ? 'note' : l.replace(/:.*/s, ''));
      assert.deepEqual(lines.map(kind), ['warning', 'row 0', 'row 1', 'e5 embed', 'note', 'next'], lines.join('\n'));
      assert.match(lines[0], /^warning: skipped in\.jsonl:2: invalid JSON/);
      assert.match(lines[3], /^e5 embed: skipped 1 malformed line of in\.jsonl/);
      assert.match(lines[4], /^embedded 2 inputs \(dim 32\) with .* on (tensorflow|wasm|cpu)/);
      if (hide.includes('@tensorflow/tfjs-node')) assert.match(lines[4], / on wasm/);
    });

    it(`a library script's lines before and after initBackend() (${how})`, () => {
      const lines = combinedLog(dir, `${JSON.stringify(process.execPath)} script.js`, hide);
      assert.deepEqual(lines.map((l) => l.replace(/^err 2 .*/, 'err 2')), ['err 1', 'out 1', 'err 2', 'out 2', 'err 3', 'next'], lines.join('\n'));
    });
  }
});
