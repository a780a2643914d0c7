/**
 * The progress bar where it is seen: stderr on a real terminal (a pseudo-terminal made by
 * util-linux's `script`), with stdout to a file. A terminal that takes cursor control gets the bar,
 * with a rate; -q draws none; TERM=dumb and pipes never get a cursor escape (a forced bar is plain
 * lines there).
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cachedModel } from '../../devtools/generate-model';
import { BIN, cliEnv, e5, tempDir } from '../support/cli';

const ESC = '\x1b[';
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe('the progress bar on a terminal, on TERM=dumb, with -q and on a pipe', function () {
  this.timeout(120_000);
  let dir = '';
  let args: string[] = [];
  before(function () {
    if (!hasScript) {
      console.log("      (skipped: util-linux's `script` is not installed; it makes the pseudo-terminal)");
      this.skip();
    }
    dir = tempDir('e5-progress-');
    fs.writeFileSync(path.join(dir, 'in.txt'), Array.from({ length: 40 }, (_, i) => `text number ${i}`).join('\n') + '\n');
    args = ['embed', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu', '--input', 'in.txt', '--batch-size', '2', '--chunk-size', '8'];
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  /** What `e5 embed ARGS > out.jsonl` writes to stderr when stderr is a terminal. */
  function onTerminal(term: string, extra: string[]): string {
    const command = [process.execPath, BIN, ...args, ...extra].map((a) => `'${a}'`).join(' ') + ' > out.jsonl';
    const r = spawnSync('script', ['-qefc', command, '/dev/null'], { cwd: dir, env: cliEnv({ TERM: term, COLUMNS: '120' }), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'out.jsonl'), 'utf8').trim().split('\n').length, 40);
    return r.stdout;
  }

  it('a terminal: the bar redraws in place and shows a rate', () => {
    const out = onTerminal('xterm', []);
    assert.ok(out.includes(ESC), 'cursor control');
    assert.match(out, /embed \[.*\] 40\/40 \| \d+\.\d inputs\/s \|/);
  });

  it('-q: no bar (and no notes)', () => {
    const out = onTerminal('xterm', ['-q']);
    assert.equal(out.replace(/\r/g, ''), '');
  });

  it('TERM=dumb: no bar by default; forced, plain lines without a cursor escape', () => {
    const auto = onTerminal('dumb', []);
    assert.ok(!auto.includes(ESC), JSON.stringify(auto));
    assert.doesNotMatch(auto, /embed \[/);
    const forced = onTerminal('dumb', ['--progress', 'on']);
    assert.ok(!forced.includes(ESC), JSON.stringify(forced));
    assert.match(forced, /embed \[.*\] 40\/40 \| \d+\.\d inputs\/s \|/);
  });

  it('a pipe, forced: plain lines without a cursor escape', async () => {
    const r = await e5([...args.map((a) => (a === 'in.txt' ? path.join(dir, 'in.txt') : a)), '--progress', 'on']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes(ESC), JSON.stringify(r.stderr));
    assert.match(r.stderr, /40\/40 \| \d+\.\d inputs\/s/);
  });
});
