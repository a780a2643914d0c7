/**
 * `bin/e5 inspect` (with `e5 parity` and `e5 verify`, which read its dumps) end to end on a generated
 * tiny model, in two parts:
 *
 * Dumps and checks —
 * End-to-end tests of `bin/e5 inspect`, `e5 parity` and `e5 verify` on a generated tiny model:
 * dump names, shapes and metadata (read back with our safetensors reader and our .npy parser),
 * HF name mapping, parity against our own dump (exact), a perturbed dump (exit 3) and the
 * PyTorch reference test/parity/reference.py (when torch imports), and verify on good and
 * deliberately broken folders.
 *
 * Interventions, views and packing —
 * `bin/e5 inspect` extensions: --ablate (against the library in-process), --html (rendered in
 * headless Chromium), --bertviz (structure and values against the dump of the same run),
 * --query/--passage (layer-wise table against `e5 similarity` and the library), and dumps read
 * back by our reader and by numpy (/usr/bin/python3, with a 10-line safetensors parser of its own).
 * The CLI runs on the cpu backend; in-process comparisons use the test backend, hence 1e-5.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allHookNames, defaultHookNames, writeSafetensors } from '../../index';
import type { TensorToWrite } from '../../weights/safetensors';
import { e5, tempDir, CLI_BACKEND } from '../support/cli';
import { cachedModel } from '../../devtools/generate-model';
import { readAll } from '../support/golden';
import { PYTHON, skipUnlessPython } from '../support/python';
import { createHash } from 'node:crypto';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { loadModel, EmbeddingModel } from '../../e5/model';
import { ablateHeads, layerwiseSimilarity, parseHeadList } from '../../inspect';
import type { ViewPayload } from '../../inspect/html';
import { testBackend } from '../support/backend';
import { dumpDom, findChromium } from '../support/chromium';
import { TOLERANCE, toleranceFor } from '../support/tolerance';

describe('e5 inspect, parity and verify: dumps and checks', () => {
  const IDS = {
    // Row 0 is right-padded, row 1 left-padded: HF semantics (positions 0..T-1) in both.
    input_ids: [[101, 7592, 2088, 102, 0, 0], [0, 101, 2129, 2172, 5250, 102]],
    attention_mask: [[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]],
    token_type_ids: [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]],
  };
  const [B, T, D, H, L] = [2, 6, 32, 4, 2];

  let model: string;
  let M: string[];
  let dir: string;
  let idsFile: string;
  let hookDump: string;


  function rewrite(file: string, out: string, edit: (tensors: Map<string, TensorToWrite>) => void, metadata?: Record<string, string>): void {
    const { metadata: md, tensors } = readAll(file);
    const map = new Map<string, TensorToWrite>([...tensors].map(([n, t]) => [n, { dtype: 'F32', shape: t.shape, data: t.data }]));
    edit(map);
    writeSafetensors(out, map, metadata ?? { ...md });
  }

  before(() => {
    model = cachedModel({ preset: 'tiny' });
    M = ['--model', model, '--backend', CLI_BACKEND];
    dir = tempDir();
    idsFile = path.join(dir, 'ids.json');
    fs.writeFileSync(idsFile, JSON.stringify(IDS));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('e5 inspect', () => {
    it('--ids → safetensors: the default hooks, float32, batch first, inputs and tokens in __metadata__', async () => {
      hookDump = path.join(dir, 'hooks.safetensors');
      const r = await e5(['inspect', ...M, '--ids', idsFile, '--output', hookDump]);
      assert.equal(r.code, 0, r.stderr);
      const { metadata, tensors } = readAll(hookDump);
      assert.deepEqual([...tensors.keys()].sort(), [...defaultHookNames(L)].sort());
      for (const [name, t] of tensors) {
        const want = name.endsWith('attn.hook_pattern') ? [B, H, T, T] : name === 'hook_pooled' || name === 'hook_embedding' ? [B, D] : [B, T, D];
        assert.deepEqual(t.shape, want, name);
      }
      // Each attention row is a distribution over the row's real tokens only.
      const p = tensors.get('blocks.1.attn.hook_pattern')!.data;
      for (let h = 0; h < H; h++) {
        let sum = 0;
        for (let k = 0; k < T; k++) sum += p[((0 * H + h) * T + 2) * T + k];
        assert.ok(Math.abs(sum - 1) < 1e-5);
        assert.equal(p[((0 * H + h) * T + 2) * T + 4], 0, 'no attention to padding');
      }
      assert.equal(metadata.format, 'e5-tfjs-inspect');
      assert.equal(metadata.model, model);
      assert.equal(JSON.parse(metadata.backend).name, CLI_BACKEND);
      assert.equal(metadata.precision, 'fp32', 'the dump records the precision it was computed at');
      assert.match(metadata.tool, /^e5-tfjs /);
      assert.deepEqual(JSON.parse(metadata.input_ids), IDS.input_ids);
      assert.deepEqual(JSON.parse(metadata.attention_mask), IDS.attention_mask);
      assert.deepEqual(JSON.parse(metadata.token_type_ids), IDS.token_type_ids);
      assert.deepEqual(JSON.parse(metadata.hooks), defaultHookNames(L));
      const tokens = JSON.parse(metadata.tokens) as string[][];
      assert.deepEqual(tokens.map((row) => row.length), [T, T]);
      if (fs.existsSync(path.join(model, 'tokenizer.json'))) assert.deepEqual(tokens[0].slice(0, 4), ['[CLS]', 'hello', 'world', '[SEP]']);
    });

    it('--names hf: hidden_states.{i}, attentions.{i}, last_hidden_state, pooler_output — the same data as the hook names', async () => {
      const out = path.join(dir, 'hf.safetensors');
      const r = await e5(['inspect', ...M, '--ids', idsFile, '--output', out, '--names', 'hf']);
      assert.equal(r.code, 0, r.stderr);
      const hf = readAll(out).tensors;
      const hook = readAll(hookDump).tensors;
      assert.deepEqual([...hf.keys()].sort(), [
        'attentions.0', 'attentions.1', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2',
        'hook_embedding', 'hook_pooled', 'last_hidden_state', 'pooler_output',
      ]);
      const same: Array<[string, string]> = [
        ['hidden_states.0', 'hook_full_embed'], ['hidden_states.1', 'blocks.0.hook_normalized_resid_post'],
        ['hidden_states.2', 'blocks.1.hook_normalized_resid_post'], ['attentions.0', 'blocks.0.attn.hook_pattern'],
        ['attentions.1', 'blocks.1.attn.hook_pattern'], ['hook_pooled', 'hook_pooled'], ['hook_embedding', 'hook_embedding'],
        ['last_hidden_state', 'blocks.1.hook_normalized_resid_post'],
      ];
      for (const [a, b] of same) assert.deepEqual(hf.get(a)!.data, hook.get(b)!.data, `${a} = ${b}`);
      assert.deepEqual(hf.get('pooler_output')!.shape, [B, D]);
    });

    it('--output DIR/: one .npy per tensor plus metadata.json; --hooks globs and --layers select', async () => {
      const out = path.join(dir, 'npy') + '/';
      const r = await e5(['inspect', ...M, '--ids', idsFile, '--output', out, '--hooks', 'blocks.*.attn.hook_*,hook_pooled', '--layers', '1']);
      assert.equal(r.code, 0, r.stderr);
      const want = ['blocks.1.attn.hook_q', 'blocks.1.attn.hook_k', 'blocks.1.attn.hook_v', 'blocks.1.attn.hook_attn_scores',
        'blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_z', 'hook_pooled'];
      assert.deepEqual(fs.readdirSync(out).sort(), [...want.map((n) => `${n}.npy`), 'metadata.json'].sort());
      const meta = JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8'));
      assert.deepEqual(JSON.parse(meta.hooks), want);
      // The .npy data equals the safetensors dump of the same run's pattern.
      const b = fs.readFileSync(path.join(out, 'blocks.1.attn.hook_pattern.npy'));
      const headerLen = b.readUInt16LE(8);
      assert.match(b.subarray(10, 10 + headerLen).toString('latin1'), /'descr': '<f4', 'fortran_order': False, 'shape': \(2, 4, 6, 6\), }/);
      const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + headerLen, b.byteOffset + b.length));
      assert.deepEqual(data, readAll(hookDump).tensors.get('blocks.1.attn.hook_pattern')!.data);
      const q = fs.readFileSync(path.join(out, 'blocks.1.attn.hook_q.npy'));
      assert.match(q.subarray(10, 10 + q.readUInt16LE(8)).toString('latin1'), /'shape': \(2, 6, 4, 8\)/);
      // A second run into the same folder needs --force.
      const again = await e5(['inspect', ...M, '--ids', idsFile, '--output', out, '--hooks', 'hook_pooled']);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /already holds hook_pooled\.npy, metadata\.json; pass --force/);
    });

    it('texts without --output: a summary table of every default hook on stdout', async () => {
      const r = await e5(['inspect', ...M, 'hello world', 'a somewhat longer second text']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.deepEqual(lines[0].trim().split(/\s+/), ['name', 'shape', 'mean', 'std', 'min', 'max']);
      assert.deepEqual(lines.slice(1).map((l) => l.split(/\s{2,}/)[0]), defaultHookNames(L));
      const pattern = lines.find((l) => l.startsWith('blocks.0.attn.hook_pattern'))!;
      assert.match(pattern, /\[2, 4, (\d+), \1\]/);
    });

    it('a bad --ids file exits 1 naming the field, row and column', async () => {
      const cases: Array<[unknown, RegExp]> = [
        [{ ...IDS, input_ids: [[101, 102, 1.5, 0, 0, 0], IDS.input_ids[1]] }, /"input_ids"\[0\]\[2\] = 1\.5 is not an integer/],
        [{ ...IDS, attention_mask: [[1, 1, 1], [1, 1, 1]] }, /"attention_mask"\[0\] has 3 entries, "input_ids"\[0\] has 6/],
        [{ ...IDS, input_ids: [[101, 99999999, 102, 0, 0, 0], IDS.input_ids[1]] }, /"input_ids"\[0\]\[1\] = 99999999 is outside \[0, 30522\)/],
      ];
      for (const [content, message] of cases) {
        fs.writeFileSync(idsFile + '.bad', JSON.stringify(content));
        const r = await e5(['inspect', ...M, '--ids', idsFile + '.bad']);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /ids\.json\.bad/);
      }
    });
  });

  describe('e5 parity', () => {
    it('against our own dump: every tensor passes with zero difference (exit 0)', async () => {
      const r = await e5(['parity', ...M, '--ref', hookDump, '--format', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.pass, true);
      // In forward order.
      assert.deepEqual(doc.tensors.map((t: { name: string }) => t.name), allHookNames(L).filter((n) => defaultHookNames(L).includes(n)));
      for (const t of doc.tensors) assert.equal(t.max_abs, 0, t.name);
    });

    it('a perturbed tensor fails: exit 3, the table shows where', async () => {
      const bad = path.join(dir, 'perturbed.safetensors');
      const at = 1 * T * D + 3 * D + 7; // [1, 3, 7]
      rewrite(hookDump, bad, (m) => {
        const t = m.get('blocks.1.hook_normalized_resid_post')!;
        const data = Float32Array.from(t.data as Float32Array);
        data[at] += 1e-3;
        t.data = data;
      });
      const r = await e5(['parity', ...M, '--ref', bad]);
      assert.equal(r.code, 3, r.stderr);
      const row = r.stdout.split('\n').find((l) => l.startsWith('blocks.1.hook_normalized_resid_post'))!;
      assert.match(row, /(1\.00e-3|0\.00100\d)\s.*\[1, 3, 7\].*FAIL \(1\)$/);
      assert.ok(r.stdout.split('\n').filter((l) => / ok$/.test(l)).length === defaultHookNames(L).length - 1);
      assert.match(r.stderr, /e5 parity: 1 of 7 tensors differ beyond atol 0\.0001/);
      // A looser tolerance accepts it.
      const loose = await e5(['parity', ...M, '--ref', bad, '--atol', '2e-3']);
      assert.equal(loose.code, 0, loose.stderr);
    });

    it('HF names are recognised, unknown names listed as skipped; nothing recognised is exit 3; no inputs is exit 2', async () => {
      const hfRef = path.join(dir, 'hf-ref.safetensors');
      rewrite(path.join(dir, 'hf.safetensors'), hfRef, (m) => m.set('encoder.something_else', { dtype: 'F32', shape: [1], data: new Float32Array([1]) }));
      const r = await e5(['parity', ...M, '--ref', hfRef]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      for (const name of ['hidden_states.0', 'hidden_states.2', 'attentions.1', 'last_hidden_state', 'pooler_output']) {
        assert.match(r.stdout, new RegExp(`^${name.replace('.', '\\.')}\\s.* ok$`, 'm'));
      }
      assert.match(r.stdout, /skipped \(name not recognised\): encoder\.something_else/);

      const unknown = path.join(dir, 'unknown.safetensors');
      writeSafetensors(unknown, { foo: { dtype: 'F32', shape: [1], data: new Float32Array([0]) } }, { input_ids: JSON.stringify(IDS.input_ids) });
      const u = await e5(['parity', ...M, '--ref', unknown]);
      assert.equal(u.code, 3, u.stderr);
      assert.match(u.stderr, /no tensor has a name e5 knows \(skipped: foo\)/);

      const noInputs = path.join(dir, 'no-inputs.safetensors');
      writeSafetensors(noInputs, { hook_pooled: { dtype: 'F32', shape: [1, 32], data: new Float32Array(32) } }, {});
      const n = await e5(['parity', ...M, '--ref', noInputs]);
      assert.equal(n.code, 2, n.stderr);
      assert.match(n.stderr, /has no "input_ids" in its __metadata__; give the inputs with --ids FILE/);
    });

    it('matches the PyTorch reference (test/parity/reference.py)', async function () {
      skipUnlessPython(this, 'torch', 'python3-torch');
      const ref = path.join(dir, 'torch.safetensors');
      execFileSync(PYTHON, [path.join(__dirname, '..', 'parity', 'reference.py'), '--model', model, '--ids', idsFile, '--output', ref], { stdio: 'pipe' });
      const r = await e5(['parity', '--backend', CLI_BACKEND, '--ref', ref, '--atol', '1e-5']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, /model: .* \(from .*torch\.safetensors's metadata\)/);
      assert.match(r.stdout, /8 of 8 tensors within atol 0\.00001/);
    });
  });

  describe('e5 verify', () => {
    /** A copy of the tiny model to break. */
    const copy = (name: string) => {
      const d = path.join(dir, name);
      fs.cpSync(model, d, { recursive: true });
      return d;
    };

    it('a good folder: exit 0 and a summary', async () => {
      const r = await e5(['verify', '--model', model]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^shape\s+2 layers, hidden 32, 4 heads, FFN 64, gelu, 512 positions$/m);
      assert.match(r.stdout, /^tensors\s+39 used \(F32\)$/m);
      assert.match(r.stdout, /^parameters\s+1,011,360$/m);
      assert.match(r.stdout, /^vocab\s+30522 tokens/m);
      assert.match(r.stdout, /^pooling\s+mean \(default\)$/m);
      assert.match(r.stdout, /\nok\n$/);
    });

    it('broken folders: exit 3 with the file and field or tensor; unreachable ones exit 1', async () => {
      const badConfig = copy('bad-config');
      const cfg = JSON.parse(fs.readFileSync(path.join(badConfig, 'config.json'), 'utf8'));
      fs.writeFileSync(path.join(badConfig, 'config.json'), JSON.stringify({ ...cfg, hidden_act: 'swish' }));

      const nan = copy('nan-weight');
      rewrite(path.join(model, 'model.safetensors'), path.join(nan, 'model.safetensors'), (m) => {
        const t = m.get('encoder.layer.1.output.dense.weight')!;
        const data = Float32Array.from(t.data as Float32Array);
        data[5] = NaN;
        t.data = data;
      }, { format: 'pt' });

      const misshaped = copy('misshaped');
      rewrite(path.join(model, 'model.safetensors'), path.join(misshaped, 'model.safetensors'), (m) => {
        m.set('encoder.layer.0.attention.self.query.bias', { dtype: 'F32', shape: [31], data: new Float32Array(31) });
      }, { format: 'pt' });

      const noWeights = copy('no-weights');
      fs.rmSync(path.join(noWeights, 'model.safetensors'));

      const cases: Array<[string, number, RegExp]> = [
        [badConfig, 3, /config\.json: field 'hidden_act': unsupported activation "swish"/],
        [nan, 3, /encoder\.layer\.1\.output\.dense\.weight.*\[non_finite\]/],
        [misshaped, 3, /encoder\.layer\.0\.attention\.self\.query\.bias/],
        [noWeights, 3, /missing model\.safetensors/],
        [path.join(dir, 'does-not-exist'), 1, /model folder not found/],
      ];
      if (fs.existsSync(path.join(model, 'tokenizer.json'))) {
        const disagree = copy('tokenizer-disagree');
        const vocab = fs.readFileSync(path.join(disagree, 'vocab.txt'), 'utf8').split('\n');
        [vocab[2000], vocab[2001]] = [vocab[2001], vocab[2000]];
        fs.writeFileSync(path.join(disagree, 'vocab.txt'), vocab.join('\n'));
        cases.push([disagree, 3, /vocab\.txt.*has id 2000 here but id 2001 in .*tokenizer\.json/]);
      }
      for (const [folder, code, message] of cases) {
        const r = await e5(['verify', '--model', folder]);
        assert.equal(r.code, code, `${path.basename(folder)}: exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, message, path.basename(folder));
        assert.match(r.stderr, /^e5 verify: /);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
        assert.equal(r.stdout, '');
      }
    });
  });
});

describe('e5 inspect: ablation, layer-wise similarity, packing, bertviz, html, numpy', () => {
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
    dir = tempDir('e5-inspect-views-');
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
});
