/**
 * Fuzzing whole model folders: a valid tiny folder with one mutation in config.json,
 * tokenizer.json, tokenizer_config.json, vocab.txt, 1_Pooling/config.json or the safetensors
 * header (a value swapped for a hostile one, a field deleted, the file cut short, a byte
 * changed, invalid UTF-8). Every mutated folder must load (and embed) or fail with one of the
 * loader's own errors naming a file of the folder — never a TypeError/RangeError from deep
 * inside, a stack overflow or a hang — and `e5 verify` must agree with the load and exit 1 or 3
 * with one line and no stack trace. Seeded; bounded by an iteration count and a time budget.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadModel } from '../../e5/model';
import { testBackend } from '../support/backend';
import { e5 } from '../support/cli';
import { cachedModel, Rng } from '../../devtools/generate-model';

const SEED = 20261204;
const ITERATIONS = 160;
const BUDGET_MS = 40_000;
const CLI_CHECKS = 6;

/** The loader's own error classes: anything else escaping a load is a bug. */
const LOADER_ERRORS = new Set([
  'ConfigError', 'TokenizerError', 'SentenceTransformersError', 'SafetensorsError', 'ParamsError', 'ModelFolderError',
  'FolderAgreementError', 'ModelFileError',
]);

const DEEP = '@@DEEP@@'; // replaced by 100,000 nested arrays in the written text
const VALUES: unknown[] = [
  null, true, false, 0, -1, 1, 2, 0.5, 1e308, -1e308, 2 ** 53, 10 ** 6, 10 ** 15, '', 'x', 'gelu', '[UNK]', '##', [], {}, [1, 2], { a: 1 },
  'a'.repeat(100_000), DEEP, '\u0000', '\ud800',
];

type Mutation = { file: string; what: string; apply: (bytes: Buffer) => Buffer };

class Fuzzer {
  constructor(private readonly rng: Rng) {}
  int(n: number): number {
    return this.rng.nextU32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** A random path into a JSON value: descends 0..4 levels, each key/index at random. */
  jsonPath(root: unknown): Array<string | number> {
    const out: Array<string | number> = [];
    let v = root;
    for (let depth = 0; depth < 4; depth++) {
      if (typeof v !== 'object' || v === null) break;
      const keys: Array<string | number> = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
      if (!keys.length || (depth > 0 && this.int(3) === 0)) break;
      const k = this.pick(keys);
      out.push(k);
      v = (v as Record<string | number, unknown>)[k];
    }
    return out;
  }

  /** One mutation of a JSON file's parsed value (set or delete at a random path). */
  jsonEdit(bytes: Buffer): { what: string; bytes: Buffer } {
    const root = JSON.parse(bytes.toString('utf8'));
    const p = this.jsonPath(root);
    if (!p.length) return { what: 'root replaced', bytes: render(this.pick(VALUES)) };
    let parent = root;
    for (const k of p.slice(0, -1)) parent = parent[k];
    const last = p[p.length - 1];
    if (this.int(4) === 0) {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      return { what: `deleted ${p.join('.')}`, bytes: render(root) };
    }
    const value = this.pick(VALUES);
    parent[last] = value;
    return { what: `${p.join('.')} = ${describeValue(value)}`, bytes: render(root) };
  }

  /** Byte-level damage: cut short, one byte changed, invalid UTF-8 inserted. */
  byteEdit(bytes: Buffer, from = 0, to = bytes.length): { what: string; bytes: Buffer } {
    const at = from + this.int(Math.max(1, to - from));
    switch (this.int(3)) {
      case 0: return { what: `cut at byte ${at}`, bytes: bytes.subarray(0, at) };
      case 1: {
        const b = Buffer.from(bytes);
        b[at] = this.int(256);
        return { what: `byte ${at} = 0x${b[at].toString(16)}`, bytes: b };
      }
      default: return { what: `0xc0 0xff inserted at byte ${at}`, bytes: Buffer.concat([bytes.subarray(0, at), Buffer.from([0xc0, 0xff]), bytes.subarray(at)]) };
    }
  }

  /** The safetensors header: a tensor's entry edited as JSON, or its bytes / length prefix damaged. */
  headerEdit(bytes: Buffer): { what: string; bytes: Buffer } {
    const n = Number(bytes.readBigUInt64LE(0));
    const data = bytes.subarray(8 + n);
    if (this.int(4) === 0) {
      const b = Buffer.from(bytes);
      const prefix = this.pick([0n, 7n, BigInt(n - 1), BigInt(n + 8), 2n ** 40n, 2n ** 64n - 1n]);
      b.writeBigUInt64LE(prefix, 0);
      return { what: `header length prefix = ${prefix}`, bytes: b };
    }
    if (this.int(3) === 0) {
      const edit = this.byteEdit(bytes, 8, 8 + n);
      return { what: `header ${edit.what}`, bytes: edit.bytes };
    }
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const name = this.pick(names);
    const field = this.pick(['dtype', 'shape', 'data_offsets']);
    const value = this.pick([...VALUES, 'F16', 'I64', 'F64', 'BOOL', [0], [1, 1, 1], [-1, 4], [0, 2 ** 53]]);
    header[name][field] = value;
    let json = Buffer.from(JSON.stringify(header).replace(`"${DEEP}"`, '['.repeat(100_000) + ']'.repeat(100_000)));
    json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return { what: `${name}.${field} = ${describeValue(value)}`, bytes: Buffer.concat([len, json, data]) };
  }

  mutation(): Mutation {
    const file = this.pick(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt', '1_Pooling/config.json', 'model.safetensors']);
    let what = '';
    const apply = (bytes: Buffer) => {
      const r = file === 'model.safetensors' ? this.headerEdit(bytes)
        : file === 'vocab.txt' || this.int(3) === 0 ? this.byteEdit(bytes)
          : this.jsonEdit(bytes);
      what = r.what;
      return r.bytes;
    };
    return { file, get what() { return what; }, apply };
  }
}

function render(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v).replace(`"${DEEP}"`, '['.repeat(100_000) + ']'.repeat(100_000)));
}

