/**
 * Engine behaviour beyond golden parity: memory discipline, hooks, padding/packing
 * equivalences, input errors, the embedding API. Independent expectations come from the
 * model itself run another way (a row alone vs in a batch, padded vs packed), from PyTorch
 * goldens, or from hand-computed values.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { allHookNames, BLOCK_HOOKS, HookName } from '../../engine/hooks';
import { loadModel, EmbeddingModel, planBatches } from '../../e5/model';
import { BertModel } from '../../engine/model';
import { InputError, packPadded, packSequences } from '../../engine/rows';
import { compareArrays } from '../../engine/compare';
import { testBackend } from '../support/backend';
import { cachedModel } from '../../devtools/generate-model';
import { goldenBatch, loadBert, loadGolden } from '../support/golden';
import { TOLERANCE } from '../support/tolerance';
import { zeroHeads } from '../support/heads';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, atol: number, what: string) => {
  const r = compareArrays(a, b, [a.length], { atol });
  assert.ok(r.pass, `${what}: max abs diff ${r.maxAbs} at ${r.where}`);
};

describe('engine', function () {
  let bert: BertModel;
  let model: EmbeddingModel;
  const batch = () => goldenBatch(loadGolden('tiny-F32-all'));

  before(async () => {
    await testBackend();
    const dir = cachedModel({ preset: 'tiny' });
    bert = loadBert(dir);
    model = await loadModel(dir);
  });
  after(() => {
    bert?.dispose();
    model?.dispose();
  });

  describe('memory', () => {
    it('leaks no tensor over 100 forwards (forward, runWithCache, runWithHooks, embed)', async () => {
      const b = batch();
      const once = async () => {
        bert.forward(b, { outputHiddenStates: true, outputAttentions: true }).dispose();
        const { output, cache } = bert.runWithCache(b, { names: '*' });
        output.dispose();
        cache.dispose();
        bert.runWithHooks(b, [['blocks.*.attn.hook_z', (z) => tf.mul(z, 0.5)]]).dispose();
      };
      await once(); // first call may create lazily-cached kernels state
      await model.embed(['query: warm up'], {});
      const before = tf.memory().numTensors;
      for (let i = 0; i < 100; i++) await once();
      await model.embed(['query: a', 'passage: b c d', 'e'], { batchSize: 2 });
      assert.equal(tf.memory().numTensors, before);
    });

    it('poolerOutput: false skips BERT\'s pooler (the embedding path) and changes nothing else', () => {
      const b = batch();
      // Both op by op: the same kernels, so the embedding must be the same bits (on tensorflow a compiled
      // forward would start at whichever of the two first brings the model's tokens past the threshold).
      const full = bert.forward(b, { compiled: false }), lean = bert.forward(b, { poolerOutput: false, compiled: false });
      try {
        assert.ok(full.poolerOutput, 'the tiny model has a pooler');
        assert.equal(lean.poolerOutput, undefined);
        assert.deepEqual(lean.embedding.dataSync(), full.embedding.dataSync());
      } finally {
        full.dispose();
        lean.dispose();
      }
    });
  });

  describe('hooks', () => {
    it('every hook point has its documented shape, and HF views equal the hooks they derive from', () => {
      const b = batch();
      const L = bert.config.numHiddenLayers, D = bert.config.hiddenSize, H = bert.config.numAttentionHeads, F = bert.config.intermediateSize;
      const [B, T] = [b.inputIds.length, b.inputIds[0].length];
      const { output, cache } = bert.runWithCache(b, { names: '*', outputHiddenStates: true, outputAttentions: true });
      try {
        assert.deepEqual(cache.names.sort(), allHookNames(L).sort());
        const shapeOf = (kind: string): number[] => {
          if (['attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_z'].includes(kind)) return [B, T, H, D / H];
          if (['attn.hook_attn_scores', 'attn.hook_pattern'].includes(kind)) return [B, H, T, T];
          if (['mlp.hook_pre', 'mlp.hook_post'].includes(kind)) return [B, T, F];
          if (['hook_pooled', 'hook_embedding'].includes(kind)) return [B, D];
          return [B, T, D];
        };
        for (const name of cache.names) assert.deepEqual(cache.get(name).shape, shapeOf(name.replace(/^blocks\.\d+\./, '')), name);
        const same = (a: tf.Tensor, b: tf.Tensor, what: string) => assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()), what);
        same(output.hiddenStates![0], cache.get('hook_full_embed'), 'hidden_states[0]');
        for (let i = 0; i < L; i++) {
          same(output.hiddenStates![i + 1], cache.get(`blocks.${i}.hook_normalized_resid_post`), `hidden_states[${i + 1}]`);
          same(output.attentions![i], cache.get(`blocks.${i}.attn.hook_pattern`), `attentions[${i}]`);
          if (i > 0) same(cache.get(`blocks.${i}.hook_resid_pre`), cache.get(`blocks.${i - 1}.hook_normalized_resid_post`), `resid_pre ${i}`);
        }
        same(output.lastHiddenState, cache.get(`blocks.${L - 1}.hook_normalized_resid_post`), 'last_hidden_state');
        same(output.embedding, cache.get('hook_embedding'), 'embedding');
        // Padded keys get exactly zero attention (mask = float32 min, like HF).
        const pattern = cache.get('blocks.0.attn.hook_pattern').arraySync() as number[][][][];
        b.attentionMask.forEach((row, r) => row.forEach((m, k) => {
          if (m === 0) for (let h = 0; h < H; h++) for (let q = 0; q < T; q++) assert.equal(pattern[r][h][q][k], 0);
        }));
      } finally {
        output.dispose();
        cache.dispose();
      }
    });

    it('a hook that returns its input (or a copy) leaves every output bit-identical', () => {
      const b = batch();
      // Bit for bit against the same kernels: the clean run op by op too (a hooked one always is).
      const clean = bert.forward(b, { compiled: false });
      const hooked = bert.runWithHooks(b, [['*', (x) => tf.add(x, 0)]]);
      try {
        assert.deepEqual(Array.from(hooked.lastHiddenState.dataSync()), Array.from(clean.lastHiddenState.dataSync()));
        assert.deepEqual(Array.from(hooked.embedding.dataSync()), Array.from(clean.embedding.dataSync()));
      } finally {
        clean.dispose();
        hooked.dispose();
      }
    });

    it('a hook may not change the shape, and sees layer numbers', () => {
      const seen: Array<number | undefined> = [];
      bert.runWithHooks(batch(), [['blocks.*.hook_resid_pre', (_x, info) => void seen.push(info.layer)]]).dispose();
      assert.deepEqual(seen, [0, 1]);
      assert.throws(() => bert.runWithHooks(batch(), [['blocks.0.mlp.hook_post', (x) => tf.slice(x, [0, 0, 0], [1, -1, -1])]]), /returned shape/);
    });

    it('zeroing one head at attn.hook_z zeroes that head only, leaves everything upstream identical, and moves the output', () => {
      const b = batch();
      const H = bert.config.numAttentionHeads, head = 2;
      const names: HookName[] = ['blocks.0.hook_normalized_resid_post', 'blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_z'];
      const mask = tf.tensor4d(Array.from({ length: H }, (_, h) => (h === head ? 0 : 1)), [1, 1, H, 1]);
      const clean = bert.runWithCache(b, { names, compiled: false }); // op by op, as the hooked run: identical bits upstream
      const ablated = bert.runWithCache(b, { names, hooks: [['blocks.1.attn.hook_z', (z) => tf.mul(z, mask)]] });
      try {
        const data = (r: typeof clean, n: HookName) => Array.from(r.cache.get(n).dataSync());
        assert.deepEqual(data(ablated, names[0]), data(clean, names[0]), 'layer 0 output');
        assert.deepEqual(data(ablated, names[1]), data(clean, names[1]), 'layer 1 pattern');
        const cz = clean.cache.get(names[2]).arraySync() as number[][][][];
        const az = ablated.cache.get(names[2]).arraySync() as number[][][][];
        cz.forEach((row, r) => row.forEach((tok, t) => tok.forEach((vec, h) => {
          if (h === head) assert.ok(az[r][t][h].every((v) => v === 0), `z[${r}][${t}][${h}] zeroed`);
          else assert.deepEqual(az[r][t][h], vec, `z[${r}][${t}][${h}] untouched`);
        })));
        assert.ok(cz[0][0][head].some((v) => v !== 0), 'head was active before ablation');
        assert.ok(!compareArrays(ablated.output.embedding.dataSync(), clean.output.embedding.dataSync(), [0], { atol: 1e-6 }).pass, 'output moved');
      } finally {
        [clean, ablated].forEach((r) => { r.output.dispose(); r.cache.dispose(); });
        mask.dispose();
      }
    });

    it('read-only hooks see packed rows of different lengths: token-wise as [1,N,…], attention as each row padded to the longest; each row equals it alone', () => {
      const rows = [[101, 2129, 2172, 3010, 102], [101, 7163, 102], [101, 1, 2, 3, 4, 5, 6, 7, 8, 102]];
      const names: HookName[] = ['blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_z', 'blocks.1.hook_resid_post'];
      const packedIn = packSequences(rows.map((r) => ({ inputIds: Int32Array.from(r) })));
      const ctx = new (require('../../engine/hooks').HookContext)({ cache: names });
      bert.run(packedIn, { compiled: false }, ctx).dispose();
      try {
        const { numAttentionHeads: H, hiddenSize: D } = bert.config;
        const N = packedIn.rows.total, T = 10;
        assert.deepEqual(ctx.cache.get(names[0]).shape, [3, H, T, T]);
        assert.deepEqual(ctx.cache.get(names[1]).shape, [1, N, H, D / H]);
        assert.deepEqual(ctx.cache.get(names[2]).shape, [1, N, D]);
        const grid = ctx.cache.get(names[0]).arraySync() as number[][][][];
        rows.forEach((r, i) => {
          const { output, cache } = bert.runWithCache({ inputIds: [r] }, { names, compiled: false });
          output.dispose();
          const alone = cache.get(names[0]).arraySync() as number[][][][];
          const Tr = r.length;
          for (let h = 0; h < H; h++) {
            for (let q = 0; q < Tr; q++) {
              close(grid[i][h][q].slice(0, Tr), alone[0][h][q], TOLERANCE.attention, `row ${i} head ${h} query ${q}`);
              assert.ok(grid[i][h][q].slice(Tr).every((v) => v === 0), 'a shorter row gives its padding keys weight 0');
            }
          }
          const start = packedIn.rows.starts[i];
          close(ctx.cache.get(names[2]).dataSync().slice(start * D, (start + Tr) * D), cache.get(names[2]).dataSync(), TOLERANCE.hidden, `resid_post row ${i}`);
          cache.dispose();
        });
      } finally {
        ctx.dispose();
      }
    });

    it('the heads option zeroes heads as a hook at attn.hook_z does, bit for bit (op by op), and checks its shapes', () => {
      const b = batch();
      const { numHiddenLayers: L, numAttentionHeads: H } = bert.config;
      const spec = '0.1,1.3';
      const mask = tf.tensor2d(Array.from({ length: L * H }, (_, i) => (i === 0 * H + 1 || i === 1 * H + 3 ? 0 : 1)), [L, H]);
      const viaMask = bert.forward(b, { heads: { mask }, compiled: false });
      const viaHook = bert.runWithHooks(b, zeroHeads(spec));
      try {
        assert.deepEqual(Array.from(viaMask.embedding.dataSync()), Array.from(viaHook.embedding.dataSync()));
        assert.throws(() => bert.forward(b, { heads: { mask: tf.ones([L + 1, H]) } }), /heads\.mask has shape \[3,4\]; expected \[2, 4\]/);
        assert.throws(() => bert.forward(b, { heads: { mask, fill: tf.zeros([L, 3]) } }), /heads\.fill has shape/);
      } finally {
        tf.dispose([mask]);
        viaMask.dispose();
        viaHook.dispose();
      }
    });

    it('patching every position of a clean run into a corrupted run reproduces the clean output', () => {
      const clean = batch();
      const corrupted = { ...clean, inputIds: clean.inputIds.map((row) => row.map((id, t) => (t > 0 && id !== 0 && id !== 102 ? 1996 : id))) };
      const L = bert.config.numHiddenLayers;
      const site: HookName = `blocks.${L - 1}.hook_resid_pre`;
      const { output: cleanOut, cache } = bert.runWithCache(clean, { names: site, compiled: false }); // the patched run's kernels
      const corruptOut = bert.forward(corrupted, { compiled: false });
      const patched = bert.runWithHooks(corrupted, [[site, () => cache.get(site)]]);
      try {
        assert.ok(!compareArrays(corruptOut.embedding.dataSync(), cleanOut.embedding.dataSync(), [0], { atol: 1e-4 }).pass, 'corruption must matter');
        assert.deepEqual(Array.from(patched.embedding.dataSync()), Array.from(cleanOut.embedding.dataSync()));
        assert.ok(!cache.get(site).isDisposed, 'the patch source is not consumed by the forward pass');
      } finally {
        cleanOut.dispose();
        cache.dispose();
        corruptOut.dispose();
        patched.dispose();
      }
    });
  });

  describe('padding and packing', () => {
    it('a row gives the same hidden states alone and right-padded in a batch (left padding is covered by the PyTorch goldens)', () => {
      const ids = [101, 2129, 2172, 3010, 102];
      const alone = bert.forward({ inputIds: [ids] });
      const right = bert.forward({ inputIds: [[...ids, 0, 0, 0], [101, 1, 2, 3, 4, 5, 6, 102]], attentionMask: [[1, 1, 1, 1, 1, 0, 0, 0], new Array(8).fill(1)] });
      try {
        const D = bert.config.hiddenSize;
        close(right.lastHiddenState.dataSync().slice(0, 5 * D), alone.lastHiddenState.dataSync(), TOLERANCE.hidden, 'right padding');
        close(right.embedding.dataSync().slice(0, D), alone.embedding.dataSync(), TOLERANCE.embedding, 'pooled with right padding');
      } finally {
        alone.dispose();
        right.dispose();
      }
    });

    it('unpadded packing of mixed lengths equals the padded batch at every real token', () => {
      const rows = [[101, 2129, 2172, 3010, 102], [101, 7163, 102], [101, 1, 2, 3, 4, 5, 6, 7, 8, 102]];
      const T = 10;
      const padded = bert.forward({
        inputIds: rows.map((r) => [...r, ...new Array(T - r.length).fill(0)]),
        attentionMask: rows.map((r) => [...new Array(r.length).fill(1), ...new Array(T - r.length).fill(0)]),
      });
      const packedIn = packSequences(rows.map((r) => ({ inputIds: Int32Array.from(r) })));
      const packed = bert.runScoped(packedIn, {}, new (require('../../engine/hooks').HookContext)());
      try {
        const D = bert.config.hiddenSize;
        const p = padded.lastHiddenState.dataSync(), q = packed.lastHiddenState.dataSync();
        rows.forEach((r, i) => close(q.slice(packedIn.rows.starts[i] * D, (packedIn.rows.starts[i] + r.length) * D), p.slice(i * T * D, (i * T + r.length) * D), TOLERANCE.hidden, `row ${i}`));
        close(packed.embedding.dataSync(), padded.embedding.dataSync(), TOLERANCE.embedding, 'embeddings');
      } finally {
        padded.dispose();
        packed.dispose();
      }
    });

    it('a 512-token input runs and matches its own padded-batch result', () => {
      const long = [101, ...Array.from({ length: 510 }, (_, i) => 1000 + i), 102];
      const a = bert.forward({ inputIds: [long] });
      const b = bert.forward({ inputIds: [long, [101, 102, ...new Array(510).fill(0)]], attentionMask: [new Array(512).fill(1), [1, 1, ...new Array(510).fill(0)]] });
      try {
        close(b.embedding.dataSync().slice(0, bert.config.hiddenSize), a.embedding.dataSync(), TOLERANCE.embedding, '512 tokens');
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  });

  describe('input errors', () => {
    it('rejects an all-zero attention mask row instead of producing NaN', () => {
      assert.throws(() => bert.forward({ inputIds: [[101, 102], [101, 102]], attentionMask: [[1, 1], [0, 0]] }), (e: Error) => e instanceof InputError && /row 1 has an all-zero attention_mask/.test(e.message));
    });
    it('rejects ids outside the vocabulary, type ids, too many positions and ragged rows, naming the place', () => {
      assert.throws(() => bert.forward({ inputIds: [[101, 40000]] }), /token id 40000 at row 0, position 1/);
      assert.throws(() => bert.forward({ inputIds: [[101, 102]], tokenTypeIds: [[0, 2]] }), /token type id 2 at row 0, position 1/);
      assert.throws(() => bert.forward({ inputIds: [new Array(513).fill(101)] }), /position 512/);
      assert.throws(() => packPadded({ inputIds: [[1, 2], [1]] }), /input_ids\[1\] has 1 entries, expected 2/);
      assert.throws(() => packPadded({ inputIds: [[1, 2]], attentionMask: [[1, 2]] }), /attention_mask\[0\]\[1\] = 2/);
    });
  });

  describe('embed()', () => {
    it('keeps input order, equals one-at-a-time embedding, reports tokens and truncation', async () => {
      const texts = ['query: how much protein should a female eat', 'passage: summit', 'passage: ' + 'word '.repeat(600), 'query: x'];
      const all = await model.embed(texts, { batchSize: 2 });
      assert.equal(all.embeddings.length, 4);
      assert.deepEqual(all.truncated, [false, false, true, false]);
      assert.equal(all.nTokens[2], 512);
      for (let i = 0; i < texts.length; i++) {
        const one = await model.embed([texts[i]]);
        close(all.embeddings[i], one.embeddings[0], TOLERANCE.embedding, `text ${i}`);
        assert.equal(all.nTokens[i], one.nTokens[0]);
      }
      const norm = Math.hypot(...all.embeddings[0]);
      assert.ok(Math.abs(norm - 1) < 1e-5, `normalized, got ${norm}`);
      assert.ok(all.warnings.some((w) => /truncated/.test(w)));
    });

    it('prefixes and their warnings on an e5 model', async () => {
      const e5 = new EmbeddingModel(model.bert, model.tokenizer, model.info, true);
      const a = await e5.embed(['summit define'], { prefix: 'query' });
      const b = await e5.embed(['query: summit define']);
      close(a.embeddings[0], b.embeddings[0], 0, 'prefix applied');
      assert.deepEqual(b.warnings, []);
      const noPrefix = await e5.embed(['summit define']);
      assert.ok(noPrefix.warnings.some((w) => /neither 'query: ' nor 'passage: '/.test(w)));
      const doubled = await e5.embed(['query: summit define'], { prefix: 'query' });
      assert.ok(doubled.warnings.some((w) => /already start/.test(w)));
    });

    it('pooling modes: cls is the first token, max the elementwise max, mean the masked mean (hand-computed from hidden states)', async () => {
      const text = 'passage: summit define';
      const enc = model.tokenizer.encode(text);
      const out = model.bert.forward({ inputIds: [Array.from(enc.inputIds)] });
      const h = out.lastHiddenState.arraySync()[0];
      out.dispose();
      const D = h[0].length;
      const mean = Array.from({ length: D }, (_, d) => h.reduce((s, row) => s + row[d], 0) / h.length);
      const max = Array.from({ length: D }, (_, d) => Math.max(...h.map((row) => row[d])));
      const r = async (pooling: 'mean' | 'cls' | 'max') => (await model.embed([text], { pooling, normalize: false })).embeddings[0];
      close(await r('mean'), mean, 1e-5, 'mean');
      close(await r('cls'), h[0], 0, 'cls');
      close(await r('max'), max, 0, 'max');
    });

    it('plans batches longest first within the row and token budgets', () => {
      const enc = [5, 9, 3, 9, 1].map((nTokens) => ({ nTokens }));
      assert.deepEqual(planBatches(enc, 2, 100), [[1, 3], [0, 2], [4]]);
      assert.deepEqual(planBatches(enc, 10, 12), [[1], [3], [0, 2, 4]]);
    });
  });

  it('records the backend that computed each result', () => {
    const out = bert.forward({ inputIds: [[101, 102]] });
    out.dispose();
    assert.equal(out.backend.name, process.env.E5_TEST_BACKEND ?? 'wasm');
  });

  it('exposes every block hook kind', () => {
    assert.equal(BLOCK_HOOKS.length, 15);
  });
});
