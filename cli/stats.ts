/**
 * The few numbers the CLI reports about tensors the library computed: a similarity matrix from
 * embeddings, per-tensor summaries (inspect) and differences (parity). All accumulate in float64.
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

export interface Comparison {
  maxAbs: number;
  meanAbs: number;
  cosine: number;
  /** Flat index of the largest |a - b| (a NaN on one side only counts as the largest). */
  argmax: number;
  /** Elements with |a - b| > atol + rtol·|b| (NaN on either side fails unless both are NaN). */
  failures: number;
  /** Up to `keep` failing flat indices, in order. */
  firstFailures: number[];
}

/** Compare `ours` with the reference `ref` element-wise: |a - b| <= atol + rtol·|b| passes. */
export function compare(ours: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number, keep = 3): Comparison {
  if (ours.length !== ref.length) throw new RangeError(`comparing ${ours.length} values with ${ref.length}`);
  let maxAbs = -1, argmax = 0, sumAbs = 0, failures = 0;
  const firstFailures: number[] = [];
  for (let i = 0; i < ours.length; i++) {
    const a = ours[i], b = ref[i];
    let d = Math.abs(a - b);
    if (Number.isNaN(a) && Number.isNaN(b)) d = 0;
    else if (Number.isNaN(d)) d = a === b ? 0 : Infinity; // NaN vs number, or inf - inf of one sign
    if (d > maxAbs) {
      maxAbs = d;
      argmax = i;
    }
    sumAbs += d;
    if (!(d <= atol + rtol * Math.abs(b))) {
      failures++;
      if (firstFailures.length < keep) firstFailures.push(i);
    }
  }
  return {
    maxAbs: Math.max(maxAbs, 0), meanAbs: ours.length ? sumAbs / ours.length : 0,
    cosine: cosine(ours, ref), argmax, failures, firstFailures,
  };
}

/** Flat index → multi-index in a C-order array of `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? Math.floor(flat / shape[d]) : 0;
  }
  return out;
}
