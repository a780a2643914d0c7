// evaluate() on the real engine (eval/embedder-adapter.ts) with a generated tiny BERT and a generated
// BEIR set:
// - the model fingerprint: equal for a byte-identical copy, changed by an edit to any tensor's samples,
//   the config or the vocabulary, and cheap (a small part of the weights is read);
// - evaluate() equals a brute-force pipeline (test/support/eval-child.ts) on EmbeddingModel.embed (prefixes and
//   title joining done by hand, every pair scored, everything sorted);
// - deterministic across two runs and across batch sizes;
// - the corpus cache: a second run embeds no passage; a model with other weights gets its own cache.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendInfo } from '../../engine/backend';
import { EmbeddingModel, loadModel } from '../../e5/model';
import { NUMERICS_REVISION } from '../../engine/numerics';
import { EngineEmbedder, embedderId, modelFingerprint, SAMPLE_BYTES, sampleOffsets } from '../../eval/embedder-adapter';
import type { EmbedCallOptions, EmbedCallResult, Embedder } from '../../eval/embedder';
import { evaluate, EvalResult } from '../../eval/evaluate';
import { testBackend } from '../support/backend';
import { bruteForceReference, readBeirFiles, writeTinyBeir } from '../support/eval-child';
import { cachedModel } from '../../devtools/generate-model';

const KS = [1, 5, 10, 100];
const N_DOCS = 80;

let tmp: string;
let modelDir: string;
let model: EmbeddingModel;
let data: string;

