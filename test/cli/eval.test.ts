/**
 * `e5 eval` end to end: the real CLI (test/support/cli.ts) on a generated tiny model and a generated
 * BEIR set. Expectations come from evaluate() run in this process on the same backend: the CLI must
 * print exactly the library's numbers (table and JSON), resume a run killed with SIGKILL after its
 * first cache shard to the same numbers, fail on bad data with exit 1 naming file:line, and on bad
 * usage with exit 2.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../e5/model';
import { EngineEmbedder } from '../../eval/embedder-adapter';
import { evaluate, EvalResult } from '../../eval/evaluate';
import { formatEvalTable } from '../../eval/report';
import { testBackend } from '../support/backend';
import { BIN, cliBuild, cliEnv, CliOptions, CliResult, e5 as runE5, REPO_ROOT, tempDir } from '../support/cli';
import { writeTinyBeir } from '../support/eval-child';
import { cachedModel } from '../../devtools/generate-model';

const K = [1, 5, 10];
/** The CLI computes on the backend this process uses, so both give the same bits. */
const BACKEND = ['--backend', process.env.E5_TEST_BACKEND ?? 'wasm', '--threads', process.env.E5_TEST_THREADS ?? '2'];

let tmp: string;
let modelDir: string;
let data: string;
let lib: EvalResult;
let libVariant: EvalResult;
let libBig: EvalResult;
let big: string;

