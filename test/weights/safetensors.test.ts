// weights/safetensors.ts + weights/checkpoint.ts: golden bytes from the reference implementation,
// every malformed-file case (error class, code, file and tensor in the message), a write→read property
// test, F16/BF16 conversions against hand-computed values and an independent nearest-value search,
// sharded checkpoints, and (when /usr/bin/python3 has torch) a cross-check with PyTorch.

import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Checkpoint } from '../../weights/checkpoint';
import { SafetensorsError, SafetensorsErrorCode } from '../../weights/errors';
import {
  DTYPE_SIZE, Dtype, SafetensorsFile, TensorData, bf16BitsToF32, f16BitsToF32, f32ToBF16Bits, f32ToF16Bits, firstNonFinite,
  writeSafetensors, writeSafetensorsStreaming,
} from '../../weights/safetensors';

// ------------------------------------------------------------------------------------------- helpers

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-test-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileCounter = 0;
function tmpPath(name = 'x.safetensors'): string {
  const dir = path.join(tmp, String(fileCounter++));
  fs.mkdirSync(dir);
  return path.join(dir, name);
}

/** u64 LE header length + header + data, with full control over every byte. */
function fileBytes(header: string | object | Uint8Array, data: Uint8Array | number = 0, headerLength?: bigint): Uint8Array {
  const h = header instanceof Uint8Array ? header
    : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

function rawFile(header: string | object | Uint8Array, data: Uint8Array | number = 0, headerLength?: bigint): string {
  const p = tmpPath();
  fs.writeFileSync(p, fileBytes(header, data, headerLength));
  return p;
}

function expectError(fn: () => unknown, code: SafetensorsErrorCode, file: string, tensor?: string, detail?: RegExp): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected SafetensorsError ${code}, nothing was thrown`);
  assert.ok(caught instanceof SafetensorsError, `expected SafetensorsError ${code}, got ${String(caught)}`);
  const e = caught as SafetensorsError;
  assert.equal(e.code, code, e.message);
  assert.equal(e.file, file);
  assert.ok(e.message.includes(file), `message does not name the file: ${e.message}`);
  assert.equal(e.tensor, tensor, e.message);
  if (tensor !== undefined) assert.ok(e.message.includes(JSON.stringify(tensor)), `message does not name the tensor: ${e.message}`);
  if (detail) assert.match(e.message, detail);
  return e;
}

const openFile = (p: string) => () => SafetensorsFile.open(p).close();

function f32(...xs: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(xs).buffer);
}

function u16(...xs: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(xs).buffer);
}

/** Deterministic PRNG (mulberry32) so every failure reproduces. */
import { mulberry32 } from '../../devtools/rng';
import { PYTHON } from '../support/python';

const hex = (xs: ArrayLike<number>) => Array.from(xs, (x) => '0x' + x.toString(16).padStart(4, '0'));

// ------------------------------------------------------------------- golden bytes (reference impl.)

describe('safetensors: byte layout of the reference implementation', () => {
  // Expected bytes are copied from the unit tests of huggingface/safetensors (safetensors/src/tensor.rs).
  it('writes a one-tensor file byte for byte like the Rust crate (test_serialization)', () => {
    const p = tmpPath();
    writeSafetensors(p, { 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    assert.deepEqual([...fs.readFileSync(p)], [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('pads the header with spaces to a multiple of 8 (test_serialization_forced_alignement)', () => {
    const p = tmpPath();
    writeSafetensors(p, { attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    assert.deepEqual([...fs.readFileSync(p)], [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ]);
  });

  it('writes empty files with and without metadata like the Rust crate (test_empty)', () => {
    const a = tmpPath();
    writeSafetensors(a, {});
    assert.deepEqual([...fs.readFileSync(a)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const b = tmpPath();
    writeSafetensors(b, {}, { framework: 'pt' });
    assert.deepEqual([...fs.readFileSync(b)], [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    const f = SafetensorsFile.open(b);
    assert.deepEqual({ ...f.metadata }, { framework: 'pt' });
    assert.equal(f.tensors.size, 0);
    f.close();
  });

  it('reads the Rust crate doc example (I32 [2,2], unpadded header)', () => {
    const header = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    assert.equal(header.length, 60); // the example's length byte is '<' = 60
    const p = rawFile(header, 16);
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.tensors.get('test'), { name: 'test', dtype: 'I32', shape: [2, 2], dataOffsets: [0, 16] });
    assert.deepEqual(f.read('test'), new Int32Array(4));
    f.close();
  });

  it('orders tensors by dtype alignment (desc) then name, so each starts at a multiple of its size', () => {
    const p = tmpPath();
    writeSafetensors(p, {
      b: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      c: { dtype: 'I64', shape: [1], data: new BigInt64Array([7n]) },
      d: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      aa: { dtype: 'F32', shape: [], data: new Float32Array([2]) },
    });
    const f = SafetensorsFile.open(p);
    const layout = [...f.tensors.values()].map((t) => [t.name, ...t.dataOffsets]);
    assert.deepEqual(layout, [['c', 0, 8], ['a', 8, 12], ['aa', 12, 16], ['d', 16, 18], ['b', 18, 21]]);
    assert.equal(f.dataStart % 8, 0);
    f.close();
  });

  it('sorts names by Unicode code point like Rust/Python, not by UTF-16 unit', () => {
    // U+FFFF < U+1F600 as code points, but '\uFFFF' > '\uD83D' as UTF-16 units.
    const p = tmpPath();
    writeSafetensors(p, {
      '😀': { dtype: 'U8', shape: [1], data: new Uint8Array([1]) },
      '\uFFFF': { dtype: 'U8', shape: [1], data: new Uint8Array([2]) },
    });
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.tensors.keys()], ['\uFFFF', '😀']);
    f.close();
  });
});

// -------------------------------------------------------------------------------------------- reader

describe('SafetensorsFile: reading', () => {
  it('returns F32 values as stored, in a fresh Float32Array on every call', () => {
    const p = rawFile({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } }, f32(1.5, -2, 3.25, 1e-30));
    const f = SafetensorsFile.open(p);
    const a = f.readF32('w');
    const b = f.readF32('w');
    assert.deepEqual([...a], [1.5, -2, 3.25, Math.fround(1e-30)]);
    assert.notEqual(a.buffer, b.buffer);
    a[0] = 99;
    assert.equal(b[0], 1.5);
    assert.equal(f.readF32('w')[0], 1.5);
    f.close();
  });

  it('up-casts F16 and BF16 to F32 and rounds F64 to nearest', () => {
    const d64 = new Uint8Array(new Float64Array([0.1, -1 / 3]).buffer);
    const data = new Uint8Array([...u16(0x3c00, 0xc100, 0x7bff, 0x0001), ...u16(0x3f80, 0xc020, 0x3dcd, 0x0001), ...d64]);
    const p = rawFile({
      h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [8, 16] },
      d: { dtype: 'F64', shape: [2], data_offsets: [16, 32] },
    }, data);
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.readF32('h')], [1, -2.5, 65504, 2 ** -24]);
    assert.deepEqual([...f.readF32('b')], [1, -2.5, 0.10009765625, 2 ** -133]);
    assert.deepEqual([...f.readF32('d')], [Math.fround(0.1), Math.fround(-1 / 3)]);
    f.close();
  });

  it('read() returns each dtype in its own typed array; readRaw() the stored bytes', () => {
    const data = new Uint8Array([
      ...new Uint8Array(new BigInt64Array([-5n, 1n << 40n]).buffer),
      ...new Uint8Array(new Int16Array([-300]).buffer), 0xff, 1,
    ]);
    const p = rawFile({
      i64: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      i16: { dtype: 'I16', shape: [], data_offsets: [16, 18] },
      i8: { dtype: 'I8', shape: [1], data_offsets: [18, 19] },
      ok: { dtype: 'BOOL', shape: [1, 1], data_offsets: [19, 20] },
    }, data);
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.read('i64'), new BigInt64Array([-5n, 1n << 40n]));
    assert.deepEqual(f.read('i16'), new Int16Array([-300]));
    assert.deepEqual(f.read('i8'), new Int8Array([-1]));
    assert.deepEqual(f.read('ok'), new Uint8Array([1]));
    assert.deepEqual(f.readRaw('i16'), new Uint8Array([0xd4, 0xfe]));
    expectError(() => f.readF32('i64'), 'wrong_dtype', p, 'i64', /I64/);
    f.close();
  });

  it('accepts JSON whitespace around the header and tensors in any header order', () => {
    const header = ' \n{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}, "a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}\t   ';
    const f = SafetensorsFile.open(rawFile(header, new Uint8Array([10, 20])));
    assert.deepEqual([...f.tensors.keys()], ['a', 'b']); // data-offset order
    assert.deepEqual(f.read('b'), new Uint8Array([20]));
    f.close();
  });

  it('handles zero-size tensors, scalars and "__proto__" as tensor and metadata names', () => {
    const header = '{"__metadata__":{"__proto__":"x","format":"pt"},"__proto__":{"dtype":"F32","shape":[],"data_offsets":[0,4]},' +
      '"empty":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"e2":{"dtype":"I64","shape":[0],"data_offsets":[0,0]}}';
    const f = SafetensorsFile.open(rawFile(header, f32(7)));
    assert.deepEqual([...f.readF32('__proto__')], [7]);
    assert.equal(f.readF32('empty').length, 0);
    assert.equal(f.read('e2').length, 0);
    assert.deepEqual(Object.entries(f.metadata), [['__proto__', 'x'], ['format', 'pt']]);
    f.close();
  });

  it('reads only the prefix and header on open, then exactly one tensor per read (positioned reads)', () => {
    const p = tmpPath();
    writeSafetensors(p, {
      a: { dtype: 'F32', shape: [1000], data: new Float32Array(1000).fill(1) },
      b: { dtype: 'F32', shape: [10], data: new Float32Array(10).fill(2) },
    });
    const reads: Array<[number, number]> = [];
    const nodeFs: typeof fs = require('node:fs'); // the module object itself: `import *` gives read-only bindings
    const original = nodeFs.readSync;
    (nodeFs as { readSync: unknown }).readSync = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
      reads.push([pos, len]);
      return original(fd, buf, off, len, pos);
    };
    try {
      const f = SafetensorsFile.open(p);
      const headerLength = f.dataStart - 8;
      assert.deepEqual(reads, [[0, 8], [8, headerLength]]);
      reads.length = 0;
      assert.deepEqual([...f.readF32('b')], new Array(10).fill(2));
      assert.deepEqual(reads, [[f.dataStart + 4000, 40]]);
      f.close();
    } finally {
      (nodeFs as { readSync: unknown }).readSync = original;
    }
  });

  it('errors: unknown tensor, read after close', () => {
    const p = rawFile({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1);
    const f = SafetensorsFile.open(p);
    expectError(() => f.readF32('nope'), 'unknown_tensor', p, 'nope');
    f.close();
    f.close(); // idempotent
    expectError(() => f.readRaw('a'), 'closed', p, 'a');
  });
});

// ---------------------------------------------------------------------------------- malformed files

describe('SafetensorsFile: malformed files are refused with typed errors', () => {
  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

  it('not_found / not_a_file', () => {
    const missing = path.join(tmp, 'does-not-exist.safetensors');
    expectError(openFile(missing), 'not_found', missing);
    const dir = path.dirname(tmpPath());
    expectError(openFile(dir), 'not_a_file', dir);
  });

  it('too_short: fewer than 8 bytes', () => {
    for (const n of [0, 1, 7]) {
      const p = tmpPath();
      fs.writeFileSync(p, new Uint8Array(n).fill(2));
      expectError(openFile(p), 'too_short', p, undefined, new RegExp(`${n} bytes`));
    }
  });

  it('header_too_large: length above 100 MB (checked before allocating), up to 2^64-1', () => {
    for (const n of [100_000_001n, 1n << 40n, (1n << 64n) - 1n]) {
      const p = rawFile('{}', 0, n);
      expectError(openFile(p), 'header_too_large', p, undefined, new RegExp(String(n)));
    }
  });

  it('header_beyond_file: length runs past the end', () => {
    const p = rawFile('{}      ', 0, 9n);
    expectError(openFile(p), 'header_beyond_file', p, undefined, /header length 9/);
    const q = rawFile(new Uint8Array(0), 0, 1n);
    expectError(openFile(q), 'header_beyond_file', q);
  });

  it('header_not_utf8: invalid bytes, overlong encodings, encoded surrogates', () => {
    const bad = [[0x7b, 0xff, 0x7d], [0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d], [0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d], [0x7b, 0xe2, 0x82]];
    for (const bytes of bad) {
      const p = rawFile(new Uint8Array(bytes));
      expectError(openFile(p), 'header_not_utf8', p);
    }
  });

  it('header_not_json: syntax errors, BOM, NUL padding, hostile nesting', () => {
    // errors inside an entry name the tensor, errors between entries do not
    const cases: Array<[string, string | undefined]> = [
      ['', undefined], [' ', undefined], ['{', undefined], ['{"a":1,}', undefined], ["{'a':1}", undefined], ['{"a" 1}', undefined],
      ['{"a":01}', undefined], ['{} {}', undefined], ['{}\0\0\0', undefined], ['\ufeff{}', undefined], ['[1 2]', undefined],
      ['['.repeat(100_000), undefined], ['{"a":NaN}', 'a'], ['{"a":1.}', 'a'], ['{"a":.5}', 'a'], ['{"a":+1}', 'a'],
      ['{"a":"\\x"}', 'a'], ['{"a":"\\ud800"}', 'a'], ['{"a":"\\udc00x"}', 'a'], ['{"a":"tab\there"}', 'a'],
      ['{"a":'.repeat(50_000), 'a'], ['{"a":tru}', 'a'], ['{"a":{"dtype":nul}}', 'a'], ['{"__metadata__":{"x":1.e5}}', undefined],
    ];
    for (const [header, tensor] of cases) {
      const p = rawFile(header);
      expectError(openFile(p), 'header_not_json', p, tensor);
    }
    const deep = rawFile('['.repeat(65) + ']'.repeat(65));
    expectError(openFile(deep), 'header_not_json', deep, undefined, /nesting deeper than 64/);
  });

  it('header_not_object: valid JSON that is not an object', () => {
    for (const header of ['[]', '"x"', '1', 'null', 'true']) {
      const p = rawFile(header);
      expectError(openFile(p), 'header_not_object', p);
    }
  });

  it('duplicate_key: a tensor twice (JSON.parse would silently keep the last)', () => {
    const header = '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    assert.doesNotThrow(() => JSON.parse(header));
    const p = rawFile(header, 2);
    expectError(openFile(p), 'duplicate_key', p, 'w', /duplicate key "w" at character 53/);
  });

  it('duplicate_key at any depth, also when spelled with escapes', () => {
    const cases: Array<[string, string | undefined]> = [
      ['{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 'w'],
      ['{"w":{"dtype":"U8","shape":[{"x":1,"x":2}],"data_offsets":[0,1]}}', 'w'],
      ['{"__metadata__":{"k":"a","k":"b"}}', undefined],
      ['{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0077":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 'w'],
      ['{"__metadata__":{},"__metadata__":{}}', undefined],
    ];
    for (const [header, tensor] of cases) {
      const p = rawFile(header, 2);
      expectError(openFile(p), 'duplicate_key', p, tensor);
    }
  });

  it('bad_entry: not an object, missing or unknown fields, dtype not a string', () => {
    const cases: Array<[object, RegExp]> = [
      [{ w: [1] }, /entry is an array/],
      [{ w: null }, /entry is null/],
      [{ w: { dtype: 'U8', shape: [1] } }, /no "data_offsets"/],
      [{ w: { shape: [1], data_offsets: [0, 1] } }, /no "dtype"/],
      [{ w: { ...entry('U8', [1], [0, 1]), offsets: [0, 1] } }, /unknown field "offsets"/],
      [{ w: entry(7 as unknown as string, [1], [0, 1]) }, /dtype is the number 7/],
    ];
    for (const [header, detail] of cases) {
      const p = rawFile(header, 1);
      expectError(openFile(p), 'bad_entry', p, 'w', detail);
    }
  });

  it('unknown_dtype: unsupported (F8, U16, ...) and invented dtypes', () => {
    for (const [dtype, detail] of [['F8_E4M3', /does not support/], ['U32', /does not support/], ['float32', /not a safetensors dtype/], ['f32', /not a safetensors dtype/]] as const) {
      const p = rawFile({ w: entry(dtype, [1], [0, 1]) }, 1);
      expectError(openFile(p), 'unknown_dtype', p, 'w', detail);
    }
  });

  it('bad_shape: negative, fractional, exponent, string, nested, >= 2^53', () => {
    for (const shape of ['[-1]', '[1.5]', '[1.0]', '[1e0]', '["1"]', '[[1]]', '[null]', '1', '{}', '[9007199254740992]', '[-0]']) {
      const p = rawFile(`{"w":{"dtype":"U8","shape":${shape},"data_offsets":[0,1]}}`, 1);
      expectError(openFile(p), 'bad_shape', p, 'w');
    }
  });

  it('bad_offsets: wrong arity, negative, fractional, end before begin', () => {
    for (const offsets of ['[0]', '[0,1,2]', '[-1,0]', '[0,1.0]', '"0,1"', '[1,0]', '[0,18446744073709551616]']) {
      const p = rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":${offsets}}}`, 1);
      expectError(openFile(p), 'bad_offsets', p, 'w');
    }
  });

  it('size_mismatch: shape x dtype size != byte span, with overflow checks', () => {
    const p = rawFile({ w: entry('F32', [2, 3], [0, 20]) }, 20);
    expectError(openFile(p), 'size_mismatch', p, 'w', /F32 \[2, 3\] needs 24 bytes but data_offsets \[0, 20\] span 20/);
    // 2^32 · 2^32 · 4 wraps to 0 in 64-bit arithmetic: must not pass as an empty tensor
    const q = rawFile({ w: entry('F32', [2 ** 32, 2 ** 32], [0, 0]) });
    expectError(openFile(q), 'size_mismatch', q, 'w', /needs 73786976294838206464 bytes/);
    const r = rawFile({ w: entry('F64', [2 ** 50, 2 ** 50, 0], [0, 8]) }, 8);
    expectError(openFile(r), 'size_mismatch', r, 'w', /needs 0 bytes/);
  });

  it('offsets_out_of_bounds: tensor ends past the data buffer', () => {
    const p = rawFile({ w: entry('U8', [4], [0, 4]) }, 3);
    expectError(openFile(p), 'offsets_out_of_bounds', p, 'w', /run past the end of the 3-byte data buffer/);
  });

  it('offsets_overlap / offsets_hole / trailing_bytes: tensors must tile the buffer exactly', () => {
    const overlap = rawFile({ a: entry('U8', [2], [0, 2]), b: entry('U8', [2], [1, 3]) }, 3);
    expectError(openFile(overlap), 'offsets_overlap', overlap, 'b', /overlap tensor "a"/);
    const same = rawFile({ a: entry('U8', [2], [0, 2]), b: entry('U8', [2], [0, 2]) }, 2);
    expectError(openFile(same), 'offsets_overlap', same, 'b');
    const hole = rawFile({ a: entry('U8', [1], [0, 1]), b: entry('U8', [1], [2, 3]) }, 3);
    expectError(openFile(hole), 'offsets_hole', hole, 'b', /bytes \[1, 2\) after tensor "a"/);
    const start = rawFile({ a: entry('U8', [1], [1, 2]) }, 2);
    expectError(openFile(start), 'offsets_hole', start, 'a', /bytes \[0, 1\)/);
    const trailing = rawFile({ a: entry('U8', [1], [0, 1]) }, 5);
    expectError(openFile(trailing), 'trailing_bytes', trailing, undefined, /4 bytes after the last tensor/);
    const noTensors = rawFile({}, 1);
    expectError(openFile(noTensors), 'trailing_bytes', noTensors);
  });

  it('bad_metadata: __metadata__ must be an object of strings', () => {
    for (const md of ['[]', '"pt"', 'null', '{"format":1}', '{"a":{"b":"c"}}', '{"a":null}', '{"a":["x"]}']) {
      const p = rawFile(`{"__metadata__":${md}}`);
      expectError(openFile(p), 'bad_metadata', p);
    }
  });

  it('firstNonFinite: the first NaN/±Inf at every position, 0–40 elements (the 8-wide bit test and its tail), against the float test', () => {
    const byFloat = (x: Float32Array) => x.findIndex((v) => !Number.isFinite(v));
    for (let n = 0; n <= 40; n++) {
      for (let at = -1; at < n; at++) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          // finite extremes around the pattern: ±max float32, ±smallest subnormal, -0
          const x = Float32Array.from({ length: n }, (_, i) => [3.4028234e38, -3.4028234e38, 1e-45, -1e-45, -0][i % 5]);
          if (at >= 0) x[at] = bad;
          assert.equal(firstNonFinite(x), byFloat(x), `n=${n} at=${at} ${bad}`);
          if (at >= 0) x[n - 1] = bad; // a second one later: still the first
          assert.equal(firstNonFinite(x), byFloat(x), `n=${n} at=${at} and last ${bad}`);
        }
      }
    }
  });

  it('non_finite: NaN/Inf named by tensor and first index; allowNonFinite opts out', () => {
    const data = new Uint8Array([...f32(0, 1, 2, 3, NaN, Infinity), ...u16(0x3c00, 0xfc00), ...u16(0x7fc1)]);
    const p = rawFile({
      w: entry('F32', [2, 3], [0, 24]), h: entry('F16', [2], [24, 28]), b: entry('BF16', [1, 1], [28, 30]),
    }, data);
    const f = SafetensorsFile.open(p);
    expectError(() => f.readF32('w'), 'non_finite', p, 'w', /element 4 \(index \[1, 1\]\) is NaN.*allowNonFinite/);
    expectError(() => f.readF32('h'), 'non_finite', p, 'h', /element 1 \(index \[1\]\) is -Inf/);
    expectError(() => f.readF32('b'), 'non_finite', p, 'b', /element 0 \(index \[0, 0\]\) is NaN/);
    const w = f.readF32('w', { allowNonFinite: true });
    assert.ok(Number.isNaN(w[4]));
    assert.equal(w[5], Infinity);
    assert.deepEqual([...f.readF32('h', { allowNonFinite: true })], [1, -Infinity]);
    f.close();
    const big = rawFile({ d: entry('F64', [1], [0, 8]) }, new Uint8Array(new Float64Array([1e300]).buffer));
    const g = SafetensorsFile.open(big);
    expectError(() => g.readF32('d'), 'non_finite', big, 'd', /F64 value 1e\+300 overflows F32/);
    g.close();
  });

  it('nativeRead: F32 tensors go through it (other dtypes do not); the index it returns is the one named, its errors become SafetensorsErrors', () => {
    const data = new Uint8Array([...f32(0, 1, 2, 3, NaN, 5), ...u16(0x3c00, 0x4000)]);
    const p = rawFile({ w: entry('F32', [2, 3], [0, 24]), h: entry('F16', [2], [24, 28]) }, data);
    const f = SafetensorsFile.open(p);
    const calls: Array<[number, boolean]> = [];
    const byFs = (fd: number, dest: Float32Array, position: number, check: boolean) => {
      calls.push([position, check]);
      fs.readSync(fd, new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength), 0, dest.byteLength, position);
      return check ? 4 : -1;
    };
    expectError(() => f.readF32('w', { nativeRead: byFs }), 'non_finite', p, 'w', /element 4 \(index \[1, 1\]\) is NaN/);
    assert.ok(Number.isNaN(f.readF32('w', { nativeRead: byFs, allowNonFinite: true })[4]));
    assert.deepEqual(calls, [[f.dataStart, true], [f.dataStart, false]]);
    assert.deepEqual([...f.readF32('h', { nativeRead: byFs })], [1, 2]);
    assert.equal(calls.length, 2, 'F16 is read and widened here');
    const failing = (code: string) => () => {
      throw Object.assign(new Error('file ended while reading 24 bytes at 8'), { code });
    };
    expectError(() => f.readF32('w', { nativeRead: failing('truncated') }), 'truncated', p, 'w', /file ended/);
    expectError(() => f.readF32('w', { nativeRead: failing('io_error') }), 'io_error', p, 'w');
    f.close();
    expectError(() => f.readF32('w', { nativeRead: byFs }), 'closed', p, 'w');
  });

  it('truncated: the file shrank after it was opened', () => {
    const p = tmpPath();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    const f = SafetensorsFile.open(p);
    fs.truncateSync(p, f.dataStart + 6);
    expectError(() => f.readF32('a'), 'truncated', p, 'a');
    f.close();
  });
});

