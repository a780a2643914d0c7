// safetensors, read and written by hand (format: https://github.com/huggingface/safetensors#format).
//
//   [u64 LE: N] [N bytes: UTF-8 JSON header, may end in spaces] [data buffer]
//   header = { "__metadata__"?: {string: string},
//              "<tensor>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ... }
//   offsets are relative to the start of the data buffer; the tensors tile it exactly.
//
// Sections: dtypes · strict JSON (duplicate keys) · header validation · SafetensorsFile (positioned reads)
// · F16/BF16 conversions · writer. Every failure is a SafetensorsError naming the file and the tensor.
//
// F8_E4M3 / F8_E5M2 / U16 / U32 / U64 are valid safetensors dtypes that BERT checkpoints never use: we
// reject them with 'unknown_dtype' (the message says so) rather than half-supporting them.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { randomBytes } from 'node:crypto';
import { SafetensorsError, SafetensorsErrorCode } from './errors';

export { SafetensorsError } from './errors';
export type { SafetensorsErrorCode } from './errors';

// ---------------------------------------------------------------------------------------------- dtypes

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

// Position in the reference implementation's `Dtype` enum (increasing alignment). The writer orders
// tensors by this rank descending, then by name, exactly like `safetensors.torch.save_file`, so every
// tensor starts at a multiple of its element size.
const DTYPE_RANK: Readonly<Record<Dtype, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13,
};

const RECOGNISED_UNSUPPORTED = new Set(['F8_E4M3', 'F8_E5M2', 'U16', 'U32', 'U64']);

export function isDtype(s: string): s is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

export type TensorData =
  | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Uint16Array;

/** The typed array that holds one element per slot (F16/BF16 as raw bits, BOOL as 0/1 bytes). */
function allocate(dtype: Dtype, n: number): TensorData {
  switch (dtype) {
    case 'F64': return new Float64Array(n);
    case 'F32': return new Float32Array(n);
    case 'F16': case 'BF16': return new Uint16Array(n);
    case 'I64': return new BigInt64Array(n);
    case 'I32': return new Int32Array(n);
    case 'I16': return new Int16Array(n);
    case 'I8': return new Int8Array(n);
    case 'U8': case 'BOOL': return new Uint8Array(n);
  }
}

function bytesOf(a: TensorData): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  dataOffsets: [number, number]; // relative to the data buffer, end exclusive
}

// ------------------------------------------------------------------------------------------ strict JSON
// JSON.parse keeps the last of two equal keys without a word; a header with two entries for one tensor
// would then load whichever came last. This small RFC 8259 parser rejects duplicates at every depth, keeps
// numbers as their source text (so 1e3, 1.0 and 2^64 cannot sneak into a shape), and objects as Maps
// (so "__proto__" is just a key).

export class JsonNumber {
  constructor(readonly text: string) {}
}
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export class JsonSyntaxError extends Error {
  constructor(
    readonly kind: 'syntax' | 'duplicate_key',
    message: string,
    readonly position: number, // UTF-16 offset in the text
    readonly path: readonly string[], // object keys from the root to where it happened (incl. a duplicate key)
  ) {
    super(message);
  }
}

const MAX_JSON_DEPTH = 64; // BERT headers are 3 deep; the limit keeps hostile input off the call stack

const CH = {
  quote: 0x22, backslash: 0x5c, slash: 0x2f, comma: 0x2c, colon: 0x3a, minus: 0x2d, plus: 0x2b, dot: 0x2e,
  lbrace: 0x7b, rbrace: 0x7d, lbracket: 0x5b, rbracket: 0x5d, zero: 0x30, nine: 0x39, e: 0x65, E: 0x45,
} as const;

class StrictJsonParser {
  private pos = 0;
  private readonly path: string[] = [];

  constructor(private readonly s: string) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos < this.s.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(what: string, kind: 'syntax' | 'duplicate_key' = 'syntax', at = this.pos, key?: string): never {
    const where = this.path.length ? ` in ${this.path.map((k) => JSON.stringify(k)).join(' > ')}` : '';
    const path = key === undefined ? [...this.path] : [...this.path, key];
    throw new JsonSyntaxError(kind, `${what}${where} at character ${at}`, at, path);
  }

