/**
 * `e5 embed` as a Unix filter: texts from stdin when no TEXT is given, `-o -` for stdout,
 * binary formats written to a redirected stdout, and a warning when JSON Lines are read as
 * plain lines. The expectations are the same texts embedded as TEXT arguments into files.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import stringWidth from 'string-width';
import { renderTable, truncateLabel } from '../../cli/format';
import { BertTokenizer, SafetensorsFile } from '../../index';
import { BIN, cliEnv, e5, jsonLines, tempDir } from '../support/cli';
import { cachedModel } from '../../devtools/generate-model';

interface EmbedLine { index: number; embedding: number[] }

describe('e5 embed as a Unix filter', function () {
  this.timeout(120_000);
  let M: string[];
  let dir: string;
  let expected: number[][];
  const TEXTS = ['first text', 'the second one', 'третий'];

  before(async () => {
    M = ['--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu'];
    dir = tempDir();
    const r = await e5(['embed', ...M, ...TEXTS]);
    assert.equal(r.code, 0, r.stderr);
    expected = jsonLines<EmbedLine>(r.stdout).map((l) => l.embedding);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads stdin when no TEXT is given and stdin is not a terminal', async () => {
    const r = await e5(['embed', ...M], { input: TEXTS.join('\n') + '\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(jsonLines<EmbedLine>(r.stdout).map((l) => l.embedding), expected);
  });

  it('an empty stdin with no TEXT is still "nothing to do" (exit 2), before the model is opened', async () => {
    const r = await e5(['embed', '--model', '/nonexistent/model'], { input: '' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /nothing to do: .*stdin was empty/);
  });

  it("-o - writes to stdout, not to a file named '-'", async () => {
    const r = await e5(['embed', ...M, '-o', '-', ...TEXTS], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(jsonLines<EmbedLine>(r.stdout).map((l) => l.embedding), expected);
    assert.equal(fs.existsSync(path.join(dir, '-')), false);
  });

  it('npy and safetensors go to a redirected stdout, byte for byte what --output writes', async () => {
    for (const format of ['npy', 'safetensors']) {
      const file = path.join(dir, `out.${format}`);
      const toFile = await e5(['embed', ...M, '-f', format, '-o', file, ...TEXTS]);
      assert.equal(toFile.code, 0, toFile.stderr);
      const toStdout = await e5(['embed', ...M, '-f', format, ...TEXTS]);
      assert.equal(toStdout.code, 0, toStdout.stderr);
      if (format === 'npy') assert.deepEqual(toStdout.raw, fs.readFileSync(file));
      else {
        // The metadata records timings-free settings only, so the two files must agree tensor for tensor.
        const piped = path.join(dir, 'piped.safetensors');
        fs.writeFileSync(piped, toStdout.raw);
        const a = SafetensorsFile.open(file), b = SafetensorsFile.open(piped);
        try {
          assert.deepEqual(b.metadata, a.metadata);
          assert.deepEqual(Array.from(b.readF32('embeddings')), Array.from(a.readF32('embeddings')));
        } finally {
          a.close();
          b.close();
        }
      }
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  it('JSON Lines read as plain lines get one warning naming the first such line', async () => {
    const jsonl = TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n';
    const r = await e5(['embed', ...M, '-i', '-'], { input: jsonl });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.match(/looks like a JSON object/g)?.length, 1, r.stderr);
    assert.match(r.stderr, /<stdin>:1 looks like a JSON object.*--input-format jsonl/);
    const explicit = await e5(['embed', ...M, '-i', '-', '--input-format', 'lines'], { input: jsonl });
    assert.doesNotMatch(explicit.stderr, /looks like a JSON object/, 'an explicit --input-format lines is not second-guessed');
  });
});

describe('e5 embed --output without --force never replaces a file that appears during the run', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Start a run reading stdin, create `target` once its temp file exists, then let it finish. */
  async function raceWithOtherWriter(target: string, extra: string[]): Promise<{ code: number; stderr: string }> {
    const model = cachedModel({ preset: 'tiny' });
    const child = spawn(process.execPath, [BIN, 'embed', '--model', model, '--backend', 'cpu', '-i', '-', '-o', target, ...extra], { env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdin.write('first line\n');
    const deadline = Date.now() + 60_000;
    while (!fs.readdirSync(dir).some((f) => f.endsWith('.tmp'))) {
      if (Date.now() > deadline) throw new Error(`no temp file appeared; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    fs.writeFileSync(target, 'written by someone else\n');
    child.stdin.end('second line\n');
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    return { code, stderr };
  }

  it('without --force: exit 1, the other file kept, no temp file left', async () => {
    const target = path.join(dir, 'race.jsonl');
    const r = await raceWithOtherWriter(target, []);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /race\.jsonl: created by someone else while this run was writing; it was left as it is/);
    assert.equal(fs.readFileSync(target, 'utf8'), 'written by someone else\n');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  it('with --force: replaced by the complete output', async () => {
    const target = path.join(dir, 'forced.jsonl');
    const r = await raceWithOtherWriter(target, ['--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonLines(fs.readFileSync(target, 'utf8')).length, 2);
  });
});

describe('temp files left by a killed run', function () {
  this.timeout(120_000);
  it('are removed by the next run to the same output; a live run\'s and unrelated files are kept', async () => {
    const dir = tempDir();
    try {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a process that has exited
      const stale = [`.out.npy.${dead}.0badc0de.tmp`, `..out.npy.${dead}.0badc0de.tmp.${dead}.12345678.tmp`];
      const keep = [`.out.npy.${process.pid}.0badc0de.tmp`, '.out.npy.notes', `.other.npy.${dead}.0badc0de.tmp`];
      for (const f of [...stale, ...keep]) fs.writeFileSync(path.join(dir, f), 'partial');
      const r = await e5(['embed', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu', '-o', path.join(dir, 'out.npy'), 'hello']);
      assert.equal(r.code, 0, r.stderr);
      for (const f of stale) assert.match(r.stderr, new RegExp(`removed ${f.replace(/\./g, '\\.')}, left by a run that was killed`));
      assert.deepEqual(fs.readdirSync(dir).sort(), [...keep, 'out.npy'].sort());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('e5 inspect --hooks', function () {
  this.timeout(120_000);
  let M: string[];
  let T: number;
  before(() => {
    const model = cachedModel({ preset: 'tiny' });
    M = ['--model', model, '--backend', 'cpu'];
    T = BertTokenizer.fromFolder(model).encode('summit define').nTokens;
  });

  it('does not swallow the TEXT after it; comma-separated and repeated forms add up', async () => {
    const r = await e5(['inspect', ...M, '--hooks', 'blocks.0.attn.hook_pattern,hook_pooled', '--hooks', 'hook_embedding', 'summit define']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s{2,}/));
    assert.deepEqual(rows.map((c) => c[0]), ['blocks.0.attn.hook_pattern', 'hook_pooled', 'hook_embedding']);
    assert.equal(rows[0][1], `[1, 4, ${T}, ${T}]`, 'one text, 4 heads');
  });

  it("a bare hook name suggests '*.name'", async () => {
    const r = await e5(['inspect', ...M, '--hooks', 'hook_pattern', 'summit define']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--hooks 'hook_pattern' matches no hook point .*did you mean '\*\.hook_pattern'\?/);
  });
});

describe('one error format', function () {
  this.timeout(60_000);
  it("usage errors begin 'e5 COMMAND: ' like runtime errors (commander's own and ours)", async () => {
    const cases: Array<[string[], string]> = [
      [['embed', '--bogus', 'x'], "e5 embed: unknown option '--bogus'"],
      [['embed', '--batch-size', '0', 'x'], "e5 embed: option '--batch-size <n>' argument '0' is invalid"],
      [['tokenize', '--input', 'f.txt', 'x'], 'e5 tokenize: give TEXT arguments or --input FILE, not both'],
      [['frobnicate'], "e5: unknown command 'frobnicate'"],
    ];
    for (const [args, first] of cases) {
      const r = await e5(args);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.startsWith(first), `e5 ${args.join(' ')}: ${r.stderr}`);
    }
  });
});

describe('e5 embed --on-error skip and suspicious input', function () {
  this.timeout(120_000);
  let M: string[];
  let dir: string;
  before(() => {
    M = ['--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu'];
    dir = tempDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('each row keeps its input line number ("line"; safetensors "lines")', async () => {
    const input = path.join(dir, 'mixed.jsonl');
    // Lines 1, 4 and 6 are good; 2 is bad JSON, 3 lacks the field, 5 is blank (no record).
    fs.writeFileSync(input, ['{"text":"a"}', '{oops', '{"body":"b"}', '{"text":"c"}', '', '{"text":"d"}'].join('\n') + '\n');
    const r = await e5(['embed', ...M, '-i', input, '--on-error', 'skip']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(jsonLines<{ index: number; line: number }>(r.stdout).map((l) => [l.index, l.line]), [[0, 1], [1, 4], [2, 6]]);
    const st = path.join(dir, 'mixed.safetensors');
    const s = await e5(['embed', ...M, '-i', input, '--on-error', 'skip', '-o', st]);
    assert.equal(s.code, 0, s.stderr);
    const f = SafetensorsFile.open(st);
    try {
      assert.deepEqual(JSON.parse(f.metadata.lines), [1, 4, 6]);
    } finally {
      f.close();
    }
  });

  it('a run that skipped every line exits 1 and writes nothing', async () => {
    const input = path.join(dir, 'allbad.jsonl');
    fs.writeFileSync(input, '{oops\n[1]\n');
    const out = path.join(dir, 'allbad.out.jsonl');
    const r = await e5(['embed', ...M, '-i', input, '--on-error', 'skip', '-o', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /skipped 2 malformed lines/);
    assert.match(r.stderr, /e5 embed: nothing embedded: every input line was skipped/);
    assert.equal(fs.existsSync(out), false);
  });

  it('lone surrogates and bare carriage returns get a warning naming the first line and the count', async () => {
    const jsonl = path.join(dir, 'surrogates.jsonl');
    fs.writeFileSync(jsonl, ['{"text":"fine"}', '{"text":"a\\ud800b"}', '{"text":"\\udc00"}', '{"text":"\\ud83d\\ude00 a pair is fine"}'].join('\n') + '\n');
    const a = await e5(['embed', ...M, '-i', jsonl]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, /warning: 2 lines of .*surrogates\.jsonl \(first: .*surrogates\.jsonl:2\) contain a lone UTF-16 surrogate/);
    const mac = path.join(dir, 'mac.txt');
    fs.writeFileSync(mac, 'one\rtwo\rthree\r');
    const b = await e5(['embed', ...M, '-i', mac]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /warning: 1 line of .*mac\.txt \(first: .*mac\.txt:1\) contains a carriage return not followed by a newline/);
    const crlf = path.join(dir, 'crlf.txt');
    fs.writeFileSync(crlf, 'one\r\ntwo\r\n');
    const c = await e5(['embed', ...M, '-i', crlf]);
    assert.doesNotMatch(c.stderr, /carriage return/, 'CRLF line endings are normal');
  });
});

describe('tables align by display width', function () {
  this.timeout(60_000);
  it('renderTable and truncateLabel count terminal columns (CJK and emoji take two)', () => {
    const t = renderTable(['a', 'b'], [['日本', '1'], ['x', '22']], new Set([1]));
    assert.equal(t, 'a      b\n日本   1\nx     22\n');
    assert.equal(truncateLabel('日本語のテキスト', 7), '日本語…');
    assert.equal(truncateLabel('abc', 3), 'abc');
  });

  it('e5 similarity: every row of the table has the same display width with CJK labels', async () => {
    const r = await e5(['similarity', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu',
      '--query', '日本語の質問はここに', '--query', 'plain question', '--passage', '中文段落', '--passage', 'p']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n').filter((l) => /\d\s*$/.test(l));
    assert.equal(rows.length, 2, r.stdout);
    assert.equal(stringWidth(rows[0]), stringWidth(rows[1]), r.stdout);
  });
});

describe('outputs that are not regular files are written in place, never renamed over', function () {
  this.timeout(120_000);
  let M: string[];
  let dir: string;
  let want: Record<string, Buffer>;
  const TEXTS = ['first text', 'the second one'];
  before(async () => {
    M = ['embed', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu', ...TEXTS];
    dir = tempDir();
    want = {};
    for (const f of ['jsonl', 'npy']) {
      const r = await e5([...M, '-f', f]);
      assert.equal(r.code, 0, r.stderr);
      want[f] = r.raw;
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const kind = (p: string) => { const s = fs.lstatSync(p); return s.isSymbolicLink() ? 'link' : s.isFIFO() ? 'fifo' : s.isCharacterDevice() ? 'chardev' : s.isFile() ? 'file' : 'other'; };

  it('a FIFO (and a link to one) gets the complete output; it stays a FIFO', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    fs.symlinkSync(fifo, path.join(dir, 'pipe-link'));
    for (const [target, format] of [[fifo, 'jsonl'], [path.join(dir, 'pipe-link'), 'npy']]) {
      const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
      const got: Buffer[] = [];
      reader.stdout.on('data', (b: Buffer) => got.push(b));
      const done = new Promise((resolve) => reader.on('close', resolve));
      const r = await e5([...M, '-f', format, '-o', target]);
      await done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(Buffer.concat(got), want[format], `${target} (${format})`);
    }
    assert.equal(kind(fifo), 'fifo');
    assert.equal(kind(path.join(dir, 'pipe-link')), 'link');
  });

  it('links to /dev/null, /dev/full and a /dev/stdout-style link: written in place or a clear error; the links stay', async () => {
    const links: Record<string, string> = { null: '/dev/null', full: '/dev/full', stdout: '/proc/self/fd/1' };
    for (const [name, to] of Object.entries(links)) fs.symlinkSync(to, path.join(dir, name));
    const toNull = await e5([...M, '-f', 'npy', '--force', '-o', path.join(dir, 'null')]);
    assert.equal(toNull.code, 0, toNull.stderr);
    const toFull = await e5([...M, '--force', '-o', path.join(dir, 'full')]);
    assert.equal(toFull.code, 1, toFull.stderr);
    assert.match(toFull.stderr, /full: write failed \(ENOSPC\)/);
    const toStdout = await e5([...M, '-f', 'npy', '--force', '-o', path.join(dir, 'stdout')]);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.deepEqual(toStdout.raw, want.npy);
    for (const name of Object.keys(links)) assert.equal(kind(path.join(dir, name)), 'link', name);
    assert.equal(kind('/dev/null'), 'chardev');
    assert.equal(kind('/dev/full'), 'chardev');
  });

  it('e5 inspect --output LINK.safetensors (a link to /dev/null): written in place, the link kept', async () => {
    const link = path.join(dir, 'acts.safetensors');
    fs.symlinkSync('/dev/null', link);
    const r = await e5(['inspect', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu', '--force', '--output', link, 'hello']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(kind(link), 'link');
  });

  it('a character device node itself (root only: mknod) is written in place', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const node = path.join(dir, 'devnull');
    execFileSync('mknod', [node, 'c', '1', '3']);
    const r = await e5([...M, '--force', '-o', node]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(kind(node), 'chardev');
  });

  it('a link to a regular file: the file it names is replaced (--force), the link kept; dangling and looping links are refused', async () => {
    const real = path.join(dir, 'real.jsonl');
    fs.writeFileSync(real, 'old\n');
    fs.symlinkSync(real, path.join(dir, 'link.jsonl'));
    const refused = await e5([...M, '-o', path.join(dir, 'link.jsonl')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /link\.jsonl exists; pass --force/);
    const forced = await e5([...M, '--force', '-o', path.join(dir, 'link.jsonl')]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(kind(path.join(dir, 'link.jsonl')), 'link');
    assert.deepEqual(fs.readFileSync(real), want.jsonl);
    fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    fs.symlinkSync(path.join(dir, 'loop-b'), path.join(dir, 'loop-a'));
    fs.symlinkSync(path.join(dir, 'loop-a'), path.join(dir, 'loop-b'));
    for (const [name, message] of [['dangling', /dangling is a symbolic link to a missing file/], ['loop-a', /loop-a is a symbolic link loop/]] as const) {
      const r = await e5([...M, '--force', '-o', path.join(dir, name)]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(kind(path.join(dir, name)), 'link');
    }
    assert.equal(fs.existsSync(path.join(dir, 'nowhere')), false);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });
});

describe('no spool file outlives e5 embed to stdout', function () {
  this.timeout(120_000);
  let spoolDir: string;
  let input: string;
  before(() => {
    spoolDir = tempDir('e5-spool-');
    input = Array.from({ length: 3000 }, (_, i) => `text number ${i}`).join('\n') + '\n'; // 3000 rows of 128 bytes: more than a pipe holds
  });
  after(() => fs.rmSync(spoolDir, { recursive: true, force: true }));

  it('npy to a reader that leaves early (| head -c 100): exit 0, nothing left in TMPDIR', async () => {
    const inputFile = path.join(spoolDir, '..', `${path.basename(spoolDir)}-input.txt`);
    fs.writeFileSync(inputFile, input);
    try {
      const env = { ...cliEnv(), TMPDIR: spoolDir };
      const cmd = `"${process.execPath}" "${BIN}" embed --model "${cachedModel({ preset: 'tiny' })}" --backend cpu -q -f npy -i "${inputFile}" | head -c 100 | wc -c`;
      const r = spawnSync('bash', ['-o', 'pipefail', '-c', cmd], { env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), '100');
      assert.deepEqual(fs.readdirSync(spoolDir), []);
    } finally {
      fs.rmSync(inputFile, { force: true });
    }
  });

  it('npy to stdout, killed with SIGKILL mid-run: nothing left in TMPDIR', async () => {
    const child = spawn(process.execPath, [BIN, 'embed', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu', '--batch-size', '1', '--progress', 'on', '-f', 'npy', '-i', '-'],
      { env: cliEnv({ TMPDIR: spoolDir }), stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    let stderr = '';
    // the bar is drawn once the output (and its spool) exists: kill then
    await new Promise<void>((resolve) => child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (/embed/.test(stderr)) resolve();
    }));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    assert.deepEqual(fs.readdirSync(spoolDir), []);
  });
});

describe('input lines are bounded (--max-line-bytes, default 1 MiB)', function () {
  this.timeout(120_000);
  let M: string[];
  before(() => {
    M = ['embed', '--model', cachedModel({ preset: 'tiny' }), '--backend', 'cpu'];
  });

  it('--input /dev/zero (no newline, ever): exit 1 naming line 1 and the limit, at once', async () => {
    const r = await e5([...M, '--input', '/dev/zero'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^e5 embed: \/dev\/zero:1: the line is longer than 1048576 bytes \(--max-line-bytes 1048576; raise it for longer lines\)$/m);
  });

  it('a longer line aborts with its number, or is skipped with --on-error skip; a line of exactly the limit (CRLF too) is read', async () => {
    const input = `0123456789\r\n${'x'.repeat(11)}\nok\n`;
    const abort = await e5([...M, '--max-line-bytes', '10', '-i', '-'], { input });
    assert.equal(abort.code, 1, abort.stderr);
    assert.match(abort.stderr, /<stdin>:2: the line is longer than 10 bytes/);
    const skip = await e5([...M, '--max-line-bytes', '10', '--on-error', 'skip', '-i', '-'], { input });
    assert.equal(skip.code, 0, skip.stderr);
    assert.deepEqual(jsonLines<{ index: number; line: number }>(skip.stdout).map((l) => l.line), [1, 3]);
    assert.match(skip.stderr, /skipped <stdin>:2: the line is longer than 10 bytes/);
    const bad = await e5([...M, '--max-line-bytes', '0', 'x']);
    assert.equal(bad.code, 2, bad.stderr);
  });
});
