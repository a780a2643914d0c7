/**
 * The analysis helpers (inspect/analysis.ts) on the generated tiny model. Expectations come from
 * the PyTorch golden (zero ablation), from values recomputed here in plain JS from cached
 * activations (mean ablation, layer-wise depths, attention slices), and from identities that
 * must hold exactly (full patches restore the clean run, empty patches leave the corrupted one,
 * patching a token that is the same in both inputs at layer 0 does nothing).
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { HookName } from '../../engine/hooks';
import { EmbeddingModel, loadModel } from '../../e5/model';
import { BertModel } from '../../engine/model';
import {
  ablateHeads, attentionViewData, headAblationHooks, InspectError, layerwiseSimilarity, parseHeadList, patchActivations,
  patchingEffect, patchingHooks,
} from '../../inspect';
import { testBackend } from '../support/backend';
import { cachedModel } from '../../devtools/generate-model';
import { goldenBatch, loadBert, loadGolden } from '../support/golden';
import { TOLERANCE, toleranceFor } from '../support/tolerance';

const data = (t: tf.Tensor) => Array.from(t.dataSync());
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) (ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]);
  return ab / Math.sqrt(aa * bb);
};
/** Masked mean over tokens of a [T][D] matrix, in float64. */
const maskedMean = (h: number[][], mask: number[]) => h[0].map((_, d) => h.reduce((s, row, t) => s + (mask[t] ? row[d] : 0), 0) / mask.reduce((a, b) => a + b, 0));

