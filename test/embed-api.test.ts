/**
 * embed()'s argument checks, as a JavaScript caller (no type checker) meets them: a single
 * string works, every wrong text or option value is an error naming it, a disposed model says
 * so, and `[Symbol.dispose]` frees the model like dispose().
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { EmbeddingModel, loadModel } from '../e5/model';
import { testBackend } from './support/backend';
import { cachedModel } from '../devtools/generate-model';

describe('embed() arguments', function () {
  let dir: string;
  let model: EmbeddingModel;
  before(async () => {
    await testBackend();
    dir = cachedModel({ preset: 'tiny' });
    model = await loadModel(dir);
  });
  after(() => model?.dispose());

  // The API's JavaScript face: what an untyped caller can pass.
  const embedAny = (texts: unknown, opts?: unknown) => (model.embed as (t: unknown, o?: unknown) => Promise<unknown>)(texts, opts);

  it('one string is a list of one (the same vector)', async () => {
    const one = await model.embed('hello world');
    const list = await model.embed(['hello world']);
    assert.equal(one.embeddings.length, 1);
    assert.deepEqual(Array.from(one.embeddings[0]), Array.from(list.embeddings[0]));
  });

  const bad: Array<[string, unknown, unknown, RegExp]> = [
    ['a number for texts', 42, undefined, /texts must be a string or an array of strings, got 42/],
    ['null in the list', ['a', null], undefined, /texts\[1\] must be a string, got null/],
    ['an object in the list', [{ text: 'a' }], undefined, /texts\[0\] must be a string, got an object/],
    ['a misspelt prefix', ['a'], { prefix: 'querry' }, /option 'prefix' must be one of 'query', 'passage', 'none', got 'querry'/],
    ['an unknown pooling', ['a'], { pooling: 'avg' }, /option 'pooling' must be one of 'mean', 'cls', 'max', got 'avg'/],
    ['a string for normalize', ['a'], { normalize: 'false' }, /option 'normalize' must be true or false, got 'false'/],
    ['batchSize 0', ['a'], { batchSize: 0 }, /option 'batchSize' must be an integer >= 1, got 0/],
    ['a fractional maxLength', ['a'], { maxLength: 7.5 }, /option 'maxLength' must be an integer >= 2, got 7.5/],
    ['a misspelt option name', ['a'], { prefx: 'query' }, /unknown option 'prefx' \(known: prefix, /],
    ['options that are a string', ['a'], 'query', /options must be an object, got 'query'/],
  ];
  for (const [what, texts, opts, message] of bad) {
    it(`rejects ${what}, naming it`, async () => {
      await assert.rejects(embedAny(texts, opts), message);
    });
  }

  it('a disposed model says so instead of failing inside tfjs', async () => {
    const m = await loadModel(dir);
    m.dispose();
    m.dispose(); // twice is harmless
    await assert.rejects(m.embed('a'), /has been disposed; load it again/);
  });

  it('[Symbol.dispose] frees every weight tensor', async () => {
    const before = tf.memory().numTensors;
    const m = await loadModel(dir);
    assert.ok(tf.memory().numTensors > before);
    m[Symbol.dispose]();
    assert.equal(tf.memory().numTensors, before);
    await assert.rejects(m.embed('a'), /disposed/);
  });
});
