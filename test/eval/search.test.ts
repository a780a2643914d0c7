// eval/search.ts: the blocked, heap-based exact top-k against a brute-force reference (score every
// pair with one plain loop, sort everything with the trec_eval order), on random data with planted
// exact ties; independence from block sizes; identical-id exclusion; k beyond the corpus.

import { strict as assert } from 'node:assert';
import { compareRanked, Hit } from '../../eval/metrics';
import { exactSearch, ExactTopK, idRanks, stackRows } from '../../eval/search';

import { mulberry32 as rng } from '../../devtools/rng';

function randomRows(n: number, dim: number, rand: () => number): Float32Array[] {
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => rand() * 2 - 1));
}

/** Reference: cosine of every pair (one sequential dot product, norms in double), float32-rounded, full sort. */
function bruteForce(queries: Float32Array[], passages: Float32Array[], ids: string[], k: number, exclude?: Int32Array): Hit[][] {
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return queries.map((q, qi) => {
    const all: Hit[] = [];
    passages.forEach((p, j) => {
      if (exclude && exclude[qi] === j) return;
      let dot = 0;
      for (let i = 0; i < q.length; i++) dot += q[i] * p[i];
      all.push({ id: ids[j], score: Math.fround(dot / (norm(q) * norm(p))) });
    });
    return all.sort(compareRanked).slice(0, k);
  });
}

describe('eval: exact top-k search', () => {
  const rand = rng(1234);
  const dim = 13;
  const queries = randomRows(7, dim, rand); // 7: not a multiple of the 4-query tile
  const passages = randomRows(53, dim, rand);
  // Planted exact ties: passages 10, 20 and 30 are copies of passage 5 (scaled: cosine is scale-free).
  for (const j of [10, 20, 30]) passages[j] = passages[5].map((x) => x * (j / 10));
  passages[40] = passages[5].slice();
  const ids = passages.map((_, j) => `p${j}`);

  for (const k of [1, 10, 53, 200]) {
    it(`equals the brute-force ranking, k = ${k}`, () => {
      assert.deepEqual(exactSearch(queries, passages, ids, k), bruteForce(queries, passages, ids, k));
    });
  }

  it('breaks exact ties by doc id descending', () => {
    // Query = passage 5: passages 5, 10, 20, 30, 40 all score the top cosine (1, or 1 ± float32 rounding
    // for the scaled copies). The exact copies 5 and 40 tie exactly: "p5" > "p40" byte-wise, so p5 first.
    const hits = exactSearch([passages[5]], passages, ids, 5)[0];
    const pos = (id: string) => hits.findIndex((h) => h.id === id);
    assert.equal(hits.length, 5);
    assert.ok(pos('p5') >= 0 && pos('p40') >= 0);
    assert.equal(hits[pos('p5')].score, hits[pos('p40')].score);
    assert.equal(pos('p5'), pos('p40') - 1);
  });

  it('does not depend on how the corpus is split into blocks', () => {
    const whole = exactSearch(queries, passages, ids, 20);
    for (const blockSize of [1, 4, 17, 52]) {
      const s = new ExactTopK(stackRows(queries, dim), queries.length, dim, idRanks(ids), { k: 20 });
      for (let start = 0; start < passages.length; start += blockSize) {
        const rows = passages.slice(start, start + blockSize);
        s.add({ start, count: rows.length, dim, data: stackRows(rows, dim) });
      }
      const got = s.results().map((hits) => hits.map((h) => ({ id: ids[h.doc], score: h.score })));
      assert.deepEqual(got, whole, `block size ${blockSize}`);
    }
  });

  it('excludes a given document per query (ignore_identical_ids)', () => {
    const exclude = new Int32Array([5, -1, 0, -1, -1, -1, 52]);
    const got = exactSearch(queries, passages, ids, 60, exclude);
    assert.deepEqual(got, bruteForce(queries, passages, ids, 60, exclude));
    assert.equal(got[0].length, 52);
    assert.ok(!got[0].some((h) => h.id === 'p5'));
    assert.equal(got[1].length, 53);
  });

  it('scores a zero vector 0 instead of NaN', () => {
    const zero = new Float32Array(dim);
    const hits = exactSearch([queries[0]], [zero, passages[0]], ['z', 'a'], 2)[0];
    assert.deepEqual(hits.map((h) => h.id).includes('z'), true);
    assert.equal(hits.find((h) => h.id === 'z')!.score, 0);
  });

  it('rejects a dimension mismatch', () => {
    assert.throws(() => exactSearch([queries[0]], [new Float32Array(dim + 1)], ['x'], 1), /dimension/);
  });
});