// -------------------------------------------------------------------------------------------- writer

const ALL_DTYPES = Object.keys(DTYPE_SIZE) as Dtype[];
const NAME_PIECES = ['layer', '.', '0', 'weight', 'ü', '日本', '😀', '\uFFFF', '"', '\\', '\n', ' ', '\u0000', 'é', 'e\u0301'];
const EXTRA_NAMES = ['', '__proto__', 'constructor', 'toString'];

function randomString(rand: () => number, maxPieces: number): string {
  let s = '';
  const n = Math.floor(rand() * (maxPieces + 1));
  for (let i = 0; i < n; i++) s += NAME_PIECES[Math.floor(rand() * NAME_PIECES.length)];
  return s;
}

function randomTensor(rand: () => number, dtype: Dtype): { shape: number[]; bytes: Uint8Array } {
  const rank = Math.floor(rand() * 5); // 0 = scalar
  const shape = Array.from({ length: rank }, () => Math.floor(rand() * (rand() < 0.1 ? 1 : 6))); // some zero dims
  const n = shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[dtype];
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = dtype === 'BOOL' ? (rand() < 0.5 ? 1 : 0) : Math.floor(rand() * 256);
  return { shape, bytes };
}

/** The dtype's typed array over `bytes` (a copy, so the writer sees a view with its own buffer). */
function typedView(dtype: Dtype, bytes: Uint8Array): TensorData {
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case 'F64': return new Float64Array(buf);
    case 'F32': return new Float32Array(buf);
    case 'F16': case 'BF16': return new Uint16Array(buf);
    case 'I64': return new BigInt64Array(buf);
    case 'I32': return new Int32Array(buf);
    case 'I16': return new Int16Array(buf);
    case 'I8': return new Int8Array(buf);
    case 'U8': case 'BOOL': return new Uint8Array(buf);
  }
}

