// Fuzzing the safetensors reader: mutated files (bytes, the length prefix, JSON tokens and the header's
// structure) must only ever produce a SafetensorsError naming the file, or open and read back
// consistently; never a RangeError/TypeError, a hang, or a read outside the file. Fixed seeds: every
// iteration derives its own PRNG from (seed, i), so a failure names the iteration that reproduces it.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Checkpoint } from '../../weights/checkpoint';
import { SafetensorsError } from '../../weights/errors';
import { DTYPE_SIZE, SafetensorsFile, f32ToBF16Bits, f32ToF16Bits, writeSafetensors } from '../../weights/safetensors';

const SEED = 0x5afe7e45;
const FILE_ITERATIONS = 12_000;
const INDEX_ITERATIONS = 2_000;

import { mulberry32 } from '../../devtools/rng';

type Rand = () => number;
const int = (rand: Rand, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[int(rand, xs.length)];

// ----------------------------------------------------------------------------------------- seeds

function seedFiles(dir: string): Uint8Array[] {
  const seeds: Uint8Array[] = [];
  const write = (tensors: Parameters<typeof writeSafetensors>[1], metadata?: Record<string, string>) => {
    const p = path.join(dir, `seed${seeds.length}.safetensors`);
    writeSafetensors(p, tensors, metadata);
    seeds.push(new Uint8Array(fs.readFileSync(p)));
  };
  const x = new Float32Array([0.5, -1, 3, 1e-8, 65504, -0]);
  write({
    'embeddings.word_embeddings.weight': { dtype: 'F32', shape: [3, 2], data: x },
    'embeddings.position_ids': { dtype: 'I64', shape: [1, 4], data: new BigInt64Array([0n, 1n, 2n, 3n]) },
    'encoder.layer.0.attention.self.query.bias': { dtype: 'F16', shape: [6], data: f32ToF16Bits(x) },
    'pooler.dense.weight': { dtype: 'BF16', shape: [2, 3], data: f32ToBF16Bits(x) },
  }, { format: 'pt' });
  write({
    s: { dtype: 'F64', shape: [], data: new Float64Array([Math.E]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    mask: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    i8: { dtype: 'I8', shape: [2], data: new Int8Array([-1, 1]) },
    i16: { dtype: 'I16', shape: [1], data: new Int16Array([-7]) },
    i32: { dtype: 'I32', shape: [2, 1], data: new Int32Array([5, 6]) },
    u8: { dtype: 'U8', shape: [2], data: new Uint8Array([9, 8]) },
  }, { 'ünï': '😀 "q"\\', '': '' });
  write({});
  write({ nan: { dtype: 'F32', shape: [2], data: new Float32Array([1, NaN]) } });
  // Hand-made: unpadded header with whitespace and tensors in reverse offset order (other writers do this).
  const header = new TextEncoder().encode(
    ' { "b" : {"dtype":"F32","shape":[1],"data_offsets":[4,8]},\n"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]} }\t');
  const hand = new Uint8Array(8 + header.length + 8);
  new DataView(hand.buffer).setBigUint64(0, BigInt(header.length), true);
  hand.set(header, 8);
  hand.set(new Uint8Array(new Float32Array([1, 2]).buffer), 8 + header.length);
  seeds.push(hand);
  return seeds;
}

// ------------------------------------------------------------------------------------- mutations

const NUMBERS = ['0', '1', '2', '-1', '-0', '1.5', '1.0', '1e3', '1E+2', '4294967296', '9007199254740991', '9007199254740992',
  '18446744073709551615', '18446744073709551616', '99999999999999999999999999', '00', '01', '1.', '.5', 'NaN', 'Infinity', '-', '+1'];
const STRINGS = ['"F32"', '"F16"', '"BF16"', '"F64"', '"I64"', '"U8"', '"BOOL"', '"F8_E4M3"', '"U16"', '"f32"', '""', '"__metadata__"',
  '"dtype"', '"shape"', '"data_offsets"', '"\\u0000"', '"\\ud800"', '"\\uDFFF"', '"\\ud83d\\ude00"', '"😀"', '"\\""', '"a\\nb"',
  '"\\x"', '"unterminated', '"__proto__"', '"constructor"'];
const STRUCTURE = ['{', '}', '[', ']', ',', ':', 'null', 'true', 'false', '[]', '{}', '[[[[[[[[[[', '{"x":', ' ', '\u0000', '\ufeff'];
const TOKEN = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"|[{}[\]:,]/g;

interface Parts { header: Uint8Array; data: Uint8Array }

function split(bytes: Uint8Array): Parts | undefined {
  if (bytes.length < 8) return undefined;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) return undefined;
  return { header: bytes.slice(8, 8 + n), data: bytes.slice(8 + n) };
}

function join(header: Uint8Array, data: Uint8Array, rand: Rand): Uint8Array {
  const pad = rand() < 0.5 ? (8 - (header.length % 8)) % 8 : 0;
  const out = new Uint8Array(8 + header.length + pad + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length + pad), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + header.length + pad);
  out.set(data, 8 + header.length + pad);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Replace one JSON token (number, string or punctuation) of the header text. */
function mutateToken(p: Parts, rand: Rand): Parts {
  const text = decoder.decode(p.header);
  const tokens = [...text.matchAll(TOKEN)];
  if (tokens.length === 0) return p;
  const t = pick(rand, tokens);
  const replacement = pick(rand, [NUMBERS, STRINGS, STRUCTURE, [t[0] + t[0]], ['']]);
  const r = typeof replacement === 'string' ? replacement : pick(rand, replacement);
  return { header: encoder.encode(text.slice(0, t.index) + r + text.slice(t.index! + t[0].length)), data: p.data };
}

/** Edit the parsed header object (so the JSON stays valid and validation further down is reached). */
function mutateStructure(p: Parts, rand: Rand): Parts {
  let obj: Record<string, any>;
  try {
    obj = JSON.parse(decoder.decode(p.header));
  } catch {
    return p;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return p;
  const names = Object.keys(obj).filter((k) => k !== '__metadata__');
  const name = names.length ? pick(rand, names) : 't';
  if (typeof obj[name] !== 'object' || obj[name] === null) obj[name] = { dtype: 'U8', shape: [1], data_offsets: [0, 1] };
  const e = obj[name];
  const weird = () => pick(rand, [-1, 0, 1, 2, 3, 1.5, 2 ** 53, 2 ** 32, 1e300, null, '1', [], {}, true]);
  let data = p.data;
  switch (int(rand, 19)) {
    case 0: e.dtype = pick(rand, [...Object.keys(DTYPE_SIZE), 'F8_E5M2', 'U64', 'x', 1, null]); break;
    case 1: if (Array.isArray(e.shape)) e.shape.push(pick(rand, [0, 1, 2, 4, 2 ** 31])); break;
    case 2: if (Array.isArray(e.shape)) e.shape.pop(); break;
    case 3: if (Array.isArray(e.shape) && e.shape.length) e.shape[int(rand, e.shape.length)] = weird(); break;
    case 4: if (Array.isArray(e.data_offsets)) e.data_offsets[int(rand, 2)] += pick(rand, [-8, -4, -2, -1, 1, 2, 4, 8]); break;
    case 5: if (Array.isArray(e.data_offsets)) e.data_offsets[int(rand, 2)] = weird(); break;
    case 6: if (Array.isArray(e.data_offsets)) e.data_offsets.reverse(); break;
    case 7: delete e[pick(rand, ['dtype', 'shape', 'data_offsets'])]; e[pick(rand, ['extra', 'dtype'])] = weird(); break;
    case 8: delete obj[name]; break;
    case 9: obj[name + '_copy'] = JSON.parse(JSON.stringify(e)); break;
    case 10: obj.__metadata__ = pick(rand, [{ a: 'b' }, { a: 1 }, { a: null }, [], 'x', null, { a: { b: 'c' } }, {}]); break;
    case 11: obj[name] = weird(); break;
    case 12: data = data.slice(0, Math.max(0, data.length - 1 - int(rand, 8))); break;
    case 13: data = concat(data, new Uint8Array(1 + int(rand, 8))); break;
    // edits that keep the file valid, so reads get exercised too
    case 14: obj[pick(rand, ['ü.weight', '😀', '', '__proto__', 'a"b\\c', name + '.x'])] = e; delete obj[name]; break;
    case 15: if (Array.isArray(e.shape)) e.shape = [...e.shape, 1].reverse(); break;
    case 16: obj.__metadata__ = { format: pick(rand, ['pt', '日本', '\n', '']) }; break;
    case 17: obj = Object.fromEntries(Object.entries(obj).reverse()); break;
    case 18: return { header: encoder.encode(pick(rand, ['[]', '"x"', '1', 'null', 'true', '[{}]'])), data };
  }
  let text = JSON.stringify(obj);
  if (rand() < 0.15) {
    // duplicate a key: JSON.stringify can't, so splice a copy of the first `"name":{...}` member
    const m = /"((?:[^"\\]|\\.)*)":(\{[^{}]*\}|"(?:[^"\\]|\\.)*")/.exec(text);
    if (m) text = text.slice(0, m.index) + m[0] + ',' + text.slice(m.index);
  }
  return { header: encoder.encode(text), data };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function mutate(seed: Uint8Array, rand: Rand): Uint8Array {
  let bytes: Uint8Array = seed.slice();
  const rounds = pick(rand, [1, 1, 1, 2, 2, 3]);
  for (let r = 0; r < rounds; r++) {
    const p = split(bytes);
    const kind = int(rand, 9);
    if (kind === 0 && p) {
      const t = mutateToken(p, rand);
      bytes = join(t.header, t.data, rand);
    } else if ((kind === 1 || kind === 2) && p) {
      const s = mutateStructure(p, rand);
      bytes = join(s.header, s.data, rand);
    } else if (kind === 3 && bytes.length > 8) {
      // flip bits/bytes inside the header region (mostly) or anywhere
      const at = rand() < 0.8 && p ? 8 + int(rand, Math.max(1, p.header.length)) : int(rand, bytes.length);
      if (at < bytes.length) bytes[at] = rand() < 0.5 ? bytes[at] ^ (1 << int(rand, 8)) : int(rand, 256);
    } else if (kind === 4) {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, Math.min(8, bytes.length));
      if (bytes.length >= 8) {
        const n = p ? BigInt(p.header.length) : 0n;
        const choices = [n - 1n, n + 1n, n + BigInt(int(rand, 64)) - 32n, 0n, (1n << 64n) - 1n, 100_000_000n, 100_000_001n,
          BigInt(bytes.length - 8), BigInt(bytes.length - 7), BigInt(int(rand, 2 ** 32)), 1n << 63n];
        const v = pick(rand, choices);
        dv.setBigUint64(0, v < 0n ? 0n : v, true);
      }
    } else if (kind === 5) {
      bytes = bytes.slice(0, int(rand, bytes.length + 1)); // truncate
    } else if (kind === 6) {
      bytes = concat(bytes, Uint8Array.from({ length: 1 + int(rand, 16) }, () => int(rand, 256)));
    } else if (kind === 7 && p) {
      // insert or delete bytes in the header, keeping the prefix consistent half of the time
      const h = [...p.header];
      const at = int(rand, h.length + 1);
      if (rand() < 0.5) h.splice(at, 1 + int(rand, 4));
      else h.splice(at, 0, ...Array.from({ length: 1 + int(rand, 4) }, () => pick(rand, [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0xff, 0xc3, 0xe2, 0x80, 0x00, int(rand, 256)])));
      const header = new Uint8Array(h);
      bytes = rand() < 0.5 ? join(header, p.data, rand) : concat(concat(bytes.slice(0, 8), header), p.data);
    } else if (kind === 8 && p && rand() < 0.25) {
      // deep nesting and long strings: must not blow the stack or hang
      const text = decoder.decode(p.header);
      const colons = [...text.matchAll(/:/g)].map((m) => m.index! + 1); // value positions reach the recursion
      const at = colons.length && rand() < 0.7 ? pick(rand, colons) : int(rand, text.length + 1);
      const bomb = pick(rand, ['['.repeat(100_000), '{"a":'.repeat(50_000), '"' + 'x'.repeat(20_000) + '"', '[' + '0,'.repeat(10_000) + '0]']);
      bytes = join(encoder.encode(text.slice(0, at) + bomb + text.slice(at)), p.data, rand);
    }
  }
  return bytes;
}

// --------------------------------------------------------------------------------------- harness

/** Counts positioned reads that reach outside [0, file size); installed on the real fs module. */
function watchReads(): { sizeOf: Map<number, number>; violations: string[]; restore: () => void } {
  const nodeFs: typeof fs = require('node:fs'); // `import *` bindings are read-only; patch the module object
  const original = nodeFs.readSync;
  const sizeOf = new Map<number, number>();
  const violations: string[] = [];
  (nodeFs as { readSync: unknown }).readSync = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
    const size = sizeOf.get(fd) ?? nodeFs.fstatSync(fd).size;
    sizeOf.set(fd, size);
    if (!(pos >= 0 && len >= 0 && pos + len <= size && off + len <= buf.length)) {
      violations.push(`read(pos=${pos}, len=${len}) on a ${size}-byte file`);
    }
    return original(fd, buf, off, len, pos);
  };
  return { sizeOf, violations, restore: () => ((nodeFs as { readSync: unknown }).readSync = original) };
}

