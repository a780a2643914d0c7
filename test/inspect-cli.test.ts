/**
 * `bin/e5 inspect` extensions: --ablate (against the library in-process), --html (rendered in
 * headless Chromium), --bertviz (structure and values against the dump of the same run),
 * --query/--passage (layer-wise table against `e5 similarity` and the library), and dumps read
 * back by our reader and by numpy (/usr/bin/python3, with a 10-line safetensors parser of its own).
 * The CLI runs on the cpu backend; in-process comparisons use the test backend, hence 1e-5.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareArrays, describeMismatch } from '../engine/compare';
import { loadModel, EmbeddingModel } from '../e5/model';
import { ablateHeads, layerwiseSimilarity, parseHeadList } from '../inspect';
import type { ViewPayload } from '../inspect/html';
import { testBackend } from './support/backend';
import { dumpDom, findChromium } from './support/chromium';
import { e5, tempDir, CLI_BACKEND } from './support/cli';
import { cachedModel } from '../devtools/generate-model';
import { readAll } from './support/golden';
import { PYTHON, skipUnlessPython } from './support/python';
import { TOLERANCE, toleranceFor } from './support/tolerance';

const IDS = {
  // Row 0 right-padded, row 1 left-padded, row 2 full.
  input_ids: [[101, 7592, 2088, 102, 0, 0], [0, 101, 2129, 2172, 5250, 102], [101, 2129, 2172, 3010, 2323, 102]],
  attention_mask: [[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
  token_type_ids: [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]],
};
const batch = { inputIds: IDS.input_ids, attentionMask: IDS.attention_mask, tokenTypeIds: IDS.token_type_ids };
const [L, H] = [2, 4];
const QUERIES = ['how high is the summit', 'protein for women'];
const PASSAGES = ['the summit is the highest point of a mountain', 'women need 46 grams of protein per day', 'x'];

let modelDir: string;
let M: string[];
let dir: string;
let idsFile: string;
let m: EmbeddingModel;


function close(name: string, a: ArrayLike<number>, b: ArrayLike<number>, atol = toleranceFor(name)): void {
  const r = compareArrays(a, b, [a.length], { atol });
  assert.ok(r.pass, describeMismatch(name, r, { atol }));
}

function attr(dom: string, name: string): string | undefined {
  const body = /<body([^>]*)>/.exec(dom);
  assert.ok(body, 'no <body> in the dumped DOM');
  return new RegExp(`\\s${name}="([^"]*)"`).exec(body[1])?.[1];
}

/** Real positions of a row (mask = 1). */
const realOf = (row: number) => IDS.attention_mask[row].flatMap((v, t) => (v ? [t] : []));

before(async () => {
  await testBackend();
  modelDir = cachedModel({ preset: 'tiny' });
  m = await loadModel(modelDir);
  M = ['--model', modelDir, '--backend', CLI_BACKEND];
  dir = tempDir('e5-inspect-cli-');
  idsFile = path.join(dir, 'ids.json');
  fs.writeFileSync(idsFile, JSON.stringify(IDS));
});
after(() => {
  m?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('e5 inspect --ablate', () => {
  for (const mode of ['zero', 'mean'] as const) {
    it(`--ablate 0.1,1.3 --ablate-mode ${mode}: the dump differs from the clean one and equals ablateHeads() in-process`, async () => {
      const out = path.join(dir, `ablate-${mode}.safetensors`);
      const clean = path.join(dir, `clean-${mode}.safetensors`);
      const hooks = ['--hooks', 'hook_embedding,hook_pooled', '--hooks', 'blocks.*.attn.hook_z'];
      const r = await e5(['inspect', ...M, '--ids', idsFile, ...hooks, '--output', out, '--ablate', '0.1,1.3', '--ablate-mode', mode]);
      assert.equal(r.code, 0, r.stderr);
      const c = await e5(['inspect', ...M, '--ids', idsFile, ...hooks, '--output', clean]);
      assert.equal(c.code, 0, c.stderr);
      const a = readAll(out), b = readAll(clean);
      assert.equal(a.metadata.ablate, '["0.1","1.3"]');
      assert.equal(a.metadata.ablate_mode, mode);
      const emb = a.tensors.get('hook_embedding')!.data;
      assert.ok(!compareArrays(emb, b.tensors.get('hook_embedding')!.data, [emb.length], { atol: 1e-4 }).pass, 'ablation moved the embedding');
      const lib = ablateHeads(m.bert, batch, parseHeadList('0.1,1.3'), mode);
      try {
        close('hook_embedding', emb, lib.embedding.dataSync());
        close('hook_pooled', a.tensors.get('hook_pooled')!.data, lib.pooled.dataSync());
      } finally {
        lib.dispose();
      }
      // Head 1 of layer 0 in the dump: all zeros, or one vector repeated at every position.
      const z = a.tensors.get('blocks.0.attn.hook_z')!; // [B,T,H,Dh]
      const [B, T, , Dh] = z.shape;
      const first = z.data.slice(1 * Dh, 2 * Dh);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const at = ((b * T + t) * H + 1) * Dh;
          assert.deepEqual(z.data.slice(at, at + Dh), mode === 'zero' ? new Float32Array(Dh) : first, `z[${b}][${t}][1]`);
        }
      }
      if (mode === 'mean') assert.ok(first.some((v) => v !== 0));
    });
  }

  it('heads outside the model or bad syntax: exit 2 naming the item', async () => {
    const range = await e5(['inspect', ...M, '--ablate', '0.1,1.4', 'hello']);
    assert.equal(range.code, 2, range.stderr);
    assert.match(range.stderr, /--ablate 0\.1,1\.4: heads\[1\] = 1\.4: head 4 is out of range \(the model has heads 0-3 in each layer\)/);
    const syntax = await e5(['inspect', ...M, '--ablate', '1-2', 'hello']);
    assert.equal(syntax.code, 2, syntax.stderr);
    assert.match(syntax.stderr, /'1-2' is not LAYER\.HEAD/);
  });
});