before(async function () {
  this.timeout(180_000);
  await testBackend();
  tmp = tempDir('e5-cli-eval-');
  modelDir = cachedModel({ preset: 'tiny' });
  data = path.join(tmp, 'data');
  writeTinyBeir(data, 60);
  big = path.join(tmp, 'big');
  writeTinyBeir(big, 240);
  const model = await loadModel(modelDir);
  try {
    lib = await evaluate(new EngineEmbedder(model), data, { k: K, progress: false });
    libVariant = await evaluate(new EngineEmbedder(model), data, { k: K, maxLength: 12, docAsQuery: true, progress: false });
    libBig = await evaluate(new EngineEmbedder(model), big, { k: K, progress: false });
  } finally {
    model.dispose();
  }
  cliBuild(); // compile once here, outside the timed tests
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Every run gets a private E5_CACHE, so no test writes to the user's ~/.cache. */
const e5 = (args: string[], opts: CliOptions = {}): Promise<CliResult> => runE5(args, { ...opts, env: { E5_CACHE: path.join(tmp, 'e5-cache'), ...opts.env } });
const evalArgs = (dataDir: string, ...more: string[]) => ['eval', '--model', modelDir, '--data', dataDir, '--k', K.join(','), ...BACKEND, ...more];
const metricRows = (table: string) => table.split('\n').filter((l) => l.startsWith('| '));

describe('e5 eval: the library numbers', () => {
  it('json on stdout: means and per-query metrics equal evaluate() in-process, with the run environment', async () => {
    const r = await e5(evalArgs(data, '--no-cache', '--format', 'json', '--progress', 'off'));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as EvalResult & { run: { backend: { name: string }; model_dir: string; fingerprint: { sha256: string } } };
    assert.deepEqual(doc.means, lib.means);
    assert.deepEqual(doc.perQuery, lib.perQuery);
    assert.deepEqual(doc.scores, lib.scores);
    assert.deepEqual(doc.counts, lib.counts);
    assert.equal(doc.model.id, lib.model.id);
    assert.equal(doc.run.backend.name, BACKEND[1]);
    assert.equal(doc.run.model_dir, modelDir);
    assert.ok(lib.model.id.endsWith(`#${doc.run.fingerprint.sha256.slice(0, 16)}`));
    assert.deepEqual(doc.cache, { dir: null, shards: 1, reused: 0, computed: 1, rejected: 0 });
    // the data set's warning goes to stderr as it happens, then the closing note
    assert.match(r.stderr, /^warning: .*qrels\/test\.tsv: 1 judgement\(s\) name documents absent from corpus\.jsonl/m);
    assert.match(r.stderr, /evaluated 12 queries against 60 passages with .* on \w+/);
  });

  it('table on stdout: the library table rows, warnings on stderr only', async () => {
    const r = await e5(evalArgs(data, '--no-cache', '--progress', 'off'));
    assert.equal(r.code, 0, r.stderr);
    const rows = metricRows(r.stdout);
    assert.equal(rows.length, 2 + 5); // header, rule, five metrics
    assert.deepEqual(rows, metricRows(formatEvalTable(lib)));
    assert.match(rows[2], /^\| NDCG +\| /);
    assert.match(r.stdout, /^data \(split test\): 12 queries evaluated, 60 passages, 26 judgements$/m);
    assert.doesNotMatch(r.stdout, /^warning:/m);
    assert.equal(r.stderr.match(/^warning: .*absent from corpus\.jsonl/gm)?.length, 1);
  });

  it('--max-length and --doc-as-query reach the library', async () => {
    const r = await e5(evalArgs(data, '--no-cache', '--format', 'json', '-q', '--max-length', '12', '--doc-as-query', '--batch-size', '5'));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as EvalResult;
    assert.ok(libVariant.counts.passagesTruncated > 0);
    assert.deepEqual(doc.counts, libVariant.counts);
    assert.deepEqual(doc.perQuery, libVariant.perQuery);
    assert.deepEqual([doc.settings.maxLength, doc.settings.docAsQuery, doc.settings.batchSize], [12, true, 5]);
    assert.notDeepEqual(doc.means, lib.means);
  });

  it('--output FILE.json: JSON by extension, written whole; an existing file needs --force', async () => {
    const out = path.join(tmp, 'report.json');
    const r = await e5(evalArgs(data, '--no-cache', '--output', out, '-q'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as EvalResult;
    assert.deepEqual(doc.means, lib.means);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp')), []);
    const again = await e5(evalArgs(data, '--no-cache', '--output', out));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --force/);
    const forced = await e5(evalArgs(data, '--no-cache', '--output', out, '--force', '--format', 'table', '-q'));
    assert.equal(forced.code, 0, forced.stderr);
    const table = fs.readFileSync(out, 'utf8');
    assert.deepEqual(metricRows(table), metricRows(formatEvalTable(lib)));
    assert.match(table, /^warning: .*absent from corpus\.jsonl/m, 'a report file keeps the warnings');
  });

  it('caches under $E5_CACHE/eval by default; the second run reuses it', async () => {
    const env = { E5_CACHE: path.join(tmp, 'default-cache') };
    const first = await e5(evalArgs(data, '--format', 'json', '-q'), { env });
    assert.equal(first.code, 0, first.stderr);
    const a = JSON.parse(first.stdout) as EvalResult;
    assert.equal(path.dirname(a.cache.dir!), path.join(env.E5_CACHE, 'eval'));
    const second = await e5(evalArgs(data, '--format', 'json', '-q'), { env });
    const b = JSON.parse(second.stdout) as EvalResult;
    assert.deepEqual([b.cache.dir, b.cache.reused, b.cache.computed], [a.cache.dir, 1, 0]);
    assert.deepEqual(b.means, lib.means);
  });

  it('--save-run FILE: a TREC run whose recall@k, computed here from it and the qrels, is the library\'s', async () => {
    const run = path.join(tmp, 'tiny.run');
    const r = await e5(evalArgs(data, '--no-cache', '--save-run', run, '--format', 'json'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as EvalResult).perQuery, lib.perQuery, 'the JSON report is unchanged');
    const ranked = new Map<string, string[]>();
    for (const line of fs.readFileSync(run, 'utf8').trimEnd().split('\n')) {
      const [qid, q0, doc, rank, score, tag] = line.split(' ');
      assert.equal(q0, 'Q0');
      assert.ok(Number.isFinite(Number(score)) && tag.length > 0, line);
      const docs = ranked.get(qid) ?? [];
      assert.equal(Number(rank), docs.length + 1, `ranks of ${qid} count from 1`);
      ranked.set(qid, [...docs, doc]);
    }
    const relevant = new Map<string, Set<string>>();
    for (const line of fs.readFileSync(path.join(data, 'qrels', 'test.tsv'), 'utf8').trim().split('\n').slice(1)) {
      const [qid, doc, rel] = line.split('\t');
      if (Number(rel) >= 1) relevant.set(qid, (relevant.get(qid) ?? new Set()).add(doc));
    }
    assert.equal(ranked.size, lib.counts.queriesEvaluated);
    K.forEach((k, i) => {
      let sum = 0;
      for (const [qid, docs] of ranked) {
        const rel = relevant.get(qid);
        if (rel) sum += docs.slice(0, k).filter((d) => rel.has(d)).length / rel.size;
      }
      assert.ok(Math.abs(sum / ranked.size - lib.means.recall[i]) < 1e-12, `recall@${k}: ${sum / ranked.size} vs ${lib.means.recall[i]}`);
    });
  });

  it('the cache follows $XDG_CACHE_HOME when $E5_CACHE is unset; --no-cache prints no cache line', async () => {
    const xdg = path.join(tmp, 'xdg');
    const r = await e5(evalArgs(data, '--format', 'json', '-q'), { env: { E5_CACHE: '', XDG_CACHE_HOME: xdg } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(path.dirname((JSON.parse(r.stdout) as EvalResult).cache.dir!), path.join(xdg, 'e5-tfjs', 'eval'));
    const off = await e5(evalArgs(data, '--no-cache'));
    assert.equal(off.code, 0, off.stderr);
    assert.doesNotMatch(off.stdout, /^cache:/m);
    assert.doesNotMatch(off.stderr, /\((no cache|cache \d)/);
  });

  it('--progress on: a corpus bar on stderr', async () => {
    const r = await e5(evalArgs(data, '--no-cache', '--progress', 'on', '--format', 'json'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /corpus \[.*\] 100% \| 60\/60/);
    assert.deepEqual((JSON.parse(r.stdout) as EvalResult).means, lib.means);
  });
});

/** Spawns the CLI like e5() does, but hands back the child so the test can kill it. */
function spawnE5(args: string[]) {
  const env = cliEnv({ E5_CACHE: path.join(tmp, 'e5-cache') });
  return spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every finished shard under a cache folder (one key directory per run setting). */
function shardFiles(cacheDir: string): string[] {
  if (!fs.existsSync(cacheDir)) return [];
  return fs.readdirSync(cacheDir, { recursive: true, encoding: 'utf8' }).filter((f) => /shard-\d{5}\.safetensors$/.test(f));
}

describe('e5 eval: interrupted and resumed', () => {
  it('SIGKILL after the first shard, then the same command: same numbers, finished shards reused', async function () {
    this.timeout(120_000);
    const cacheDir = path.join(tmp, 'cache-kill');
    // 240 passages, 10 per shard, one per forward pass: 24 shards, slow enough to stop half-way
    const args = evalArgs(big, '--cache', cacheDir, '--shard-size', '10', '--batch-size', '1', '--format', 'json', '--progress', 'off');
    const child = spawnE5(args);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let killedAt = -1;
    const poll = setInterval(() => {
      if (killedAt < 0 && shardFiles(cacheDir).length > 0) {
        child.kill('SIGKILL');
        killedAt = shardFiles(cacheDir).length;
      }
    }, 5);
    const end = await exited;
    clearInterval(poll);
    assert.equal(end.signal, 'SIGKILL', `the run ended before it could be killed (code ${end.code}): ${stderr}`);
    const kept = shardFiles(cacheDir).length;
    assert.ok(kept >= 1 && kept < 24, `${kept} of 24 shards written before the kill`);

    const resumed = await e5(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    const doc = JSON.parse(resumed.stdout) as EvalResult;
    assert.equal(doc.cache.reused, kept, 'every shard finished before the kill is reused');
    assert.equal(doc.cache.computed, 24 - kept);
    assert.equal(doc.cache.rejected, 0);
    assert.deepEqual(doc.means, libBig.means);
    assert.deepEqual(doc.perQuery, libBig.perQuery);
    assert.equal(shardFiles(cacheDir).length, 24);
    const leftovers = fs.readdirSync(cacheDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'temp files of the killed writer are removed');

    const third = await e5(args);
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual((JSON.parse(third.stdout) as EvalResult).cache, { ...doc.cache, reused: 24, computed: 0 });
  });
});

describe('e5 eval: errors', () => {
  /** A copy of the small data set with `edit` applied to one of its files. */
  function brokenData(name: string, file: string, edit: (text: string) => string): string {
    const dir = path.join(tmp, name);
    fs.cpSync(data, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, file), edit(fs.readFileSync(path.join(dir, file), 'utf8')));
    return dir;
  }

  it('bad data: exit 1, one line naming file:line (checked before the model loads)', async () => {
    const cases = [
      { dir: brokenData('bad-json', 'corpus.jsonl', (t) => t.replace(/\n/, '\n{"_id": "x", "text": \n')), where: /corpus\.jsonl:2: / },
      { dir: brokenData('bad-score', path.join('qrels', 'test.tsv'), (t) => `${t}q1\tdoc-001\thigh\n`), where: /qrels\/test\.tsv:28: .*score/ },
      { dir: brokenData('dup-query', 'queries.jsonl', (t) => `${t}${t.split('\n')[0]}\n`), where: /queries\.jsonl:15: .*(duplicate|line 1)/ },
    ];
    for (const c of cases) {
      // a model folder that does not exist: the data error must come first
      const r = await e5(['eval', '--model', path.join(tmp, 'no-such-model'), '--data', c.dir, '--no-cache']);
      assert.equal(r.code, 1, `${c.dir}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^e5 eval: /);
      assert.match(lines[0], c.where);
      assert.ok(lines[0].includes(c.dir), `names the file: ${lines[0]}`);
    }
    const missing = await e5(['eval', '--model', modelDir, '--data', path.join(tmp, 'nowhere'), '--no-cache']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nowhere.*corpus\.jsonl/);
  });

  it('bad usage: exit 2 with the usage line', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['eval', '--model', modelDir], /required option '-d, --data <dir>'/],
      [evalArgs(data, '--k', '0,10'), /--k.*"0" is not a positive integer/],
      [evalArgs(data, '--k', '10,10'), /twice/],
      [evalArgs(data, '--format', 'xml'), /argument 'xml' is invalid/],
      [evalArgs(data, '--batch-size', '0'), /must be at least 1/],
      [evalArgs(data, '--shard-size', 'many'), /not an integer/],
      [evalArgs(data, '--max-length', '600', '--no-cache'), /--max-length 600 exceeds the model's 512 positions/],
      [evalArgs(data, '--frobnicate'), /unknown option/],
    ];
    for (const [args, why] of cases) {
      const r = await e5(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /usage: e5 eval /);
      assert.equal(r.stdout, '');
    }
  });

  it('--help: the options and a real example', async () => {
    const r = await e5(['eval', '--help']);
    assert.equal(r.code, 0);
    for (const opt of ['--data', '--split', '--k', '--batch-size', '--max-length', '--cache', '--no-cache', '--format', '--output', '--force', '--progress', '--shard-size', '--shard ']) {
      assert.ok(r.stdout.includes(opt), opt);
    }
    // a scaled-out run must keep --shard-size the same everywhere: the help says so
    assert.match(r.stdout, /--shard-size <n>\s+passages per corpus cache shard \(part of the cache\s+key: keep it the same/);
    assert.match(r.stdout, /\$ e5 eval --model intfloat\/e5-large-unsupervised --data \.\/scifact --split test --k 10,100/);
  });
});
