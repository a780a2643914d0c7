/**
 * precomputeCorpus() (eval/precompute.ts) with the hashed bag-of-words fake embedder: N workers
 * between them embed every passage exactly once, each only the cache shards s with s mod N = its
 * index; the final evaluate() on their cache then embeds no passage and gives the numbers of an
 * uncached run; a rerun skips what is done and recomputes a damaged shard.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluate } from '../../eval/evaluate';
import { precomputeCorpus } from '../../eval/precompute';
import { HashingEmbedder, writeTinyBeir } from '../support/eval-child';

let tmp: string;
let data: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-precompute-'));
  data = path.join(tmp, 'data');
  writeTinyBeir(data, 95); // shards of 10: 9 full, one of 5
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const passages = (m: HashingEmbedder) => m.seen.filter((t) => t.startsWith('passage: '));

describe('precomputeCorpus', () => {
  it('3 workers embed each passage once, round-robin by cache shard; the final evaluate() embeds none', async () => {
    const cacheDir = path.join(tmp, 'cache');
    const workers = [0, 1, 2].map(() => new HashingEmbedder(64));
    const results = await Promise.all(workers.map((m, index) => precomputeCorpus(m, data, { worker: { index, count: 3 }, cacheDir, shardSize: 10, progress: false })));
    assert.deepEqual(results.map((r) => r.owned), [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]);
    assert.deepEqual(results.map((r) => r.computedPassages), [35, 30, 30]);
    const docs = fs.readFileSync(path.join(data, 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { title: string; text: string });
    const all = workers.flatMap(passages).sort();
    assert.equal(all.length, 95);
    assert.deepEqual(all, docs.map((d) => `passage: ${`${d.title} ${d.text}`.trim()}`).sort());
    // worker 1 embedded documents 10-19, 40-49, 70-79, in that order
    assert.deepEqual(passages(workers[1]), [1, 4, 7].flatMap((s) => docs.slice(10 * s, 10 * s + 10).map((d) => `passage: ${`${d.title} ${d.text}`.trim()}`)));

    const final = new HashingEmbedder(64);
    const cached = await evaluate(final, data, { k: [1, 5, 10], cacheDir, shardSize: 10, progress: false });
    assert.equal(passages(final).length, 0);
    assert.deepEqual(cached.cache, { dir: results[0].cacheDir, shards: 10, reused: 10, computed: 0, rejected: 0 });
    const uncached = await evaluate(new HashingEmbedder(64), data, { k: [1, 5, 10], shardSize: 10, progress: false });
    assert.deepEqual(cached.perQuery, uncached.perQuery);
  });

  it('a rerun reuses finished shards and recomputes a damaged one, with a warning', async () => {
    const cacheDir = path.join(tmp, 'cache-rerun');
    const opts = { worker: { index: 1, count: 2 }, cacheDir, shardSize: 10, progress: false as const };
    const first = await precomputeCorpus(new HashingEmbedder(64), data, opts);
    assert.deepEqual([first.owned, first.computed], [[1, 3, 5, 7, 9], 5]);
    fs.writeFileSync(path.join(first.cacheDir, 'shard-00005.safetensors'), 'not a safetensors file');
    const warnings: string[] = [];
    const again = new HashingEmbedder(64);
    const second = await precomputeCorpus(again, data, { ...opts, onWarning: (w) => warnings.push(w) });
    assert.deepEqual([second.reused, second.computed, second.rejected], [4, 1, 1]);
    assert.equal(passages(again).length, 10);
    assert.match(warnings.join('\n'), /shard-00005\.safetensors is unusable and is recomputed/);
  });

  it('refuses a worker index outside [0, count)', async () => {
    await assert.rejects(precomputeCorpus(new HashingEmbedder(8), data, { worker: { index: 2, count: 2 }, cacheDir: tmp }), /worker index must be in \[0, 2\), got 2/);
  });
});