describe('writeSafetensors: round trip', () => {
  it('property: random tensors of every dtype and shape + unicode metadata → write → read → identical (300 cases)', () => {
    const rand = mulberry32(20240601);
    for (let c = 0; c < 300; c++) {
      const expected = new Map<string, { dtype: Dtype; shape: number[]; bytes: Uint8Array }>();
      const nTensors = Math.floor(rand() * 7);
      for (let i = 0; i < nTensors; i++) {
        const name = rand() < 0.1 ? EXTRA_NAMES[Math.floor(rand() * EXTRA_NAMES.length)] : randomString(rand, 4) + i;
        if (expected.has(name)) continue;
        const dtype = ALL_DTYPES[Math.floor(rand() * ALL_DTYPES.length)];
        expected.set(name, { dtype, ...randomTensor(rand, dtype) });
      }
      const metadata = rand() < 0.3 ? undefined
        : Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [rand() < 0.1 ? '__proto__' : randomString(rand, 3) + i, randomString(rand, 6)]));
      const asRaw = rand() < 0.5; // pass raw bytes or the dtype's typed array
      const toWrite = new Map([...expected].map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, data: asRaw ? t.bytes : typedView(t.dtype, t.bytes) }]));
      const p = tmpPath();
      writeSafetensors(p, rand() < 0.5 ? toWrite : Object.fromEntries(toWrite), metadata);

      const f = SafetensorsFile.open(p);
      try {
        const ctx = `case ${c}`;
        assert.equal((f.dataStart - 8) % 8, 0, ctx);
        assert.deepEqual(new Map(Object.entries(f.metadata)), new Map(Object.entries(metadata ?? {})), ctx);
        assert.deepEqual(new Set(f.tensors.keys()), new Set(expected.keys()), ctx);
        for (const [name, t] of expected) {
          const info = f.tensors.get(name)!;
          assert.equal(info.dtype, t.dtype, ctx);
          assert.deepEqual(info.shape, t.shape, ctx);
          assert.equal((f.dataStart + info.dataOffsets[0]) % DTYPE_SIZE[t.dtype], 0, `${ctx}: ${name} misaligned`);
          assert.deepEqual(f.readRaw(name), t.bytes, ctx);
          assert.deepEqual(f.read(name), typedView(t.dtype, t.bytes), ctx);
          if (t.dtype === 'F32') {
            assert.deepEqual(new Uint8Array(f.readF32(name, { allowNonFinite: true }).buffer), t.bytes, ctx);
          }
        }
      } finally {
        f.close();
      }
      assert.deepEqual(fs.readdirSync(path.dirname(p)), ['x.safetensors'], 'temp file left behind');
    }
  });

  it('the streaming writer produces the same bytes, asking for one tensor at a time in file order', () => {
    const tensors = {
      'z.bias': { dtype: 'F32' as Dtype, shape: [3], data: new Float32Array([1, 2, 3]) },
      'a.ids': { dtype: 'I64' as Dtype, shape: [2], data: new BigInt64Array([1n, 2n]) },
      'm.half': { dtype: 'F16' as Dtype, shape: [2, 1], data: f32ToF16Bits(new Float32Array([0.5, -4])) },
    };
    const a = tmpPath();
    writeSafetensors(a, tensors, { format: 'pt' });
    const b = tmpPath();
    const asked: string[] = [];
    const entries = Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength }));
    writeSafetensorsStreaming(b, entries, (name) => {
      asked.push(name);
      return tensors[name as keyof typeof tensors].data;
    }, { format: 'pt' });
    assert.deepEqual(asked, ['a.ids', 'z.bias', 'm.half']);
    assert.deepEqual(fs.readFileSync(b), fs.readFileSync(a));
  });

  it('refuses bad input before writing, and leaves neither the target nor a temp file', () => {
    const cases: Array<[SafetensorsErrorCode, string | undefined, () => void]> = [];
    const p = tmpPath();
    const w = (t: Record<string, unknown>, md?: Record<string, unknown>) => () =>
      writeSafetensors(p, t as Record<string, never>, md as Record<string, string>);
    cases.push(['unknown_dtype', 'a', w({ a: { dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) } })]);
    cases.push(['bad_shape', 'a', w({ a: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } })]);
    cases.push(['bad_shape', 'a', w({ a: { dtype: 'F32', shape: [1.5], data: new Float32Array(0) } })]);
    cases.push(['size_mismatch', 'a', w({ a: { dtype: 'F32', shape: [2], data: new Float32Array(3) } })]);
    cases.push(['size_mismatch', 'a', w({ a: { dtype: 'F16', shape: [2], data: new Uint8Array(3) } })]);
    cases.push(['bad_entry', 'a', w({ a: { dtype: 'F32', shape: [2], data: new Int32Array(2) } })]);
    cases.push(['bad_entry', 'a', w({ a: { dtype: 'F16', shape: [2], data: new Float32Array(1) } })]);
    cases.push(['bad_entry', '__metadata__', w({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })]);
    cases.push(['bad_entry', '\ud800', w({ '\ud800': { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })]);
    cases.push(['bad_metadata', undefined, w({}, { format: 1 })]);
    cases.push(['duplicate_key', 'a', () => writeSafetensorsStreaming(p, [
      { name: 'a', dtype: 'U8', shape: [1] }, { name: 'a', dtype: 'U8', shape: [1] }], () => new Uint8Array(1))]);
    cases.push(['size_mismatch', 'a', () => writeSafetensorsStreaming(p, [{ name: 'a', dtype: 'U8', shape: [2] }], () => new Uint8Array(1))]);
    for (const [code, tensor, fn] of cases) {
      const e = expectError(fn, code, p, tensor);
      assert.deepEqual(fs.readdirSync(path.dirname(p)), [], `${e.message}: left a file behind`);
    }
  });

  it('replaces an existing file atomically: a failure mid-way leaves the old file intact', () => {
    const p = tmpPath();
    writeSafetensors(p, { old: { dtype: 'U8', shape: [1], data: new Uint8Array([42]) } });
    const before = fs.readFileSync(p);
    assert.throws(() => writeSafetensorsStreaming(p, [{ name: 'a', dtype: 'U8', shape: [1] }, { name: 'b', dtype: 'U8', shape: [1] }],
      (name) => {
        if (name === 'b') throw new Error('producer failed');
        return new Uint8Array(1);
      }), /producer failed/);
    assert.deepEqual(fs.readFileSync(p), before);
    assert.deepEqual(fs.readdirSync(path.dirname(p)), ['x.safetensors']);
    writeSafetensors(p, { fresh: { dtype: 'U8', shape: [1], data: new Uint8Array([7]) } });
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.tensors.keys()], ['fresh']);
    f.close();
  });
});

