/**
 * The few numbers the CLI reports about tensors the library computed: a similarity matrix from
 * embeddings and per-tensor summaries (inspect). All accumulate in float64. (Parity's differences
 * come from the library's compareArrays, the one tolerance comparison.)
 */

/** cos(a, b) = a·b / (|a| |b|); 0 when either is the zero vector. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine of vectors of ${a.length} and ${b.length} values`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** scale × cosine for every (query, passage): the model card's `(q @ p.T) * 100` on normalized embeddings. */
export function scoreMatrix(queries: ArrayLike<number>[], passages: ArrayLike<number>[], scale: number): number[][] {
  return queries.map((q) => passages.map((p) => scale * cosine(q, p)));
}

export interface Summary {
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** Mean, population standard deviation, min and max. */
export function summarize(x: ArrayLike<number>): Summary {
  let sum = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
  }
  const mean = x.length ? sum / x.length : NaN;
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += (x[i] - mean) ** 2;
  return { mean, std: x.length ? Math.sqrt(ss / x.length) : NaN, min, max };
}