before(async function () {
  this.timeout(120_000);
  await testBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-engine-'));
  modelDir = cachedModel({ preset: 'tiny' });
  model = await loadModel(modelDir);
  data = path.join(tmp, 'data');
  writeTinyBeir(data, N_DOCS);
});
after(() => {
  model?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Counts what reaches the engine, per prefix. */
class CountingEmbedder implements Embedder {
  readonly texts = { query: 0, passage: 0, none: 0 };
  constructor(private readonly inner: Embedder) {}
  get id(): string {
    return this.inner.id;
  }
  get pooling(): string | undefined {
    return this.inner.pooling;
  }
  embed(texts: string[], opts: EmbedCallOptions): Promise<EmbedCallResult> {
    this.texts[opts.prefix] += texts.length;
    return this.inner.embed(texts, opts);
  }
}

function copyModel(name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(modelDir, dir, { recursive: true });
  return dir;
}

/** Flips one byte of the copy's model.safetensors at data offset `at` (relative to the data buffer). */
function flipDataByte(dir: string, at: number): void {
  const file = path.join(dir, 'model.safetensors');
  const b = fs.readFileSync(file);
  const dataStart = 8 + Number(b.readBigUInt64LE(0));
  b[dataStart + at] ^= 0x5a;
  fs.writeFileSync(file, b);
}

function tensorOffsets(dir: string): Array<{ name: string; begin: number; end: number }> {
  const b = fs.readFileSync(path.join(dir, 'model.safetensors'));
  const header = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  return Object.entries(header).filter(([k]) => k !== '__metadata__').map(([name, v]) => ({ name, begin: v.data_offsets[0], end: v.data_offsets[1] }));
}

describe('eval × engine: the model fingerprint in the cache key', () => {
  it('samples start, middle and end of each tensor (hand-computed offsets)', () => {
    assert.deepEqual(sampleOffsets(100, 100, 10), []);
    assert.deepEqual(sampleOffsets(100, 125, 10), [100, 110, 120]); // ≤ 3 blocks: all of it
    assert.deepEqual(sampleOffsets(0, 30, 10), [0, 10, 20]);
    assert.deepEqual(sampleOffsets(0, 101, 10), [0, 45, 91]); // middle: floor((101 - 10) / 2)
  });

  it('is equal for a byte-identical copy (the id still names the folder)', () => {
    const copy = copyModel('copy');
    const a = modelFingerprint(modelDir), b = modelFingerprint(copy);
    assert.equal(b.sha256, a.sha256);
    assert.deepEqual(a.configFiles.slice(0, 2), ['config.json', 'tokenizer.json'].filter((f) => fs.existsSync(path.join(modelDir, f))));
    assert.notEqual(embedderId({ dir: copy }, b.sha256), embedderId({ dir: modelDir }, a.sha256));
    assert.equal(embedderId({ dir: '/m', repoId: 'org/name', commit: 'abc123', revision: 'main' }, a.sha256), `org/name@abc123#${a.sha256.slice(0, 16)}`);
  });

  it('changes when a sampled byte of any tensor, the config or the vocabulary changes', () => {
    const base = modelFingerprint(modelDir).sha256;
    const tensors = tensorOffsets(modelDir);
    const biggest = tensors.reduce((a, b) => (b.end - b.begin > a.end - a.begin ? b : a));
    assert.ok(biggest.end - biggest.begin > 3 * SAMPLE_BYTES, 'the word embeddings are sampled, not read whole');
    // the first byte of every tensor, and the middle and last byte of the sampled one
    const edits = [
      ...tensors.map((t) => ({ what: `first byte of ${t.name}`, at: t.begin })),
      { what: `middle of ${biggest.name}`, at: biggest.begin + Math.floor((biggest.end - biggest.begin) / 2) },
      { what: `last byte of ${biggest.name}`, at: biggest.end - 1 },
    ];
    const dir = copyModel('edited');
    const original = fs.readFileSync(path.join(dir, 'model.safetensors'));
    for (const e of edits) {
      flipDataByte(dir, e.at);
      assert.notEqual(modelFingerprint(dir).sha256, base, e.what);
      fs.writeFileSync(path.join(dir, 'model.safetensors'), original);
    }
    assert.equal(modelFingerprint(dir).sha256, base, 'restored');

    const cfg = path.join(dir, 'config.json');
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e-6'));
    assert.notEqual(modelFingerprint(dir).sha256, base, 'config.json edited');
    fs.copyFileSync(path.join(modelDir, 'config.json'), cfg);
    fs.appendFileSync(path.join(dir, 'vocab.txt'), 'extra\n');
    assert.notEqual(modelFingerprint(dir).sha256, base, 'vocab.txt edited');
  });

  it('reads a small part of the weights', () => {
    const fp = modelFingerprint(modelDir);
    const size = fs.statSync(path.join(modelDir, 'model.safetensors')).size;
    assert.deepEqual(fp.weightFiles, [{ file: 'model.safetensors', bytes: size }]);
    assert.equal(fp.tensorsSampled, tensorOffsets(modelDir).length);
    assert.ok(fp.bytesRead < size / 10, `read ${fp.bytesRead} of ${size} bytes`);
  });
});

describe('eval × engine: evaluate() with the tiny model', () => {
  let base: EvalResult;
  before(async () => {
    base = await evaluate(new EngineEmbedder(model), data, { k: KS, keepHits: true, progress: false });
  });

  it('names the engine numerics revision and backend for the cache key', () => {
    assert.equal(new EngineEmbedder(model).engine, `e5-tfjs numerics ${NUMERICS_REVISION} on ${backendInfo().name}`);
  });

  it('equals a brute-force pipeline on EmbeddingModel.embed, ranking by ranking', async () => {
    const ref = await bruteForceReference(data, KS, async (texts) => (await model.embed(texts, { batchSize: 1 })).embeddings);
    assert.deepEqual(base.perQuery.map((q) => q.queryId), ref.queryIds);
    base.perQuery.forEach((q, i) => assert.deepEqual(q.hits, ref.rankings[i], `ranking of ${q.queryId}`));
    assert.deepEqual(base.means, ref.means);
    assert.equal(base.model.pooling, 'mean');
    assert.match(base.model.id, /tiny-F32-1234-pool-\w+#[0-9a-f]{16}$/);
    assert.ok(base.means.ndcg.some((v) => v > 0), 'some relevant document is retrieved (the data and model are not degenerate)');
  });

  it('counts truncation as the tokenizer does (--max-length)', async () => {
    const { docs } = readBeirFiles(data);
    const lengths = docs.map((d) => model.tokenizer.encode(`passage: ${`${d.title ?? ''} ${d.text}`.trim()}`).nTokens);
    const L = Math.min(...lengths); // the shortest passages fit, the others are cut
    const long = lengths.filter((n) => n > L).length;
    const r = await evaluate(new EngineEmbedder(model), data, { k: KS, maxLength: L, progress: false });
    assert.ok(long > 0 && long < docs.length, `${long} of ${docs.length} passages are longer than ${L} tokens`);
    assert.equal(r.counts.passagesTruncated, long);
    assert.notDeepEqual(r.means, base.means);
  });

  it('is deterministic: a second run and batch sizes 1, 5 and 64 give identical results', async () => {
    for (const batchSize of [undefined, 1, 5, 64]) {
      const r = await evaluate(new EngineEmbedder(model), data, { k: KS, keepHits: true, batchSize, progress: false });
      assert.deepEqual(r.perQuery, base.perQuery, `batchSize ${batchSize}`);
      assert.deepEqual(r.means, base.means, `batchSize ${batchSize}`);
    }
  });

  it('reuses the cache: the second run embeds the queries only', async () => {
    const cacheDir = path.join(tmp, 'cache-reuse');
    const first = new CountingEmbedder(new EngineEmbedder(model));
    const a = await evaluate(first, data, { k: KS, keepHits: true, cacheDir, shardSize: 16, batchSize: 7, progress: false });
    assert.deepEqual(first.texts, { query: 12, passage: N_DOCS, none: 0 });
    assert.deepEqual([a.cache.shards, a.cache.computed, a.cache.reused], [5, 5, 0]);
    const second = new CountingEmbedder(new EngineEmbedder(model));
    const b = await evaluate(second, data, { k: KS, keepHits: true, cacheDir, shardSize: 16, progress: false });
    assert.deepEqual(second.texts, { query: 12, passage: 0, none: 0 });
    assert.deepEqual([b.cache.computed, b.cache.reused, b.cache.rejected], [0, 5, 0]);
    assert.equal(b.cache.dir, a.cache.dir);
    for (const r of [a, b]) assert.deepEqual(r.perQuery, base.perQuery);
  });

  it('keys the cache by the weights: other weights in the same folder get their own directory', async () => {
    // The folder path stays the same (weights replaced in place), so only the fingerprint can tell.
    const cacheDir = path.join(tmp, 'cache-models');
    const dir = path.join(tmp, 'swapped');
    const run = async (from: string) => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(from, dir, { recursive: true });
      const m = await loadModel(dir);
      try {
        const counting = new CountingEmbedder(new EngineEmbedder(m));
        return { r: await evaluate(counting, data, { k: KS, cacheDir, shardSize: 16, progress: false }), passages: counting.texts.passage };
      } finally {
        m.dispose();
      }
    };
    const a = await run(modelDir);
    const b = await run(cachedModel({ preset: 'tiny', seed: 99 }));
    assert.notEqual(b.r.model.id, a.r.model.id);
    assert.notEqual(b.r.cache.dir, a.r.cache.dir);
    assert.deepEqual([b.r.cache.computed, b.r.cache.reused, b.passages], [5, 0, N_DOCS]);
    assert.notDeepEqual(b.r.means, a.r.means);
    const c = await run(modelDir); // the first weights again: their cache is still there
    assert.deepEqual([c.r.cache.dir, c.r.cache.reused, c.passages], [a.r.cache.dir, 5, 0]);
    assert.deepEqual(c.r.means, a.r.means);
  });
});
