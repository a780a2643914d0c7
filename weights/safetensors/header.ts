/**
 * The safetensors header: its length prefix, and the JSON that names each tensor's dtype, shape
 * and byte range, validated so that the ranges tile the data buffer exactly.
 */
import { describeJson, JsonObject, JsonSyntaxError, JsonValue, jsonSafeInteger, parseJsonStrict } from '../strict-json';
import { SafetensorsError, SafetensorsErrorCode } from '../errors';
import { Dtype, DTYPE_SIZE, isDtype, RECOGNISED_UNSUPPORTED } from './dtypes';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  dataOffsets: [number, number]; // relative to the data buffer, end exclusive
}

export const MAX_HEADER_BYTES = 100_000_000; // same limit as the reference Rust implementation

export interface ParsedHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>; // in data-offset order
}

/**
 * Header length from the 8-byte prefix, checked against the limit and the file size.
 * Returns the header byte length; the data buffer is the rest of the file.
 */
export function headerLengthFromPrefix(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError('too_short', file, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError('header_too_large', file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      'header_beyond_file', file, `header length ${n} runs past the end of the file (${fileSize - 8} bytes after the prefix)`);
  }
  return Number(n);
}

/** Decodes, parses and validates the JSON header against a data buffer of `dataLength` bytes. */
export function parseHeader(file: string, headerBytes: Uint8Array, dataLength: number): ParsedHeader {
  const root = parseHeaderJson(file, headerBytes);
  let metadata: Record<string, string> = Object.create(null);
  const entries: TensorInfo[] = [];
  for (const [key, value] of root) {
    if (key === '__metadata__') metadata = parseMetadata(file, value);
    else entries.push(parseTensorEntry(file, key, value, dataLength));
  }
  const ordered = checkTiling(file, entries, dataLength);
  return { metadata, tensors: new Map(ordered.map((t) => [t.name, t])) };
}

