/**
 * `--ids FILE`: token ids given directly, so a forward pass can be checked without the
 * tokenizer. The format is reference.py's (test/parity/): a JSON object
 * `{"input_ids": [[...]], "attention_mask": [[...]], "token_type_ids": [[...]]}`, rows padded to
 * one length, attention_mask defaulting to ones and token_type_ids to zeros. Every problem
 * names the file, the field and the row/column.
 */
import * as fs from 'fs';
import type { BertConfig, PaddedBatch } from '../index';
import { InputDataError } from './errors';

export interface IdsBatch {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds: number[][];
}

const FIELDS = ['input_ids', 'attention_mask', 'token_type_ids'] as const;
type Field = (typeof FIELDS)[number];

export function readIdsFile(file: string): IdsBatch {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read --ids file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputDataError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return parseIds(raw, file);
}

/** Validate the structure (object, known fields, integer matrices of one shape). */
export function parseIds(raw: unknown, where: string): IdsBatch {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputDataError(`${where}: expected a JSON object with "input_ids"`);
  const obj = raw as Record<string, unknown>;
  const unknown = Object.keys(obj).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown.length) throw new InputDataError(`${where}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${FIELDS.join(', ')})`);
  if (obj.input_ids === undefined) throw new InputDataError(`${where}: field "input_ids" is missing`);
  const ids = matrix(obj.input_ids, 'input_ids', where);
  const B = ids.length, T = ids[0].length;
  const same = (field: Field, fill: number): number[][] => {
    if (obj[field] === undefined) return ids.map(() => new Array(T).fill(fill));
    const m = matrix(obj[field], field, where);
    if (m.length !== B) throw new InputDataError(`${where}: "${field}" has ${m.length} rows, "input_ids" has ${B}`);
    if (m[0].length !== T) throw new InputDataError(`${where}: "${field}"[0] has ${m[0].length} entries, "input_ids"[0] has ${T}`);
    return m;
  };
  return { inputIds: ids, attentionMask: same('attention_mask', 1), tokenTypeIds: same('token_type_ids', 0) };
}

function matrix(v: unknown, field: string, where: string): number[][] {
  if (!Array.isArray(v) || v.length === 0) throw new InputDataError(`${where}: "${field}" must be a non-empty list of rows`);
  let T = -1;
  v.forEach((row, b) => {
    if (!Array.isArray(row)) throw new InputDataError(`${where}: "${field}"[${b}] is not a list`);
    if (T === -1) {
      T = row.length;
      if (T === 0) throw new InputDataError(`${where}: "${field}"[0] is empty`);
    } else if (row.length !== T) {
      throw new InputDataError(`${where}: "${field}"[${b}] has ${row.length} entries, row 0 has ${T} (pad rows to one length)`);
    }
    row.forEach((x, t) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x)) throw new InputDataError(`${where}: "${field}"[${b}][${t}] = ${JSON.stringify(x)} is not an integer`);
    });
  });
  return v as number[][];
}

/** Ranges that depend on the model: ids in the vocabulary, mask 0/1 with a 1 in every row, types, length. */
export function checkIdsForModel(ids: IdsBatch, c: BertConfig, where: string): void {
  const range = (m: number[][], field: Field, hi: number) => m.forEach((row, b) => row.forEach((x, t) => {
    if (x < 0 || x >= hi) throw new InputDataError(`${where}: "${field}"[${b}][${t}] = ${x} is outside [0, ${hi})`);
  }));
  range(ids.inputIds, 'input_ids', c.vocabSize);
  range(ids.attentionMask, 'attention_mask', 2);
  range(ids.tokenTypeIds, 'token_type_ids', c.typeVocabSize);
  const T = ids.inputIds[0].length;
  if (T > c.maxPositionEmbeddings) throw new InputDataError(`${where}: rows of ${T} tokens exceed the model's ${c.maxPositionEmbeddings} positions`);
  ids.attentionMask.forEach((row, b) => {
    if (!row.includes(1)) throw new InputDataError(`${where}: "attention_mask"[${b}] is all zeros (nothing to attend to)`);
  });
}

export function toPaddedBatch(ids: IdsBatch): PaddedBatch {
  return { inputIds: ids.inputIds, attentionMask: ids.attentionMask, tokenTypeIds: ids.tokenTypeIds };
}

/** Rows of a flat [B*T] array. */
export function rowsOf(a: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
}
