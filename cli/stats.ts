/**
 * The few numbers the CLI reports about tensors the library computed: per-tensor summaries
 * (inspect), accumulated in float64. (Similarity scores are the library's similarityMatrix;
 * parity's differences come from its compareArrays, the one tolerance comparison.)
 */

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