// ----------------------------------------------------------------------------------- F16 / BF16

/** Value of binary16 bits by the textbook formula (independent of the bit tricks under test). */
function f16Value(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

function bf16Value(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 7) & 255;
  const m = h & 127;
  if (e === 255) return m ? NaN : s * Infinity;
  return s * (e === 0 ? m * 2 ** -133 : (1 + m / 128) * 2 ** (e - 127));
}

/**
 * Reference rounding by search: non-negative finite bit patterns 0..maxFinite are increasing in value,
 * so find the neighbours of |x| and take the nearer, ties to the even pattern. `overflow` is the value
 * one ulp above the largest finite one: reaching it (or tying to it, whose pattern is even) gives Inf.
 */
function nearestBits(x: number, value: (h: number) => number, maxFinite: number, infBits: number, overflow: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let lo = 0;
  let hi = maxFinite + 1; // hi is the overflow sentinel
  const val = (h: number) => (h === maxFinite + 1 ? overflow : value(h));
  if (a >= overflow) return sign | infBits;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (val(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - val(lo);
  const dHi = val(hi) - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | (pick === maxFinite + 1 ? infBits : pick);
}

describe('F16 / BF16 conversions', () => {
  it('f32ToF16Bits: hand-computed values, subnormals, specials and ties to even', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2.5, 0xc100], [0.5, 0x3800], [65504, 0x7bff], [0.1, 0x2e66], [1 / 3, 0x3555], [0, 0x0000], [-0, 0x8000],
      [Infinity, 0x7c00], [-Infinity, 0xfc00], [NaN, 0x7e00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [1023 * 2 ** -24, 0x03ff], [-(2 ** -24), 0x8001],
      [65519, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-1e6, 0xfc00], // 65520 is the tie between 65504 and "65536": to even = Inf
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01], // ties to even, above tie
      [2 ** -25, 0x0000], [2 ** -25 + 2 ** -35, 0x0001], [3 * 2 ** -25, 0x0002], [2 ** -14 - 2 ** -25, 0x0400],
      [1e-10, 0x0000], [-1e-10, 0x8000], [2 ** -149, 0x0000],
    ];
    const got = f32ToF16Bits(new Float32Array(cases.map((c) => c[0])));
    assert.deepEqual(hex(got), hex(cases.map((c) => c[1])));
  });

  it('f16BitsToF32: hand-computed values', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1], [0xc100, -2.5], [0x7bff, 65504], [0x0001, 5.960464477539063e-8], [0x03ff, 6.097555160522461e-5],
      [0x0400, 6.103515625e-5], [0x3555, 0.333251953125], [0x8001, -5.960464477539063e-8], [0xfc00, -Infinity], [0x7c00, Infinity],
    ];
    assert.deepEqual([...f16BitsToF32(new Uint16Array(cases.map((c) => c[0])))], cases.map((c) => c[1]));
    assert.ok(Object.is(f16BitsToF32(new Uint16Array([0x8000]))[0], -0));
    assert.ok(Number.isNaN(f16BitsToF32(new Uint16Array([0x7e00]))[0]));
  });

  it('f16BitsToF32 is exact for all 65536 patterns and f32ToF16Bits inverts it (NaNs stay NaN, sign kept)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const up = f16BitsToF32(all);
    const back = f32ToF16Bits(up);
    for (let h = 0; h < 65536; h++) {
      const v = f16Value(h);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(up[h]), hex([h])[0]);
        assert.equal(back[h] & 0x7c00, 0x7c00);
        assert.notEqual(back[h] & 0x3ff, 0);
        assert.equal(back[h] & 0x8000, h & 0x8000);
      } else {
        assert.ok(Object.is(up[h], v), `${hex([h])[0]}: ${up[h]} != ${v}`);
        assert.equal(back[h], h);
      }
    }
  });

  it('f32ToF16Bits agrees with a nearest-value search on 100k random floats and all f16 midpoints', () => {
    const rand = mulberry32(7);
    const xs: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      // exponents concentrated on the f16 range (incl. subnormal and overflow), random mantissa bits
      const bits = (((rand() * 2) | 0) << 31) | ((96 + Math.floor(rand() * 50)) << 23) | Math.floor(rand() * 0x800000);
      xs.push(new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]);
    }
    for (let h = 0; h < 0x7bff; h++) xs.push((f16Value(h) + f16Value(h + 1)) / 2, -(f16Value(h) + f16Value(h + 1)) / 2); // exact in f32
    xs.push(65520, 65504 + 15.99);
    const got = f32ToF16Bits(new Float32Array(xs));
    const x32 = new Float32Array(xs);
    for (let i = 0; i < xs.length; i++) {
      const want = nearestBits(x32[i], f16Value, 0x7bff, 0x7c00, 65536);
      if (got[i] !== want) assert.fail(`f16(${x32[i]}) = ${hex([got[i]])[0]}, nearest search says ${hex([want])[0]}`);
    }
  });

  it('f32ToBF16Bits: hand-computed values, subnormals, specials and ties to even', () => {
    const fromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];
    const cases: Array<[number, number]> = [
      [1, 0x3f80], [-2.5, 0xc020], [0.1, 0x3dcd], [65504, 0x4780], [0, 0], [-0, 0x8000],
      [Infinity, 0x7f80], [-Infinity, 0xff80], [NaN, 0x7fc0], [fromBits(0x7f7fffff), 0x7f80], [fromBits(0x7f7f0000), 0x7f7f],
      [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [fromBits(0x00008000), 0x0000], [fromBits(0x00018000), 0x0002], [fromBits(0x00010000), 0x0001], [fromBits(0x80008001), 0x8001],
    ];
    const got = f32ToBF16Bits(new Float32Array(cases.map((c) => c[0])));
    assert.deepEqual(hex(got), hex(cases.map((c) => c[1])));
    const nanPayload = f32ToBF16Bits(new Float32Array(new Uint32Array([0xff800001]).buffer)); // signalling -NaN, payload in low bits
    assert.equal(nanPayload[0], 0xffc0);
  });

  it('bf16BitsToF32 is exact for all 65536 patterns and f32ToBF16Bits inverts it', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const up = bf16BitsToF32(all);
    const back = f32ToBF16Bits(up);
    for (let h = 0; h < 65536; h++) {
      const v = bf16Value(h);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(up[h]));
        assert.equal(back[h] & 0x7f80, 0x7f80);
        assert.notEqual(back[h] & 0x7f, 0);
      } else {
        assert.ok(Object.is(up[h], v), `${hex([h])[0]}: ${up[h]} != ${v}`);
        assert.equal(back[h], h);
      }
    }
  });

  it('f32ToBF16Bits agrees with a nearest-value search on 100k random floats', () => {
    const rand = mulberry32(11);
    const bits = new Uint32Array(100_000);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rand() * 2 ** 32);
    bits[0] = 0x3f808000; // a tie
    bits[1] = 0x7f7f8000; // tie between max bf16 and the overflow point
    const x = new Float32Array(bits.buffer);
    const got = f32ToBF16Bits(x);
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(x[i])) continue; // covered above
      const want = nearestBits(x[i], bf16Value, 0x7f7f, 0x7f80, 2 ** 128);
      if (got[i] !== want) assert.fail(`bf16(${x[i]}) = ${hex([got[i]])[0]}, nearest search says ${hex([want])[0]}`);
    }
  });
});

