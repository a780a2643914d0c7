/**
 * The token layout of one forward pass.
 *
 * Every activation inside the encoder is a 2-D [N, *] matrix holding the tokens of all rows
 * back to back (N = Σ T_r). A padded batch (HF semantics: B rows of T tokens, padding
 * included, positions 0..T-1 in every row) is the special case where every row has length T.
 * Unpadded packing — each text its own length — is the same layout with no padding at all,
 * so dense layers never spend work on pad tokens; only attention looks at rows one by one.
 */
export interface Rows {
  /** Number of rows R. */
  count: number;
  /** First token of each row in the packed [N] layout. */
  starts: number[];
  /** Tokens in each row, T_r. */
  lengths: number[];
  /** N = Σ T_r. */
  total: number;
  /** T when every row has the same length (a padded batch): public [B,T,…] views exist then. */
  uniformLength?: number;
}

/** Packed inputs for one forward pass; every array has N entries. */
export interface PackedInput {
  rows: Rows;
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  positionIds: Int32Array;
  /** 1 = a real token a query may attend to, 0 = padding. */
  attentionMask: Int32Array;
}

/** A padded batch as HF receives it: row-major [B, T] arrays. */
export interface PaddedBatch {
  inputIds: Int32Array | number[][];
  attentionMask?: Int32Array | number[][];
  tokenTypeIds?: Int32Array | number[][];
  batchSize?: number;
  seqLen?: number;
}

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

function flatten(a: Int32Array | number[][] | undefined, B: number, T: number, name: string, fill: number): Int32Array {
  if (a === undefined) return new Int32Array(B * T).fill(fill);
  if (a instanceof Int32Array) {
    if (a.length !== B * T) throw new InputError(`${name} has ${a.length} entries, expected ${B}×${T}`);
    return a;
  }
  const out = new Int32Array(B * T);
  a.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== T) {
      throw new InputError(`${name}[${r}] has ${Array.isArray(row) ? row.length : 'no'} entries, expected ${T} (rows must be padded to one length)`);
    }
    row.forEach((v, t) => {
      if (!Number.isInteger(v)) throw new InputError(`${name}[${r}][${t}] = ${JSON.stringify(v)} is not an integer`);
      out[r * T + t] = v;
    });
  });
  return out;
}

/** HF semantics for a padded batch: rows of T tokens, positions 0..T-1 even with left padding. */
export function packPadded(b: PaddedBatch): PackedInput {
  const nested = Array.isArray(b.inputIds);
  const B = b.batchSize ?? (nested ? (b.inputIds as number[][]).length : 1);
  const T = b.seqLen ?? (nested ? ((b.inputIds as number[][])[0]?.length ?? 0) : b.inputIds.length / B);
  if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1) {
    throw new InputError(`a batch needs at least one row of at least one token (got ${B}×${T})`);
  }
  const inputIds = flatten(b.inputIds, B, T, 'input_ids', 0);
  const attentionMask = flatten(b.attentionMask, B, T, 'attention_mask', 1);
  const tokenTypeIds = flatten(b.tokenTypeIds, B, T, 'token_type_ids', 0);
  const positionIds = new Int32Array(B * T);
  for (let r = 0; r < B; r++) {
    let real = 0;
    for (let t = 0; t < T; t++) {
      positionIds[r * T + t] = t;
      const m = attentionMask[r * T + t];
      if (m !== 0 && m !== 1) throw new InputError(`attention_mask[${r}][${t}] = ${m}; must be 0 or 1`);
      real += m;
    }
    if (real === 0) throw new InputError(`row ${r} has an all-zero attention_mask: nothing to attend to (HF would produce NaN)`);
  }
  const starts = Array.from({ length: B }, (_, r) => r * T);
  return {
    rows: { count: B, starts, lengths: new Array(B).fill(T), total: B * T, uniformLength: T },
    inputIds, tokenTypeIds, positionIds, attentionMask,
  };
}

/** Unpadded packing: each sequence keeps its own length; positions restart at 0 per row. */
export function packSequences(seqs: Array<{ inputIds: Int32Array; tokenTypeIds?: Int32Array }>): PackedInput {
  if (seqs.length === 0) throw new InputError('no sequences to pack');
  const lengths = seqs.map((s, i) => {
    if (s.inputIds.length === 0) throw new InputError(`sequence ${i} is empty`);
    return s.inputIds.length;
  });
  const total = lengths.reduce((a, b) => a + b, 0);
  const inputIds = new Int32Array(total), tokenTypeIds = new Int32Array(total), positionIds = new Int32Array(total);
  const starts: number[] = [];
  let at = 0;
  seqs.forEach((s, i) => {
    starts.push(at);
    inputIds.set(s.inputIds, at);
    if (s.tokenTypeIds) tokenTypeIds.set(s.tokenTypeIds, at);
    for (let t = 0; t < lengths[i]; t++) positionIds[at + t] = t;
    at += lengths[i];
  });
  const uniform = lengths.every((l) => l === lengths[0]) ? lengths[0] : undefined;
  return {
    rows: { count: seqs.length, starts, lengths, total, uniformLength: uniform },
    inputIds, tokenTypeIds, positionIds, attentionMask: new Int32Array(total).fill(1),
  };
}