  private describeHere(): string {
    if (this.pos >= this.s.length) return 'end of input';
    const c = this.s.codePointAt(this.pos)!;
    return c >= 0x20 && c < 0x7f ? `'${String.fromCodePoint(c)}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }

  private skipWhitespace(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private expect(code: number, what: string): void {
    if (this.s.charCodeAt(this.pos) !== code) this.fail(`expected ${what}, found ${this.describeHere()}`);
    this.pos++;
  }

  private parseValue(depth: number): JsonValue {
    const c = this.s.charCodeAt(this.pos); // NaN at end of input
    if (c === CH.lbrace || c === CH.lbracket) {
      if (depth >= MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
      return c === CH.lbrace ? this.parseObject(depth) : this.parseArray(depth);
    }
    if (c === CH.quote) return this.parseString();
    if (c === CH.minus || (c >= CH.zero && c <= CH.nine)) return this.parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(`expected a JSON value, found ${this.describeHere()}`);
  }

  private parseObject(depth: number): JsonObject {
    const out: JsonObject = new Map();
    this.pos++; // {
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === CH.rbrace) {
      this.pos++;
      return out;
    }
    for (;;) {
      const keyAt = this.pos;
      if (this.s.charCodeAt(this.pos) !== CH.quote) this.fail(`expected a string key, found ${this.describeHere()}`);
      const key = this.parseString();
      if (out.has(key)) this.fail(`duplicate key ${JSON.stringify(key)}`, 'duplicate_key', keyAt, key);
      this.skipWhitespace();
      this.expect(CH.colon, "':'");
      this.skipWhitespace();
      this.path.push(key);
      out.set(key, this.parseValue(depth + 1));
      this.path.pop();
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === CH.rbrace) return out;
      if (c !== CH.comma) {
        this.pos--;
        this.fail(`expected ',' or '}', found ${this.describeHere()}`);
      }
      this.skipWhitespace();
    }
  }

  private parseArray(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.pos++; // [
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === CH.rbracket) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue(depth + 1));
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === CH.rbracket) return out;
      if (c !== CH.comma) {
        this.pos--;
        this.fail(`expected ',' or ']', found ${this.describeHere()}`);
      }
      this.skipWhitespace();
    }
  }

  private parseString(): string {
    const s = this.s;
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let chunk = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string', 'syntax', start);
      const c = s.charCodeAt(this.pos);
      if (c === CH.quote) {
        out += s.slice(chunk, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('unescaped control character in string');
      if (c !== CH.backslash) {
        this.pos++;
        continue;
      }
      out += s.slice(chunk, this.pos);
      out += this.parseEscape();
      chunk = this.pos;
    }
  }

  private parseEscape(): string {
    const e = this.s[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"': return '"';
      case '\\': return '\\';
      case '/': return '/';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'u': {
        const hi = this.parseHex4();
        if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone low surrogate escape');
        if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
        // A high surrogate must be followed by an escaped low one: lone surrogates are not Unicode text
        // (serde_json, used by the reference implementation, refuses them too).
        if (this.s.charCodeAt(this.pos) !== CH.backslash || this.s[this.pos + 1] !== 'u') this.fail('lone high surrogate escape');
        this.pos += 2;
        const lo = this.parseHex4();
        if (lo < 0xdc00 || lo > 0xdfff) this.fail('high surrogate escape not followed by a low one');
        return String.fromCharCode(hi, lo);
      }
      default:
        this.pos -= 2;
        return this.fail('invalid escape sequence');
    }
  }

  private parseHex4(): number {
    const hex = this.s.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape');
    this.pos += 4;
    return parseInt(hex, 16);
  }

  private parseNumber(): JsonNumber {
    const s = this.s;
    const start = this.pos;
    const isDigit = (i: number) => s.charCodeAt(i) >= CH.zero && s.charCodeAt(i) <= CH.nine;
    const digits = () => {
      if (!isDigit(this.pos)) this.fail('malformed number');
      while (isDigit(this.pos)) this.pos++;
    };
    if (s.charCodeAt(this.pos) === CH.minus) this.pos++;
    if (s.charCodeAt(this.pos) === CH.zero) this.pos++;
    else digits();
    if (s.charCodeAt(this.pos) === CH.dot) {
      this.pos++;
      digits();
    }
    const c = s.charCodeAt(this.pos);
    if (c === CH.e || c === CH.E) {
      this.pos++;
      const sign = s.charCodeAt(this.pos);
      if (sign === CH.plus || sign === CH.minus) this.pos++;
      digits();
    }
    return new JsonNumber(s.slice(start, this.pos));
  }
}

/** Parses RFC 8259 JSON; throws JsonSyntaxError on bad syntax, duplicate keys or nesting > 64. */
export function parseJsonStrict(text: string): JsonValue {
  return new StrictJsonParser(text).parseDocument();
}

/** A JSON number written as a plain non-negative integer that fits a double exactly, else undefined. */
export function jsonSafeInteger(v: JsonValue): number | undefined {
  if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]{0,15})$/.test(v.text)) return undefined;
  const n = Number(v.text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** For messages: "an array", "the number 1.5", "the string \"x\"", "null". */
export function describeJson(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return `the number ${v.text.length > 40 ? v.text.slice(0, 40) + '…' : v.text}`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'an object';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}` : `${v}`;
}

// ------------------------------------------------------------------------------------ header validation

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

// --------------------------------------------------------------------------------------- SafetensorsFile

const IO_CHUNK = 1 << 30; // read(2)/write(2) move at most ~2 GiB per call; Node refuses larger requests

function assertLittleEndianHost(file: string): void {
  if (os.endianness() !== 'LE') {
    throw new SafetensorsError('big_endian_host', file, 'safetensors data is little-endian and this reader maps it with native typed arrays');
  }
}

function ioError(file: string, e: unknown, doing: string, tensor?: string): SafetensorsError {
  const errno = (e as NodeJS.ErrnoException)?.code;
  if (errno === 'ENOENT') return new SafetensorsError('not_found', file, 'no such file', tensor, { cause: e });
  if (errno === 'EISDIR') return new SafetensorsError('not_a_file', file, 'is a directory, expected a .safetensors file', tensor, { cause: e });
  const why = e instanceof Error ? e.message : String(e);
  return new SafetensorsError('io_error', file, `${doing} failed: ${why}`, tensor, { cause: e });
}

function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Fills `dest` from `position`, looping over short reads; a read of 0 bytes means the file shrank. */
function readExactly(fd: number, dest: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < dest.length) {
    let n: number;
    try {
      n = fs.readSync(fd, dest, done, Math.min(dest.length - done, IO_CHUNK), position + done);
    } catch (e) {
      throw ioError(file, e, `reading ${dest.length} bytes at ${position}`, tensor);
    }
    if (n === 0) {
      throw new SafetensorsError('truncated', file, `file ended at byte ${position + done} while reading ${dest.length} bytes at ${position} (changed since it was opened?)`, tensor);
    }
    done += n;
  }
}

