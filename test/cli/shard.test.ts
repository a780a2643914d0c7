/**
 * Scale-out on one machine: `e5 embed --shard I/N` + `e5 merge`, and `e5 eval --shard I/N` + a final
 * `e5 eval`, with N = 3 separate worker processes running at once on one shared output/cache folder
 * (test/support/cli.ts runs the real CLI on a generated tiny model).
 *
 * Expectations are independent runs: the merged embeddings must equal, byte for byte, what one
 * `e5 embed` over all the inputs writes — on the cpu backend, whose numbers *do* depend on a row's
 * batch-mates, so only a split aligned to the single run's library calls passes — and the final
 * eval's metrics must equal a single `e5 eval --no-cache`. Also: a worker killed with SIGKILL and
 * run again completes the set; Slurm and Kubernetes variables pick the same shard as --shard;
 * merge refuses a missing or duplicated shard; the variables' strict parsing (in-process).
 */
import * as assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseShard, resolveShard, ShardUsageError } from '../../cli/shard';
import { joinJsonl, joinNpy, joinSafetensors } from '../../cli/shard-join';
import { readManifest } from '../../cli/shard-manifest';
import { CACHE_FORMAT, CorpusCacheKey, CorpusEmbeddingCache } from '../../eval/cache';
import type { EvalResult } from '../../eval/evaluate';
import { BIN, cliBuild, cliEnv, e5 as runE5, REPO_ROOT, tempDir } from '../support/cli';
import { writeTinyBeir } from '../support/eval-child';
import { cachedModel } from '../../devtools/generate-model';

let tmp: string;
let modelDir: string;
let textsFile: string;

const EMBED_BACKEND = ['--backend', 'cpu'];
const EVAL_BACKEND = ['--backend', 'wasm', '--threads', '1'];

