/**
 * Exact cosine top-k: every query against every passage, no approximate index.
 *
 * The corpus arrives in blocks (cache shards) so it never has to be in memory at once; each block is
 * scored against all queries in tiles of QUERY_TILE queries, reading every passage row once per tile.
 * Each score is one sequential dot product over the full dimension, so the result does not depend on
 * the block or tile sizes. Scores are cosines (dot / (|q| |p|), which is the dot product for the
 * L2-normalised embeddings e5 produces, as BEIR's cos_sim) rounded to float32 — the precision a
 * PyTorch reference hands to pytrec_eval — and ties are broken like trec_eval: doc id descending.
 *
 * Plain loops over Float32Array keep the evaluation independent of the tfjs backend that produced
 * the embeddings.
 */
import { EvalError } from './errors';
import { compareCodePoints, Hit } from './metrics';

const QUERY_TILE = 4; // queries scored together; 4 accumulators per passage element

/** A row-major [n, dim] block of passage embeddings and the corpus index of its first row. */
export interface PassageBlock {
  start: number;
  count: number;
  dim: number;
  data: Float32Array; // count * dim
}

export interface TopKOptions {
  k: number;
  /** Per query, a corpus index never to return (BEIR's ignore_identical_ids), or -1. */
  excludeDoc?: Int32Array;
}

/**
 * Running top-k of every query over the blocks fed to `add()`. Each query keeps a binary min-heap of
 * its k best (doc, score) pairs under the ranking order, so the root is the one to evict.
 */
export class ExactTopK {
  private readonly heapDoc: Int32Array; // [nq, k]
  private readonly heapScore: Float64Array; // [nq, k]
  private readonly size: Int32Array; // [nq]
  private readonly queryNorm: Float64Array;
  private readonly k: number;

  /**
   * @param queries row-major [nq, dim] query embeddings
   * @param idRank the position of each corpus doc id in code-point order (ties rank the larger id first)
   */
  constructor(
    private readonly queries: Float32Array,
    private readonly nq: number,
    private readonly dim: number,
    private readonly idRank: Int32Array,
    private readonly opts: TopKOptions,
  ) {
    if (!Number.isSafeInteger(opts.k) || opts.k < 1) throw new EvalError('bad_option', `k must be a positive integer, got ${opts.k}`);
    if (queries.length !== nq * dim) throw new EvalError('bad_embedding', `queries hold ${queries.length} values, expected ${nq}×${dim}`);
    this.k = opts.k;
    this.heapDoc = new Int32Array(nq * this.k);
    this.heapScore = new Float64Array(nq * this.k);
    this.size = new Int32Array(nq);
    this.queryNorm = rowNorms(queries, nq, dim);
  }