// ------------------------------------------------------------------------------------- checkpoints

describe('Checkpoint: model folders and sharded checkpoints', () => {
  function folder(files: Record<string, Record<string, number[]> | string | Uint8Array>): string {
    const dir = path.dirname(tmpPath());
    for (const [name, content] of Object.entries(files)) {
      const p = path.join(dir, name);
      if (typeof content === 'string' || content instanceof Uint8Array) fs.writeFileSync(p, content);
      else writeSafetensors(p, Object.fromEntries(Object.entries(content).map(([t, v]) => [t, { dtype: 'F32', shape: [v.length], data: new Float32Array(v) }])));
    }
    return dir;
  }
  const index = (weightMap: Record<string, string>) => JSON.stringify({ metadata: { total_size: 16 }, weight_map: weightMap });
  const shardA = { 'a.weight': [1, 2], 'a.bias': [3] };
  const shardB = { 'b.weight': [4] };
  const goodMap = { 'a.weight': 'model-00001-of-00002.safetensors', 'a.bias': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' };

  it('opens a single model.safetensors', () => {
    const dir = folder({ 'model.safetensors': shardA });
    const ckpt = Checkpoint.open(dir);
    assert.deepEqual(ckpt.files, [path.join(dir, 'model.safetensors')]);
    assert.deepEqual([...ckpt.readF32('a.weight')], [1, 2]);
    assert.equal(ckpt.tensors.get('a.bias')!.file, path.join(dir, 'model.safetensors'));
    expectError(() => ckpt.readF32('missing'), 'unknown_tensor', dir, 'missing');
    ckpt.close();
  });

  it('opens a sharded checkpoint through its index and reads from every shard', () => {
    const dir = folder({
      'model.safetensors.index.json': index(goodMap),
      'model-00001-of-00002.safetensors': shardA, 'model-00002-of-00002.safetensors': shardB,
    });
    const ckpt = Checkpoint.open(dir);
    assert.deepEqual(ckpt.files, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((f) => path.join(dir, f)));
    assert.deepEqual([...ckpt.tensors.keys()].sort(), ['a.bias', 'a.weight', 'b.weight']);
    assert.deepEqual([...ckpt.readF32('b.weight')], [4]);
    assert.deepEqual([...ckpt.readF32('a.bias')], [3]);
    assert.equal(ckpt.tensors.get('b.weight')!.file, path.join(dir, 'model-00002-of-00002.safetensors'));
    ckpt.close();
  });

  it('prefers model.safetensors over an index, like transformers', () => {
    const dir = folder({ 'model.safetensors': shardB, 'model.safetensors.index.json': 'not even json' });
    const ckpt = Checkpoint.open(dir);
    assert.deepEqual([...ckpt.tensors.keys()], ['b.weight']);
    ckpt.close();
  });

  it('bad_shard_name: "..", absolute paths, separators, empty', () => {
    for (const shard of ['../model.safetensors', '/etc/passwd', 'sub/model.safetensors', 'sub\\model.safetensors', '', '..', '.', 'a\0b']) {
      const dir = folder({ 'model.safetensors.index.json': index({ 'a.weight': shard }) });
      const idx = path.join(dir, 'model.safetensors.index.json');
      expectError(() => Checkpoint.open(dir), 'bad_shard_name', idx, 'a.weight', /not a plain file name/);
    }
  });

  it('missing_shard / tensor_not_in_shard / tensor_not_in_index / duplicate_tensor', () => {
    const s1 = 'model-00001-of-00002.safetensors';
    const s2 = 'model-00002-of-00002.safetensors';
    const idx = (dir: string) => path.join(dir, 'model.safetensors.index.json');
    const missing = folder({ 'model.safetensors.index.json': index(goodMap), [s1]: shardA });
    expectError(() => Checkpoint.open(missing), 'missing_shard', idx(missing), 'b.weight', new RegExp(s2));
    const wrong = folder({ 'model.safetensors.index.json': index({ ...goodMap, 'a.bias': s2 }), [s1]: shardA, [s2]: shardB });
    expectError(() => Checkpoint.open(wrong), 'tensor_not_in_shard', idx(wrong), 'a.bias', /says shard "model-00002-of-00002.safetensors", but it is stored in "model-00001/);
    const absent = folder({ 'model.safetensors.index.json': index({ ...goodMap, 'c.weight': s2 }), [s1]: shardA, [s2]: shardB });
    expectError(() => Checkpoint.open(absent), 'tensor_not_in_shard', idx(absent), 'c.weight', /which does not contain it/);
    const { 'a.bias': _, ...withoutBias } = goodMap;
    const unlisted = folder({ 'model.safetensors.index.json': index(withoutBias), [s1]: shardA, [s2]: shardB });
    expectError(() => Checkpoint.open(unlisted), 'tensor_not_in_index', idx(unlisted), 'a.bias');
    const twice = folder({ 'model.safetensors.index.json': index(goodMap), [s1]: shardA, [s2]: { ...shardB, 'a.bias': [3] } });
    expectError(() => Checkpoint.open(twice), 'duplicate_tensor', idx(twice), 'a.bias', /two shards/);
  });

  it('bad_index / duplicate_key in the index; a corrupt shard reports the shard file', () => {
    const cases: Array<[string, SafetensorsErrorCode, string | undefined]> = [
      ['{', 'bad_index', undefined],
      ['[]', 'bad_index', undefined],
      ['{"metadata":{}}', 'bad_index', undefined],
      ['{"weight_map":{}}', 'bad_index', undefined],
      ['{"weight_map":{"a.weight":3}}', 'bad_index', 'a.weight'],
      ['{"weight_map":[]}', 'bad_index', undefined],
      ['{"metadata":"x","weight_map":{"a":"m.safetensors"}}', 'bad_index', undefined],
      ['{"weight_map":{"a.weight":"x.safetensors","a.weight":"y.safetensors"}}', 'duplicate_key', 'a.weight'],
    ];
    for (const [text, code, tensor] of cases) {
      const dir = folder({ 'model.safetensors.index.json': text });
      expectError(() => Checkpoint.open(dir), code, path.join(dir, 'model.safetensors.index.json'), tensor);
    }
    const corrupt = folder({ 'model.safetensors.index.json': index(goodMap), 'model-00001-of-00002.safetensors': shardA, 'model-00002-of-00002.safetensors': 'garbage!!' });
    expectError(() => Checkpoint.open(corrupt), 'header_too_large', path.join(corrupt, 'model-00002-of-00002.safetensors'));
  });

  it('pickle_only: refuses pytorch_model.bin / .pt / .pth / .ckpt and says how to convert', () => {
    for (const name of ['pytorch_model.bin', 'weights.pt', 'model.pth', 'last.ckpt', 'pytorch_model-00001-of-00002.bin']) {
      const dir = folder({ [name]: 'PK\x03\x04 pickle', 'config.json': '{}' });
      const e = expectError(() => Checkpoint.open(dir), 'pickle_only', dir, undefined, /execute arbitrary code/);
      assert.ok(e.message.includes(name));
      assert.match(e.message, /save_pretrained\('.*', safe_serialization=True\)/);
      assert.match(e.message, /safetensors\.torch import save_file/);
    }
  });

  it('no_weights: names the folder and the expected file', () => {
    const empty = folder({ 'config.json': '{}' });
    expectError(() => Checkpoint.open(empty), 'no_weights', empty, undefined, /no model\.safetensors or model\.safetensors\.index\.json/);
    const orphan = folder({ 'model-00001-of-00002.safetensors': shardA });
    expectError(() => Checkpoint.open(orphan), 'no_weights', orphan, undefined, /found model-00001-of-00002\.safetensors/);
    const nowhere = path.join(tmp, 'no-such-model');
    expectError(() => Checkpoint.open(nowhere), 'no_weights', nowhere, undefined, /does not exist \(expected model\.safetensors/);
    const file = tmpPath('model.safetensors');
    fs.writeFileSync(file, '');
    expectError(() => Checkpoint.open(file), 'no_weights', file, undefined, /not a folder/);
  });
});

// ------------------------------------------------------------------------------------ PyTorch check


// A dependency-free safetensors reader/writer in Python (struct + json) and torch's own dtype casts.
// It re-writes every tensor it read (raw bytes) plus torch's up-casts of the F16/BF16 tensors and
// torch's down-casts of the F32 tensor, so the JS side can compare bit for bit.
const PY_SCRIPT = String.raw`
import json, struct, sys, torch
src, dst = sys.argv[1], sys.argv[2]
DT = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64, 'U8': torch.uint8, 'F64': torch.float64}
with open(src, 'rb') as f:
    blob = f.read()
n = struct.unpack('<Q', blob[:8])[0]
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]
out = {}
for name, info in header.items():
    if name == '__metadata__':
        continue
    b, e = info['data_offsets']
    t = torch.frombuffer(bytearray(data[b:e]), dtype=DT[info['dtype']]).reshape(info['shape']) if e > b else torch.zeros(info['shape'], dtype=DT[info['dtype']])
    out['copy/' + name] = t
    if info['dtype'] in ('F16', 'BF16'):
        out['torch_f32/' + name] = t.float()
    if info['dtype'] == 'F32':
        out['torch_f16/' + name] = t.half()
        out['torch_bf16/' + name] = t.bfloat16()
RT = {v: k for k, v in DT.items()}
entries, chunks, offset = {'__metadata__': {'writer': 'python', 'seen': json.dumps(header['__metadata__'])}}, [], 0
for name in sorted(out):  # name order, not alignment order: our reader must not depend on the layout
    t = out[name].contiguous()
    raw = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.float16, torch.bfloat16) else t.numpy().tobytes()
    entries[name] = {'dtype': RT[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
    chunks.append(raw)
    offset += len(raw)
hb = json.dumps(entries).encode('utf-8')
with open(dst, 'wb') as f:
    f.write(struct.pack('<Q', len(hb)) + hb + b''.join(chunks))
`;

describe('compatibility with PyTorch (optional)', function () {
  let torchVersion: string | undefined;
  before(function () {
    try {
      torchVersion = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      console.log(`      (skipped: ${PYTHON} cannot import torch)`);
      this.skip();
    }
  });

  it(`a python/torch reader sees our bytes, and torch's F16/BF16 casts match ours bit for bit`, function () {
    this.timeout(120_000);
    const rand = mulberry32(99);
    const bits = new Uint32Array(4096);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rand() * 2 ** 32);
    const x = new Float32Array(bits.buffer);
    const scaled = Float32Array.from({ length: 4096 }, () => (rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 30));
    scaled.set([65504, 65520, 65519.99, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, Infinity, -Infinity, NaN, -0], 0);
    const f16 = new Uint16Array(65536).map((_, i) => i);
    const src = tmpPath('in.safetensors');
    writeSafetensors(src, {
      raw: { dtype: 'F32', shape: [64, 64], data: x },
      scaled: { dtype: 'F32', shape: [4096], data: scaled },
      half: { dtype: 'F16', shape: [256, 256], data: f16 },
      brain: { dtype: 'BF16', shape: [65536], data: f16 },
      ids: { dtype: 'I64', shape: [1, 3], data: new BigInt64Array([0n, -1n, 1n << 62n]) },
      mask: { dtype: 'U8', shape: [0, 5], data: new Uint8Array(0) },
      one: { dtype: 'F64', shape: [], data: new Float64Array([Math.PI]) },
    }, { format: 'pt', 'ünï': '😀 "quoted"\n' });
    const dst = tmpPath('out.safetensors');
    execFileSync(PYTHON, ['-c', PY_SCRIPT, src, dst], { timeout: 120_000, stdio: ['ignore', 'ignore', 'pipe'] });

    const a = SafetensorsFile.open(src);
    const b = SafetensorsFile.open(dst);
    try {
      assert.deepEqual(JSON.parse(b.metadata.seen), { ...a.metadata });
      for (const name of a.tensors.keys()) {
        assert.deepEqual(b.tensors.get(`copy/${name}`)!.shape, a.tensors.get(name)!.shape, name);
        assert.deepEqual(b.readRaw(`copy/${name}`), a.readRaw(name), name);
      }
      for (const name of ['half', 'brain']) {
        const ours = new Uint32Array(a.readF32(name, { allowNonFinite: true }).buffer);
        const theirs = new Uint32Array(b.readF32(`torch_f32/${name}`, { allowNonFinite: true }).buffer);
        const bad = ours.findIndex((v, i) => v !== theirs[i]);
        assert.equal(bad, -1, `${name}[${bad}]: ours ${ours[bad]?.toString(16)} torch ${theirs[bad]?.toString(16)} (torch ${torchVersion})`);
      }
      for (const name of ['raw', 'scaled']) {
        const values = a.readF32(name, { allowNonFinite: true });
        for (const [kind, ours] of [['f16', f32ToF16Bits(values)], ['bf16', f32ToBF16Bits(values)]] as const) {
          const theirs = b.read(`torch_${kind}/${name}`) as Uint16Array;
          const isNaN16 = (h: number) => (kind === 'f16' ? (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 : (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0);
          const bad = ours.findIndex((h, i) => h !== theirs[i] && !(isNaN16(h) && isNaN16(theirs[i])));
          assert.equal(bad, -1, `${kind}(${values[bad]}): ours 0x${ours[bad]?.toString(16)} torch 0x${theirs[bad]?.toString(16)}`);
        }
      }
    } finally {
      a.close();
      b.close();
    }
  });
});
