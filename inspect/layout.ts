/**
 * Activations of packed rows (engine/rows.ts packSequences: each text its own length, nothing
 * computed for padding) in the layout of the right-padded batch of the same rows, [B, T, …] with T
 * the longest row — the layout e5 inspect dumps and Hugging Face's outputs have. Padding positions
 * hold 0 (Hugging Face computes values there that no real token sees). In attention's
 * [B, H, T, T] grid a padding query's row is 0, and a padding key's column holds what the row's
 * mask gives it: weight 0 in the pattern, the mask value in the scores.
 */
import { hookLayout, HookName, OUTPUT_HOOKS } from '../engine/hooks';
import type { Rows } from '../engine/rows';

export interface PaddedTensor {
  shape: number[];
  /** Computed when asked (a dump writes one tensor at a time). */
  data(): Float32Array;
}

/** `t` (a cached hook point, or the [1, N, D] last hidden state) of packed `rows` as [B, T, …]. */
export function paddedLayout(name: HookName | 'last_hidden_state', t: { shape: number[]; dataSync(): unknown }, rows: Rows): PaddedTensor {
  const packed = () => t.dataSync() as Float32Array;
  // Rows of one length are already [B, T, …]; hook_pooled and hook_embedding are one vector per row.
  if (rows.uniformLength !== undefined || (OUTPUT_HOOKS as readonly string[]).includes(name)) return { shape: t.shape, data: packed };
  const B = rows.count, T = Math.max(...rows.lengths);
  if (name !== 'last_hidden_state' && hookLayout(name) === 'grid') {
    const H = t.shape[1];
    return {
      shape: t.shape,
      data: () => {
        const out = Float32Array.from(packed()); // [B,H,T,T]
        rows.lengths.forEach((len, r) => {
          for (let h = 0; h < H; h++) out.fill(0, ((r * H + h) * T + len) * T, (r * H + h + 1) * T * T);
        });
        return out;
      },
    };
  }
  const rest = t.shape.slice(2); // [1, N, ...rest]
  const C = rest.reduce((a, b) => a * b, 1);
  return {
    shape: [B, T, ...rest],
    data: () => {
      const src = packed(), out = new Float32Array(B * T * C);
      rows.starts.forEach((start, r) => out.set(src.subarray(start * C, (start + rows.lengths[r]) * C), r * T * C));
      return out;
    },
  };
}