/** The safetensors file with `n` more (empty, unused) tensors in its header. */
function withExtraTensors(bytes: Buffer, n: number): Buffer {
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8'));
  for (let i = 0; i < n; i++) header[`extra.${i}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, bytes.subarray(8 + len)]);
}

function describeValue(v: unknown): string {
  if (v === DEEP) return '100,000 nested arrays';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 30 ? `${s.slice(0, 30)}… (${s.length} chars)` : s;
}

describe('model folder fuzzing', function () {
  this.timeout(180_000);
  let root: string;
  let base: string;
  const originals = new Map<string, Buffer>();

  before(async () => {
    await testBackend();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-model-fuzz-'));
    base = cachedModel({ preset: 'tiny' });
    for (const f of fs.readdirSync(base)) originals.set(f, fs.readFileSync(path.join(base, f)));
    originals.set('1_Pooling/config.json', Buffer.from(JSON.stringify({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true, pooling_mode_cls_token: false })));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /** A folder holding the originals with one file replaced; weights linked unless mutated. */
  function folderWith(i: number, file: string, bytes: Buffer): string {
    const dir = path.join(root, `case-${i}`);
    fs.mkdirSync(path.join(dir, '1_Pooling'), { recursive: true });
    for (const [f, b] of originals) {
      if (f === file) fs.writeFileSync(path.join(dir, f), bytes);
      else if (f === 'model.safetensors') fs.symlinkSync(path.join(base, f), path.join(dir, f));
      else fs.writeFileSync(path.join(dir, f), b);
    }
    return dir;
  }

  it(`${ITERATIONS} mutated folders: load and embed, or one of the loader's errors naming a file; e5 verify agrees`, async () => {
    const fuzz = new Fuzzer(new Rng(SEED));
    const t0 = Date.now();
    const outcomes = { loaded: 0, refused: 0 };
    const forCli: Array<{ dir: string; label: string; loaded: boolean }> = [];
    for (let i = 0; i < ITERATIONS && Date.now() - t0 < BUDGET_MS; i++) {
      const m = fuzz.mutation();
      const dir = folderWith(i, m.file, m.apply(originals.get(m.file)!));
      const label = `case ${i} (seed ${SEED}): ${m.file}: ${m.what}`;
      let loaded = false;
      try {
        const model = await loadModel(dir);
        try {
          await model.embed(['hello world', 'query: ünïcödé 日本語']);
        } finally {
          model.dispose();
        }
        loaded = true;
        outcomes.loaded++;
      } catch (e) {
        const err = e as Error;
        assert.ok(LOADER_ERRORS.has(err.name), `${label}: escaped as ${err.name}: ${err.message}\n${err.stack}`);
        assert.ok(err.message.includes(dir), `${label}: the message names no file of the folder: ${err.message}`);
        outcomes.refused++;
      }
      if (forCli.length < CLI_CHECKS && (forCli.length % 3 === 2 ? loaded : !loaded)) forCli.push({ dir, label, loaded });
      else if (!forCli.some((c) => c.dir === dir)) fs.rmSync(dir, { recursive: true, force: true });
    }
    if (process.env.E5_FUZZ_VERBOSE) console.log(outcomes, Date.now() - t0, "ms");
    assert.ok(outcomes.refused > 0 && outcomes.refused + outcomes.loaded >= 40, `too few cases ran: ${JSON.stringify(outcomes)}`);
    for (const c of forCli) {
      const r = await e5(['verify', '--model', c.dir], { timeoutMs: 60_000 });
      if (c.loaded) {
        assert.equal(r.code, 0, `${c.label}: loads, but verify exits ${r.code}: ${r.stderr}`);
        continue;
      }
      assert.ok(r.code === 1 || r.code === 3, `${c.label}: verify exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /^e5 verify: /, c.label);
      assert.doesNotMatch(r.stderr, /\n\s+at |RangeError|TypeError|call stack/, `${c.label}: ${r.stderr}`);
    }
  });

  // Large *valid* integers: each must be refused (or loaded) in bounded time and memory, with a short
  // message, never by building one name or problem per unit of the value.
  const LARGE: Array<[string, (b: Buffer) => Buffer]> = [
    ...['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size', 'vocab_size', 'max_position_embeddings', 'type_vocab_size'].flatMap((k) =>
      [10 ** 6, 10 ** 15].map((n): [string, (b: Buffer) => Buffer] => [`config.json ${k} = ${n}`, (b) => render({ ...JSON.parse(b.toString('utf8')), [k]: n })])),
    ...[10 ** 6, 10 ** 15].map((n): [string, (b: Buffer) => Buffer] => [`tokenizer_config.json model_max_length = ${n}`, (b) => render({ ...JSON.parse(b.toString('utf8')), model_max_length: n })]),
    ['model.safetensors with 100,000 unused empty tensors', (b) => withExtraTensors(b, 100_000)],
  ];
  for (const [what, edit] of LARGE) {
    it(`large valid integers: ${what}`, async function () {
      this.timeout(60_000);
      const file = what.split(' ')[0];
      const dir = folderWith(1000 + LARGE.findIndex(([w]) => w === what), file, edit(originals.get(file)!));
      const t0 = Date.now();
      try {
        const model = await loadModel(dir);
        model.dispose();
      } catch (e) {
        const err = e as Error;
        assert.ok(LOADER_ERRORS.has(err.name), `${what}: escaped as ${err.name}: ${err.message}`);
        assert.ok(err.message.includes(dir), `${what}: names no file: ${err.message}`);
        assert.ok(err.message.split('\n').length <= 22, `${what}: ${err.message.split('\n').length} lines`);
      }
      const r = await e5(['verify', '--model', dir], { timeoutMs: 60_000 });
      assert.ok(r.code === 0 || r.code === 3, `${what}: verify exit ${r.code}: ${r.stderr.slice(0, 2000)}`);
      assert.ok(r.stderr.length < 10_000, `${what}: ${r.stderr.length} bytes of stderr`);
      assert.ok(Date.now() - t0 < 30_000, `${what}: took ${Date.now() - t0} ms`);
      if (what.startsWith('config.json num_hidden_layers')) assert.match(r.stderr, /num_hidden_layers is \d+, but the weights hold 2 encoder layers/);
      if (what.includes('unused')) assert.match(r.stderr, /\(100000 problems\):[^]*\.\.\. and 99980 more/);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }
});