export interface ReadF32Options {
  /** Load NaN/Inf weights instead of throwing 'non_finite'. */
  allowNonFinite?: boolean;
  /**
   * Write into this buffer (at least the tensor's element count) instead of a fresh array;
   * the result is a view of its first elements. Loaders pass a tensor's own memory in the wasm
   * heap, or one reused host buffer (weights that are transposed on the way): fresh memory
   * costs a page fault per 4 KiB, which on a VM like ours is ~4 ms per MB — slower than
   * reading the file.
   */
  into?: Float32Array;
}

function describeFileKind(st: fs.Stats): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device'
    : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a file';
}

export class SafetensorsFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly metadata: Readonly<Record<string, string>>,
    readonly tensors: ReadonlyMap<string, Readonly<TensorInfo>>, // in data-offset order
    readonly dataStart: number, // absolute file offset of the data buffer (8 + header length)
  ) {
    this.fd = fd;
  }

  /** Opens `path`, parses and validates the whole header, and keeps a file descriptor for reads. */
  static open(path: string): SafetensorsFile {
    assertLittleEndianHost(path);
    let fd: number;
    try {
      // A FIFO would block open() until a writer came, a link to /dev/zero read forever: stat first.
      const pre = fs.statSync(path);
      if (!pre.isFile()) throw new SafetensorsError('not_a_file', path, `is not a regular file (${describeFileKind(pre)})`);
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      throw ioError(path, e, 'open');
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new SafetensorsError('not_a_file', path, 'is not a regular file');
      const fileSize = stat.size;
      const prefix = new Uint8Array(8);
      if (fileSize >= 8) readExactly(fd, prefix, 0, path);
      const headerLength = headerLengthFromPrefix(path, prefix, fileSize);
      const headerBytes = new Uint8Array(headerLength);
      readExactly(fd, headerBytes, 8, path);
      const { metadata, tensors } = parseHeader(path, headerBytes, fileSize - 8 - headerLength);
      for (const t of tensors.values()) {
        Object.freeze(t.shape);
        Object.freeze(t.dataOffsets);
        Object.freeze(t);
      }
      return new SafetensorsFile(path, fd, Object.freeze(metadata), tensors, 8 + headerLength);
    } catch (e) {
      fs.closeSync(fd);
      throw isErrnoError(e) ? ioError(path, e, 'reading the header') : e; // bugs must not pass as io_error
    }
  }

  /** The header entry for `name`; 'unknown_tensor' if the file has no such tensor. */
  info(name: string): Readonly<TensorInfo> {
    const info = this.tensors.get(name);
    if (!info) {
      throw new SafetensorsError('unknown_tensor', this.path, `no such tensor (the file has ${this.tensors.size})`, name);
    }
    return info;
  }

  /** The tensor's bytes exactly as stored (little-endian), in a fresh buffer. */
  readRaw(name: string): Uint8Array {
    const info = this.info(name);
    const out = new Uint8Array(info.dataOffsets[1] - info.dataOffsets[0]);
    this.readInto(info, out);
    return out;
  }

  /** The tensor in its own element type: F16/BF16 as Uint16Array bits, BOOL as Uint8Array, I64 as BigInt64Array. */
  read(name: string): TensorData {
    const info = this.info(name);
    const out = allocate(info.dtype, elementCount(info));
    this.readInto(info, bytesOf(out));
    return out;
  }

  /**
   * The tensor as float32 in a fresh Float32Array (callers such as tfjs-cpu keep it without copying).
   * F32 as stored; F16 and BF16 up-cast exactly; F64 rounded to nearest. Integer dtypes: 'wrong_dtype'.
   * NaN/Inf throw 'non_finite' naming the first bad element unless `allowNonFinite`.
   */
  readF32(name: string, opts: ReadF32Options = {}): Float32Array {
    const info = this.info(name);
    const n = elementCount(info);
    if (opts.into && opts.into.length < n) {
      throw new SafetensorsError('size_mismatch', this.path, `destination has ${opts.into.length} elements, tensor has ${n}`, name);
    }
    const fresh = () => (opts.into ? opts.into.subarray(0, n) : new Float32Array(n));
    let out: Float32Array;
    let wide: Float64Array | undefined;
    switch (info.dtype) {
      case 'F32':
        out = fresh();
        this.readInto(info, bytesOf(out));
        break;
      case 'F16':
      case 'BF16': {
        const bits = new Uint16Array(n);
        this.readInto(info, bytesOf(bits));
        out = info.dtype === 'F16' ? f16BitsToF32(bits, fresh()) : bf16BitsToF32(bits, fresh());
        break;
      }
      case 'F64': {
        wide = new Float64Array(n);
        this.readInto(info, bytesOf(wide));
        out = fresh();
        out.set(wide); // IEEE round-to-nearest-even; |x| > 3.4e38 becomes Inf, caught below
        break;
      }
      default:
        throw new SafetensorsError('wrong_dtype', this.path, `is ${info.dtype}; readF32 reads F32, F16, BF16 and F64 (use read() or readRaw())`, name);
    }
    if (!opts.allowNonFinite) assertFinite(this.path, info, out, wide);
    return out;
  }

  /** Reads the tensor's bytes into `dest`, which must be exactly its byte length. */
  readInto(info: Readonly<TensorInfo>, dest: Uint8Array): void {
    if (this.fd === undefined) throw new SafetensorsError('closed', this.path, 'read after close()', info.name);
    const [begin, end] = info.dataOffsets;
    if (dest.length !== end - begin) {
      throw new SafetensorsError('size_mismatch', this.path, `destination has ${dest.length} bytes, tensor has ${end - begin}`, info.name);
    }
    readExactly(this.fd, dest, this.dataStart + begin, this.path, info.name);
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }
}

