/**
 * Export one row's attention in the shape bertviz's `head_view` / `model_view` take (jessevig/bertviz,
 * `bertviz/util.py` `format_attention`): `attention` is a list over layers of `[1, H, T, T]` (batch of
 * one, post-softmax, query i → key j), `tokens` the T token strings. bertviz calls `.shape`, `.squeeze(0)`
 * and `torch.stack` on each layer, so convert the nested lists to tensors when loading:
 *
 *   import json, torch
 *   from bertviz import head_view, model_view
 *   d = json.load(open("attn.json"))
 *   head_view([torch.tensor(a) for a in d["attention"]], d["tokens"])
 *
 * Each value is written as the shortest decimal that reads back as the same float32 (`Math.fround(v)`
 * equals the engine's value, and `torch.tensor` of it is bit-identical); this keeps a 24×16×64² dump
 * at ~18 MB of JSON instead of ~32 MB for full float64 expansions.
 */
import { AttentionViewError, checkAttentionViewData, type AttentionViewData } from './html';

export interface BertvizJson {
  attention: number[][][][][]; // [L][1][H][T][T]
  tokens: string[];
}

export function toBertvizJson(d: AttentionViewData, row = 0): BertvizJson {
  checkAttentionViewData(d);
  if (!Number.isSafeInteger(row) || row < 0 || row >= d.tokens.length) {
    throw new AttentionViewError('bad_row', 'row', `${row} is not a row index in [0, ${d.tokens.length})`);
  }
  const T = d.tokens[row].length;
  const attention = d.attention.map((layer) => [unflattenHeads(layer[row], d.numHeads, T)]);
  return { attention, tokens: [...d.tokens[row]] };
}

/** Float32Array [H,T,T] row-major → nested number[H][T][T]. */
function unflattenHeads(a: Float32Array, H: number, T: number): number[][][] {
  const heads: number[][][] = [];
  for (let h = 0; h < H; h++) {
    const rows: number[][] = [];
    for (let i = 0; i < T; i++) {
      const base = (h * T + i) * T;
      const row = new Array<number>(T);
      for (let j = 0; j < T; j++) row[j] = shortestFloat32(a[base + j]);
      rows.push(row);
    }
    heads.push(rows);
  }
  return heads;
}

/**
 * The number with the fewest significant digits that rounds to the same float32 as `x`.
 * 9 digits always round-trip a float32; fewer than 6 never beats 6 (the same decimal, zero-padded).
 */
export function shortestFloat32(x: number): number {
  for (let p = 6; p < 9; p++) {
    const v = Number(x.toPrecision(p));
    if (Math.fround(v) === x) return v;
  }
  return Number(x.toPrecision(9));
}
