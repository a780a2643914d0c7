/**
 * End-to-end tests of `bin/e5` (usage, embed, similarity, tokenize) on a generated tiny model.
 * Each check spawns the real CLI and looks at its exit code, stdout, stderr and files; the
 * expectations come from the embedding of each text alone (one text per batch), the tokenizer
 * in this process, our own readers of the output formats, and from numpy when
 * /usr/bin/python3 has it. inspect / parity / verify are in inspect.test.ts.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BertTokenizer, SafetensorsFile } from '../../index';
import { buildProgram } from '../../cli/main';
import { e5, jsonLines, tempDir, CLI_BACKEND } from '../support/cli';
import { cachedModel } from '../../devtools/generate-model';
import { PYTHON, pythonCanImport } from '../support/python';
import { TOLERANCE } from '../support/tolerance';

interface EmbedLine {
  index: number;
  id?: string | number;
  n_tokens: number;
  truncated: boolean;
  embedding: number[];
}

/** Inputs of very different lengths, so the library's length-sorted batches reorder them. */
const RECORDS: Array<{ id: string | number; text: string }> = [
  { id: 'a', text: 'short' },
  { id: 'b', text: 'a much longer text with many more tokens than any of the others, so that sorting by length moves it to the front of the first batch' },
  { id: 3, text: 'medium length text here' },
  { id: 'd', text: '' },
  { id: 'e', text: 'Ünïcödé, 日本語 and emoji 🙂 text' },
  { id: 'f', text: 'x' },
  { id: 'g', text: 'line one\nline two inside one JSON string' },
];

