/**
 * engine/backends/wasm/heap.ts and the loading path built on it: weights read straight into the wasm heap,
 * the heap faulted in by worker threads while the main thread writes, XNNPACK prepacking,
 * Linear weights released once packed. Expectations: the portable path (fresh arrays through
 * tf.tensor, loadBertParams' default) gives the same values bit for bit; a model that keeps
 * its weights gives the same outputs bit for bit; data written during a prefault survives it.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { filledTensor, prefaultWasmHeap } from '../../engine/backends/wasm/heap';
import { loadModel } from '../../e5/model';
import { linearLayers, paramTensors, PACKED_WEIGHT } from '../../weights/params';
import { testBackend } from '../support/backend';
import { cachedModel } from '../../devtools/generate-model';
import { loadBert } from '../support/golden';
import { mulberry32 } from '../../devtools/rng';

describe('wasm heap loading', () => {
  let threads = 1;
  before(async () => {
    threads = (await testBackend()).threads;
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`loadModel (heap-filled, prefaulted, prepacked) holds the same ${dtype} parameters as the portable path, bit for bit`, async () => {
      const dir = cachedModel({ preset: 'tiny', dtype });
      const fast = await loadModel(dir);
      const portable = loadBert(dir);
      try {
        const a = paramTensors(fast.bert.params), b = paramTensors(portable.params);
        assert.equal(a.length, b.length);
        a.forEach((t, i) => {
          assert.deepEqual(t.shape, b[i].shape, `parameter ${i}`);
          assert.deepEqual(new Uint32Array(t.dataSync().buffer.slice(0)), new Uint32Array(b[i].dataSync().buffer.slice(0)), `parameter ${i} (shape ${t.shape})`);
        });
        if (tf.getBackend() === 'wasm') assert.ok(fast.info.prepackSeconds > 0, 'prepacked on wasm');
      } finally {
        fast.dispose();
        portable.dispose();
      }
    });
  }

  it('a prepacked and a lazily packed model embed identically, and tensors do not leak', async () => {
    const dir = cachedModel({ preset: 'tiny' });
    const lazy = await loadModel(dir, { prepack: false });
    const before = tf.memory().numTensors;
    const packed = await loadModel(dir);
    const texts = ['query: how much protein should a female eat', 'passage: summit define', 'a third, longer text with several words in it'];
    try {
      const x = await lazy.embed(texts), y = await packed.embed(texts);
      x.embeddings.forEach((e, i) => assert.deepEqual(Array.from(e), Array.from(y.embeddings[i]), `text ${i}`));
    } finally {
      packed.dispose();
      lazy.dispose();
    }
    assert.equal(tf.memory().numTensors, before - paramTensors(lazy.bert.params).length);
  });

  it('keepLinearWeights: false computes exactly what a model keeping its weights does, and says so when a weight is read', async () => {
    const dir = cachedModel({ preset: 'tiny' });
    const kept = await loadModel(dir);
    const before = tf.memory().numTensors;
    const released = await loadModel(dir, { keepLinearWeights: false });
    const texts = ['query: how much protein should a female eat', 'passage: summit define', 'a third, longer text with several words in it'];
    const batch = { inputIds: [[101, 2000, 2001, 102], [101, 2002, 102, 0]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]] };
    try {
      const wasm = tf.getBackend() === 'wasm';
      assert.equal(released.info.linearWeights, wasm ? 'released' : 'kept');
      const x = await kept.embed(texts), y = await released.embed(texts);
      x.embeddings.forEach((e, i) => assert.deepEqual(Array.from(e), Array.from(y.embeddings[i]), `text ${i}`));
      // Every Linear incl. the pooler, with every activation cached: the same numbers.
      const a = kept.bert.runWithCache(batch, { names: '*' }), b = released.bert.runWithCache(batch, { names: '*' });
      try {
        assert.deepEqual(b.cache.names, a.cache.names);
        for (const [name, t] of a.cache.entries()) assert.deepEqual(b.cache.get(name).dataSync(), t.dataSync(), name);
        assert.deepEqual(b.output.poolerOutput!.dataSync(), a.output.poolerOutput!.dataSync(), 'pooler');
      } finally {
        [a, b].forEach((r) => { r.output.dispose(); r.cache.dispose(); });
      }
      const lins = linearLayers(released.bert.params);
      if (wasm) {
        assert.throws(() => released.bert.params.layers[1].value.weight, /^Error: encoder\.layer\.1\.attention\.self\.value\.weight was handed to XNNPACK .* keepLinearWeights: true/);
        assert.ok(lins.every((l) => l[PACKED_WEIGHT]), 'every Linear released');
        assert.deepEqual(released.bert.params.layers[1].value.bias.dataSync(), kept.bert.params.layers[1].value.bias.dataSync(), 'biases stay readable');
      } else {
        lins.forEach((l, i) => assert.deepEqual(l.weight.dataSync(), linearLayers(kept.bert.params)[i].weight.dataSync()));
      }
      for (let i = 0; i < 3; i++) await released.embed(texts);
      assert.equal(tf.memory().numTensors, before + paramTensors(released.bert.params).length, 'no tensor leak across embeds');
    } finally {
      released.dispose();
      kept.dispose();
    }
    assert.equal(tf.memory().numTensors, before - paramTensors(kept.bert.params).length, 'dispose frees the released handles too');
  });

  it('filledTensor writes in place and reports a failing fill without keeping memory', () => {
    const before = tf.memory().numTensors;
    const t = filledTensor([2, 3], (dst) => dst.set([1, 2, 3, 4, 5, 6]));
    assert.deepEqual(Array.from(t.dataSync()), [1, 2, 3, 4, 5, 6]);
    t.dispose();
    assert.throws(() => filledTensor([4], () => { throw new Error('bad file'); }), /bad file/);
    assert.equal(tf.memory().numTensors, before);
  });

  it('data written while workers fault the heap in survives (the touch is an atomic add of 0)', async function () {
    if (tf.getBackend() !== 'wasm' || threads < 2) this.skip(); // needs the shared (threaded) heap
    const bytes = 64 * 2 ** 20;
    const prefault = prefaultWasmHeap(bytes, 2);
    assert.ok(prefault, 'a shared heap can be prefaulted');
    const rand = mulberry32(5);
    const tensors: tf.Tensor[] = [], expected: Float32Array[] = [];
    for (let i = 0; i < 8; i++) { // 8 x 8 MB written by the main thread into the region being touched
      const values = Float32Array.from({ length: 2 ** 21 }, () => rand());
      expected.push(values);
      tensors.push(filledTensor([values.length], (dst) => dst.set(values)));
    }
    await prefault!.done;
    tensors.forEach((t, i) => assert.deepEqual(t.dataSync(), expected[i], `tensor ${i}`));
    tf.dispose(tensors);
  });
});