before(function () {
  this.timeout(120_000);
  tmp = tempDir('e5-cli-shard-');
  modelDir = cachedModel({ preset: 'tiny' });
  // 232 texts of 1-24 words: 15 blocks of 16, the last one partial.
  const words = 'the quick brown fox jumps over a lazy dog while protein summit river mountain apple'.split(' ');
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const lines = Array.from({ length: 232 }, () => Array.from({ length: 1 + Math.floor(rand() * 24) }, () => words[Math.floor(rand() * words.length)]).join(' '));
  textsFile = path.join(tmp, 'texts.txt');
  fs.writeFileSync(textsFile, `${lines.join('\n')}\n`);
  cliBuild();
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const e5 = (args: string[], env: Record<string, string> = {}) => runE5(args, { env: { E5_CACHE: path.join(tmp, 'e5-cache'), ...env }, timeoutMs: 120_000 });
const embedArgs = (out: string, ...more: string[]) => ['embed', '-q', '--model', modelDir, '--input', textsFile, '--chunk-size', '16', ...EMBED_BACKEND, '--output', out, ...more];
const sha = (file: string) => fs.readFileSync(file);

describe('e5 embed --shard + e5 merge', () => {
  // safetensors records the backend with its thread count: equal here, as every run uses the same
  const FORMATS = ['npy', 'jsonl', 'safetensors'];
  const dir = () => path.join(tmp, 'embed');

  before(async function () {
    this.timeout(120_000);
    fs.mkdirSync(dir(), { recursive: true });
    // the single-process reference and the three workers, all at once, into one folder
    const runs = await Promise.all([
      ...FORMATS.map((ext) => e5(embedArgs(path.join(dir(), `all.${ext}`)))),
      ...FORMATS.flatMap((ext) => [0, 1, 2].map((i) => e5(embedArgs(path.join(dir(), `part-${i}.${ext}`), '--shard', `${i}/3`)))),
    ]);
    runs.forEach((r) => assert.equal(r.code, 0, r.stderr));
  });

  it('3 parallel workers, merged: the npy, JSONL and safetensors files of one process, byte for byte', async function () {
    this.timeout(60_000);
    for (const ext of FORMATS) {
      const parts = [2, 0, 1].map((i) => path.join(dir(), `part-${i}.${ext}`)); // any order
      const r = await e5(['merge', '--output', path.join(dir(), `merged.${ext}`), ...parts]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(sha(path.join(dir(), `merged.${ext}`)).equals(sha(path.join(dir(), `all.${ext}`))), `merged.${ext} differs from the single run`);
    }
    // each worker embedded only its blocks: rows of inputs 16-31, 64-79, 112-127, 160-175, 208-223 for shard 1
    const rows = fs.readFileSync(path.join(dir(), 'part-1.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { index: number }).index);
    const expected = [[16, 32], [64, 80], [112, 128], [160, 176], [208, 224]].flatMap(([a, b]) => Array.from({ length: b - a }, (_, k) => a + k));
    assert.deepEqual(rows, expected);
  });

  it('merge refuses a missing and a duplicated shard (exit 1, naming them) and writes nothing', async () => {
    const part = (i: number) => path.join(dir(), `part-${i}.npy`);
    const out = path.join(dir(), 'refused.npy');
    const missing = await e5(['merge', '--output', out, part(0), part(2)]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /missing shard 1\/3 \(inputs from 16, 64, \.\.\.\)/);
    fs.mkdirSync(path.join(dir(), 'copy'), { recursive: true });
    fs.copyFileSync(part(2), path.join(dir(), 'copy', 'part-2.npy'));
    fs.copyFileSync(`${part(2)}.shard.json`, path.join(dir(), 'copy', 'part-2.npy.shard.json'));
    const twice = await e5(['merge', '--output', out, part(0), part(1), part(2), path.join(dir(), 'copy', 'part-2.npy')]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /shard 2\/3 given twice: .*part-2\.npy and .*copy\/part-2\.npy/);
    assert.equal(fs.existsSync(out), false);
    assert.deepEqual(fs.readdirSync(dir()).filter((f) => f.startsWith('.refused')), [], 'no temp file left');
    const onto = await e5(['merge', '--force', '--output', part(0), part(0), part(1), part(2)]);
    assert.equal(onto.code, 2);
    assert.match(onto.stderr, /--output .*part-0\.npy is one of the shards/);
  });

  it('merge refuses shards of different settings, and a file cut short', async () => {
    const other = path.join(dir(), 'query-1.npy');
    assert.equal((await e5(embedArgs(other, '--shard', '1/3', '--prefix', 'query'))).code, 0);
    const mixed = await e5(['merge', '--output', path.join(dir(), 'x.npy'), path.join(dir(), 'part-0.npy'), other, path.join(dir(), 'part-2.npy')]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /query-1\.npy does not belong with .*part-0\.npy: prefix: "none" vs "query"/);
    // a rerun of task 1 alone (`sbatch --array=1`) without E5_SHARD_COUNT: its own array says 0/1
    const lone = path.join(dir(), 'lone-1.npy');
    const slurm = { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '1' };
    assert.equal((await e5(embedArgs(lone), slurm)).code, 0);
    const counts = await e5(['merge', '--output', path.join(dir(), 'x.npy'), path.join(dir(), 'part-0.npy'), lone, path.join(dir(), 'part-2.npy')]);
    assert.equal(counts.code, 1);
    assert.match(counts.stderr, /lone-1\.npy does not belong with .*part-0\.npy: shard count: 3 vs 1; a rerun of single Slurm array tasks needs E5_SHARD_COUNT=N/);
    fs.truncateSync(other, 1000);
    const cut = await e5(['merge', '--output', path.join(dir(), 'x.npy'), other]);
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /query-1\.npy: 1000 bytes, its sidecar says \d+/);
  });

  /** A copy of part-I.EXT named NAME.EXT, with its sidecar's parsed JSON changed by `edit` (or its text replaced). */
  function tampered(name: string, edit: (m: Record<string, any>) => unknown, i = 0, ext = 'npy'): string {
    const src = path.join(dir(), `part-${i}.${ext}`);
    const file = path.join(dir(), `${name}.${ext}`);
    fs.copyFileSync(src, file);
    const m = JSON.parse(fs.readFileSync(`${src}.shard.json`, 'utf8'));
    m.output.file = path.basename(file);
    const out = edit(m);
    fs.writeFileSync(`${file}.shard.json`, typeof out === 'string' ? out : JSON.stringify(m));
    return file;
  }

  it('sidecar counts of 10^15 are refused at once, with bounded messages (never expanded)', async function () {
    this.timeout(60_000);
    const out = path.join(dir(), 'huge.npy');
    const huge = tampered('huge-count', (m) => { m.input.count = 10 ** 15; });
    const r1 = await runE5(['merge', '--output', out, huge], { timeoutMs: 20_000 });
    assert.equal(r1.code, 1, r1.stderr);
    assert.match(r1.stderr, /huge-count\.npy\.shard\.json: ranges lists 5 blocks; shard 0\/3 of 1000000000000000 inputs in blocks of 16 has 20833333333334$/m);
    const many = tampered('many-shards', (m) => { m.shard.count = 10 ** 15; m.ranges = [[0, 16]]; m.rows = 16; });
    const r2 = await runE5(['merge', '--output', out, many], { timeoutMs: 20_000 });
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /missing shards 1\/1000000000000000 \(inputs from 16\), 2\/1000000000000000 .* and 999999999999979 more of the 1000000000000000/);
    assert.ok(r2.stderr.length < 4000, `${r2.stderr.length} bytes of stderr`);
    assert.equal(fs.existsSync(out), false);
  });

  it("sidecars are read with the model files' limits: a FIFO, 100,000-deep ranges, a missing field are clear errors", async function () {
    this.timeout(60_000);
    const out = path.join(dir(), 'limits.npy');
    const fifo = tampered('fifo-sidecar', () => '');
    fs.rmSync(`${fifo}.shard.json`);
    execFileSync('mkfifo', [`${fifo}.shard.json`]);
    const deep = tampered('deep-ranges', () => '{"format":"x","ranges":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}');
    const noSettings = tampered('no-settings', (m) => { delete m.settings; });
    const older = tampered('older-format', (m) => { m.format = 'e5-tfjs-embedding-shard/1'; });
    const cases: Array<[string, RegExp]> = [
      [older, /older-format\.npy\.shard\.json: format is 'e5-tfjs-embedding-shard\/1', expected 'e5-tfjs-embedding-shard\/2' \(made by another e5-tfjs version: rerun that worker with this one\)/],
      [fifo, /fifo-sidecar\.npy\.shard\.json: not a regular file \(a FIFO\)/],
      [deep, /deep-ranges\.npy\.shard\.json: not valid JSON \(nested deeper than 128 levels at byte offset \d+\)/],
      [noSettings, /no-settings\.npy\.shard\.json: settings: expected an object, got undefined/],
    ];
    for (const [file, message] of cases) {
      const r = await runE5(['merge', '--output', out, file], { timeoutMs: 20_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /TypeError|call stack/);
    }
  });

  it('a file created at the --output while merge writes is kept, in every format (no check-then-rename race)', async () => {
    for (const [ext, join] of [['npy', joinNpy], ['jsonl', joinJsonl], ['safetensors', joinSafetensors]] as const) {
      const parts = [0, 1, 2].map((i) => path.join(dir(), `part-${i}.${ext}`)).map((file) => ({ file, m: readManifest(file) }));
      const out = path.join(dir(), `raced.${ext}`);
      const merging = join(parts, out, false);
      fs.writeFileSync(out, 'written by someone else meanwhile'); // after the merge began, before it ends
      await assert.rejects(merging, /raced\.\w+: created by someone else while this run was writing; it was left as it is/);
      assert.equal(fs.readFileSync(out, 'utf8'), 'written by someone else meanwhile', ext);
      assert.deepEqual(fs.readdirSync(dir()).filter((f) => f.startsWith('.raced')), [], 'no temp file left');
      fs.rmSync(out);
      await join(parts, out, true); // --force: replaced
      assert.ok(sha(out).equals(sha(path.join(dir(), `all.${ext}`))));
    }
  });

  it('swapped or renamed shard files are refused: each data file has its sha256 and name in its sidecar', async () => {
    const swapped = path.join(dir(), 'swapped');
    fs.mkdirSync(swapped, { recursive: true });
    for (const i of [0, 1, 2]) {
      fs.copyFileSync(path.join(dir(), `part-${i === 2 ? 2 : 1 - i}.npy`), path.join(swapped, `part-${i}.npy`)); // 0 <-> 1: same size
      fs.copyFileSync(path.join(dir(), `part-${i}.npy.shard.json`), path.join(swapped, `part-${i}.npy.shard.json`));
    }
    const out = path.join(dir(), 'swapped.npy');
    const r = await e5(['merge', '--output', out, ...[0, 1, 2].map((i) => path.join(swapped, `part-${i}.npy`))]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /swapped\/part-0\.npy: its sha256 is not the one its sidecar records/);
    fs.copyFileSync(path.join(dir(), 'part-0.npy'), path.join(dir(), 'renamed.npy'));
    fs.copyFileSync(path.join(dir(), 'part-0.npy.shard.json'), path.join(dir(), 'renamed.npy.shard.json'));
    const renamed = await e5(['merge', '--output', out, path.join(dir(), 'renamed.npy')]);
    assert.equal(renamed.code, 1, renamed.stderr);
    assert.match(renamed.stderr, /renamed\.npy\.shard\.json: describes part-0\.npy, not renamed\.npy/);
    assert.equal(fs.existsSync(out), false);
  });

  it('a shard made with another --batch-size is refused (the sidecar records every setting that changes bits)', async () => {
    const other = path.join(dir(), 'batch4', 'part-1.npy');
    fs.mkdirSync(path.dirname(other), { recursive: true });
    assert.equal((await e5(embedArgs(other, '--shard', '1/3', '--batch-size', '4'))).code, 0);
    const r = await e5(['merge', '--output', path.join(dir(), 'x.npy'), path.join(dir(), 'part-0.npy'), other, path.join(dir(), 'part-2.npy')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /batch4\/part-1\.npy does not belong with .*part-0\.npy: batch size \(--batch-size\): 32 vs 4/);
  });

  it("a killed worker's sidecar temp and a killed merge's temp are removed by the next run", async () => {
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process here
    const target = path.join(dir(), 'stale', 'part-1.npy');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const sidecarTemp = path.join(dir(), 'stale', `.part-1.npy.shard.json.${dead}.0a1b2c3d.tmp`);
    const mergeTemp = path.join(dir(), 'stale', `.merged.npy.${dead}.0a1b2c3d.tmp`);
    const live = path.join(dir(), 'stale', `.merged.npy.${process.pid}.0a1b2c3d.tmp`);
    for (const f of [sidecarTemp, mergeTemp, live]) fs.writeFileSync(f, 'partial');
    const w = await e5(embedArgs(target, '--shard', '1/3').filter((a) => a !== '-q'));
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stderr, /removed \.part-1\.npy\.shard\.json\.\d+\.0a1b2c3d\.tmp, left by a run that was killed/);
    const m = await e5(['merge', '--output', path.join(dir(), 'stale', 'merged.npy'), path.join(dir(), 'part-0.npy'), target, path.join(dir(), 'part-2.npy')]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /removed \.merged\.npy\.\d+\.0a1b2c3d\.tmp, left by a merge that was killed/);
    assert.deepEqual(fs.readdirSync(path.join(dir(), 'stale')).filter((f) => f.endsWith('.tmp')), [path.basename(live)], "a live process's temp is kept");
  });

  it('Slurm and Kubernetes variables select the same shard as --shard', async function () {
    this.timeout(60_000);
    const want = sha(path.join(dir(), 'part-1.npy'));
    const forms: Array<[string, Record<string, string>, string[]]> = [
      // an array 1-3: task 2 is the second, shard 1
      ['slurm', { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '3' }, []],
      // a rerun of task 1 alone (`sbatch --array=1`) with the count given: the task id is the shard
      ['slurm-rerun', { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '1', E5_SHARD_COUNT: '3' }, []],
      ['k8s', { JOB_COMPLETION_INDEX: '1' }, ['--shard-count', '3']],
      ['k8s-env', { JOB_COMPLETION_INDEX: '1', E5_SHARD_COUNT: '3' }, []],
    ];
    const runs = await Promise.all(forms.map(([name, env, args]) => e5(embedArgs(path.join(dir(), `${name}.npy`), ...args), env)));
    forms.forEach(([name], k) => {
      assert.equal(runs[k].code, 0, runs[k].stderr);
      assert.ok(sha(path.join(dir(), `${name}.npy`)).equals(want), `${name}: not shard 1/3`);
      const m = JSON.parse(fs.readFileSync(path.join(dir(), `${name}.npy.shard.json`), 'utf8')) as { shard: unknown };
      assert.deepEqual(m.shard, { index: 1, count: 3, block_size: 16 });
    });
    // --shard wins over the environment; --no-shard ignores it
    const explicit = await e5(embedArgs(path.join(dir(), 'explicit.npy'), '--shard', '1/3'), { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '5' });
    assert.equal(explicit.code, 0, explicit.stderr);
    assert.ok(sha(path.join(dir(), 'explicit.npy')).equals(want));
    const whole = await e5(embedArgs(path.join(dir(), 'whole.npy'), '--no-shard'), { JOB_COMPLETION_INDEX: '1', E5_SHARD_COUNT: '3' });
    assert.equal(whole.code, 0, whole.stderr);
    assert.ok(sha(path.join(dir(), 'whole.npy')).equals(sha(path.join(dir(), 'all.npy'))));
  });

  it('a worker killed with SIGKILL leaves no file merge accepts; run again, the set completes', async function () {
    this.timeout(60_000);
    const target = path.join(dir(), 'part-0.npy');
    const child = spawnE5([...embedArgs(target, '--shard', '0/3', '--force', '--batch-size', '1')]);
    // the output's temp file exists from before the first batch until the end: kill in between
    const killed = await killWhen(child, () => fs.readdirSync(dir()).some((f) => f.startsWith('.part-0.npy.')));
    assert.equal(killed, 'SIGKILL', 'the worker ended before it could be killed');
    const refused = await e5(['merge', '--output', path.join(dir(), 'after-kill.npy'), ...[0, 1, 2].map((i) => path.join(dir(), `part-${i}.npy`))]);
    assert.equal(refused.code, 1, 'the old part-0 must not pass for the new run\'s');
    assert.match(refused.stderr, /part-0\.npy: no part-0\.npy\.shard\.json beside it/);
    assert.equal((await e5(embedArgs(target, '--shard', '0/3', '--force'))).code, 0);
    const r = await e5(['merge', '--output', path.join(dir(), 'after-kill.npy'), ...[0, 1, 2].map((i) => path.join(dir(), `part-${i}.npy`))]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(sha(path.join(dir(), 'after-kill.npy')).equals(sha(path.join(dir(), 'all.npy'))));
  });
});

describe('e5 eval --shard + the final e5 eval', () => {
  let data: string;
  let single: EvalResult;
  const evalArgs = (...more: string[]) => ['eval', '--model', modelDir, '--data', data, '--k', '1,5,10', '--shard-size', '10', ...EVAL_BACKEND, '--progress', 'off', ...more];

  before(async function () {
    this.timeout(120_000);
    data = path.join(tmp, 'beir');
    writeTinyBeir(data, 240); // 24 cache shards of 10
    const r = await e5(evalArgs('--no-cache', '--format', 'json'));
    assert.equal(r.code, 0, r.stderr);
    single = JSON.parse(r.stdout) as EvalResult;
  });

  it('3 parallel workers on one cache, then the final run: every shard reused, the single run\'s metrics', async function () {
    this.timeout(120_000);
    const cache = path.join(tmp, 'eval-cache');
    const workers = await Promise.all([0, 1, 2].map((i) => e5(evalArgs('--cache', cache, '--shard', `${i}/3`))));
    workers.forEach((w, i) => {
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stdout, new RegExp(`^eval shard ${i}/3: 8 of 24 cache shards \\(80 of 240 passages of beir\\): 8 computed, 0 reused, in [0-9.]+ s .*\\n$`));
    });
    assert.equal(shardFiles(cache).length, 24);
    const final = await e5(evalArgs('--cache', cache, '--format', 'json'));
    assert.equal(final.code, 0, final.stderr);
    const doc = JSON.parse(final.stdout) as EvalResult;
    assert.deepEqual({ ...doc.cache, dir: null }, { dir: null, shards: 24, reused: 24, computed: 0, rejected: 0 });
    assert.deepEqual(doc.means, single.means);
    assert.deepEqual(doc.perQuery, single.perQuery);
  });

  it('a worker killed with SIGKILL midway, run again: the set completes and nothing it left is trusted wrongly', async function () {
    this.timeout(120_000);
    const cache = path.join(tmp, 'eval-cache-kill');
    const args = evalArgs('--cache', cache, '--shard', '0/3', '--batch-size', '1');
    const killed = await killWhen(spawnE5(args), () => shardFiles(cache).length > 0);
    assert.equal(killed, 'SIGKILL', 'the worker ended before it could be killed');
    const kept = shardFiles(cache).length;
    assert.ok(kept >= 1 && kept < 8, `${kept} of its 8 shards written before the kill`);
    const others = await Promise.all([1, 2].map((i) => e5(evalArgs('--cache', cache, '--shard', `${i}/3`))));
    others.forEach((w) => assert.equal(w.code, 0, w.stderr));
    const rerun = await e5(args);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stdout, new RegExp(`: ${8 - kept} computed, ${kept} reused, in`));
    const leftovers = fs.readdirSync(cache, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], "the killed worker's temp files are removed by the rerun on its host");
    const final = await e5(evalArgs('--cache', cache, '--format', 'json'));
    const doc = JSON.parse(final.stdout) as EvalResult;
    assert.deepEqual({ ...doc.cache, dir: null }, { dir: null, shards: 24, reused: 24, computed: 0, rejected: 0 });
    assert.deepEqual(doc.means, single.means);
  });

  it('usage: --shard with --no-cache or --output is exit 2', async () => {
    for (const more of [['--no-cache'], ['--output', path.join(tmp, 'r.json')]]) {
      const r = await e5(evalArgs('--shard', '0/2', ...more));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^e5 eval: shard 0\/2 \(--shard 0\/2\)/);
    }
  });
});

describe('shard selection from the scheduler (strict)', () => {
  const pick = (env: Record<string, string>, o: { shard?: string | false; shardCount?: string } = {}) => resolveShard(o, env);
  const refused = (env: Record<string, string>, o: { shard?: string | false; shardCount?: string }, message: RegExp) =>
    assert.throws(() => pick(env, o), (e: Error) => e instanceof ShardUsageError && message.test(e.message));

  it('--shard I/N, checked', () => {
    assert.deepEqual(parseShard('2/5'), { index: 2, count: 5, source: '--shard 2/5' });
    refused({}, { shard: '5/5' }, /index 5 is not below the shard count 5/);
    refused({}, { shard: '-1/5' }, /index is "-1", expected a non-negative integer/);
    refused({}, { shard: '1.5/5' }, /index is "1.5"/);
    refused({}, { shard: '0/0' }, /count must be at least 1/);
    refused({}, { shard: '3' }, /expected I\/N/);
    refused({}, { shard: '1/3', shardCount: '3' }, /--shard I\/N already gives the count/);
  });

  it('Slurm arrays: offset by MIN, divided by STEP; a non-range array or bad values are refused', () => {
    assert.equal(pick({}), undefined);
    assert.deepEqual(pick({ SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 0, count: 4, source: 'SLURM_ARRAY_TASK_ID=0 of 0-3:1' });
    assert.equal(pick({ SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '5', SLURM_ARRAY_TASK_MAX: '8' })!.index, 2);
    assert.equal(pick({ SLURM_ARRAY_TASK_ID: '14', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_MAX: '16', SLURM_ARRAY_TASK_STEP: '2' })!.index, 2);
    refused({ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '7' }, {}, /not one evenly spaced range/);
    refused({ SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '1' }, {}, /SLURM_ARRAY_TASK_ID=0 is not in the array 1-3:1/);
    refused({ SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '3' }, {}, /SLURM_ARRAY_TASK_ID is "x"/);
    refused({ SLURM_ARRAY_TASK_ID: '1' }, {}, /SLURM_ARRAY_TASK_COUNT is not/);
    refused({ SLURM_ARRAY_TASK_ID: '4', E5_SHARD_COUNT: '4' }, {}, /index 4 is not below the shard count 4/);
  });

  it('Kubernetes Indexed Jobs need the count; both schedulers at once is refused', () => {
    assert.deepEqual(pick({ JOB_COMPLETION_INDEX: '3', E5_SHARD_COUNT: '8' }), { index: 3, count: 8, source: 'JOB_COMPLETION_INDEX=3, E5_SHARD_COUNT=8' });
    assert.equal(pick({ JOB_COMPLETION_INDEX: '3', E5_SHARD_COUNT: '8' }, { shardCount: '4' })!.count, 4, '--shard-count wins over E5_SHARD_COUNT');
    refused({ JOB_COMPLETION_INDEX: '3' }, {}, /not the shard count: pass --shard-count N or set E5_SHARD_COUNT/);
    refused({ JOB_COMPLETION_INDEX: '8', E5_SHARD_COUNT: '8' }, {}, /index 8 is not below the shard count 8/);
    refused({ JOB_COMPLETION_INDEX: '1', E5_SHARD_COUNT: 'eight' }, {}, /E5_SHARD_COUNT is "eight"/);
    refused({ JOB_COMPLETION_INDEX: '1', SLURM_ARRAY_TASK_ID: '1', E5_SHARD_COUNT: '2' }, {}, /both SLURM_ARRAY_TASK_ID=1 and JOB_COMPLETION_INDEX=1 are set/);
    assert.deepEqual(pick({ JOB_COMPLETION_INDEX: '1', SLURM_ARRAY_TASK_ID: '1' }, { shard: '0/2' })!.index, 0, '--shard settles it');
    assert.equal(pick({ JOB_COMPLETION_INDEX: '1' }, { shard: false }), undefined, '--no-shard');
    refused({ E5_SHARD_COUNT: '3' }, {}, /needs a scheduler index/);
  });
});

describe('corpus cache on a directory shared between machines', () => {
  it("removes a dead writer's temp files of this host only, never another host's", () => {
    const dir = tempDir('e5-cache-hosts-');
    try {
      const key: CorpusCacheKey = { format: CACHE_FORMAT, embedder: 'm', engine: null, pooling: null, prefix: 'passage', maxLength: null, shardSize: 10, nDocs: 1, corpusSha256: 'x' };
      const cache = CorpusEmbeddingCache.open(dir, key);
      const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process here
      const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '-');
      const mine = `.shard-00000.safetensors.${dead}@${host}.0a1b2c.tmp`;
      const inner = `..shard-00000.safetensors.${dead}@${host}.0a1b2c.tmp.${dead}.99ff.tmp`;
      const theirs = `.shard-00001.safetensors.${dead}@other-node-7.0a1b2c.tmp`;
      for (const f of [mine, inner, theirs]) fs.writeFileSync(path.join(cache.dir, f), 'partial');
      CorpusEmbeddingCache.open(dir, key);
      assert.deepEqual(fs.readdirSync(cache.dir).filter((f) => f.endsWith('.tmp')).sort(), [theirs]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function spawnE5(args: string[]): ChildProcess {
  const env = cliEnv({ E5_CACHE: path.join(tmp, 'e5-cache') });
  return spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** SIGKILL `child` as soon as `ready()` holds; resolves to the signal it died of (null: it exited first). */
function killWhen(child: ChildProcess, ready: () => boolean): Promise<NodeJS.Signals | null> {
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (ready()) {
        child.kill('SIGKILL');
        clearInterval(poll);
      }
    }, 5);
    child.on('exit', (_code, signal) => {
      clearInterval(poll);
      resolve(signal);
    });
  });
}

/** Every finished shard under a cache folder. */
function shardFiles(cacheDir: string): string[] {
  if (!fs.existsSync(cacheDir)) return [];
  return fs.readdirSync(cacheDir, { recursive: true, encoding: 'utf8' }).filter((f) => /shard-\d{5}\.safetensors$/.test(f));
}
