/**
 * `e5 eval --ablate` / `--scan` end to end: the real CLI on the generated tiny model (2 layers × 4 heads)
 * and a generated BEIR set. The CLI must report the library's numbers (eval/ablation.ts, eval/scan.ts,
 * computed in this process on the same backend), shard a scan over Slurm array tasks and merge it in
 * the final run, resume a scan killed with SIGKILL by computing only its missing cells, write a heat
 * grid that renders in headless Chromium, and refuse bad usage with exit 2.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../e5/model';
import { AblationResult, evaluateAblation } from '../../eval/ablation';
import { EngineEmbedder } from '../../eval/embedder-adapter';
import { scanAblations, ScanResult } from '../../eval/scan';
import { renderScanHtml } from '../../eval/scan-html';
import { testBackend } from '../support/backend';
import { dumpDom, findChromium } from '../support/chromium';
import { BIN, cliBuild, cliEnv, CliOptions, CliResult, e5 as runE5, REPO_ROOT, tempDir } from '../support/cli';
import { writeTinyBeir } from '../support/eval-child';
import { cachedModel } from '../../devtools/generate-model';

const K = [1, 5, 10];
const BACKEND = ['--backend', process.env.E5_TEST_BACKEND ?? 'wasm', '--threads', process.env.E5_TEST_THREADS ?? '2'];

let tmp: string;
let modelDir: string;
let data: string;
let libAblate: AblationResult;
let libScan: ScanResult;

before(async function () {
  this.timeout(180_000);
  await testBackend();
  tmp = tempDir('e5-cli-eval-ablation-');
  modelDir = cachedModel({ preset: 'tiny' });
  data = path.join(tmp, 'data');
  writeTinyBeir(data, 60);
  const model = await loadModel(modelDir);
  try {
    const embedder = new EngineEmbedder(model);
    libAblate = await evaluateAblation(embedder, data, { k: K, heads: [{ layer: 0, head: 1 }, { layer: 1, head: 2 }], mode: 'mean', progress: false });
    libScan = await scanAblations(embedder, data, { k: K, scan: 'heads', progress: false });
  } finally {
    model.dispose();
  }
  cliBuild();
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const e5 = (args: string[], opts: CliOptions = {}): Promise<CliResult> => runE5(args, { ...opts, env: { E5_CACHE: path.join(tmp, 'e5-cache'), ...opts.env } });
const evalArgs = (...more: string[]) => ['eval', '--model', modelDir, '--data', data, '--k', K.join(','), '--progress', 'off', ...BACKEND, ...more];

describe('e5 eval --ablate', () => {
  it('json: the intervention, both runs, the differences and the per-query differences are the library\'s', async () => {
    const r = await e5(evalArgs('--ablate', '0.1,1.2', '--ablate-mode', 'mean', '--format', 'json'));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.intervention, libAblate.intervention);
    assert.deepEqual(doc.delta, libAblate.delta);
    assert.deepEqual(doc.perQueryDelta, libAblate.perQueryDelta);
    assert.deepEqual(doc.ablated.perQuery, libAblate.ablated.perQuery);
    assert.deepEqual(doc.baseline.means, libAblate.baseline.means);
    assert.match(doc.intervention.meanReference, /evaluated queries/);
    assert.match(r.stderr, /heads 0\.1,1\.2 ablated \(mean, query side\)/);
  });

  it('table: plain, ablated and Δ rows per metric', async () => {
    const r = await e5(evalArgs('--ablate', '0.1,1.2', '--ablate-mode', 'mean'));
    assert.equal(r.code, 0, r.stderr);
    const row = (label: string) => r.stdout.split('\n').find((l) => l.startsWith(`| ${label} `))!.split('|').slice(2, -1).map((s) => s.trim());
    assert.deepEqual(row('NDCG'), libAblate.baseline.means.ndcg.map((v) => v.toFixed(5)));
    assert.deepEqual(row('NDCG ablated'), libAblate.ablated.means.ndcg.map((v) => v.toFixed(5)));
    assert.deepEqual(row('NDCG Δ').map(Number), libAblate.delta.means.ndcg.map((v) => Number(v.toFixed(5))));
    assert.match(r.stdout, /ablated: heads 0\.1,1\.2 \(mean — means over the evaluated queries/);
  });

  it('bad usage: exit 2 naming the problem', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--ablate', '2.0'], /--ablate 2\.0: heads\[0\] = 2\.0: layer 2 is out of range \(the model has layers 0-1\)/],
      [['--ablate', '0.4'], /head 4 is out of range \(the model has heads 0-3 in each layer\)/],
      [['--ablate', 'x'], /'x' is not LAYER\.HEAD/],
      [['--ablate', '0.1', '--scan', 'heads'], /--ablate and --scan exclude each other/],
      [['--scan', 'heads', '--metric', 'ndcg@100'], /--metric ndcg@100: 100 is not one of --k \(1,5,10\)/],
      [['--scan', 'heads', '--metric', 'foo@10'], /--metric: metric "foo@10" is not METRIC@K/],
      [['--html', path.join(tmp, 'x.html')], /--html goes with --ablate or --scan/],
      [['--ablate', '0.1', '--html', path.join(tmp, 'x.html')], /--html draws the heat grid of a --scan/],
      [['--ablate', '0.1', '--shard', '0/2'], /with --ablate: shards split the corpus cache .* or the cells of a --scan/],
      [['--ablate', '0.1', '--save-run', path.join(tmp, 'x.run')], /--save-run writes the plain run's ranking/],
      [['--scan', 'rows'], /argument 'rows' is invalid/],
    ];
    for (const [args, message] of cases) {
      const r = await e5(evalArgs(...args));
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
  });
});

describe('e5 eval --scan', () => {
  it('json: every cell\'s means and differences are the library\'s; the table lists the largest effects first', async () => {
    const r = await e5(evalArgs('--scan', 'heads', '--format', 'json', '--no-cache'));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.grid, libScan.grid);
    assert.deepEqual(doc.deltaGrid, libScan.deltaGrid);
    assert.deepEqual(doc.cells.map((c: { means: unknown }) => c.means), libScan.cells.map((c) => c.means));
    assert.deepEqual(doc.cells.map((c: { perQueryDelta: unknown }) => c.perQueryDelta), libScan.cells.map((c) => c.perQueryDelta));
    assert.deepEqual(doc.queryIds, libScan.queryIds);
    const t = await e5(evalArgs('--scan', 'heads', '--no-cache'));
    const cellsInTable = t.stdout.split('\n').filter((l) => /^\| \d\.\d /.test(l)).map((l) => l.split('|')[1].trim());
    const byEffect = [...libScan.cells].sort((a, b) => Math.abs(b.delta.ndcg[2]) - Math.abs(a.delta.ndcg[2])).map((c) => c.label);
    assert.deepEqual(cellsInTable, byEffect);
  });

  it('sharded over Slurm array tasks: each task computes its cells, the final run merges the same grid', async function () {
    this.timeout(120_000);
    const cache = path.join(tmp, 'scan-cache');
    for (const task of ['0', '1']) {
      const r = await e5(evalArgs('--scan', 'heads', '--cache', cache), { env: { SLURM_ARRAY_TASK_ID: task, E5_SHARD_COUNT: '2' } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^eval scan shard ${task}/2: 4 of 8 head cells \\(zero, query side\\): 4 computed, 0 reused`));
    }
    const html = path.join(tmp, 'grid.html');
    const final = await e5(evalArgs('--scan', 'heads', '--cache', cache, '--format', 'json', '--html', html));
    assert.equal(final.code, 0, final.stderr);
    const doc = JSON.parse(final.stdout);
    assert.deepEqual(doc.cache.reused, 8);
    assert.deepEqual(doc.cache.computed, 0);
    assert.deepEqual(doc.deltaGrid, libScan.deltaGrid);
    assert.equal(fs.readFileSync(html, 'utf8'), renderScanHtml({ ...libScan, cells: libScan.cells.map((c) => ({ ...c, cached: true })) }));
  });

  it('a cache directory whose key.json names another scan: exit 1, nothing mixed', async () => {
    const cache = path.join(tmp, 'scan-conflict');
    assert.equal((await e5(evalArgs('--scan', 'layers', '--cache', cache))).code, 0);
    const dir = fs.readdirSync(cache).find((d) => d.startsWith('scan-'))!;
    fs.writeFileSync(path.join(cache, dir, 'key.json'), '{"format":"another"}');
    const r = await e5(evalArgs('--scan', 'layers', '--cache', cache));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /key\.json holds a different key than its directory name promises \(another model, intervention or data set\); delete .* to rebuild it/);
  });
});

describe('e5 eval --scan: killed and resumed', () => {
  /** Every finished cell file under a cache folder. */
  const cellFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /cell-\d\.\d\.json$/.test(f)) : []);

  it('SIGKILL after the first cell, then the same command: only the missing cells are computed, same grid', async function () {
    this.timeout(180_000);
    const cache = path.join(tmp, 'scan-kill');
    const big = path.join(tmp, 'big');
    writeTinyBeir(big, 120);
    // passage side: each cell embeds the 120 passages again, one per forward — slow enough to stop half-way
    const args = evalArgs('--scan', 'heads', '--ablate-side', 'passage', '--cache', cache, '--shard-size', '10', '--batch-size', '1', '--format', 'json').map((a) => (a === data ? big : a));
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: cliEnv({ E5_CACHE: path.join(tmp, 'e5-cache') }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let killed = false;
    const poll = setInterval(() => {
      if (!killed && cellFiles(cache).length > 0) {
        child.kill('SIGKILL');
        killed = true;
      }
    }, 5);
    const end = await exited;
    clearInterval(poll);
    assert.equal(end.signal, 'SIGKILL', `the scan ended before it could be killed (code ${end.code}): ${stderr}`);
    const kept = cellFiles(cache).length;
    assert.ok(kept >= 1 && kept < 8, `${kept} of 8 cells written before the kill`);

    const resumed = await e5(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    const doc = JSON.parse(resumed.stdout);
    assert.deepEqual(doc.cache, { dir: doc.cache.dir, cells: 8, reused: kept, computed: 8 - kept, rejected: 0 });
    const whole = await e5(evalArgs('--scan', 'heads', '--ablate-side', 'passage', '--no-cache', '--batch-size', '1', '--format', 'json').map((a) => (a === data ? big : a)));
    assert.equal(whole.code, 0, whole.stderr);
    assert.deepEqual(doc.grid, JSON.parse(whole.stdout).grid);
  });
});