describe('e5 inspect packs texts', () => {
  it('texts of different lengths run unpadded; the dump has the padded batch\'s layout: = --ids of that batch at real positions, 0 at padding', async () => {
    const texts = ['the summit is the highest point of a mountain', 'x', 'women need protein'];
    const hooks = ['--hooks', 'hook_full_embed,blocks.1.attn.hook_pattern,blocks.0.attn.hook_z,hook_embedding'];
    const packedOut = path.join(dir, 'packed.safetensors'), paddedOut = path.join(dir, 'padded.safetensors');
    const r = await e5(['inspect', ...M, ...texts, ...hooks, '--output', packedOut]);
    assert.equal(r.code, 0, r.stderr);
    const packed = readAll(packedOut);
    assert.match(packed.metadata.padding, /own length \(packed\)/);
    const ids = { input_ids: JSON.parse(packed.metadata.input_ids), attention_mask: JSON.parse(packed.metadata.attention_mask), token_type_ids: JSON.parse(packed.metadata.token_type_ids) };
    const idsPath = path.join(dir, 'packed-ids.json');
    fs.writeFileSync(idsPath, JSON.stringify(ids));
    const p = await e5(['inspect', ...M, '--ids', idsPath, ...hooks, '--output', paddedOut]);
    assert.equal(p.code, 0, p.stderr);
    const padded = readAll(paddedOut);
    assert.equal(padded.metadata.padding, undefined, '--ids runs the padded batch it is');
    const mask = ids.attention_mask as number[][];
    const [B, T] = [mask.length, mask[0].length];
    assert.ok(mask.some((row) => row.includes(0)), 'the texts have different lengths');
    for (const [name, a] of packed.tensors) {
      const b = padded.tensors.get(name)!;
      assert.deepEqual(a.shape, b.shape, name);
      const per = a.data.length / B; // values per row
      const grid = name.endsWith('hook_pattern');
      const inner = grid ? per / T : per / T; // per (row, query) for patterns, per (row, token) otherwise
      const keep = a.data.map((_, i) => {
        if (name === 'hook_embedding') return 1;
        const row = Math.floor(i / per);
        const t = grid ? Math.floor((i % per) / T) % T : Math.floor((i % per) / inner);
        return mask[row][t];
      });
      a.data.forEach((v, i) => { if (!keep[i]) assert.equal(v, 0, `${name}[${i}]: padding holds 0`); });
      close(name, a.data.map((v, i) => (keep[i] ? v : 0)), b.data.map((v, i) => (keep[i] ? v : 0)));
    }
  });
});