/** Our reading of NPY v1.0/2.0: header dict and float32 data. */
function readNpy(file: string): { descr: string; fortran: boolean; shape: number[]; data: Float32Array } {
  const b = fs.readFileSync(file);
  assert.deepEqual([...b.subarray(0, 6)], [0x93, ...Buffer.from('NUMPY')], 'npy magic');
  const major = b[6];
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.subarray(start, start + headerLen).toString('latin1');
  assert.equal((start + headerLen) % 64, 0, 'data is 64-byte aligned');
  assert.ok(header.endsWith('\n'));
  const descr = /'descr':\s*'([^']+)'/.exec(header)![1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)![1] === 'True';
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)![1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const data = b.subarray(start + headerLen);
  return { descr, fortran, shape, data: new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return d / Math.sqrt(na * nb);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) assert.fail(`${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

const tmpFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

let model: string;
let M: string[];
let dir: string;

before(function () {
  model = cachedModel({ preset: 'tiny' });
  M = ['--model', model, '--backend', CLI_BACKEND];
});

describe('e5 CLI: usage and help', () => {
  it('every command has --help with a real example of itself', () => {
    const program = buildProgram();
    assert.deepEqual(program.commands.map((c) => c.name()).sort(), ['embed', 'eval', 'explain', 'inspect', 'merge', 'native', 'parity', 'similarity', 'tokenize', 'verify']);
    for (const cmd of program.commands) {
      let text = '';
      cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
      cmd.outputHelp();
      assert.match(text, new RegExp(`\\$ e5 ${cmd.name()} `), `${cmd.name()} --help shows an example`);
      // merge joins files and native installs a backend: no model
      if (!['merge', 'native'].includes(cmd.name())) assert.match(text, /--model/, `${cmd.name()} --help lists --model`);
    }
  });

  it('bin/e5 --help and --version exit 0 on stdout', async () => {
    const help = await e5(['embed', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: e5 embed/);
    assert.match(help.stdout, /\$ e5 embed --prefix query/);
    // scale-out settings every shard must share are listed, not hidden
    assert.match(help.stdout, /--chunk-size <n>\s+inputs per library call, and per --shard block:\s+keep it the same/);
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v', '-V']) {
      const version = await e5([flag]);
      assert.equal(version.code, 0, flag);
      assert.equal(version.stdout.trim(), `${pkg.name} ${pkg.version}`, flag);
    }
    // git's and npm's habit: `e5 help COMMAND` is `e5 COMMAND --help`
    const viaHelp = await e5(['help', 'embed']);
    assert.equal(viaHelp.code, 0, viaHelp.stderr);
    assert.equal(viaHelp.stdout, help.stdout);
  });

  it('bad usage exits 2 with the error and the usage line, before loading a model', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['embed', '--bogus', 'x'], /unknown option '--bogus'/],
      [['embed', '--format', 'xml', 'x'], /argument 'xml' is invalid.*Allowed choices are jsonl, json, npy, safetensors/],
      [['embed'], /nothing to do: give TEXT arguments or --input/],
      [['embed', '--input', 'f.txt', 'text'], /TEXT arguments or --input FILE, not both/],
      [['embed', '--batch-size', '0', 'x'], /--batch-size.*must be at least 1/],
      [['embed', '--threads', '10000', 'x'], new RegExp(`--threads.*must be at most ${os.cpus().length}, the cores of this machine, got 10000`)],
      [['similarity', '--query', 'q'], /required option '--passage <text...>' not specified/],
      [['inspect', '--layers', '3-1', 'x'], /range '3-1' runs backwards/],
      [['parity'], /required option '--ref <file>'/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      // an --output extension that names no format is not silently JSONL
      [['embed', '--output', 'vectors.txt', 'x'], /--output vectors\.txt: the extension names no format \(\.jsonl, \.ndjson, \.json, \.npy, \.safetensors\); rename it or give --format/],
      [['embed', '-o', 'vectors', 'x'], /--output vectors: the extension names no format/],
    ];
    for (const [args, message] of cases) {
      // A model that does not exist: a usage error must be reported before the model is looked at.
      const r = await e5([...args, ...(args[0] === 'frobnicate' ? [] : ['--model', '/nonexistent/model'])]);
      assert.equal(r.code, 2, `e5 ${args.join(' ')}: exit ${r.code}, stderr: ${r.stderr}`);
      assert.match(r.stderr.replace(/\n/g, ' '), message, `e5 ${args.join(' ')}`);
      if (args[0] !== 'frobnicate') assert.match(r.stderr, new RegExp(`usage: e5 ${args[0]} \\[options\\]`));
      assert.equal(r.stdout, '', 'nothing on stdout');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('runtime failures exit 1 with one line naming the problem; --debug adds the stack', async () => {
    const r = await e5(['embed', '--model', '/nonexistent/model', 'x']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^e5 embed: model folder not found: \/nonexistent\/model\n$/);
    const d = await e5(['embed', '--model', '/nonexistent/model', '--debug', 'x']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /\n\s+at /, 'stack trace with --debug');
  });
});

describe('e5 embed', () => {
  let input: string;
  let expected: Float32Array[];
  let nTokens: number[];
  let jsonl: EmbedLine[];

  before(async function () {
    dir = tempDir();
    input = path.join(dir, 'in.jsonl');
    fs.writeFileSync(input, RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n');
    // The expectation: each text embedded alone (one text per library call and batch), so no
    // sorting, packing or order restoring is involved; and the tokenizer's token counts.
    const alone = await e5(['embed', ...M, '--input', input, '--batch-size', '1', '--chunk-size', '1']);
    assert.equal(alone.code, 0, alone.stderr);
    expected = jsonLines<EmbedLine>(alone.stdout).map((l) => Float32Array.from(l.embedding));
    const tok = BertTokenizer.fromFolder(model);
    nTokens = RECORDS.map((r) => tok.encode(r.text).nTokens);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('jsonl: one object per input in input order, with id, n_tokens, truncated and the embedding', async () => {
    const r = await e5(['embed', ...M, '--input', input]);
    assert.equal(r.code, 0, r.stderr);
    jsonl = jsonLines<EmbedLine>(r.stdout);
    assert.equal(jsonl.length, RECORDS.length);
    jsonl.forEach((line, i) => {
      assert.deepEqual(Object.keys(line), ['index', 'id', 'n_tokens', 'truncated', 'embedding']);
      assert.equal(line.index, i);
      assert.equal(line.id, RECORDS[i].id);
      assert.equal(line.n_tokens, nTokens[i]);
      assert.equal(line.truncated, false);
      assertClose(line.embedding, expected[i], TOLERANCE.embedding, `embedding ${i}`); // another batch: other GEMM shapes
      assert.ok(Math.abs(Math.hypot(...line.embedding) - 1) < 1e-5, 'L2-normalised');
    });
    assert.match(r.stderr, new RegExp(`embedded 7 inputs \\(dim 32\\) .* on ${CLI_BACKEND}`));
  });

  it('npy: an (N, dim) <f4 C-order matrix equal to the jsonl embeddings (and numpy agrees)', async () => {
    const out = path.join(dir, 'e.npy');
    const r = await e5(['embed', ...M, '--input', input, '--output', out, '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '', '-q: nothing on stderr');
    const npy = readNpy(out);
    assert.equal(npy.descr, '<f4');
    assert.equal(npy.fortran, false);
    assert.deepEqual(npy.shape, [RECORDS.length, 32]);
    jsonl.forEach((line, i) => assert.deepEqual(Array.from(npy.data.subarray(i * 32, (i + 1) * 32)), line.embedding.map(Math.fround), `row ${i}`));
    if (pythonCanImport('numpy')) {
      const py = execFileSync(PYTHON, ['-c', 'import sys, json, numpy as np; a = np.load(sys.argv[1]); print(json.dumps([list(a.shape), str(a.dtype), a.astype(float).tolist()]))', out]).toString();
      const [shape, dtype, rows] = JSON.parse(py) as [number[], string, number[][]];
      assert.deepEqual(shape, [RECORDS.length, 32]);
      assert.equal(dtype, 'float32');
      rows.forEach((row, i) => assert.deepEqual(row, jsonl[i].embedding.map(Math.fround)));
    }
  });

  it('safetensors: "embeddings" [N, dim] with the run settings, ids and n_tokens in __metadata__', async () => {
    const out = path.join(dir, 'e.safetensors');
    const r = await e5(['embed', ...M, '--input', input, '--output', out, '--prefix', 'passage', '--max-length', '64']);
    assert.equal(r.code, 0, r.stderr);
    const f = SafetensorsFile.open(out);
    try {
      assert.deepEqual([...f.tensors.keys()], ['embeddings']);
      assert.deepEqual(f.info('embeddings').shape, [RECORDS.length, 32]);
      const md = f.metadata;
      assert.equal(md.format, 'e5-tfjs-embeddings');
      assert.equal(md.model, model);
      assert.equal(JSON.parse(md.backend).name, CLI_BACKEND);
      assert.equal(md.prefix, 'passage');
      assert.equal(md.pooling, 'mean');
      assert.equal(md.normalize, 'true');
      assert.equal(md.max_length, '64');
      assert.match(md.tool, /^e5-tfjs \d+\.\d+\.\d+/);
      assert.deepEqual(JSON.parse(md.ids), RECORDS.map((x) => x.id));
      const tok = BertTokenizer.fromFolder(model);
      assert.deepEqual(JSON.parse(md.n_tokens), RECORDS.map((x) => tok.encode('passage: ' + x.text).nTokens));
      assert.deepEqual(JSON.parse(md.truncated), RECORDS.map(() => false));
      const data = f.readF32('embeddings');
      assert.ok(Math.abs(Math.hypot(...data.subarray(0, 32)) - 1) < 1e-5);
    } finally {
      f.close();
    }
  });

  it('json: one document with the run settings and the same objects as jsonl', async () => {
    const out = path.join(dir, 'e.json');
    const r = await e5(['embed', ...M, '--input', input, '--output', out]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.equal(doc.model, model);
    assert.equal(doc.backend.name, CLI_BACKEND);
    assert.equal(doc.dim, 32);
    assert.deepEqual(doc.embeddings, jsonl);
  });

  it('an existing output is refused (exit 2) without --force and replaced with it', async () => {
    const out = path.join(dir, 'exists.jsonl');
    fs.writeFileSync(out, 'precious\n');
    const refused = await e5(['embed', ...M, '--output', out, 'hello']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /exists\.jsonl exists; pass --force to replace it/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'precious\n');
    const forced = await e5(['embed', ...M, '--output', out, '--force', 'hello']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(jsonLines(fs.readFileSync(out, 'utf8')).length, 1);
    assert.deepEqual(tmpFiles(dir), []);
  });

  it('a malformed JSONL line aborts with its line number (exit 1), leaving no temp file and the old output intact', async () => {
    const bad = path.join(dir, 'bad.jsonl');
    // 300 good lines (more than one 256-input chunk is embedded and written) before the bad one.
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ text: `text ${i}` }));
    lines.push('{"text": "unterminated');
    fs.writeFileSync(bad, lines.join('\n') + '\n');
    const out = path.join(dir, 'keep.jsonl');
    fs.writeFileSync(out, 'old\n');
    const r = await e5(['embed', ...M, '--input', bad, '--output', out, '--force']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^e5 embed: .*bad\.jsonl:301: invalid JSON \(.*\)\n$/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'old\n');
    assert.deepEqual(tmpFiles(dir), []);
  });

  it('--on-error skip: each skipped line is reported by number, the count at the end, the rest keeps its order', async () => {
    const mixed = path.join(dir, 'mixed.jsonl');
    fs.writeFileSync(mixed, [
      JSON.stringify({ text: 'first', id: 1 }),
      '{not json',
      JSON.stringify({ text: 42, id: 2 }),
      '',
      JSON.stringify({ body: 'no text field', id: 3 }),
      JSON.stringify({ text: 'second', id: 4 }),
      '[1, 2]',
      JSON.stringify({ text: 'third', id: 5 }),
    ].join('\r\n'));
    const r = await e5(['embed', ...M, '--input', mixed, '--on-error', 'skip']);
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines<EmbedLine>(r.stdout);
    assert.deepEqual(lines.map((l) => [l.index, l.id]), [[0, 1], [1, 4], [2, 5]]);
    assert.match(r.stderr, /skipped .*mixed\.jsonl:2: invalid JSON/);
    assert.match(r.stderr, /skipped .*mixed\.jsonl:3: field "text" is a number, expected a string/);
    assert.match(r.stderr, /skipped .*mixed\.jsonl:5: field "text" is missing/);
    assert.match(r.stderr, /skipped .*mixed\.jsonl:7: expected a JSON object, got an array/);
    assert.match(r.stderr, /skipped 4 malformed lines of .*mixed\.jsonl \(--on-error skip\)/);
    assert.doesNotMatch(r.stderr, /mixed\.jsonl:4:/, 'a blank JSONL line is not an error');
  });

  it('non-UTF-8 input is an error naming the line and byte offset', async () => {
    const bad = path.join(dir, 'latin1.txt');
    const bytes = Buffer.concat([Buffer.from('ok line\n'), Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]);
    fs.writeFileSync(bad, bytes);
    const r = await e5(['embed', ...M, '--input', bad]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /latin1\.txt:2: not valid UTF-8 at byte offset 11 \(byte 0xe9\)/);
    assert.equal(r.stdout, '');
  });

  it('stdin, in chunks smaller than the input: order and count kept, same vectors; --progress on', async () => {
    const texts = RECORDS.map((x) => x.text.replace(/\n/g, ' '));
    const lines = [...texts, ...texts]; // 14 lines, chunks of 3
    const r = await e5(['embed', ...M, '--input', '-', '--chunk-size', '3', '--batch-size', '2', '--progress', 'on'], { input: lines.join('\n') });
    assert.equal(r.code, 0, r.stderr);
    const out = jsonLines<EmbedLine>(r.stdout);
    assert.deepEqual(out.map((l) => l.index), lines.map((_, i) => i));
    assert.equal(out[0].id, undefined);
    out.forEach((l, i) => {
      const k = i % texts.length;
      if (texts[k] === RECORDS[k].text) assertClose(l.embedding, expected[k], TOLERANCE.embedding, `line ${i}`);
    });
    assert.match(r.stderr, /14\/14/, 'progress bar reached the total');
  });

  describe('warnings (on an e5-named model)', () => {
    let e5Model: string;
    before(() => {
      e5Model = path.join(dir, 'multilingual-e5-tiny');
      fs.cpSync(model, e5Model, { recursive: true });
    });

    it('inputs without a prefix and truncated inputs are counted on stderr', async () => {
      const long = 'many words '.repeat(20);
      const r = await e5(['embed', '--model', e5Model, '--backend', CLI_BACKEND, '--max-length', '6', 'query: short', 'no prefix', long, long]);
      assert.equal(r.code, 0, r.stderr);
      const out = jsonLines<EmbedLine>(r.stdout);
      assert.deepEqual(out.map((l) => [l.n_tokens, l.truncated]), [[5, false], [4, false], [6, true], [6, true]]);
      assert.match(r.stderr, /warning: 3 of 4 inputs to an e5 model start with neither 'query: ' nor 'passage: '/);
      assert.match(r.stderr, /warning: 2 inputs were truncated to 6 tokens/);
    });

    it("a double prefix is reported; -q silences every warning", async () => {
      const r = await e5(['embed', '--model', e5Model, '--backend', CLI_BACKEND, '--prefix', 'query', 'query: already', 'fine']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /warning: 1 input already starts with a prefix; 'query: ' was added in front anyway/);
      assert.doesNotMatch(r.stderr, /neither/);
      const q = await e5(['embed', '--model', e5Model, '--backend', CLI_BACKEND, '-q', '--max-length', '3', 'no prefix at all here']);
      assert.equal(q.code, 0, q.stderr);
      assert.equal(q.stderr, '');
      assert.equal(jsonLines(q.stdout).length, 1);
    });
  });
});

describe('e5 similarity', () => {
  const queries = ['how much protein should a female eat', 'summit define'];
  const passages = [
    "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day.",
    'Definition of summit for English Language Learners. : 1 the highest point of a mountain',
  ];
  const args = () => [...M, ...queries.flatMap((q) => ['--query', q]), ...passages.flatMap((p) => ['--passage', p])];
  let scores: number[][];

  it("json: the scores are 100 × cosine of `e5 embed --prefix query|passage` outputs", async () => {
    const r = await e5(['similarity', ...args(), '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.queries, queries);
    assert.deepEqual(doc.passages, passages);
    assert.equal(doc.backend.name, CLI_BACKEND);
    assert.equal(doc.model, model);
    scores = doc.scores;
    const q = jsonLines<EmbedLine>((await e5(['embed', ...M, '--prefix', 'query', ...queries])).stdout);
    const p = jsonLines<EmbedLine>((await e5(['embed', ...M, '--prefix', 'passage', ...passages])).stdout);
    assert.equal(scores.length, 2);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        const want = 100 * cosine(q[i].embedding.map(Math.fround), p[j].embedding.map(Math.fround));
        assert.ok(Math.abs(scores[i][j] - want) < 1e-9, `score[${i}][${j}] ${scores[i][j]} vs ${want}`);
      }
    }
  });

  it('table: the same matrix, aligned, with truncated labels', async () => {
    const r = await e5(['similarity', ...args(), '--label-width', '20']);
    assert.equal(r.code, 0, r.stderr);
    // like e5 embed, a note names what ran and where
    assert.match(r.stderr, new RegExp(`^scored 2 queries × 2 passages with .* on ${CLI_BACKEND}.* in \\d+\\.\\d s$`, 'm'));
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^ +As a general guidel…  Definition of summi…$/);
    assert.ok(lines[1].startsWith('how much protein sh…'));
    assert.ok(lines[2].startsWith('summit define '));
    // Right-aligned numbers: every row ends at the same column as the header.
    assert.ok(lines.every((l) => l.length === lines[0].length), 'columns aligned');
    for (let i = 0; i < 2; i++) {
      const cells = lines[i + 1].trim().split(/\s+/).slice(-2).map(Number);
      assert.deepEqual(cells, scores[i].map((s) => Number(s.toFixed(2))));
    }
  });
});

describe('e5 tokenize', () => {
  let tdir: string;
  before(() => {
    tdir = tempDir();
  });
  after(() => fs.rmSync(tdir, { recursive: true, force: true }));

  it('jsonl output equals BertTokenizer.encode for texts and pairs, in input order, with no weights in the folder', async () => {
    // A folder with only the tokenizer files: tokenize must not need weights or a backend.
    const tokOnly = path.join(tdir, 'tokenizer-only');
    fs.mkdirSync(tokOnly);
    for (const f of fs.readdirSync(model)) if (!f.endsWith('.safetensors') && f !== 'config.json') fs.copyFileSync(path.join(model, f), path.join(tokOnly, f));
    const records = [
      { text: 'Hello, world!' },
      { text: 'query: how much protein should a female eat', text_pair: 'passage: As a general guideline, women need 46 grams per day.' },
      { text: 'Ünïcödé 日本語 🙂 [MASK] text' },
      { text: '' },
      { text: 'a b c d e f g h i j', text_pair: 'k l m' },
    ];
    const input = path.join(tdir, 'pairs.jsonl');
    fs.writeFileSync(input, records.map((x) => JSON.stringify(x)).join('\n'));
    const r = await e5(['tokenize', '--model', tokOnly, '--input', input, '--max-length', '10']);
    assert.equal(r.code, 0, r.stderr);
    const tok = BertTokenizer.fromFolder(model);
    const out = jsonLines(r.stdout);
    assert.equal(out.length, records.length);
    out.forEach((o, i) => {
      const e = tok.encode(records[i].text, { pair: records[i].text_pair, maxLength: 10 });
      assert.deepEqual(o, {
        index: i, tokens: e.tokens, input_ids: [...e.inputIds], token_type_ids: [...e.tokenTypeIds],
        attention_mask: [...e.attentionMask], offsets: e.offsets, n_tokens: e.nTokens, truncated: e.truncated,
      });
    });
    assert.ok(out.some((o) => o.truncated), 'some input was truncated');
    assert.match(r.stderr, /warning: \d+ inputs? (was|were) truncated to 10 tokens/);
  });

  it('TEXT arguments; --format json is the same objects as one array; table lists every token', async () => {
    const texts = ['Hello, world!', 'summit define'];
    const jl = await e5(['tokenize', '--model', model, ...texts]);
    const js = await e5(['tokenize', '--model', model, '--format', 'json', ...texts]);
    const tb = await e5(['tokenize', '--model', model, '--format', 'table', texts[0]]);
    for (const r of [jl, js, tb]) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(js.stdout), jsonLines(jl.stdout));
    const first = jsonLines<{ tokens: string[]; input_ids: number[] }>(jl.stdout)[0];
    const rows = tb.stdout.trim().split('\n').slice(2); // title, header
    assert.equal(rows.length, first.tokens.length);
    rows.forEach((row, i) => {
      const cells = row.trim().split(/\s+/);
      assert.equal(cells[1], first.tokens[i]);
      assert.equal(Number(cells[2]), first.input_ids[i]);
    });
  });
});
