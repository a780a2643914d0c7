/**
 * Each sublayer alone against PyTorch, fed the reference's own input for it (the golden
 * tiny-F32-all holds every hook point of transformers' forward): an error shows up at the sublayer
 * that makes it instead of compounding through the layers after it (TransformerLens's parity tests
 * do the same). The operations are engine/bert.ts's own (EncoderOps over this backend's kernels).
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { selfAttention } from '../../engine/bert';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { eagerForward } from '../../engine/eager';
import { blockHook, BlockHook, HookContext, HookName } from '../../engine/hooks';
import type { BertModel } from '../../engine/model';
import { packPadded } from '../../engine/rows';
import { currentRuntime } from '../../engine/runtime';
import { testBackend } from '../support/backend';
import { Golden, goldenBatch, loadBert, loadGolden } from '../support/golden';
import { toleranceFor } from '../support/tolerance';

describe('each sublayer alone, fed PyTorch\'s input (golden tiny-F32-all)', () => {
  let g: Golden;
  let model: BertModel;
  before(async () => {
    await testBackend();
    g = loadGolden('tiny-F32-all');
    model = loadBert(g.modelDir);
  });
  after(() => model?.dispose());

  /** The forward's operations for the golden batch, and a golden tensor as the packed [N, C] (or grid) value bert.ts passes. */
  const setup = () => {
    const input = packPadded(goldenBatch(g));
    const f = eagerForward(model.config, currentRuntime().ops, input, new HookContext());
    const ref = (name: HookName): tf.Tensor => {
      const t = g.tensors.get(name);
      assert.ok(t, `the golden holds ${name}`);
      const grid = name.endsWith('hook_pattern') || name.endsWith('hook_attn_scores');
      return tf.tensor(t!.data, grid ? t!.shape : [input.rows.total, t!.data.length / input.rows.total]);
    };
    return { f, ref };
  };

  function expectClose(name: HookName, actual: tf.Tensor): void {
    const want = g.tensors.get(name)!;
    const atol = toleranceFor(name);
    const r = compareArrays(actual.dataSync(), want.data, want.shape, { atol });
    assert.ok(r.pass, describeMismatch(name, r, { atol }));
  }

  it('embeddings: each table lookup, and their LayerNorm fed PyTorch\'s three lookups', () => {
    tf.tidy(() => {
      const { f, ref } = setup();
      const e = model.params.embeddings;
      expectClose('embed.hook_embed', f.ops.embed(e.wordEmbeddings, 'inputIds'));
      expectClose('embed.hook_pos_embed', f.ops.embed(e.positionEmbeddings, 'positionIds'));
      expectClose('embed.hook_token_type_embed', f.ops.embed(e.tokenTypeEmbeddings, 'tokenTypeIds'));
      const sum = f.ops.add(f.ops.add(ref('embed.hook_embed'), ref('embed.hook_token_type_embed')), ref('embed.hook_pos_embed'));
      expectClose('hook_full_embed', f.ops.layerNorm(sum, e.layerNorm, model.config.layerNormEps));
    });
  });

  it('attention: q/k/v, the pattern from PyTorch\'s q and k, z from its pattern and v, the whole block from its resid_pre', () => {
    for (let l = 0; l < model.config.numHiddenLayers; l++) {
      tf.tidy(() => {
        const { f, ref } = setup();
        const p = model.params.layers[l];
        const at = (kind: BlockHook) => blockHook(l, kind);
        const x = ref(at('hook_resid_pre'));
        expectClose(at('attn.hook_q'), f.ops.linear(x, p.query));
        expectClose(at('attn.hook_k'), f.ops.linear(x, p.key));
        expectClose(at('attn.hook_v'), f.ops.linear(x, p.value));
        expectClose(at('attn.hook_pattern'), f.ops.attentionSoftmax(f.ops.attentionScores(ref(at('attn.hook_q')), ref(at('attn.hook_k')))));
        expectClose(at('attn.hook_z'), f.ops.attentionZ(ref(at('attn.hook_pattern')), ref(at('attn.hook_v'))));
        expectClose(at('attn.hook_z'), selfAttention(x, p, l, f));
        expectClose(at('hook_attn_out'), f.ops.linear(ref(at('attn.hook_z')), p.attnOutput));
      });
    }
  });

  it('LayerNorms: after attention and after the FFN, each fed PyTorch\'s residual', () => {
    for (let l = 0; l < model.config.numHiddenLayers; l++) {
      tf.tidy(() => {
        const { f, ref } = setup();
        const p = model.params.layers[l], eps = model.config.layerNormEps;
        expectClose(blockHook(l, 'ln1.hook_normalized'), f.ops.layerNorm(ref(blockHook(l, 'hook_resid_mid')), p.attnLayerNorm, eps));
        expectClose(blockHook(l, 'hook_normalized_resid_post'), f.ops.layerNorm(ref(blockHook(l, 'hook_resid_post')), p.outputLayerNorm, eps));
      });
    }
  });

  it('FFN: intermediate dense, GELU and output dense, each fed PyTorch\'s input', () => {
    for (let l = 0; l < model.config.numHiddenLayers; l++) {
      tf.tidy(() => {
        const { f, ref } = setup();
        const p = model.params.layers[l];
        expectClose(blockHook(l, 'mlp.hook_pre'), f.ops.linear(ref(blockHook(l, 'ln1.hook_normalized')), p.intermediate));
        expectClose(blockHook(l, 'mlp.hook_post'), f.ops.activation(ref(blockHook(l, 'mlp.hook_pre')), model.config.hiddenAct));
        expectClose(blockHook(l, 'hook_mlp_out'), f.ops.linear(ref(blockHook(l, 'mlp.hook_post')), p.output));
      });
    }
  });
});
