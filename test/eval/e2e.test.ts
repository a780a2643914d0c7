// evaluate() end to end with a deterministic fake embedder (hashed bag of words):
// - the tiny fixture, every number derived by hand;
// - a generated 60-document BEIR set against an independent brute-force pipeline (test/support/eval-child.ts);
// - determinism across shard sizes, batch sizes and cache use;
// - the corpus cache: reuse, rejection of corrupt or foreign shards;
// - a run killed with SIGKILL after its first shard, then resumed: same numbers as an uninterrupted
//   run, finished shards not recomputed;
// - the table / JSON / TREC run renderings and the forced progress bar.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { loadBeir } from '../../eval/beir';
import { EvalError } from '../../eval/errors';
import { evaluate, EvalResult, parseKList } from '../../eval/evaluate';
import { formatEvalJson, formatEvalTable, formatTrecRun } from '../../eval/report';
import { bruteForceReference, HashingEmbedder, tokens, writeTinyBeir } from '../support/eval-child';

const TINY = path.join(__dirname, '..', 'fixtures', 'eval', 'tiny');

let tmp: string;
before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-e2e-'))));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshDir = (name: string) => fs.mkdtempSync(path.join(tmp, `${name}-${counter++}-`));

const close = (a: number, b: number, what: string, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b}`);

describe('eval: evaluate() on the tiny fixture, by hand', () => {
  // Fake embedder: each token (lower-cased word, incl. the prefix word) adds ±1 to one of 100 buckets,
  // then L2 normalisation. Tokens used here: query, passage, alpha, beta, gamma, delta, epsilon.
  // Passage texts (e5: strip(title + ' ' + text), empty/missing/null titles vanish):
  //   d1 "alpha"  d2 "Beta beta gamma"  d3 "gamma delta"  d4 "alpha"  q2 "gamma"
  // q1 = {query, alpha}/√2:  d1 = d4 = {passage, alpha}/√2 → 1/2; d2, d3, q2 → 0
  //   ranking: d4, d1 (tie → id desc), then the zeros q2, d3, d2. Judged: d1=1 (R = 1), at rank 2.
  //   nDCG@1 0, nDCG@3 1/log2(3) = 0.6309297535714574; MAP@3 1/2; Recall@3 1; P@1 0, P@3 1/3; MRR@1 0, MRR@3 1/2
  // q2 = {query, gamma}/√2: d3 = {passage, gamma, delta}/√3 → 1/√6 = 0.408; d2 = {passage, 2·beta, gamma}/√6
  //   → 1/√12 = 0.289; document q2 (would score 1/2) is the query's own id → excluded; d1, d4 → 0.
  //   ranking: d3, d2, d4, d1. Judged: d2=2, d3=1, q2=1 → R = 3, ideal gains 2, 1, 1.
  //   nDCG@1 = 1/2; nDCG@3 = (1 + 2/log2(3)) / (2 + 1/log2(3) + 1/2) = 2.261859507142915 / 3.1309297535714578
  //   = 0.7224242270408039; MAP@3 (1/1 + 2/2)/3 = 2/3; Recall@3 2/3; P@1 1, P@3 2/3; MRR 1
  // q3 has no judgement in 'test': skipped.
  const expectedMeans = {
    ndcg: [(0 + 0.5) / 2, (0.6309297535714574 + 0.7224242270408039) / 2],
    map: [(0 + 1 / 3) / 2, (1 / 2 + 2 / 3) / 2], // MAP@1: q2 has d3 (rel) at rank 1 → (1/1)/3
    recall: [(0 + 1 / 3) / 2, (1 + 2 / 3) / 2],
    precision: [(0 + 1) / 2, (1 / 3 + 2 / 3) / 2],
    mrr: [(0 + 1) / 2, (1 / 2 + 1) / 2],
  };
  let result: EvalResult;
  before(async () => {
    const model = new HashingEmbedder(100);
    // precondition of the hand computation: the 7 tokens land in 7 different buckets
    const buckets = new Set(['query', 'passage', 'alpha', 'beta', 'gamma', 'delta', 'epsilon'].map((t) => model.vector([t]).findIndex((x) => x !== 0)));
    assert.equal(buckets.size, 7, 'hash collision among the fixture tokens');
    result = await evaluate(model, TINY, { k: [1, 3], keepHits: true, progress: false });
  });

  it('ranks as derived', () => {
    assert.deepEqual(result.perQuery.map((q) => q.queryId), ['q1', 'q2']);
    assert.deepEqual(result.perQuery[0].hits!.map((h) => h.id), ['d4', 'd1', 'q2']);
    assert.deepEqual(result.perQuery[1].hits!.map((h) => h.id), ['d3', 'd2', 'd4']);
    close(result.perQuery[0].hits![0].score, 0.5, 'cos(q1, d4)', 1e-6);
    close(result.perQuery[1].hits![0].score, 1 / Math.sqrt(6), 'cos(q2, d3)', 1e-6);
    close(result.perQuery[1].hits![1].score, 1 / Math.sqrt(12), 'cos(q2, d2)', 1e-6);
  });

  it('gives the hand-computed means', () => {
    for (const [m, want] of Object.entries(expectedMeans)) {
      want.forEach((w, i) => close(result.means[m as keyof typeof expectedMeans][i], w, `${m}@${result.settings.k[i]}`));
    }
    close(result.scores['NDCG@3'], expectedMeans.ndcg[1], 'scores NDCG@3');
  });

  it('counts skipped queries and the excluded identical id', () => {
    assert.equal(result.counts.queriesEvaluated, 2);
    assert.equal(result.counts.queriesSkippedNoQrels, 1);
    assert.equal(result.counts.identicalIdsExcluded, 1);
    assert.equal(result.counts.queriesWithoutRelevant, 0);
    assert.equal(result.perQuery[1].numRelevant, 3);
  });

  it('with ignoreIdenticalIds: false, document q2 is retrieved by query q2', async () => {
    // q2's ranking becomes q2 (1/2), d3, d2: P@3 = 3/3, Recall@3 = 3/3
    const r = await evaluate(new HashingEmbedder(100), TINY, { k: [3], ignoreIdenticalIds: false, keepHits: true, progress: false });
    assert.deepEqual(r.perQuery[1].hits!.map((h) => h.id), ['q2', 'd3', 'd2']);
    close(r.perQuery[1].metrics.precision[0], 1, 'P@3');
    close(r.perQuery[1].metrics.recall[0], 1, 'Recall@3');
    assert.equal(r.counts.identicalIdsExcluded, 0);
  });

  it('embeds with the e5 prefixes and title joining', async () => {
    const model = new HashingEmbedder(100);
    await evaluate(model, TINY, { k: [1], progress: false });
    assert.deepEqual(model.seen, [
      'query: alpha', 'query: gamma',
      'passage: alpha', 'passage: Beta beta gamma', 'passage: gamma delta', 'passage: alpha', 'passage: gamma',
    ]);
  });

  it('renders a table, JSON and a TREC run', () => {
    const table = formatEvalTable(result);
    const rows = table.split('\n').filter((l) => l.startsWith('|'));
    assert.equal(rows.length, 7); // header, rule, 5 metrics
    assert.ok(rows.every((r) => r.length === rows[0].length), 'columns aligned');
    assert.match(table, /\| NDCG\s+\| 0\.25000 \| 0\.67668 \|/);
    assert.match(table, /1 query without judgements skipped/);
    const json = JSON.parse(formatEvalJson(result, { perQuery: false }));
    close(json.scores['MRR@3'], 0.75, 'json MRR@3');
    assert.equal(json.perQuery, undefined);
    const run = formatTrecRun(result).trim().split('\n');
    assert.equal(run.length, 6);
    assert.match(run[0], /^q1 Q0 d4 1 0\.5\d* e5-tfjs$/);
  });

  it('rejects bad options', async () => {
    const model = new HashingEmbedder(100);
    await assert.rejects(evaluate(model, TINY, { k: [10, 10] }), (e: unknown) => e instanceof EvalError && /twice/.test(e.message));
    await assert.rejects(evaluate(model, TINY, { k: [0] }), (e: unknown) => e instanceof EvalError && e.code === 'bad_option');
    const ds = await loadBeir(TINY, { split: 'dev' });
    await assert.rejects(evaluate(model, ds, { split: 'test' }), /loaded with split "dev"/);
  });

  it('parses CLI cutoff lists', () => {
    assert.deepEqual(parseKList('100,10'), [10, 100]);
    assert.deepEqual(parseKList(' 1, 3 ,5'), [1, 3, 5]);
    for (const bad of ['', '10,', '0', '-1', '1.5', '10,10', 'ten']) assert.throws(() => parseKList(bad), EvalError, bad);
  });

  it('rejects an embedder that returns non-finite values', async () => {
    const bad = new HashingEmbedder(100);
    const embed = bad.embed.bind(bad);
    bad.embed = async (texts, opts) => {
      const out = await embed(texts, opts);
      out.embeddings[0][3] = NaN;
      return out;
    };
    await assert.rejects(evaluate(bad, TINY, { progress: false }), (e: unknown) => e instanceof EvalError && e.code === 'bad_embedding');
  });
});

// ------------------------------------------------------------------------------ generated data set

describe('eval: evaluate() on a generated BEIR set', () => {
  const ks = [1, 5, 10, 100];
  let data: string;
  let base: EvalResult;
  before(async () => {
    data = freshDir('data');
    writeTinyBeir(data, 60);
    base = await evaluate(new HashingEmbedder(100), data, { k: ks, keepHits: true, progress: false });
  });

  it('equals the brute-force reference pipeline, ranking by ranking', async () => {
    const hashing = new HashingEmbedder(100);
    const ref = await bruteForceReference(data, ks, (texts) => texts.map((t) => hashing.vector(tokens(t))));
    assert.deepEqual(base.perQuery.map((q) => q.queryId), ref.queryIds);
    base.perQuery.forEach((q, i) => assert.deepEqual(q.hits, ref.rankings[i], `ranking of ${q.queryId}`));
    for (const m of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const) {
      base.means[m].forEach((v, i) => close(v, ref.means[m][i], `${m}@${ks[i]}`, 1e-15));
    }
  });

  it('counts what the generator planted', () => {
    assert.equal(base.counts.queriesEvaluated, 12);
    assert.equal(base.counts.queriesSkippedNoQrels, 2);
    assert.equal(base.counts.judgementsUnknownDoc, 1);
    assert.equal(base.counts.identicalIdsExcluded, 1);
    const q = base.perQuery.find((p) => p.queryId === 'doc-007')!;
    assert.ok(!q.hits!.some((h) => h.id === 'doc-007'), 'own id excluded');
    assert.match(base.warnings.join('\n'), /absent from corpus\.jsonl/);
    // the two documents with identical text tie exactly everywhere: doc-059 ranks right before doc-058
    for (const p of base.perQuery) {
      const i = p.hits!.findIndex((h) => h.id === 'doc-059');
      assert.equal(p.hits![i + 1].id, 'doc-058');
      assert.equal(p.hits![i + 1].score, p.hits![i].score);
    }
  });

  it('is deterministic across shard sizes, batch sizes and the cache', async () => {
    const cacheDir = freshDir('cache');
    const runs = [
      await evaluate(new HashingEmbedder(100), data, { k: ks, keepHits: true, shardSize: 7, batchSize: 3, progress: false }),
      await evaluate(new HashingEmbedder(100), data, { k: ks, keepHits: true, shardSize: 16, cacheDir, progress: false }),
      await evaluate(new HashingEmbedder(100), data, { k: ks, keepHits: true, shardSize: 16, cacheDir, progress: false }), // from cache
    ];
    for (const r of runs) {
      assert.deepEqual(r.means, base.means);
      assert.deepEqual(r.perQuery, base.perQuery);
    }
    assert.deepEqual([runs[1].cache.computed, runs[1].cache.reused], [4, 0]);
    assert.deepEqual([runs[2].cache.computed, runs[2].cache.reused], [0, 4]);
  });

  it('reuses cached shards: only the queries are embedded again', async () => {
    const cacheDir = freshDir('cache');
    await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, progress: false });
    const model = new HashingEmbedder(100);
    const r = await evaluate(model, data, { k: ks, shardSize: 16, cacheDir, progress: false });
    assert.equal(model.seen.filter((t) => t.startsWith('passage: ')).length, 0);
    assert.equal(model.seen.length, 12); // the 12 judged queries
    assert.deepEqual(r.means, base.means);
  });

  it('recomputes a corrupt shard and one that belongs elsewhere, with warnings', async () => {
    const cacheDir = freshDir('cache');
    const first = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, progress: false });
    const shard = (i: number) => path.join(first.cache.dir!, `shard-0000${i}.safetensors`);
    fs.writeFileSync(shard(1), fs.readFileSync(shard(1)).subarray(0, 100)); // truncated
    fs.copyFileSync(shard(0), shard(2)); // a valid file with the wrong start/texts
    const model = new HashingEmbedder(100);
    const r = await evaluate(model, data, { k: ks, shardSize: 16, cacheDir, progress: false });
    assert.deepEqual([r.cache.reused, r.cache.computed, r.cache.rejected], [2, 2, 2]);
    assert.equal(model.seen.filter((t) => t.startsWith('passage: ')).length, 32);
    assert.match(r.warnings.join('\n'), /shard-00001\.safetensors is unusable/);
    assert.match(r.warnings.join('\n'), /shard-00002\.safetensors is unusable and is recomputed: metadata shard is "0", expected "2"/);
    assert.deepEqual(r.means, base.means);
  });

  it('recomputes a shard whose data bytes were zeroed on disk (its checksum no longer matches)', async () => {
    const cacheDir = freshDir('cache');
    const first = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, progress: false });
    const file = path.join(first.cache.dir!, 'shard-00001.safetensors');
    const bytes = fs.readFileSync(file);
    const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
    bytes.fill(0, dataStart); // the header is intact: only the checksum can tell
    fs.writeFileSync(file, bytes);
    const model = new HashingEmbedder(100);
    const r = await evaluate(model, data, { k: ks, shardSize: 16, cacheDir, progress: false });
    assert.deepEqual([r.cache.reused, r.cache.computed, r.cache.rejected], [3, 1, 1]);
    assert.match(r.warnings.join('\n'), /shard-00001\.safetensors is unusable and is recomputed: its data does not match its checksum/);
    assert.deepEqual(r.means, base.means);
  });

  it('uses a new cache directory when the corpus or the settings change', async () => {
    const cacheDir = freshDir('cache');
    const a = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, progress: false });
    const b = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, maxLength: 8, progress: false });
    const c = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, docAsQuery: true, progress: false });
    // The same model computed by an engine whose numerics changed (engine/numerics.ts).
    const otherEngine = Object.assign(new HashingEmbedder(100), { engine: 'e5-tfjs numerics 999 on wasm' });
    const e = await evaluate(otherEngine, data, { k: ks, shardSize: 16, cacheDir, progress: false });
    assert.equal(new Set([a.cache.dir, b.cache.dir, c.cache.dir, e.cache.dir]).size, 4);
    assert.equal(e.cache.reused, 0);
    assert.ok(b.counts.passagesTruncated > 0, 'maxLength 8 truncates the 12-word passages');
    const corpus = path.join(data, 'corpus.jsonl');
    const original = fs.readFileSync(corpus, 'utf8');
    try {
      fs.writeFileSync(corpus, original.replace('"text":"', '"text":"edited '));
      const d = await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, cacheDir, progress: false });
      assert.notEqual(d.cache.dir, a.cache.dir);
      assert.equal(d.cache.reused, 0);
    } finally {
      fs.writeFileSync(corpus, original);
    }
  });

  it('draws a progress bar with ETA when forced', async () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (b) => (out += b.toString()));
    await evaluate(new HashingEmbedder(100), data, { k: ks, shardSize: 16, progress: true, progressStream: stream });
    assert.match(out, /corpus \[.*\] 100% \| 60\/60 .* ETA/);
  });
});

// ----------------------------------------------------------------------------------- interruption

function shardFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => /shard-\d+\.safetensors$/.test(f)).sort();
}

describe('eval: interrupted and resumed', function () {
  this.timeout(180_000);

  it('a run killed after its first shard resumes to the uninterrupted numbers without redoing that shard', async () => {
    const data = freshDir('data');
    writeTinyBeir(data, 60);
    const cacheDir = freshDir('cache');
    const shardSize = 10; // 6 shards
    // Run ts-node's own bin with node (not through npx) so SIGKILL hits the process that writes.
    const child = spawn(process.execPath, [
      require.resolve('ts-node/dist/bin.js'), '--transpile-only', path.join(__dirname, '..', 'support', 'eval-child.ts'),
      JSON.stringify({ data, cacheDir, shardSize, delayMs: 400 }),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));

    // Poll for the first finished shard, then kill at once.
    const deadline = Date.now() + 120_000;
    let onKill: string[] = [];
    while (Date.now() < deadline) {
      onKill = shardFiles(cacheDir);
      if (onKill.length > 0 || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', `child ended on its own before being killed: ${stderr}`);
    const afterKill = shardFiles(cacheDir);
    assert.ok(afterKill.length >= 1 && afterKill.length < 6, `expected a partial cache, found ${afterKill.length} shards`);

    // Resume in-process with a counting embedder.
    const model = new HashingEmbedder(100);
    const resumed = await evaluate(model, data, { k: [1, 5, 10], cacheDir, shardSize, progress: false });
    const uninterrupted = await evaluate(new HashingEmbedder(100), data, { k: [1, 5, 10], shardSize, progress: false });

    assert.deepEqual(resumed.means, uninterrupted.means);
    assert.deepEqual(resumed.perQuery, uninterrupted.perQuery);
    assert.equal(resumed.cache.reused, afterKill.length, 'every shard finished before the kill is reused');
    assert.equal(resumed.cache.computed, 6 - afterKill.length);
    assert.equal(resumed.cache.rejected, 0, 'no corrupt shard was left behind');
    assert.equal(model.seen.filter((t) => t.startsWith('passage: ')).length, (6 - afterKill.length) * shardSize);
    // no temp file survives the resume (the killed writer's are removed, its pid being gone)
    const leftovers = fs.readdirSync(resumed.cache.dir!).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
    assert.equal(shardFiles(cacheDir).length, 6);
  });
});