describe('e5 inspect --query/--passage (layer-wise similarity)', () => {
  it('prints a depth × pair table whose last depth is the e5 similarity score', async () => {
    const r = await e5(['inspect', ...M, '--query', ...QUERIES, '--passage', ...PASSAGES]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.deepEqual(lines[0].trim().split(/\s+/), ['depth', 'hidden', 'state', 'q0·p0', 'q0·p1', 'q0·p2', 'q1·p0', 'q1·p1', 'q1·p2']);
    const rows = lines.slice(1, L + 2).map((l) => l.trim().split(/\s+/));
    assert.deepEqual(rows.map((c) => c[1]), ['hook_full_embed', 'blocks.0.hook_normalized_resid_post', 'blocks.1.hook_normalized_resid_post']);
    assert.match(r.stdout, /^q1 = protein for women$/m);
    assert.match(r.stdout, /^p2 = x$/m);
    const sim = await e5(['similarity', ...M, '--query', ...QUERIES, '--passage', ...PASSAGES, '--format', 'json', '--scale', '1']);
    assert.equal(sim.code, 0, sim.stderr);
    const scores = JSON.parse(sim.stdout).scores as number[][];
    const last = rows[L].slice(2).map(Number);
    scores.flat().forEach((s, k) => assert.ok(Math.abs(last[k] - s) <= 5e-5 + 1e-6, `pair ${k}: table ${last[k]} vs similarity ${s}`));
  });

  it('with --output, the scores go into __metadata__ (= layerwiseSimilarity in-process) and the dump holds queries then passages', async () => {
    const out = path.join(dir, 'pairs.safetensors');
    const r = await e5(['inspect', ...M, '--query', ...QUERIES, '--passage', ...PASSAGES, '--output', out, '--hooks', 'hook_embedding']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const { metadata, tensors } = readAll(out);
    const lw = JSON.parse(metadata.layerwise);
    const lib = layerwiseSimilarity(m, QUERIES, PASSAGES);
    assert.deepEqual(lw.depths, lib.depths);
    close('layerwise', lw.scores.flat(2), lib.scores.flat(2), TOLERANCE.scoreX100 / 100); // cosines
    assert.deepEqual(JSON.parse(metadata.texts), [...QUERIES, ...PASSAGES]);
    assert.deepEqual(tensors.get('hook_embedding')!.shape, [QUERIES.length + PASSAGES.length, 32]);
    const tokens = JSON.parse(metadata.tokens) as string[][];
    assert.deepEqual(tokens[0].slice(0, 3), ['[CLS]', 'query', ':']);
    assert.deepEqual(tokens[2].slice(0, 3), ['[CLS]', 'passage', ':']);
  });

  it('--query without --passage, or with TEXT, is a usage error', async () => {
    const a = await e5(['inspect', ...M, '--query', 'q']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--query and --passage go together/);
    const b = await e5(['inspect', ...M, '--ids', idsFile, '--query', 'q', '--passage', 'p']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /give --query\/--passage or inputs/);
  });
});

describe('e5 inspect --bertviz', () => {
  it("writes [L][1][H][T][T] for --row (real tokens only) with the dump's float32 values", async () => {
    const json = path.join(dir, 'attn.json');
    const dump = path.join(dir, 'attn.safetensors');
    const row = 1; // left-padded: the export keeps positions 1..5
    const r = await e5(['inspect', ...M, '--ids', idsFile, '--bertviz', json, '--row', String(row), '--output', dump]);
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(fs.readFileSync(json, 'utf8')) as { attention: number[][][][][]; tokens: string[] };
    assert.deepEqual(Object.keys(d).sort(), ['attention', 'tokens']);
    const real = realOf(row), T = real.length, Tp = IDS.input_ids[0].length;
    assert.deepEqual(d.tokens, real.map((t) => m.tokenizer.idToToken(IDS.input_ids[row][t])));
    assert.equal(d.attention.length, L);
    const { tensors } = readAll(dump);
    d.attention.forEach((layer, l) => {
      assert.equal(layer.length, 1);
      assert.equal(layer[0].length, H);
      const p = tensors.get(`blocks.${l}.attn.hook_pattern`)!.data; // [B,H,T,T]
      layer[0].forEach((rows, h) => {
        assert.equal(rows.length, T);
        rows.forEach((vals, i) => {
          assert.equal(vals.length, T);
          vals.forEach((v, j) => assert.equal(Math.fround(v), p[((row * H + h) * Tp + real[i]) * Tp + real[j]], `[${l}][0][${h}][${i}][${j}]`));
        });
      });
    });
  });

  it('an existing file needs --force; --row past the last text is a usage error', async () => {
    const json = path.join(dir, 'exists.json');
    fs.writeFileSync(json, 'keep');
    const a = await e5(['inspect', ...M, '--ids', idsFile, '--bertviz', json]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--bertviz .*exists\.json exists; pass --force/);
    assert.equal(fs.readFileSync(json, 'utf8'), 'keep');
    const b = await e5(['inspect', ...M, '--ids', idsFile, '--bertviz', json, '--force', '--row', '3']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--row 3: there are 3 texts \(rows 0-2\)/);
    const c = await e5(['inspect', ...M, '--ids', idsFile, '--bertviz', json, '--force', '--row', '2']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(JSON.parse(fs.readFileSync(json, 'utf8')).tokens.length, 6);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp files left');
  });
});

describe('e5 inspect --html', function () {
  let chromium: string | undefined;
  before(function () {
    chromium = findChromium();
  });

  const payloadOf = (html: string) => JSON.parse(/<script type="application\/json" id="attention-data">([\s\S]*?)<\/script>/.exec(html)![1]) as ViewPayload;

  it('writes a page with every layer and head, real tokens only, and the layer-wise chart; it renders in Chromium', async function () {
    const file = path.join(dir, 'view.html');
    const r = await e5(['inspect', ...M, '--query', ...QUERIES, '--passage', ...PASSAGES, '--html', file, '--ablate', '1.2']);
    assert.equal(r.code, 0, r.stderr);
    // the only output is the file: a note says where it went
    assert.match(r.stderr, new RegExp(`^wrote ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\([\\d.]+ kB\\): the attention viewer of ${QUERIES.length + PASSAGES.length} texts, ${L} layers × ${H} heads; open it in a browser$`, 'm'));
    const html = fs.readFileSync(file, 'utf8');
    const payload = payloadOf(html);
    assert.equal(payload.numLayers, L);
    assert.equal(payload.numHeads, H);
    assert.match(payload.title, /heads 1\.2 zero-ablated/);
    const texts = [...QUERIES.map((q) => `query: ${q}`), ...PASSAGES.map((p) => `passage: ${p}`)];
    assert.deepEqual(payload.rows.map((row) => row.text), texts);
    assert.deepEqual(payload.rows.map((row) => row.tokens), texts.map((t) => m.tokenizer.encode(t).tokens));
    payload.rows.forEach((row) => assert.equal(Buffer.from(row.attention, 'base64').length, L * H * row.tokens.length ** 2));
    assert.equal(payload.layerwise!.scores.length, QUERIES.length);
    if (!chromium) {
      console.log(`      (Chromium check skipped: no Chromium at ${process.env.CHROMIUM ?? '/usr/bin/chromium'}; apt-get install -y chromium)`);
      return;
    }
    const { stdout: dom, console: messages } = await dumpDom(chromium, file);
    assert.deepEqual(messages, [], 'console output');
    assert.equal(attr(dom, 'data-status'), 'ready');
    assert.equal(attr(dom, 'data-errors'), '0');
    assert.equal(attr(dom, 'data-rendered-rows'), String(texts.length));
    assert.equal(attr(dom, 'data-rendered-layers'), String(L));
    assert.equal(attr(dom, 'data-rendered-heads'), String(H));
    assert.equal(attr(dom, 'data-rendered-thumbnails'), String(L * H));
    assert.equal(attr(dom, 'data-chart-lines'), String(QUERIES.length * PASSAGES.length));
  });

  it('--layers 1 shows one layer (and warns that the chart needs all); --ids pages show real tokens only', async function () {
    const file = path.join(dir, 'view-ids.html');
    const r = await e5(['inspect', ...M, '--ids', idsFile, '--html', file, '--layers', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '', 'no summary table when only --html is asked for');
    const payload = payloadOf(fs.readFileSync(file, 'utf8'));
    assert.equal(payload.numLayers, 1);
    assert.deepEqual(payload.layerLabels, [1], 'the one layer shown is labelled with its model layer number');
    assert.match(payload.title, /layers 1 of 2/);
    assert.deepEqual(payload.rows.map((row) => row.tokens.length), [0, 1, 2].map((row) => realOf(row).length));
    const lw = await e5(['inspect', ...M, '--query', 'q', '--passage', 'p', '--html', file, '--force', '--layers', '1']);
    assert.equal(lw.code, 0, lw.stderr);
    assert.match(lw.stderr, /chart needs every layer/);
    if (!chromium) return;
    const { stdout: dom, console: messages } = await dumpDom(chromium, file);
    assert.deepEqual(messages, []);
    assert.equal(attr(dom, 'data-rendered-layers'), '1');
    assert.match(dom, /<th>L1<\/th>/, 'the grid labels the layer L1, not L0');
    assert.equal(attr(dom, 'data-rendered-thumbnails'), String(H));
    assert.equal(attr(dom, 'data-chart-lines'), '0');
  });
});

describe('dumps read back by numpy', () => {
  // numpy only; the safetensors header is parsed here (8-byte length, JSON, raw little-endian data).
  const PY = `
import sys, json, struct, hashlib, os, numpy as np
def st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    return {k: np.frombuffer(b, '<f4', int(np.prod(v['shape'])), 8 + n + v['data_offsets'][0]).reshape(v['shape']) for k, v in h.items() if v['dtype'] == 'F32'}, meta
def digest(a): return {'shape': list(a.shape), 'dtype': str(a.dtype), 'sha256': hashlib.sha256(np.ascontiguousarray(a, '<f4').tobytes()).hexdigest()}
tensors, meta = st(sys.argv[1])
npy = {f[:-4]: np.load(os.path.join(sys.argv[2], f)) for f in os.listdir(sys.argv[2]) if f.endswith('.npy')}
real = np.asarray(json.loads(meta['attention_mask']), bool)[:, None, :]  # [B,1,T]: the query rows of real tokens
rowsums = {k: float(np.abs(a.sum(-1)[np.broadcast_to(real, a.shape[:3])] - 1).max()) for k, a in tensors.items() if k.endswith('hook_pattern')}
print(json.dumps({'safetensors': {k: digest(a) for k, a in tensors.items()}, 'npy': {k: digest(a) for k, a in npy.items()},
                  'tokens': json.loads(meta['tokens']), 'rowsums': rowsums}))
`;
  it('safetensors (own parser) and .npy (numpy.load) hold the bytes our reader reads; patterns are distributions over real tokens', async function () {
    skipUnlessPython(this, 'numpy', 'python3-numpy');
    const st = path.join(dir, 'np.safetensors'), npyDir = path.join(dir, 'npy') + '/';
    const args = ['inspect', ...M, '--ids', idsFile, '--hooks', '*', '--ablate', '0.0', '--ablate-mode', 'mean'];
    const a = await e5([...args, '--output', st]);
    const b = await e5([...args, '--output', npyDir]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const py = JSON.parse(execFileSync(PYTHON, ['-c', PY, st, npyDir], { encoding: 'utf8', maxBuffer: 64 << 20 }));
    const ours = readAll(st);
    const sha = (x: Float32Array) => createHash('sha256').update(Buffer.from(x.buffer, x.byteOffset, x.byteLength)).digest('hex');
    assert.equal(ours.tensors.size, 4 + 15 * L + 2);
    assert.deepEqual(Object.keys(py.safetensors).sort(), [...ours.tensors.keys()].sort());
    assert.deepEqual(Object.keys(py.npy).sort(), [...ours.tensors.keys()].sort());
    for (const [name, t] of ours.tensors) {
      const want = { shape: t.shape, dtype: 'float32', sha256: sha(t.data) };
      assert.deepEqual(py.safetensors[name], want, `${name} via the Python parser`);
      assert.deepEqual(py.npy[name], want, `${name} via numpy.load`);
    }
    assert.deepEqual(py.tokens, JSON.parse(ours.metadata.tokens));
    for (const [name, dev] of Object.entries(py.rowsums as Record<string, number>)) assert.ok(dev < 1e-5, `${name}: rows sum to 1 (off by ${dev})`);
    assert.equal(Object.keys(py.rowsums).length, L);
    // And the values are the library's: the same mean ablation in-process.
    const lib = ablateHeads(m.bert, batch, [{ layer: 0, head: 0 }], 'mean');
    try {
      close('hook_embedding', ours.tensors.get('hook_embedding')!.data, lib.embedding.dataSync());
    } finally {
      lib.dispose();
    }
  });
});
