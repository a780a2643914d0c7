/**
 * NumPy .npy (format version 1.0) for float32 C-order arrays, as numpy.lib.format documents it:
 * the magic `\x93NUMPY`, version 1.0, a little-endian u16 header length, then a Python dict
 * literal `{'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }` padded with spaces and
 * ended by `\n` so the data starts at a multiple of 64 bytes. The npm packages we looked at
 * either only parse .npy or build the whole array in memory; a streamed embedding matrix needs
 * its row count patched in at the end, so this small writer is ours.
 */
import * as fs from 'fs';
import { AtomicFile, OutputFile } from './output';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Header size reserved by the streaming writer: room for any row count. */
const STREAM_HEADER_BYTES = 128;

function shapeLiteral(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** The full header (magic .. '\n'), padded to `totalBytes` (default: the next multiple of 64). */
export function npyHeader(shape: readonly number[], totalBytes?: number): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeLiteral(shape)}, }`;
  const minimum = 10 + dict.length + 1;
  const total = totalBytes ?? Math.ceil(minimum / 64) * 64;
  if (total < minimum || total % 64 !== 0 || total - 10 > 0xffff) throw new RangeError(`npy header for shape ${shapeLiteral(shape)} does not fit in ${total} bytes`);
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1; // major
  out[7] = 0; // minor
  new DataView(out.buffer).setUint16(8, total - 10, true);
  const text = dict.padEnd(total - 11, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return out;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Write one float32 array as `target` (temp file + rename). */
export function writeNpy(target: string, data: Float32Array, shape: readonly number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new RangeError(`${target}: shape (${shape.join(', ')}) needs ${n} values, got ${data.length}`);
  const file = new AtomicFile(target);
  try {
    file.write(npyHeader(shape));
    file.write(bytesOf(data));
    file.commit();
  } catch (e) {
    file.abort();
    throw e;
  }
}

/** An (N, D) float32 matrix written row by row; N is filled in by finish(). */
export class NpyRowWriter {
  private rows = 0;
  constructor(private readonly file: OutputFile, private readonly cols: number) {
    file.write(npyHeader([0, cols], STREAM_HEADER_BYTES));
  }

  append(row: Float32Array): void {
    if (row.length !== this.cols) throw new RangeError(`row of ${row.length} values in an npy matrix of ${this.cols} columns`);
    this.file.write(bytesOf(row));
    this.rows++;
  }

  finish(): void {
    this.file.writeAt(npyHeader([this.rows, this.cols], STREAM_HEADER_BYTES), 0);
  }
}

/** The shape and data offset of a float32 C-order .npy file (the kind this module writes); errors name the file. */
export function readNpyHeader(file: string): { shape: number[]; dataOffset: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const head = new Uint8Array(10);
    const bad = (why: string) => new Error(`${file}: not a float32 .npy matrix (${why})`);
    if (fs.readSync(fd, head, 0, 10, 0) !== 10 || !MAGIC.every((b, i) => head[i] === b)) throw bad('no \\x93NUMPY magic');
    if (head[6] !== 1) throw bad(`format version ${head[6]}.${head[7]}, expected 1.0`);
    const length = new DataView(head.buffer).getUint16(8, true);
    const dict = Buffer.alloc(length);
    if (fs.readSync(fd, dict, 0, length, 10) !== length) throw bad('header cut short');
    const text = dict.toString('latin1');
    if (!/'descr': '<f4'/.test(text) || !/'fortran_order': False/.test(text)) throw bad(`header ${text.trim()}`);
    const shape = /'shape': \(([0-9, ]*)\)/.exec(text)?.[1].split(',').map((x) => x.trim()).filter(Boolean).map(Number);
    if (!shape) throw bad(`header ${text.trim()}`);
    return { shape, dataOffset: 10 + length };
  } finally {
    fs.closeSync(fd);
  }
}
