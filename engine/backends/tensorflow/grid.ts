/**
 * Where packed rows sit when attention runs on a padded [R, T] grid (T = the longest row): the
 * eager attention (./ops.ts) and the encoder graph (./graph/encoder.ts) both use it. Padding cells
 * take a copy of the row's first token: as a key it is masked (its weight is exactly 0), as a
 * query its output is dropped, so its value never reaches z.
 */
import { MASK_VALUE } from '../../numerics';
import type { Rows } from '../../rows';

export interface AttentionGrid {
  T: number;
  /** [R·T] packed index of each cell; undefined when every row has T tokens (a reshape suffices). */
  cells?: Int32Array;
  /** [N] cell of each packed token; undefined likewise. */
  tokens?: Int32Array;
  /** [R·T] additive mask of each key: 0 or the float32 minimum (padding and masked keys). */
  keyMask: Float32Array;
  /** Every row is T tokens with every key real: no gather, no mask. */
  dense: boolean;
}

/** The grid of `rows`; `keyMask` has one entry per packed token, 1 = a key that may be attended to. */
export function attentionGrid(rows: Rows, keyMask: Int32Array): AttentionGrid {
  const T = Math.max(...rows.lengths), R = rows.count;
  const uniform = rows.uniformLength === T; // cells are the packed tokens in order: no index arrays
  const cells = uniform ? undefined : new Int32Array(R * T), tokens = uniform ? undefined : new Int32Array(rows.total);
  const mask = new Float32Array(R * T).fill(MASK_VALUE);
  let allReal = true;
  rows.starts.forEach((start, r) => {
    cells?.fill(start, r * T, (r + 1) * T);
    for (let t = 0; t < rows.lengths[r]; t++) {
      if (cells && tokens) {
        cells[r * T + t] = start + t;
        tokens[start + t] = r * T + t;
      }
      mask[r * T + t] = keyMask[start + t] === 1 ? 0 : MASK_VALUE;
      allReal &&= keyMask[start + t] === 1;
    }
  });
  return { T, keyMask: mask, dense: allReal && uniform, cells, tokens };
}