function elementCount(info: Readonly<TensorInfo>): number {
  return (info.dataOffsets[1] - info.dataOffsets[0]) / DTYPE_SIZE[info.dtype];
}

/** Index of the first NaN/Inf, or -1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN
  }
  return -1;
}

function assertFinite(file: string, info: Readonly<TensorInfo>, x: Float32Array, source?: Float64Array): void {
  const i = firstNonFinite(x);
  if (i < 0) return;
  const what = Number.isNaN(x[i]) ? 'NaN' : x[i] > 0 ? '+Inf' : '-Inf';
  const widened = source && Number.isFinite(source[i]) ? ` (F64 value ${source[i]} overflows F32)` : '';
  throw new SafetensorsError('non_finite', file,
    `element ${i} (index [${unravelIndex(i, info.shape).join(', ')}]) is ${what}${widened}; pass {allowNonFinite: true} to load it anyway`,
    info.name);
}

/** Flat row-major index → multi-index for `shape`. */
export function unravelIndex(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return out;
}

// --------------------------------------------------------------------------------- F16 / BF16 conversion
// All exact and bit-level: up-casts write bit patterns through Uint32Array views (a Float32Array store
// could canonicalise NaN payloads; F16 NaNs come out quiet like F16C/PyTorch, BF16 bits are kept); down-casts round to nearest, ties to even, overflow to Inf, keep NaN
// a (quiet) NaN with the sign and the top payload bits.

