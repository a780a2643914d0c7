/**
 * The import rules of docs/ARCHITECTURE.md are checked by dependency-cruiser (.dependency-cruiser.cjs,
 * `npm run depcheck` in `make test`). Here: the checker passes on this tree, and fails — naming the
 * rule — on a small tree that breaks a rule, so a rule that cannot fire would be found out.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const DEPCRUISE = path.join(ROOT, 'node_modules/.bin/depcruise');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string, paths: string[]): { code: number | null; out: string } {
  // stdin closed: dependency-cruiser reads a list of files from a stdin that is not a terminal.
  const r = spawnSync(DEPCRUISE, ['--config', CONFIG, ...paths], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** A tree of `files` (path → source) in a temp folder, with a tsconfig like ours. */
function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-arch-'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'commonjs', target: 'es2022', strict: true } }));
  for (const [file, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), src);
  }
  return dir;
}

describe('architecture (dependency-cruiser)', function () {
  this.timeout(60_000);

  it('this tree keeps every rule', () => {
    const r = cruise(ROOT, ['index.ts', 'util', 'tokenizer', 'weights', 'engine', 'e5', 'inspect', 'eval', 'cli', 'bench', 'devtools', 'test']);
    assert.equal(r.code, 0, r.out);
    const cruised = Number(/\((\d+) modules/.exec(r.out)?.[1]);
    assert.ok(cruised > 200, `cruised ${cruised} modules: the whole tree, not a list read from somewhere else`);
  });

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['engine/ importing cli/', { 'engine/a.ts': "import { b } from '../cli/b';\nexport const a = b;\n", 'cli/b.ts': 'export const b = 1;\n' }, /engine-below-e5: engine\/a\.ts → cli\/b\.ts/],
    ['cli/ reaching past index.ts', { 'cli/a.ts': "import { b } from '../engine/b';\nexport const a = b;\n", 'engine/b.ts': 'export const b = 1;\n' }, /cli-on-the-public-api: cli\/a\.ts → engine\/b\.ts/],
    ['a backend importing the registry', { 'engine/backends/x/index.ts': "import { r } from '../../backend';\nexport const x = r;\n", 'engine/backend.ts': 'export const r = 1;\n' }, /backends-beside-the-model/],
    ['tfjs in the tokenizer', { 'tokenizer/a.ts': "import * as tf from '@tensorflow/tfjs-core';\nexport const a = tf;\n" }, /tokenizer-knows-no-tfjs/],
    ['an import cycle', { 'e5/a.ts': "import { b } from './b';\nexport const a = () => b;\n", 'e5/b.ts': "import { a } from './a';\nexport const b = () => a;\n" }, /no-circular/],
  ];
  for (const [what, files, rule] of cases) {
    it(`fails on ${what}, naming the rule`, () => {
      const dir = tree(files);
      try {
        const r = cruise(dir, Object.keys(files));
        assert.notEqual(r.code, 0, `no violation found:\n${r.out}`);
        assert.match(r.out, rule);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