describe('e5 eval --scan --html in headless Chromium', function () {
  this.timeout(120_000);
  let chromium: string | undefined;
  before(function () {
    chromium = findChromium();
    if (!chromium) {
      console.log(`    skipped: no Chromium at ${process.env.CHROMIUM ?? '/usr/bin/chromium'} (apt-get install -y chromium, or set $CHROMIUM)`);
      this.skip();
    }
  });
  const attr = (dom: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(/<body([^>]*)>/.exec(dom)![1])?.[1];

  it('draws every cell coloured by its Δ, and lists a cell\'s changed queries from the URL hash', async () => {
    const file = path.join(tmp, 'view.html');
    fs.writeFileSync(file, renderScanHtml(libScan));
    const worst = [...libScan.cells].sort((a, b) => a.delta.ndcg[2] - b.delta.ndcg[2])[0];
    const { stdout: dom, console: messages } = await dumpDom(chromium!, file, { hash: `#cell=${worst.label}` });
    assert.deepEqual(messages, [], 'console output');
    assert.equal(attr(dom, 'data-status'), 'ready');
    assert.equal(attr(dom, 'data-errors'), '0');
    assert.equal(attr(dom, 'data-rendered-cells'), '8');
    assert.equal(attr(dom, 'data-missing-cells'), '0');
    assert.equal(attr(dom, 'data-selected-cell'), worst.label);
    assert.equal(attr(dom, 'data-detail-rows'), String(worst.perQueryDelta.filter((v) => v !== 0).length));
    // the largest drop is the deepest red: rgb(255, 64, 64) (the scale's end)
    const td = new RegExp(`<td[^>]*data-cell="${worst.label.replace('.', '\\.')}"[^>]*>`).exec(dom)![0];
    assert.match(td, /background: rgb\(255, 64, 64\)/);
    assert.match(td, /class="selected"/);
  });

  it('a worker\'s partial grid shows the cells not computed', async () => {
    const file = path.join(tmp, 'partial.html');
    fs.writeFileSync(file, renderScanHtml({ ...libScan, cells: libScan.cells.filter((_, i) => i % 2 === 0) }));
    const { stdout: dom, console: messages } = await dumpDom(chromium!, file);
    assert.deepEqual(messages, []);
    assert.equal(attr(dom, 'data-rendered-cells'), '4');
    assert.equal(attr(dom, 'data-missing-cells'), '4');
  });
});
