/**
 * Scores between embeddings: scale × cosine for every (query, passage) pair — the model card's
 * `(embeddings[:2] @ embeddings[2:].T) * 100` on normalized vectors (accumulated in float64; the
 * cosine divides by the norms, so unnormalized vectors score the same).
 */

/** cos(a, b) = a·b / (|a| |b|); 0 when either is the zero vector. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine of vectors of ${a.length} and ${b.length} values`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** scores[i][j] = scale × cos(queries[i], passages[j]) (scale 1: plain cosines; the model card uses 100). */
export function similarityMatrix(queries: ArrayLike<number>[], passages: ArrayLike<number>[], scale = 1): number[][] {
  if (!Number.isFinite(scale)) throw new RangeError(`similarityMatrix: scale must be a finite number, got ${scale}`);
  return queries.map((q) => passages.map((p) => scale * cosineSimilarity(q, p)));
}