/** IEEE binary16 bits → binary32 bits (every value is exactly representable). */
function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  // Inf; NaN keeps its payload and comes out quiet, as x86 F16C and PyTorch produce it
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant !== 0 ? 0x400000 | (mant << 13) : 0)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 → 127
  if (mant === 0) return sign >>> 0; // ±0
  // subnormal mant·2^-24: normalise so the leading 1 becomes the implicit bit of a binary32 normal
  let e = 113; // binary32 biased exponent of 2^-14
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | undefined; // 256 KiB, built on first use

export function f16BitsToF32(b: Uint16Array, out: Float32Array = new Float32Array(b.length)): Float32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32Bits(h);
  }
  const table = f16Table;
  const out32 = new Uint32Array(out.buffer, out.byteOffset, b.length);
  for (let i = 0; i < b.length; i++) out32[i] = table[b[i]];
  return out;
}

export function bf16BitsToF32(b: Uint16Array, out: Float32Array = new Float32Array(b.length)): Float32Array {
  const out32 = new Uint32Array(out.buffer, out.byteOffset, b.length);
  for (let i = 0; i < b.length; i++) out32[i] = b[i] << 16;
  return out;
}

/** binary32 bits → binary16 bits, round to nearest even. */
function f32ToF16BitsOne(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // binary16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // >= 2^16: Inf
  if (e <= 0) {
    // binary16 subnormal (or zero): value = m·2^-24 with m = (1.mant)·2^(e+9)
    if (e < -10) return sign; // below 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
    const m = mant | 0x800000;
    const shift = 14 - e;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++; // may carry into the smallest normal, 0x0400
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // may carry up to 0x7c00 = Inf
  return sign | r;
}

export function f32ToF16Bits(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16BitsOne(bits[i]);
  return out;
}

export function f32ToBF16Bits(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const f = bits[i];
    if ((f & 0x7fffffff) > 0x7f800000) out[i] = (f >>> 16) | 0x40; // NaN: keep sign + top payload, quiet
    else out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16; // round to nearest even; carries reach Inf
  }
  return out;
}

// ----------------------------------------------------------------------------------------------- writer

export interface TensorToWrite {
  dtype: Dtype;
  shape: number[];
  /** The dtype's typed array (F16/BF16: Uint16Array bits, I64: BigInt64Array, BOOL: Uint8Array), or raw LE bytes. */
  data: TensorData | Uint8Array;
}

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Optional cross-check: must equal prod(shape) × dtype size. */
  byteLength?: number;
}

const ARRAY_FOR_DTYPE: Readonly<Record<Dtype, Function>> = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};

/** Writes `tensors` as a safetensors file (temp file + rename). Layout identical to safetensors.torch.save_file. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const entries = [...map].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, byteLength: t.data?.byteLength }));
  writeSafetensorsStreaming(path, entries, (name) => map.get(name)!.data, metadata);
}

/**
 * Writes the header, then asks `produce(name)` for each tensor in file order (dtype alignment desc, then
 * name) and writes it before asking for the next, so only one tensor is in memory at a time.
 */
export function writeSafetensorsStreaming(
  path: string,
  entries: readonly TensorEntry[],
  produce: (name: string) => TensorData | Uint8Array,
  metadata?: Record<string, string>,
): void {
  assertLittleEndianHost(path);
  const layout = planLayout(path, entries, metadata);
  const tmp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(layout.header.length), true);
    writeAll(fd, prefix, path);
    writeAll(fd, layout.header, path);
    for (const t of layout.tensors) {
      const bytes = tensorBytes(path, t, produce(t.name));
      const want = t.dataOffsets[1] - t.dataOffsets[0];
      if (bytes.length !== want) {
        throw new SafetensorsError('size_mismatch', path, `${t.dtype} [${t.shape.join(', ')}] needs ${want} bytes, got ${bytes.length}`, t.name);
      }
      writeAll(fd, bytes, path, t.name);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw isErrnoError(e) ? ioError(path, e, 'writing') : e;
  }
}

