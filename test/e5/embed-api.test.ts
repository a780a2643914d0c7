/**
 * embed()'s and loadModel()'s argument checks, as a JavaScript caller (no type checker) meets
 * them: a single string works, every wrong text, model name or option value is an error naming
 * it, a disposed model says so (also when disposed by its own onProgress), and `[Symbol.dispose]`
 * frees the model like dispose().
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { EmbeddingModel, loadModel } from '../../e5/model';
import { cosineSimilarity, similarityMatrix } from '../../index';
import { testBackend } from '../support/backend';
import { cachedModel } from '../../devtools/generate-model';

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

  it('matrix: every embedding in one row-major [N, dim] Float32Array, and embeddings[i] is its row', async () => {
    const texts = ['query: a short one', 'passage: a somewhat longer text than the first', 'query: third'];
    const r = await model.embed(texts, { batchSize: 2 });
    assert.ok(r.matrix instanceof Float32Array);
    assert.equal(r.matrix.length, texts.length * r.dim);
    r.embeddings.forEach((e, i) => {
      assert.deepEqual(Array.from(e), Array.from(r.matrix.subarray(i * r.dim, (i + 1) * r.dim)));
      assert.equal(e.buffer, r.matrix.buffer, 'a view, not a copy');
    });
    // the same vectors as one text at a time (packing and batching do not move a row's values here)
    for (const [i, t] of texts.entries()) {
      const one = await model.embed(t);
      assert.ok(Math.abs(cosineSimilarity(one.embeddings[0], r.embeddings[i]) - 1) < 1e-6);
    }
  });

  it("similarity(): the model card's scale × cosine of embed() with query: / passage: (prefix 'auto'), or as given", async () => {
    const queries = ['how much protein should a female eat', 'summit define'];
    const passages = ['the CDC requirement of protein for women is 46 grams per day', 'the highest point of a mountain'];
    const s = await model.similarity(queries, passages);
    const q = await model.embed(queries, { prefix: 'query' });
    const p = await model.embed(passages, { prefix: 'passage' });
    assert.deepEqual(s.scores, similarityMatrix(q.embeddings, p.embeddings, 100));
    assert.deepEqual(Array.from(s.queries.matrix), Array.from(q.matrix));
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        let dot = 0;
        for (let k = 0; k < q.dim; k++) dot += q.embeddings[i][k] * p.embeddings[j][k];
        assert.ok(Math.abs(s.scores[i][j] - 100 * dot) < 1e-3, 'normalized vectors: 100 × the dot product (scores ×100 tolerance)');
      }
    }
    const asGiven = await model.similarity(queries, passages, { prefix: 'none', scale: 1 });
    const qn = await model.embed(queries), pn = await model.embed(passages);
    assert.deepEqual(asGiven.scores, similarityMatrix(qn.embeddings, pn.embeddings));
    await assert.rejects((model.similarity as (q: unknown, p: unknown, o: unknown) => Promise<unknown>)(queries, passages, { prefix: 'query' }), /prefix must be 'auto' or 'none', got "query"/);
    assert.throws(() => similarityMatrix([[1, 0]], [[1, 0, 0]]), /cosine of vectors of 2 and 3 values/);
    assert.equal(cosineSimilarity([0, 0], [1, 0]), 0, 'the zero vector scores 0');
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

  it('dispose() inside onProgress: a clear error from the next batch, not a TypeError inside tfjs', async () => {
    const m = await loadModel(dir);
    await assert.rejects(m.embed(['a', 'b', 'c'], { batchSize: 1, onProgress: () => m.dispose() }), (e: Error) => {
      assert.equal(e.constructor, Error);
      assert.match(e.message, /was disposed during this call \(by an onProgress or onWarning callback\?\); dispose it after embed\(\) returns/);
      return true;
    });
  });

  const loadAny = (nameOrDir: unknown, opts?: unknown) => (loadModel as (n: unknown, o?: unknown) => Promise<EmbeddingModel>)(nameOrDir, opts);
  const badLoads: Array<[string, unknown, unknown, RegExp]> = [
    ['a number for the model', 123, undefined, /^TypeError: loadModel\(nameOrDir\): nameOrDir must be a model folder or a hub id .*, got 123$/],
    ['an empty model name', '', undefined, /nameOrDir must be a model folder or a hub id .*, got ''$/],
    ['a string for offline', 'x/y', { offline: 'yes' }, /^TypeError: loadModel\(nameOrDir, options\): option 'offline' must be true or false, got 'yes'$/],
    ['a misspelt option name', 'x/y', { revison: 'main' }, /unknown option 'revison' \(known: revision, /],
    ['a number for revision', 'x/y', { revision: 5 }, /^RangeError: .*option 'revision' must be a string, got 5$/],
    ['files that are not strings', 'x/y', { files: ['a', 1] }, /option 'files' must be an array of strings, got an array$/],
    ['options that are a string', 'x/y', 'offline', /options must be an object, got 'offline'/],
  ];
  for (const [what, name, opts, message] of badLoads) {
    it(`loadModel rejects ${what}, naming it`, async () => {
      await assert.rejects(loadAny(name, opts), (e: Error) => {
        assert.match(`${e.name}: ${e.message}`, message);
        return true;
      });
    });
  }

  it('[Symbol.dispose] frees every weight tensor', async () => {
    const before = tf.memory().numTensors;
    const m = await loadModel(dir);
    assert.ok(tf.memory().numTensors > before);
    m[Symbol.dispose]();
    assert.equal(tf.memory().numTensors, before);
    await assert.rejects(m.embed('a'), /disposed/);
  });
});