  /** Scores one block of passages against all queries. */
  add(block: PassageBlock): void {
    if (block.dim !== this.dim) throw new EvalError('bad_embedding', `passage dimension ${block.dim} differs from the query dimension ${this.dim}`);
    const { dim } = this;
    const norms = rowNorms(block.data, block.count, dim);
    const q = this.queries;
    const p = block.data;
    for (let q0 = 0; q0 < this.nq; q0 += QUERY_TILE) {
      const nt = Math.min(QUERY_TILE, this.nq - q0);
      const o0 = q0 * dim;
      const o1 = (q0 + Math.min(1, nt - 1)) * dim; // tiles shorter than 4 repeat their last row
      const o2 = (q0 + Math.min(2, nt - 1)) * dim;
      const o3 = (q0 + Math.min(3, nt - 1)) * dim;
      for (let j = 0; j < block.count; j++) {
        const pj = j * dim;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let i = 0; i < dim; i++) {
          const x = p[pj + i];
          s0 += q[o0 + i] * x;
          s1 += q[o1 + i] * x;
          s2 += q[o2 + i] * x;
          s3 += q[o3 + i] * x;
        }
        const doc = block.start + j;
        const qn = this.queryNorm;
        this.offer(q0, doc, cosine(s0, qn[q0], norms[j]));
        if (nt > 1) this.offer(q0 + 1, doc, cosine(s1, qn[q0 + 1], norms[j]));
        if (nt > 2) this.offer(q0 + 2, doc, cosine(s2, qn[q0 + 2], norms[j]));
        if (nt > 3) this.offer(q0 + 3, doc, cosine(s3, qn[q0 + 3], norms[j]));
      }
    }
  }

  /** Each query's hits, best first: corpus indices and scores. */
  results(): Array<Array<{ doc: number; score: number }>> {
    const out: Array<Array<{ doc: number; score: number }>> = [];
    for (let qi = 0; qi < this.nq; qi++) {
      const base = qi * this.k;
      const hits = [];
      for (let h = 0; h < this.size[qi]; h++) hits.push({ doc: this.heapDoc[base + h], score: this.heapScore[base + h] });
      hits.sort((a, b) => (this.better(a.doc, a.score, b.doc, b.score) ? -1 : 1));
      out.push(hits);
    }
    return out;
  }

  /** Ranking order: higher score, then larger doc id (trec_eval comp_sim_docno). */
  private better(docA: number, scoreA: number, docB: number, scoreB: number): boolean {
    return scoreA > scoreB || (scoreA === scoreB && this.idRank[docA] > this.idRank[docB]);
  }

  private offer(qi: number, doc: number, score: number): void {
    if (this.opts.excludeDoc && this.opts.excludeDoc[qi] === doc) return;
    const base = qi * this.k;
    const n = this.size[qi];
    if (n < this.k) {
      this.size[qi] = n + 1;
      this.siftUp(base, n, doc, score);
    } else if (this.better(doc, score, this.heapDoc[base], this.heapScore[base])) {
      this.siftDown(base, doc, score);
    }
  }

  // Min-heap under `better`: every parent is worse than its children.
  private siftUp(base: number, pos: number, doc: number, score: number): void {
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!this.better(this.heapDoc[base + parent], this.heapScore[base + parent], doc, score)) break;
      this.heapDoc[base + pos] = this.heapDoc[base + parent];
      this.heapScore[base + pos] = this.heapScore[base + parent];
      pos = parent;
    }
    this.heapDoc[base + pos] = doc;
    this.heapScore[base + pos] = score;
  }

  private siftDown(base: number, doc: number, score: number): void {
    const n = this.k;
    let pos = 0;
    for (;;) {
      const l = 2 * pos + 1;
      if (l >= n) break;
      const r = l + 1;
      let worst = l;
      if (r < n && this.better(this.heapDoc[base + l], this.heapScore[base + l], this.heapDoc[base + r], this.heapScore[base + r])) worst = r;
      if (!this.better(doc, score, this.heapDoc[base + worst], this.heapScore[base + worst])) break;
      this.heapDoc[base + pos] = this.heapDoc[base + worst];
      this.heapScore[base + pos] = this.heapScore[base + worst];
      pos = worst;
    }
    this.heapDoc[base + pos] = doc;
    this.heapScore[base + pos] = score;
  }
}

function rowNorms(data: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) s += data[i] * data[i];
    out[r] = Math.sqrt(s);
  }
  return out;
}

/** Cosine rounded to float32; a zero vector scores 0 (torch's normalize(eps) gives a zero vector too). */
function cosine(dot: number, na: number, nb: number): number {
  return na === 0 || nb === 0 ? 0 : Math.fround(dot / (na * nb));
}

/** For each corpus index, its rank among the corpus ids in code-point order (for O(1) tie-breaks). */
export function idRanks(ids: readonly string[]): Int32Array {
  const order = ids.map((_, i) => i).sort((a, b) => compareCodePoints(ids[a], ids[b]));
  const rank = new Int32Array(ids.length);
  order.forEach((doc, r) => (rank[doc] = r));
  return rank;
}

/** Convenience for small inputs: exact top-k of every query over one in-memory corpus, as Hits. */
export function exactSearch(
  queries: Float32Array[],
  passages: Float32Array[],
  docIds: readonly string[],
  k: number,
  excludeDoc?: Int32Array,
): Hit[][] {
  const dim = queries[0]?.length ?? passages[0]?.length ?? 0;
  const search = new ExactTopK(stackRows(queries, dim), queries.length, dim, idRanks(docIds), { k, excludeDoc });
  search.add({ start: 0, count: passages.length, dim, data: stackRows(passages, dim) });
  return search.results().map((hits) => hits.map((h) => ({ id: docIds[h.doc], score: h.score })));
}

export function stackRows(rows: readonly Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => {
    if (r.length !== dim) throw new EvalError('bad_embedding', `row ${i} has dimension ${r.length}, expected ${dim}`);
    out.set(r, i * dim);
  });
  return out;
}
