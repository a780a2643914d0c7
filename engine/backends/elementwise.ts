/**
 * The arithmetic of the one-pass kernels (engine/backends/wasm/kernels.ts) as plain functions over float32
 * arrays, self-contained on purpose: engine/backends/wasm/threads.ts runs these same functions, from their
 * source, in worker threads on the shared wasm heap.
 */

/** erf(u) ≈ u·P(u²)/Q(u²) on |u| <= limit (engine/backends/erf_fit.py), ±1 beyond; Q's constant term is 1. engine/backends/wasm/simd.ts evaluates the same. */
export const ERF_FIT = {
  limit: 3.92,
  p: [1.1283791806893193, 0.1846680217769746, 0.05428311947524898, 0.0038322136408378174, 0.00038074696976724215, 4.728640474776363e-06, -1.3389813285913377e-08],
  q: [0.49699130401073477, 0.11377000611254565, 0.015431918190323834, 0.001305500229140025, 6.352148589890139e-05],
} as const;
const ERF_LIMIT = ERF_FIT.limit;
const [P0, P1, P2, P3, P4, P5, P6] = ERF_FIT.p;
const [Q1, Q2, Q3, Q4, Q5] = ERF_FIT.q;

/** x·Φ(x) = 0.5·x·(1 + erf(x/√2)) elementwise, in float64, rounded once into `out`. */
export function geluErfInto(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i], u = v * Math.SQRT1_2;
    let erf: number;
    if (u > ERF_LIMIT) erf = 1;
    else if (u < -ERF_LIMIT) erf = -1;
    else {
      const z = u * u; // NaN falls through to here and stays NaN
      erf = (u * (P0 + z * (P1 + z * (P2 + z * (P3 + z * (P4 + z * (P5 + z * P6))))))) / (1 + z * (Q1 + z * (Q2 + z * (Q3 + z * (Q4 + z * Q5)))));
    }
    out[i] = 0.5 * v * (1 + erf);
  }
}

/**
 * (x - mean) / sqrt(var + eps) * gamma + beta for each row of a row-major [rows, D] matrix, in
 * float64, rounded once. Sums run in four interleaved partial sums, added as (s0 + s1) + (s2 + s3),
 * then the tail: engine/backends/wasm/simd.ts adds the same way two float64 lanes at a time (the same bits),
 * and four independent chains are not bound by the latency of one.
 */
export function layerNormInto(x: Float32Array, gamma: Float32Array, beta: Float32Array, eps: number, D: number, out: Float32Array): void {
  for (let start = 0; start < x.length; start += D) {
    const end = start + D;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = start;
    for (; i + 4 <= end; i += 4) {
      s0 += x[i];
      s1 += x[i + 1];
      s2 += x[i + 2];
      s3 += x[i + 3];
    }
    let sum = (s0 + s1) + (s2 + s3);
    for (; i < end; i++) sum += x[i];
    const mean = sum / D;
    s0 = s1 = s2 = s3 = 0;
    for (i = start; i + 4 <= end; i += 4) {
      const d0 = x[i] - mean, d1 = x[i + 1] - mean, d2 = x[i + 2] - mean, d3 = x[i + 3] - mean;
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
    }
    let sq = (s0 + s1) + (s2 + s3);
    for (; i < end; i++) {
      const d = x[i] - mean;
      sq += d * d;
    }
    const inv = 1 / Math.sqrt(sq / D + eps);
    for (let k = start, j = 0; j < D; k++, j++) out[k] = (x[k] - mean) * inv * gamma[j] + beta[j];
  }
}

/**
 * This module's functions as JavaScript source with the constants they read, for a worker
 * thread to evaluate (engine/backends/wasm/threads.ts). Non-exported constants keep their names when
 * TypeScript compiles the functions, so the source refers to exactly these declarations.
 */
export function elementwiseSource(): string {
  return [
    `const ERF_LIMIT = ${ERF_LIMIT};`,
    `const [P0, P1, P2, P3, P4, P5, P6] = ${JSON.stringify([P0, P1, P2, P3, P4, P5, P6])};`,
    `const [Q1, Q2, Q3, Q4, Q5] = ${JSON.stringify([Q1, Q2, Q3, Q4, Q5])};`,
    geluErfInto.toString(),
    layerNormInto.toString(),
  ].join('\n');
}