interface Layout {
  header: Uint8Array; // UTF-8 JSON padded with spaces to a multiple of 8
  tensors: TensorInfo[]; // in file order
}

/** Validates the entries and computes offsets and the header, before any byte is written. */
export function planLayout(file: string, entries: readonly TensorEntry[], metadata?: Record<string, string>): Layout {
  const seen = new Set<string>();
  for (const e of entries) checkEntry(file, e, seen);
  const ordered = [...entries].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareCodePoints(a.name, b.name));

  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${metadataJson(file, metadata)}`);
  const tensors: TensorInfo[] = [];
  let offset = 0;
  for (const e of ordered) {
    const byteLength = e.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[e.dtype];
    const info: TensorInfo = { name: e.name, dtype: e.dtype, shape: [...e.shape], dataOffsets: [offset, offset + byteLength] };
    offset += byteLength;
    tensors.push(info);
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${info.dataOffsets.join(',')}]}`);
  }
  if (!Number.isSafeInteger(offset)) throw new SafetensorsError('size_mismatch', file, `tensors total ${offset} bytes, beyond 2^53`);
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new SafetensorsError('header_too_large', file, `header would be ${padded} bytes, above the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const header = new Uint8Array(padded).fill(0x20);
  header.set(json);
  return { header, tensors };
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u; // with the u flag this matches only unpaired surrogates

function checkEntry(file: string, e: TensorEntry, seen: Set<string>): void {
  const fail = (code: SafetensorsErrorCode, detail: string): never => {
    throw new SafetensorsError(code, file, detail, String(e.name));
  };
  if (typeof e.name !== 'string' || LONE_SURROGATE.test(e.name)) fail('bad_entry', 'tensor name must be a well-formed Unicode string');
  if (e.name === '__metadata__') fail('bad_entry', '"__metadata__" is reserved for the metadata object');
  if (seen.has(e.name)) fail('duplicate_key', 'tensor name given twice');
  seen.add(e.name);
  if (typeof e.dtype !== 'string' || !isDtype(e.dtype)) fail('unknown_dtype', `dtype ${JSON.stringify(e.dtype)} is not one of ${Object.keys(DTYPE_SIZE).join(' ')}`);
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail('bad_shape', `shape ${JSON.stringify(e.shape)} must be an array of non-negative safe integers`);
  }
  const bytes = e.shape.reduce((a, d) => a * BigInt(d), 1n) * BigInt(DTYPE_SIZE[e.dtype]);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) fail('size_mismatch', `${e.dtype} [${e.shape.join(', ')}] is ${bytes} bytes, beyond 2^53`);
  if (e.byteLength !== undefined && BigInt(e.byteLength) !== bytes) {
    fail('size_mismatch', `${e.dtype} [${e.shape.join(', ')}] needs ${bytes} bytes, data has ${e.byteLength}`);
  }
}

function metadataJson(file: string, metadata: Record<string, string>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsError('bad_metadata', file, `metadata[${JSON.stringify(k)}] is a ${typeof v}, expected a string`);
    if (LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) {
      throw new SafetensorsError('bad_metadata', file, `metadata[${JSON.stringify(k)}] is not well-formed Unicode`);
    }
    parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
  }
  return `{${parts.join(',')}}`;
}

function tensorBytes(file: string, t: TensorInfo, data: TensorData | Uint8Array): Uint8Array {
  if (data instanceof Uint8Array) return data; // raw bytes for any dtype (and the natural array for U8/BOOL)
  const want = ARRAY_FOR_DTYPE[t.dtype];
  if (!(data instanceof want)) {
    const got = (data as object | null)?.constructor?.name ?? String(data);
    const hint = t.dtype === 'F16' || t.dtype === 'BF16' ? ` (convert with f32To${t.dtype}Bits)` : '';
    throw new SafetensorsError('bad_entry', file, `${t.dtype} data must be a ${want.name} or raw bytes (Uint8Array), got ${got}${hint}`, t.name);
  }
  return bytesOf(data as TensorData);
}

function writeAll(fd: number, bytes: Uint8Array, file: string, tensor?: string): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK));
    } catch (e) {
      throw ioError(file, e, 'writing', tensor);
    }
  }
}