function parseHeaderJson(file: string, headerBytes: Uint8Array): JsonObject {
  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text, where the JSON parser rejects it like serde_json does
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (e) {
    throw new SafetensorsError('header_not_utf8', file, 'header is not valid UTF-8', undefined, { cause: e });
  }
  let root: JsonValue;
  try {
    root = parseJsonStrict(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const code = e.kind === 'duplicate_key' ? 'duplicate_key' : 'header_not_json';
    const tensor = e.path.length > 0 && e.path[0] !== '__metadata__' ? e.path[0] : undefined;
    const detail = e.kind === 'duplicate_key' ? `header has a ${e.message}` : `header is not valid JSON: ${e.message}`;
    throw new SafetensorsError(code, file, detail, tensor, { cause: e });
  }
  if (!(root instanceof Map)) {
    throw new SafetensorsError('header_not_object', file, `header is JSON ${describeJson(root)}, expected an object`);
  }
  return root;
}

function parseMetadata(file: string, value: JsonValue): Record<string, string> {
  if (!(value instanceof Map)) {
    throw new SafetensorsError('bad_metadata', file, `__metadata__ is ${describeJson(value)}, expected an object of strings`);
  }
  const out: Record<string, string> = Object.create(null); // so a "__proto__" key stays a key
  for (const [k, v] of value) {
    if (typeof v !== 'string') {
      throw new SafetensorsError('bad_metadata', file, `__metadata__[${JSON.stringify(k)}] is ${describeJson(v)}, expected a string`);
    }
    out[k] = v;
  }
  return out;
}

const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'];

function parseTensorEntry(file: string, name: string, value: JsonValue, dataLength: number): TensorInfo {
  const fail = (code: SafetensorsErrorCode, detail: string): never => {
    throw new SafetensorsError(code, file, detail, name);
  };
  if (!(value instanceof Map)) return fail('bad_entry', `entry is ${describeJson(value)}, expected {dtype, shape, data_offsets}`);
  for (const field of ENTRY_FIELDS) if (!value.has(field)) fail('bad_entry', `entry has no "${field}"`);
  for (const key of value.keys()) {
    if (!ENTRY_FIELDS.includes(key)) fail('bad_entry', `entry has an unknown field ${JSON.stringify(key)}`);
  }

  const dtypeValue = value.get('dtype')!;
  if (typeof dtypeValue !== 'string') return fail('bad_entry', `dtype is ${describeJson(dtypeValue)}, expected a string`);
  if (!isDtype(dtypeValue)) {
    const known = Object.keys(DTYPE_SIZE).join(' ');
    const why = RECOGNISED_UNSUPPORTED.has(dtypeValue) ? 'is a safetensors dtype this reader does not support' : 'is not a safetensors dtype';
    return fail('unknown_dtype', `dtype ${JSON.stringify(dtypeValue)} ${why} (supported: ${known})`);
  }
  const dtype = dtypeValue;

  const shapeValue = value.get('shape')!;
  if (!Array.isArray(shapeValue)) return fail('bad_shape', `shape is ${describeJson(shapeValue)}, expected an array of integers`);
  const shape = shapeValue.map((d, i) => {
    const n = jsonSafeInteger(d);
    return n !== undefined ? n : fail('bad_shape', `shape[${i}] is ${describeJson(d)}, expected a non-negative integer < 2^53`);
  });

  const offsetsValue = value.get('data_offsets')!;
  if (!Array.isArray(offsetsValue) || offsetsValue.length !== 2) {
    return fail('bad_offsets', 'data_offsets must be an array [begin, end]');
  }
  const [begin, end] = offsetsValue.map((d, i) => {
    const n = jsonSafeInteger(d);
    return n !== undefined ? n : fail('bad_offsets', `data_offsets[${i}] is ${describeJson(d)}, expected a non-negative integer < 2^53`);
  });
  if (end < begin) fail('bad_offsets', `data_offsets [${begin}, ${end}] end before they begin`);

  // BigInt: a shape like [2^40, 2^40] must not wrap around into a plausible byte count.
  const expected = shape.reduce((acc, d) => acc * BigInt(d), 1n) * BigInt(DTYPE_SIZE[dtype]);
  if (expected !== BigInt(end - begin)) {
    fail('size_mismatch', `${dtype} [${shape.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  if (end > dataLength) {
    fail('offsets_out_of_bounds', `data_offsets [${begin}, ${end}] run past the end of the ${dataLength}-byte data buffer`);
  }
  return { name, dtype, shape, dataOffsets: [begin, end] };
}

/** Sorts by offset and checks the tensors tile [0, dataLength) with no gap, overlap or leftover. */
function checkTiling(file: string, entries: TensorInfo[], dataLength: number): TensorInfo[] {
  const sorted = [...entries].sort(
    (a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || compareCodePoints(a.name, b.name));
  let covered = 0;
  let previous: TensorInfo | undefined;
  for (const t of sorted) {
    const [begin, end] = t.dataOffsets;
    if (begin < covered) {
      throw new SafetensorsError('offsets_overlap', file,
        `data_offsets [${begin}, ${end}] overlap tensor ${JSON.stringify(previous!.name)} which ends at ${covered}`, t.name);
    }
    if (begin > covered) {
      const after = previous ? `after tensor ${JSON.stringify(previous.name)} ` : '';
      throw new SafetensorsError('offsets_hole', file, `bytes [${covered}, ${begin}) ${after}belong to no tensor`, t.name);
    }
    covered = end;
    if (end > begin || !previous) previous = t;
  }
  if (covered !== dataLength) {
    const last = previous ? ` (last tensor ${JSON.stringify(previous.name)} ends at ${covered})` : ' (no tensors)';
    throw new SafetensorsError('trailing_bytes', file, `data buffer has ${dataLength - covered} bytes after the last tensor${last}`);
  }
  return sorted;
}

/** Orders strings by Unicode code point, i.e. like Rust/Python compare UTF-8, not by UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800-DFFF) encode code points above every BMP unit, including E000-FFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
