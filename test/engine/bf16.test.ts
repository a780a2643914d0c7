/**
 * precision 'bf16' (issue 25): the encoder's Linear weights (and word table) held as bfloat16 and its matmuls run
 * on bfloat16 operands inside the compiled TensorFlow graph. Checked: the weights are the fp32
 * ones rounded to nearest even, packed two per int32; embeddings within the documented bf16
 * cosine of fp32 (and not equal to them: bf16 really ran); read-only hooks run compiled and change
 * no value; op by op (hook functions, compiled: false) rounds as TensorFlow's Cast does and stays
 * within bf16 noise of the graph; a backend without bf16 kernels is a clear error.
 * Skips where tfjs-node does not load.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { currentRuntime, plainWeightSink, Runtime } from '../../engine/backend';
import { blockHook } from '../../engine/hooks';
import { EmbeddingModel, loadModel, PrecisionError } from '../../e5/model';
import { explain, ExplainError } from '../../e5/explain';
import { bf16BitsToF32, f32ToBF16Bits } from '../../weights/safetensors';
import { bf16Unsupported } from '../../engine/backends/tensorflow/weights';
import { cachedModel } from '../../devtools/generate-model';
import { tensorflowOrSkip } from '../support/backend';
import { TOLERANCE } from '../support/tolerance';
import { e5 } from '../support/cli';
import { manifestMismatch, ShardManifest } from '../../cli/shard-manifest';
import { modelCard } from '../parity/make-golden';

describe("precision 'bf16' (tensorflow)", function () {
  this.timeout(120_000);
  let runtime: Runtime;
  let fp32: EmbeddingModel, bf16: EmbeddingModel;
  const dir = cachedModel({ preset: 'small' });
  before(async function () {
    runtime = await tensorflowOrSkip(this, 'bf16 runs');
    const why = bf16Unsupported();
    if (why) {
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
    fp32 = await loadModel(dir);
    bf16 = await loadModel(dir, { precision: 'bf16' });
  });
  after(() => {
    fp32?.dispose();
    bf16?.dispose();
  });

  it('holds each encoder Linear weight and the word table as their fp32 values rounded to bf16, two per int32; the rest float32', () => {
    assert.equal(bf16.info.precision, 'bf16');
    assert.equal(fp32.info.precision, 'fp32');
    const [a, b] = [fp32, bf16].map((m) => m.bert.params.layers[1].intermediate);
    assert.equal(b.weight.dtype, 'int32');
    assert.deepEqual(b.weight.shape, [a.weight.shape[0], a.weight.shape[1]! / 2]);
    const want = f32ToBF16Bits(a.weight.dataSync() as Float32Array);
    assert.deepEqual(Array.from(new Uint16Array((b.weight.dataSync() as Int32Array).slice().buffer)), Array.from(want));
    assert.deepEqual(Array.from(b.bias.dataSync()), Array.from(a.bias.dataSync()), 'biases stay float32');
    const [wa, wb] = [fp32, bf16].map((m) => m.bert.params.embeddings.wordEmbeddings);
    assert.equal(wb.dtype, 'int32', 'the word table is bf16 too');
    assert.deepEqual(Array.from(new Uint16Array((wb.dataSync() as Int32Array).slice().buffer)), Array.from(f32ToBF16Bits(wa.dataSync() as Float32Array)));
    assert.equal(bf16.bert.params.embeddings.positionEmbeddings.dtype, 'float32');
    assert.equal(bf16.bert.params.embeddings.layerNorm.weight.dtype, 'float32');
    assert.equal(bf16.bert.params.pooler?.weight.dtype ?? 'float32', 'float32', 'the pooler (op by op) stays float32');
  });

  it(`embeds within cosine ${TOLERANCE.bf16Cosine} of fp32 (the model card's texts, and a one-token-short query run compiled too), not bit-equal`, async () => {
    const card = modelCard();
    const texts = [...card.queries.map((q) => `query: ${q}`), ...card.passages.map((p) => `passage: ${p}`), 'query: x'];
    const [ea, eb] = await Promise.all([fp32, bf16].map(async (m) => (await m.embed(texts)).embeddings));
    let maxDiff = 0;
    ea.forEach((e, i) => {
      const cos = e.reduce((s, v, d) => s + v * eb[i][d], 0);
      assert.ok(cos >= TOLERANCE.bf16Cosine, `text ${i}: cosine ${cos}`);
      e.forEach((v, d) => (maxDiff = Math.max(maxDiff, Math.abs(v - eb[i][d]))));
    });
    assert.ok(maxDiff > TOLERANCE.embedding, `bf16 gave fp32's embeddings (max |Δ| ${maxDiff}): it did not run in bf16`);
  });

  it('caches hook points from the compiled graph, leaking nothing', () => {
    const batch = { inputIds: [[101, 2023, 2003, 102]] };
    const name = blockHook(0, 'hook_resid_post');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      const r = bf16.bert.runWithCache(batch, { names: [name] });
      assert.deepEqual(r.cache.get(name).shape, [1, 4, bf16.config.hiddenSize]);
      r.output.dispose();
      r.cache.dispose();
      assert.equal(tf.memory().numTensors, before);
    }
  });

  it('op by op (hook functions, compiled: false): bf16 rounding as TensorFlow casts, weights unpacked exactly, the graph\'s numbers within bf16 noise', () => {
    const low = currentRuntime().ops.bf16!;
    assert.ok(low, 'the tensorflow backend has bf16 kernels');
    // Rounding: Cast's (nearest, ties to even, NaN kept), checked bit for bit against weights/safetensors f32ToBF16Bits.
    const u = new Uint32Array([0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0xbf808001, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x7fc00001, 0x7f800001, 0x7f800000, 0, 0x80000000]);
    const rand = new Float32Array(4096).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 13) - 6));
    const x = new Float32Array([...new Float32Array(u.buffer), ...rand]);
    const got = tf.tidy(() => low.round(tf.tensor1d(x)).dataSync());
    const want = bf16BitsToF32(f32ToBF16Bits(x));
    const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))).map((b, i) => (Number.isNaN(a[i]) ? 'NaN' : b));
    assert.deepEqual(bits(got as Float32Array), bits(want));
    // Unpacking: the packed weight's values are the fp32 model's rounded ones.
    const [wf, wb] = [fp32, bf16].map((m) => m.bert.params.layers[0].intermediate.weight);
    assert.deepEqual(Array.from(tf.tidy(() => low.unpack(wb).dataSync())), Array.from(bf16BitsToF32(f32ToBF16Bits(wf.dataSync() as Float32Array))));

    const batch = { inputIds: [[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 2088, 999, 102, 0]], attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]] };
    const name = blockHook(1, 'hook_resid_post');
    const before = tf.memory().numTensors;
    const graph = bf16.bert.forward(batch);
    const opByOp = bf16.bert.forward(batch, { compiled: false });
    const identity = bf16.bert.runWithHooks(batch, [[name, (t) => t.clone()]]);
    const patched = bf16.bert.runWithHooks(batch, [[name, (t) => tf.reverse(t, -1)]]);
    const reference = fp32.bert.forward(batch);
    const e = (o: { embedding: tf.Tensor }) => o.embedding.arraySync() as number[][];
    const cos = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
    assert.deepEqual(e(identity), e(opByOp), 'a hook function runs the op-by-op forward (an identity changes nothing)');
    assert.notDeepEqual(e(opByOp), e(graph), 'op by op is not the graph run again');
    for (let r = 0; r < 2; r++) {
      assert.ok(cos(e(opByOp)[r], e(reference)[r]) >= TOLERANCE.bf16Cosine, `row ${r}: op by op vs fp32 ${cos(e(opByOp)[r], e(reference)[r])}`);
      assert.ok(cos(e(opByOp)[r], e(graph)[r]) >= TOLERANCE.bf16Cosine, `row ${r}: op by op vs the graph ${cos(e(opByOp)[r], e(graph)[r])}`);
      assert.ok(cos(e(patched)[r], e(opByOp)[r]) < 0.999, 'a patch reaches the output');
    }
    [graph, opByOp, identity, patched, reference].forEach((o) => o.dispose());
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  });

  it('reading hook points changes no value of the forward: mlp.hook_pre (inside the fused GEMM + GELU) included, bit for bit', () => {
    const batch = { inputIds: [[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 2088, 999, 2154, 102]] };
    const L = bf16.config.numHiddenLayers;
    const plain = bf16.bert.forward(batch);
    const names = [blockHook(0, 'mlp.hook_pre'), blockHook(L - 1, 'mlp.hook_pre'), blockHook(L - 1, 'mlp.hook_post'), blockHook(0, 'attn.hook_q')];
    const r = bf16.bert.runWithCache(batch, { names });
    assert.deepEqual(Array.from(r.output.embedding.dataSync()), Array.from(plain.embedding.dataSync()), 'the same embedding, bit for bit');
    // hook_pre is the Linear's output rounded to bf16 (≤ 2^-9 relative), hook_post GELU (float32,
    // inside the GEMM) of the unrounded one, rounded to bf16 (≤ 2^-9): so |post − gelu(pre)| ≤
    // 2^-9·|post| + max|gelu'|·2^-9·|pre| (max gelu' ≈ 1.13); allowed twice that, for the copy's
    // own summation order. The same pre-activation, not another.
    const pre = r.cache.get(names[1]).dataSync(), post = r.cache.get(names[2]).dataSync();
    const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    for (let i = 0; i < pre.length; i++) {
      const want = gelu(pre[i]);
      assert.ok(Math.abs(post[i] - want) <= 2 ** -8 * (Math.abs(want) + 1.13 * Math.abs(pre[i])) + 1e-6, `hook_post[${i}] ${post[i]} vs gelu(hook_pre) ${want} (hook_pre ${pre[i]})`);
    }
    plain.dispose();
    r.output.dispose();
    r.cache.dispose();
  });

  it("e5 explain (gradients, op by op) refuses a bf16 model, naming the precision", async () => {
    await assert.rejects(explain(bf16, 'query', 'passage'), (e: Error) => e instanceof ExplainError && e.code === 'precision' && /precision 'bf16'/.test(e.message));
  });

  it("refuses, before oneDNN would abort the process, a CPU without bf16 matmuls or ONEDNN_MAX_CPU_ISA below them", async () => {
    const cpu = (flags: string) => `processor\t: 0\nflags\t\t: fpu sse2 avx2 ${flags}\n`;
    assert.equal(bf16Unsupported(cpu('avx512f avx512bw avx512_bf16'), undefined), undefined);
    assert.equal(bf16Unsupported(cpu('amx_bf16'), 'AVX512_CORE_AMX'), undefined);
    assert.match(bf16Unsupported(cpu('avx512f avx512bw'), undefined)!, /no AVX512_BF16/);
    assert.match(bf16Unsupported(cpu('avx512_bf16'), 'avx2')!, /ONEDNN_MAX_CPU_ISA=avx2/);
    assert.match(bf16Unsupported(null)!, /cannot be read/);
    const saved = process.env.ONEDNN_MAX_CPU_ISA;
    process.env.ONEDNN_MAX_CPU_ISA = 'AVX2'; // read at each load (oneDNN itself read it at start: this process is unaffected)
    try {
      await assert.rejects(loadModel(dir, { precision: 'bf16' }), /precision 'bf16' cannot run here: ONEDNN_MAX_CPU_ISA=AVX2/);
    } finally {
      if (saved === undefined) delete process.env.ONEDNN_MAX_CPU_ISA;
      else process.env.ONEDNN_MAX_CPU_ISA = saved;
    }
  });

  it('is an error, not a silent fp32 run, where the backend has no bf16 (no graph: wasm, cpu)', async () => {
    const noGraph = { ...runtime, weightSink: () => plainWeightSink(), compileEncoder: undefined };
    await assert.rejects(loadModel(dir, { precision: 'bf16', runtime: noGraph }), (e: Error) => e instanceof PrecisionError && /needs the tensorflow backend/.test(e.message));
    await assert.rejects(loadModel(dir, { precision: 'fp16' as never }), (e: Error) => e instanceof TypeError && /option 'precision' must be one of 'fp32', 'bf16', got 'fp16'/.test(e.message));
  });

  it("the CLI: --precision bf16 is recorded in embed's and similarity's outputs; a shard of another precision does not join; on cpu an error", async () => {
    const r = await e5(['embed', 'query: how much protein', '--model', dir, '--backend', 'tensorflow', '--threads', '2', '--precision', 'bf16', '--format', 'json', '-q']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.precision, 'bf16', 'the JSON output records the precision');
    const sim = await e5(['similarity', '--query', 'protein', '--passage', 'grams a day', '--model', dir, '--backend', 'tensorflow', '--precision', 'bf16', '--format', 'json']);
    assert.equal(sim.code, 0, sim.stderr);
    assert.equal(JSON.parse(sim.stdout).precision, 'bf16', "similarity's JSON records it too");
    assert.match(sim.stderr, /at precision bf16 on tensorflow/, 'and its note says it');
    const settings = (precision?: 'fp32' | 'bf16') => ({ precision, backend: { name: 'tensorflow' } }) as unknown as ShardManifest['settings'];
    const manifest = (precision?: 'fp32' | 'bf16') => ({ shard: {}, input: {}, output: {}, settings: settings(precision) }) as unknown as ShardManifest;
    assert.match(manifestMismatch(manifest('bf16'), manifest('fp32'))!, /precision \(--precision\): "bf16" vs "fp32"/);
    assert.equal(manifestMismatch(manifest(undefined), manifest('fp32')), undefined, 'a manifest from before --precision is fp32');
    const cpu = await e5(['embed', 'x', '--model', dir, '--backend', 'cpu', '--precision', 'bf16', '-q']);
    assert.equal(cpu.code, 1);
    assert.match(cpu.stderr, /precision 'bf16' needs the tensorflow backend's compiled graph; this is cpu/);
    assert.equal(cpu.stdout, '', 'nothing written: no silent fp32 run');
  });
});

/** erf to ~1e-7 (Abramowitz–Stegun 7.1.26 is 1.5e-7): enough for a bf16 comparison. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
