/** Attention computed by hand in float64: the independent expectation of the attention tests. */
import { MASK_VALUE } from '../../engine/numerics';

/** softmax(q_h·k_hᵀ/√Dh + mask)·v_h for every row and head, in float64, as [N, D]. */
export function attentionByHand(q: Float32Array, k: Float32Array, v: Float32Array, D: number, H: number, starts: number[], lengths: number[], keyMask: number[]): Float64Array {
  const Dh = D / H, z = new Float64Array(q.length), scale = Math.fround(Math.sqrt(Dh));
  starts.forEach((start, r) => {
    const T = lengths[r];
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const s = Array.from({ length: T }, (_, j) => {
          let a = 0;
          for (let d = 0; d < Dh; d++) a += q[(start + t) * D + h * Dh + d] * k[(start + j) * D + h * Dh + d];
          return a / scale + (keyMask[start + j] === 1 ? 0 : MASK_VALUE);
        });
        const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), sum = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < Dh; d++) {
          z[(start + t) * D + h * Dh + d] = e.reduce((acc, p, j) => acc + (p / sum) * v[(start + j) * D + h * Dh + d], 0);
        }
      }
    }
  });
  return z;
}
