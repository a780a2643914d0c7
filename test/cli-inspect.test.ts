/**
 * End-to-end tests of `bin/e5 inspect`, `e5 parity` and `e5 verify` on a generated tiny model:
 * dump names, shapes and metadata (read back with our safetensors reader and our .npy parser),
 * HF name mapping, parity against our own dump (exact), a perturbed dump (exit 3) and the
 * PyTorch reference test/parity/reference.py (when torch imports), and verify on good and
 * deliberately broken folders.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allHookNames, defaultHookNames, writeSafetensors } from '../index';
import type { TensorToWrite } from '../weights/safetensors';
import { e5, tempDir, CLI_BACKEND } from './support/cli';
import { cachedModel } from '../devtools/generate-model';
import { readAll } from './support/golden';
import { PYTHON, skipUnlessPython } from './support/python';

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
    execFileSync(PYTHON, [path.join(__dirname, 'parity', 'reference.py'), '--model', model, '--ids', idsFile, '--output', ref], { stdio: 'pipe' });
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