describe('inspect/analysis', function () {
  let bert: BertModel; // the golden's model, no tokenizer needed
  let m: EmbeddingModel;
  const tinyBatch = () => goldenBatch(loadGolden('tiny-F32-all'));

  before(async () => {
    await testBackend();
    bert = loadBert(loadGolden('tiny-F32-ablate').modelDir);
    m = await loadModel(cachedModel({ preset: 'tiny' }));
  });
  after(() => {
    bert?.dispose();
    m?.dispose();
  });

  describe('parseHeadList', () => {
    const shape = { numHiddenLayers: 2, numAttentionHeads: 4 };
    it('reads L.H lists (spaces allowed, duplicates dropped) and names what is wrong', () => {
      assert.deepEqual(parseHeadList('3.5, 0.1,3.5'), [{ layer: 3, head: 5 }, { layer: 0, head: 1 }]);
      assert.throws(() => parseHeadList('1.2,x'), (e: Error) => e instanceof InspectError && /heads\[1\]: 'x' is not LAYER\.HEAD/.test(e.message));
      assert.throws(() => parseHeadList(''), /empty list/);
      assert.throws(() => parseHeadList('0.1,2.0', shape), /heads\[1\] = 2\.0: layer 2 is out of range \(the model has layers 0-1\)/);
      assert.throws(() => parseHeadList('1.4', shape), /heads\[0\] = 1\.4: head 4 is out of range \(the model has heads 0-3 in each layer\)/);
    });
  });

  describe('ablateHeads', () => {
    it("zero mode equals PyTorch's forward hook (reference.py --ablate 0.1,1.3,1.0) within 1e-5", () => {
      const g = loadGolden('tiny-F32-ablate');
      assert.equal(JSON.parse(g.metadata.ablate).join(','), '0.1,1.3,1.0', 'the golden was made with these heads');
      const batch = goldenBatch(g);
      const out = ablateHeads(bert, batch, parseHeadList('0.1,1.3,1.0', bert.config), 'zero');
      try {
        const ours: Record<string, tf.Tensor> = { hook_embedding: out.embedding, hook_pooled: out.pooled, pooler_output: out.poolerOutput! };
        let worst = 0;
        for (const [name, t] of Object.entries(ours)) {
          const ref = g.tensors.get(name)!;
          assert.ok(ref, `golden has ${name}`);
          const atol = toleranceFor(name);
          const r = compareArrays(t.dataSync(), ref.data, ref.shape, { atol });
          assert.ok(r.pass, describeMismatch(name, r, { atol }));
          worst = Math.max(worst, r.maxAbs);
        }
        console.log(`      max |ours - torch| over embedding/pooled/pooler_output: ${worst.toExponential(2)}`);
      } finally {
        out.dispose();
      }
    });

    it("mean mode: the ablated heads' z is their mean over real tokens at every position; other heads and layer 0 untouched", () => {
      const batch = tinyBatch();
      const heads = parseHeadList('1.0,1.3', bert.config);
      const names: HookName[] = ['blocks.0.hook_normalized_resid_post', 'blocks.1.attn.hook_z'];
      const clean = bert.runWithCache(batch, { names });
      const ablation = headAblationHooks(bert, batch, heads, 'mean');
      const ablated = bert.runWithCache(batch, { names, hooks: ablation.hooks });
      try {
        assert.deepEqual(data(ablated.cache.get(names[0])), data(clean.cache.get(names[0])), 'layer 0 output');
        const cz = clean.cache.get('blocks.1.attn.hook_z').arraySync() as number[][][][]; // [B,T,H,Dh]
        const az = ablated.cache.get('blocks.1.attn.hook_z').arraySync() as number[][][][];
        const mask = batch.attentionMask;
        let realVsAll = 0;
        for (const h of [0, 3]) {
          // The expected mean, in float64 over the real tokens only (padding would move it).
          const Dh = cz[0][0][h].length;
          const mean = new Array(Dh).fill(0), all = new Array(Dh).fill(0);
          let n = 0, nAll = 0;
          cz.forEach((row, b) => row.forEach((tok, t) => {
            nAll++;
            if (mask[b][t]) n++;
            tok[h].forEach((v, d) => {
              all[d] += v;
              if (mask[b][t]) mean[d] += v;
            });
          }));
          for (let d = 0; d < Dh; d++) (mean[d] /= n), (all[d] /= nAll);
          realVsAll = Math.max(realVsAll, ...mean.map((v, d) => Math.abs(v - all[d])));
          az.forEach((row, b) => row.forEach((tok, t) => {
            const r = compareArrays(tok[h], mean, [Dh], { atol: TOLERANCE.hidden }); // z is an activation inside the encoder
            assert.ok(r.pass, `z[${b}][${t}][${h}] = mean: max diff ${r.maxAbs}`);
          }));
        }
        assert.ok(realVsAll > 1e-3, 'the batch has padding that would change an unmasked mean');
        az.forEach((row, b) => row.forEach((tok, t) => [1, 2].forEach((h) => assert.deepEqual(tok[h], cz[b][t][h], `z[${b}][${t}][${h}] untouched`))));
        // Mean ablation is not zero ablation, and both move the output.
        const zero = ablateHeads(bert, batch, heads, 'zero');
        const moved = (a: tf.Tensor, b: tf.Tensor) => !compareArrays(a.dataSync(), b.dataSync(), a.shape, { atol: 1e-4 }).pass;
        assert.ok(moved(ablated.output.embedding, clean.output.embedding), 'mean ablation moves the embedding');
        assert.ok(moved(zero.embedding, ablated.output.embedding), 'zero and mean ablation differ');
        zero.dispose();
      } finally {
        ablation.dispose();
        [clean, ablated].forEach((r) => (r.output.dispose(), r.cache.dispose()));
      }
    });
  });

  describe('patching', () => {
    const clean = () => tinyBatch();
    // Same shape, different tokens (not padding, [CLS] or [SEP]) from position 2 on.
    const corrupted = () => {
      const c = tinyBatch();
      return { ...c, inputIds: c.inputIds.map((row) => row.map((id, t) => (t > 1 && id !== 0 && id !== 101 && id !== 102 ? 1996 : id))) };
    };

    it(`patching every position of blocks.{L-1}.hook_resid_pre reproduces the clean embedding exactly; no position leaves the corrupted one`, () => {
      const L = bert.config.numHiddenLayers, T = clean().inputIds[0].length;
      const site: HookName = `blocks.${L - 1}.hook_resid_pre`;
      // Op by op, as patched runs are: the same kernels, so "reproduces" can be bit for bit.
      const cleanOut = bert.forward(clean(), { compiled: false });
      const corruptOut = bert.forward(corrupted(), { compiled: false });
      const all = patchActivations(bert, clean(), corrupted(), { hook: site });
      const listed = patchActivations(bert, clean(), corrupted(), { hook: site, positions: Array.from({ length: T }, (_, t) => t) });
      const none = patchActivations(bert, clean(), corrupted(), { hook: site, positions: [] });
      try {
        assert.ok(!compareArrays(corruptOut.embedding.dataSync(), cleanOut.embedding.dataSync(), [0], { atol: 1e-4 }).pass, 'the corruption matters');
        assert.deepEqual(data(all.embedding), data(cleanOut.embedding), 'all positions (default)');
        assert.deepEqual(data(listed.embedding), data(cleanOut.embedding), 'all positions listed');
        assert.deepEqual(data(none.embedding), data(corruptOut.embedding), 'no position');
      } finally {
        [cleanOut, corruptOut, all, listed, none].forEach((o) => o.dispose());
      }
    });

    it('positions and heads land on the right axes: [B,T,H,Dh] for hook_z, [B,H,Tq,Tk] for hook_pattern', () => {
      const [pos, head] = [3, 1];
      const names: HookName[] = ['blocks.1.attn.hook_z', 'blocks.1.attn.hook_pattern'];
      const a = bert.runWithCache(clean(), { names });
      const b = bert.runWithCache(corrupted(), { names });
      try {
        for (const name of names) {
          const patching = patchingHooks(bert, clean(), { hook: name, positions: [pos], heads: [head] });
          const p = bert.runWithCache(corrupted(), { names: name, hooks: patching.hooks });
          patching.dispose();
          const got = p.cache.get(name).arraySync() as number[][][][];
          const want = a.cache.get(name).arraySync() as number[][][][], other = b.cache.get(name).arraySync() as number[][][][];
          const zLike = name.endsWith('hook_z');
          got.forEach((r, i) => r.forEach((x, j) => x.forEach((y, k) => {
            const [t, h] = zLike ? [j, k] : [k, j]; // z: [B,T,H,Dh]; pattern: [B,H,Tq,Tk]
            assert.deepEqual(y, (t === pos && h === head ? want : other)[i][j][k], `${name}[${i}][${j}][${k}]`);
          })));
          p.output.dispose();
          p.cache.dispose();
        }
      } finally {
        [a, b].forEach((r) => (r.output.dispose(), r.cache.dispose()));
      }
    });

    it('inputs of different token length, bad positions or heads are clear errors', () => {
      const short = { inputIds: [[101, 2129, 102]] };
      const long = { inputIds: [[101, 2129, 2172, 102]] };
      assert.throws(() => patchActivations(bert, short, long, { hook: 'blocks.0.hook_resid_pre' }), (e: Error) => e instanceof InspectError && /corrupted: is 1×4 tokens but clean is 1×3: patching needs inputs of equal token length/.test(e.message));
      assert.throws(() => patchActivations(bert, short, short, { hook: 'blocks.0.hook_resid_pre', positions: [3] }), /positions\[0\]: position 3 is out of range \[0, 3\)/);
      assert.throws(() => patchActivations(bert, short, short, { hook: 'blocks.0.hook_resid_pre', heads: [0] }), /has no head axis/);
      assert.throws(() => patchActivations(bert, short, short, { hook: 'hook_pooled', positions: [0] }), /has no token axis/);
      assert.throws(() => patchActivations(bert, short, short, { hook: 'blocks.9.*' }), /matches no hook point/);
    });

    it('patchingEffect: effect 1 for a full patch at any resid_pre; per position at layer 0, 1 where the token differs and 0 elsewhere', () => {
      const o = { query: 'how high is the summit', cleanPassage: 'the summit is high', corruptedPassage: 'the valley is high' };
      const ids = (t: string) => Array.from(m.tokenizer.encode('passage: ' + t).inputIds);
      const [ci, ki] = [ids(o.cleanPassage), ids(o.corruptedPassage)];
      assert.equal(ci.length, ki.length, 'test inputs have equal token length');
      const differs = ci.map((id, t) => id !== ki[t]);
      assert.equal(differs.filter(Boolean).length, 1, 'exactly one token differs');

      const all = patchingEffect(m, o);
      assert.equal(all.results.length, m.config.numHiddenLayers);
      assert.notEqual(all.clean, all.corrupted);
      for (const r of all.results) {
        assert.equal(r.similarity, all.clean, `${r.hook}: full patch restores the clean similarity`);
        assert.equal(r.effect, 1);
      }
      const each = patchingEffect(m, { ...o, hooks: ['blocks.0.hook_resid_pre'], positions: 'each' });
      assert.deepEqual(each.results.map((r) => r.position), ci.map((_, t) => t));
      // resid_pre of layer 0 is the embeddings output: per token, so equal tokens carry equal vectors.
      assert.deepEqual(each.results.map((r) => r.effect + 0), differs.map((d) => (d ? 1 : 0)));
      assert.deepEqual(each.tokens.length, ci.length);
      assert.throws(() => patchingEffect(m, { ...o, corruptedPassage: 'the long winding valley is high' }), /equal token length/);
    });
  });

  describe('layerwiseSimilarity', () => {
    const queries = ['how much protein should a female eat', 'summit define'];
    const passages = ['the cdc requirement of protein for women is 46 grams per day', 'definition of summit: the highest point of a mountain', 'x'];

    it('has L+1 depths; depth 0 and 1 equal a JS masked mean of HF hidden_states; the last equals embed() cosine (1e-5)', async () => {
      const lw = layerwiseSimilarity(m, queries, passages);
      const L = m.config.numHiddenLayers;
      assert.deepEqual(lw.depths, ['hook_full_embed', ...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_normalized_resid_post`)]);
      const q = await m.embed(queries, { prefix: 'query' });
      const p = await m.embed(passages, { prefix: 'passage' });
      let worst = 0;
      lw.scores.forEach((row, i) => row.forEach((series, j) => {
        assert.equal(series.length, L + 1);
        const want = cosine(q.embeddings[i], p.embeddings[j]);
        worst = Math.max(worst, Math.abs(series[L] - want));
        assert.ok(Math.abs(series[L] - want) < 1e-5, `q${i}·p${j}: ${series[L]} vs embed ${want}`);
      }));
      console.log(`      last depth vs embed() cosine: max diff ${worst.toExponential(2)}`);
      // Intermediate depths from HF's hidden_states, pooled here in float64 (one text at a time: no padding).
      const hidden = (text: string) => {
        const out = m.bert.forward({ inputIds: [Array.from(m.tokenizer.encode(text).inputIds)] }, { outputHiddenStates: true });
        const hs = out.hiddenStates!.map((h) => (h.arraySync() as number[][][])[0]);
        out.dispose();
        return hs;
      };
      const qh = hidden('query: ' + queries[1]), ph = hidden('passage: ' + passages[0]);
      for (const d of [0, 1]) {
        const want = cosine(maskedMean(qh[d], qh[d].map(() => 1)), maskedMean(ph[d], ph[d].map(() => 1)));
        assert.ok(Math.abs(lw.scores[1][0][d] - want) < 1e-5, `depth ${d}: ${lw.scores[1][0][d]} vs ${want}`);
      }
    });

    it('prefix none uses texts as given; ablation hooks apply to every depth after the ablated layer only', () => {
      const plain = layerwiseSimilarity(m, ['query: ' + queries[0]], ['passage: ' + passages[0]], { prefix: 'none' });
      const auto = layerwiseSimilarity(m, [queries[0]], [passages[0]]);
      assert.deepEqual(plain.scores, auto.scores);
      const ablation = headAblationHooks(m.bert, { inputIds: [[101, 102]] }, [{ layer: 1, head: 0 }, { layer: 1, head: 2 }], 'zero');
      const ablated = layerwiseSimilarity(m, [queries[0]], [passages[0]], { hooks: ablation.hooks });
      ablation.dispose();
      const [a, b] = [auto.scores[0][0], ablated.scores[0][0]];
      assert.deepEqual(b.slice(0, 2), a.slice(0, 2), 'depths before layer 1 are untouched');
      assert.notEqual(b[2], a[2], 'layer 1 output moved');
    });
  });

  describe('attentionViewData', () => {
    it('tokens without padding, patterns cut to each row, equal to HF attentions at the real positions; --layers selects', () => {
      const texts = ['passage: the highest point of a mountain', 'query: summit'];
      const view = attentionViewData(m, texts, { layers: [1] });
      const H = m.config.numAttentionHeads;
      const enc = texts.map((t) => m.tokenizer.encode(t));
      assert.deepEqual(view.tokens, enc.map((e) => e.tokens));
      assert.equal(view.attention.length, 1);
      assert.equal(view.numHeads, H);
      // Each row alone (no padding) must give the same attention as the sliced batched one.
      enc.forEach((e, r) => {
        const out = m.bert.forward({ inputIds: [Array.from(e.inputIds)] }, { outputAttentions: true });
        const want = out.attentions![1].dataSync();
        // Rows of another length in one batch run other GEMM shapes: equal within the documented attention tolerance, not to the bit.
        const r2 = compareArrays(view.attention[0][r], want, [H, e.nTokens, e.nTokens], { atol: TOLERANCE.attention });
        assert.ok(r2.pass, describeMismatch(`row ${r}`, r2, { atol: TOLERANCE.attention }));
        out.dispose();
      });
      assert.throws(() => attentionViewData(m, texts, { layers: [2] }), /layers\[0\]: layer 2 is out of range/);
    });
  });

  it('leaks no tensor (ablation both modes, patching, patchingEffect, layer-wise, attention view)', () => {
    const b = tinyBatch();
    const once = () => {
      ablateHeads(bert, b, [{ layer: 0, head: 1 }], 'zero').dispose();
      ablateHeads(bert, b, [{ layer: 1, head: 1 }], 'mean').dispose();
      patchActivations(bert, b, b, { hook: 'blocks.*.attn.hook_z', positions: [1], heads: [2] }).dispose();
      patchingEffect(m, { query: 'a b', cleanPassage: 'c d', corruptedPassage: 'c e', positions: 'each' });
      layerwiseSimilarity(m, ['a'], ['b c']);
      attentionViewData(m, ['a b']);
    };
    once();
    const before = tf.memory().numTensors;
    once();
    assert.equal(tf.memory().numTensors, before);
  });
});
