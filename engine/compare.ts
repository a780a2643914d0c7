/**
 * Tensor comparison for parity: |a - b| <= atol + rtol·|b| elementwise (b is the reference),
 * with the numbers a person needs when it fails: max and mean abs diff, where the max is,
 * cosine similarity, and the first mismatching pairs.
 */
import { unravel } from '../util/ndindex';

export interface CompareOptions {
  atol: number;
  rtol?: number;
  /** How many mismatching pairs to report (default 5). */
  maxReported?: number;
}

export interface Mismatch {
  index: number[];
  actual: number;
  expected: number;
}

export interface CompareResult {
  pass: boolean;
  shape: number[];
  maxAbs: number;
  meanAbs: number;
  /** Index of the max abs diff. */
  where: number[];
  cosine: number;
  mismatches: number;
  first: Mismatch[];
}

export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, shape: readonly number[], opts: CompareOptions): CompareResult {
  if (actual.length !== expected.length) {
    throw new Error(`cannot compare ${actual.length} values with ${expected.length} (shape [${shape}])`);
  }
  const rtol = opts.rtol ?? 0;
  let maxAbs = -1, maxAt = 0, sumAbs = 0, dot = 0, na = 0, nb = 0, mismatches = 0;
  const first: Mismatch[] = [];
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], b = expected[i];
    const d = Math.abs(a - b);
    const bad = !(d <= opts.atol + rtol * Math.abs(b)); // NaN counts as a mismatch
    if (bad) {
      mismatches++;
      if (first.length < (opts.maxReported ?? 5)) first.push({ index: unravel(i, shape), actual: a, expected: b });
    }
    if (d > maxAbs || Number.isNaN(d)) {
      maxAbs = Number.isNaN(d) ? Infinity : d;
      maxAt = i;
    }
    sumAbs += d;
    dot += a * b;
    na += a * a;
    nb += b * b;
  }
  return {
    pass: mismatches === 0,
    shape: [...shape],
    maxAbs: Math.max(maxAbs, 0),
    meanAbs: actual.length ? sumAbs / actual.length : 0,
    where: unravel(maxAt, shape),
    cosine: na && nb ? dot / Math.sqrt(na * nb) : na === nb ? 1 : 0,
    mismatches,
    first,
  };
}

export function describeMismatch(name: string, r: CompareResult, opts: CompareOptions): string {
  const pairs = r.first.map((m) => `[${m.index}] ours ${m.actual} ref ${m.expected}`).join('; ');
  return `${name} [${r.shape}]: ${r.mismatches} values beyond atol ${opts.atol} rtol ${opts.rtol ?? 0}; ` +
    `max abs diff ${r.maxAbs.toExponential(3)} at [${r.where}], mean ${r.meanAbs.toExponential(3)}, cosine ${r.cosine.toFixed(8)}; first: ${pairs}`;
}
