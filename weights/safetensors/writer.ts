/**
 * The safetensors writer: validates every entry and lays the file out like
 * safetensors.torch.save_file before writing a byte, then streams the tensors one at a time
 * into a temp file that is renamed into place.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { SafetensorsError, SafetensorsErrorCode } from '../errors';
import { bytesOf, Dtype, DTYPE_RANK, DTYPE_SIZE, isDtype, TensorData } from './dtypes';
import { compareCodePoints, MAX_HEADER_BYTES, TensorInfo } from './header';
import { assertLittleEndianHost, ioError, isErrnoError, writeAll } from './io';

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
  const { entries, produce } = streamed(tensors);
  writeSafetensorsStreaming(path, entries, produce, metadata);
}

/** Whole tensors as the streaming writers' entries and producer. */
function streamed(tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>): { entries: TensorEntry[]; produce: (name: string) => TensorData | Uint8Array } {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const entries = [...map].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, byteLength: t.data?.byteLength }));
  return { entries, produce: (name) => map.get(name)!.data };
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
  const layout = planLayout(path, entries, metadata);
  const tmp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    const out = fd;
    writeLayout(path, layout, produce, (bytes, tensor) => writeAll(out, bytes, path, tensor));
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

/**
 * The bytes of a safetensors file, in order, to `write` (for a caller that owns the file: the
 * CLI's outputs, which must not be renamed over). `path` names the file in errors.
 */
export function writeSafetensorsTo(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> | undefined,
  write: (bytes: Uint8Array, tensor?: string) => void,
): void {
  const { entries, produce } = streamed(tensors);
  writeSafetensorsStreamingTo(path, entries, produce, metadata, write);
}

/** writeSafetensorsStreaming's bytes to `write` (see writeSafetensorsTo). */
export function writeSafetensorsStreamingTo(
  path: string,
  entries: readonly TensorEntry[],
  produce: (name: string) => TensorData | Uint8Array,
  metadata: Record<string, string> | undefined,
  write: (bytes: Uint8Array, tensor?: string) => void,
): void {
  writeLayout(path, planLayout(path, entries, metadata), produce, write);
}

function writeLayout(path: string, layout: Layout, produce: (name: string) => TensorData | Uint8Array, write: (bytes: Uint8Array, tensor?: string) => void): void {
  assertLittleEndianHost(path);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(layout.header.length), true);
  write(prefix);
  write(layout.header);
  for (const t of layout.tensors) {
    const bytes = tensorBytes(path, t, produce(t.name));
    const want = t.dataOffsets[1] - t.dataOffsets[0];
    if (bytes.length !== want) {
      throw new SafetensorsError('size_mismatch', path, `${t.dtype} [${t.shape.join(', ')}] needs ${want} bytes, got ${bytes.length}`, t.name);
    }
    write(bytes, t.name);
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
