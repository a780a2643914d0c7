/**
 * Layer-by-layer parity with PyTorch on the committed golden files (test/golden/, made by
 * test/parity/reference.py from generated models; `make golden` regenerates them). No
 * Python is needed here. Each tensor within its documented tolerance (test/support/tolerance.ts):
 * attention patterns and embeddings 1e-5, hidden states and the other activations 1e-4.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { HookName, parseHookName } from '../../engine/hooks';
import { BertModel } from '../../engine/model';
import { testBackend } from '../support/backend';
import { GOLDEN_CASES, goldenBatch, loadBert, loadGolden } from '../support/golden';
import { zeroHeads } from '../support/heads';
import { toleranceFor } from '../support/tolerance';

describe('parity with PyTorch (golden files)', function () {
  before(async () => {
    await testBackend();
  });

  for (const c of GOLDEN_CASES) {
    it(`${c.name}: every dumped tensor within its documented tolerance`, () => {
      const g = loadGolden(c.name);
      const model: BertModel = loadBert(g.modelDir);
      const hookNames = [...g.tensors.keys()].filter((n) => parseHookName(n)) as HookName[];
      const batch = goldenBatch(g);
      const ctxHooks = c.ablate ? zeroHeads(c.ablate) : [];
      try {
        const { output, cache } = c.ablate
          ? { output: model.runWithHooks(batch, ctxHooks, {}), cache: undefined }
          : model.runWithCache(batch, { names: hookNames });
        const actual = (name: string): tf.Tensor => {
          if (name === 'pooler_output') return output.poolerOutput!;
          if (name === 'hook_pooled') return output.pooled;
          if (name === 'hook_embedding') return output.embedding;
          return cache!.get(name as HookName);
        };
        const failures: string[] = [];
        let compared = 0;
        for (const [name, ref] of g.tensors) {
          if (c.ablate && !['pooler_output', 'hook_pooled', 'hook_embedding'].includes(name)) continue;
          const ours = actual(name);
          assert.deepEqual(ours.shape, ref.shape, `${name}: shape`);
          const atol = toleranceFor(name);
          const r = compareArrays(ours.dataSync(), ref.data, ref.shape, { atol });
          compared++;
          if (!r.pass) failures.push(describeMismatch(name, r, { atol }));
        }
        output.dispose();
        cache?.dispose();
        assert.ok(compared >= (c.ablate ? 3 : 4), `compared only ${compared} tensors`);
        assert.deepEqual(failures, [], failures.join('\n'));
      } finally {
        model.dispose();
      }
    });
  }

  it('ablating a head changes the output (the ablation golden is not the clean one)', () => {
    const clean = loadGolden('tiny-F32-all').tensors.get('hook_embedding')!;
    const ablated = loadGolden('tiny-F32-ablate').tensors.get('hook_embedding')!;
    const r = compareArrays(ablated.data, clean.data, clean.shape, { atol: 1e-3 });
    assert.ok(!r.pass, 'ablation should move the embedding by more than 1e-3');
  });
});