/** Reads every tensor every way and checks the layout invariants of a file that opened. */
function exercise(f: SafetensorsFile, fileSize: number): void {
  let covered = 0;
  for (const t of f.tensors.values()) {
    assert.equal(t.dataOffsets[0], covered, `${t.name} does not start where the previous tensor ended`);
    covered = t.dataOffsets[1];
    const raw = f.readRaw(t.name);
    assert.equal(raw.length, t.dataOffsets[1] - t.dataOffsets[0]);
    const n = t.shape.reduce((a, d) => a * d, 1);
    assert.equal(raw.length, n * DTYPE_SIZE[t.dtype]);
    assert.equal(f.read(t.name).length, n);
    if (['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) {
      assert.equal(f.readF32(t.name, { allowNonFinite: true }).length, n);
      try {
        f.readF32(t.name);
      } catch (e) {
        if (!(e instanceof SafetensorsError) || e.code !== 'non_finite') throw e;
      }
    }
  }
  assert.equal(f.dataStart + covered, fileSize, 'tensors do not cover the data buffer exactly');
}

describe('safetensors fuzz (fixed seed)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-fuzz-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it(`${FILE_ITERATIONS} mutated files: only SafetensorsError, no read outside the file`, () => {
    const seeds = seedFiles(tmp);
    // A fresh name per iteration: rewriting one file in place makes ext4 flush it on every close.
    const codes = new Map<string, number>();
    let opened = 0;
    const watch = watchReads();
    const started = Date.now();
    let slowest = 0;
    try {
      for (let i = 0; i < FILE_ITERATIONS; i++) {
        const rand = mulberry32(SEED ^ Math.imul(i + 1, 0x9e3779b1));
        const bytes = mutate(pick(rand, seeds), rand);
        const target = path.join(tmp, `fuzz-${i}.safetensors`);
        fs.writeFileSync(target, bytes);
        watch.sizeOf.clear();
        const t0 = Date.now();
        try {
          const f = SafetensorsFile.open(target);
          try {
            exercise(f, bytes.length);
          } finally {
            f.close();
          }
          opened++;
        } catch (e) {
          if (!(e instanceof SafetensorsError) || e.file !== target || !e.message.includes(target)) {
            const repro = path.join(os.tmpdir(), `safetensors-fuzz-failure-${i}.bin`);
            fs.writeFileSync(repro, bytes);
            assert.fail(`iteration ${i} (bytes saved to ${repro}): ${e instanceof Error ? e.stack : String(e)}`);
          }
          codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        }
        slowest = Math.max(slowest, Date.now() - t0);
        fs.unlinkSync(target);
      }
    } finally {
      watch.restore();
    }
    const summary = [...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    console.log(`      ${FILE_ITERATIONS} files in ${Date.now() - started} ms (slowest ${slowest} ms): opened ${opened}; ${summary}`);
    assert.deepEqual(watch.violations, []);
    // The mutations must reach deep validation, not only JSON syntax errors.
    for (const code of ['too_short', 'header_too_large', 'header_beyond_file', 'header_not_utf8', 'header_not_json', 'header_not_object',
      'duplicate_key', 'bad_entry', 'unknown_dtype', 'bad_shape', 'bad_offsets', 'size_mismatch', 'offsets_out_of_bounds',
      'offsets_overlap', 'offsets_hole', 'trailing_bytes', 'bad_metadata']) {
      assert.ok((codes.get(code) ?? 0) > 0, `the fuzzer never produced ${code}`);
    }
    assert.ok(opened > FILE_ITERATIONS / 50, `only ${opened} mutated files opened: mutations too destructive to test reads`);
  });

  it(`${INDEX_ITERATIONS} mutated model.safetensors.index.json: only SafetensorsError`, () => {
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir);
    const shard = (name: string, tensors: string[]) => writeSafetensors(path.join(dir, name),
      Object.fromEntries(tensors.map((t) => [t, { dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) }])));
    shard('model-00001-of-00002.safetensors', ['a', 'b']);
    shard('model-00002-of-00002.safetensors', ['c']);
    const index = JSON.stringify({ metadata: { total_size: 12 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' } });
    const replacements = [...NUMBERS, ...STRINGS, ...STRUCTURE, '"../model-00001-of-00002.safetensors"', '"/etc/passwd"',
      '"model-00002-of-00002.safetensors"', '"model-00001-of-00002.safetensors"', '"d"', '"weight_map"', '"sub/x"'];
    const codes = new Map<string, number>();
    let opened = 0;
    for (let i = 0; i < INDEX_ITERATIONS; i++) {
      const rand = mulberry32(SEED ^ Math.imul(i + 7, 0x85ebca6b));
      let text = index;
      for (let r = 1 + int(rand, 2); r > 0; r--) {
        const tokens = [...text.matchAll(TOKEN)];
        const t = pick(rand, tokens);
        if (rand() < 0.1) {
          // duplicate a `"key":"value"` member
          const members = [...text.matchAll(/"[^"]*":"[^"]*"/g)];
          if (members.length) {
            const m = pick(rand, members);
            text = text.slice(0, m.index) + m[0] + ',' + text.slice(m.index);
          }
        } else {
          text = text.slice(0, t.index) + pick(rand, replacements) + text.slice(t.index! + t[0].length);
        }
      }
      const bytes = encoder.encode(text);
      if (rand() < 0.1) bytes[int(rand, bytes.length)] = int(rand, 256);
      const indexPath = path.join(dir, 'model.safetensors.index.json');
      fs.rmSync(indexPath, { force: true }); // fresh inode: see above
      fs.writeFileSync(indexPath, bytes);
      try {
        Checkpoint.open(dir).close();
        opened++;
      } catch (e) {
        if (!(e instanceof SafetensorsError)) assert.fail(`iteration ${i}, index ${JSON.stringify(text)}: ${e instanceof Error ? e.stack : String(e)}`);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
    }
    const summary = [...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    console.log(`      ${INDEX_ITERATIONS} indexes: opened ${opened}; ${summary}`);
    for (const code of ['bad_index', 'bad_shard_name', 'missing_shard', 'tensor_not_in_shard', 'tensor_not_in_index', 'duplicate_key']) {
      assert.ok((codes.get(code) ?? 0) > 0, `the index fuzzer never produced ${code}`);
    }
  });
});
