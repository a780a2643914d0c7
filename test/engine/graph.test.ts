/**
 * The encoder as one TensorFlow graph (engine/backends/tensorflow/graph/): against the PyTorch
 * goldens, against engine/bert.ts op by op on packed rows with masked keys, which forwards take
 * it (hook-free ones big enough to pay for it) and which do not (hooked ones), tensor counts,
 * and the session freed on dispose. Skips, saying how to get the backend, where tfjs-node does
 * not load.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CompiledEncoder, currentRuntime } from '../../engine/backend';
import { encoder } from '../../engine/bert';
import { eagerForward } from '../../engine/eager';
import { l2Normalize, pool } from '../../engine/pooling';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { allHookNames, blockHook, HookContext } from '../../engine/hooks';
import { BertModel } from '../../engine/model';
import { InputError, PackedInput, packPadded, packSequences } from '../../engine/rows';
import { COMPILE_MIN_TOKENS, compileEncoderGraph, encoderGraph } from '../../engine/backends/tensorflow/graph/encoder';
import { cachedModel } from '../../devtools/generate-model';
import { mulberry32 } from '../../devtools/rng';
import { tensorflowOrSkip } from '../support/backend';
import { GOLDEN_CASES, goldenBatch, loadBert, loadGolden } from '../support/golden';
import { TOLERANCE, toleranceFor } from '../support/tolerance';

/** A model whose compiled encoder takes every forward (no minimum size). */
function graphOf(model: BertModel): CompiledEncoder {
  const g = compileEncoderGraph(model.config, model.params, 0);
  assert.ok(g, 'the tensorflow backend makes an encoder graph');
  return g!;
}

/** `body` on a model loaded from `dir`, disposed after. */
function withModel(dir: string, body: (model: BertModel) => void): void {
  const model = loadBert(dir);
  try {
    body(model);
  } finally {
    model.dispose();
  }
}

/** `body` on a model and its encoder graph (graphOf), both disposed after. */
function withGraph(dir: string, body: (model: BertModel, graph: CompiledEncoder) => void): void {
  withModel(dir, (model) => {
    const graph = graphOf(model);
    try {
      body(model, graph);
    } finally {
      graph.dispose();
    }
  });
}

const tiny = () => cachedModel({ preset: 'tiny' });

function eager(model: BertModel, input: PackedInput): tf.Tensor2D {
  return encoder(model.params, eagerForward(model.config, currentRuntime().ops, input, new HookContext())) as tf.Tensor2D;
}

/** Rows of the given lengths with random ids; `pad` trailing keys of each row masked. */
function rows(lengths: number[], pad: number[], seed: number): PackedInput {
  const rand = mulberry32(seed);
  const input = packSequences(lengths.map((T) => ({
    inputIds: Int32Array.from({ length: T }, () => 1000 + Math.floor(rand() * 20000)),
    tokenTypeIds: Int32Array.from({ length: T }, () => (rand() < 0.3 ? 1 : 0)),
  })));
  lengths.forEach((T, r) => input.attentionMask.fill(0, input.rows.starts[r] + T - pad[r], input.rows.starts[r] + T));
  return input;
}

/** `actual` within `atol` (by default the documented tolerance of the hook point `name`) of `expected`. */
function assertClose(actual: tf.Tensor, expected: { shape: number[]; data: Float32Array }, name: string, atol = toleranceFor(name)): void {
  assert.deepEqual(actual.shape, expected.shape, `${name}: shape`);
  const r = compareArrays(actual.dataSync(), expected.data, expected.shape, { atol });
  assert.ok(r.pass, describeMismatch(name, r, { atol }));
}

describe('encoder graph (tensorflow)', function () {
  this.timeout(120_000);
  before(async function () {
    await tensorflowOrSkip(this);
  });

  for (const c of GOLDEN_CASES.filter((g) => !g.ablate)) {
    it(`${c.name}: the last hidden state within ${TOLERANCE.hidden} of PyTorch's`, () => {
      const g = loadGolden(c.name);
      withGraph(g.modelDir, (model, graph) => {
        const last = blockHook(model.config.numHiddenLayers - 1, 'hook_normalized_resid_post');
        const ref = g.tensors.get(last);
        assert.ok(ref, `${c.name} holds ${last}`);
        const batch = packPadded(goldenBatch(g));
        const { hidden } = graph.run(batch);
        const [B, T, D] = ref!.shape;
        assertClose(tf.reshape(hidden, [B, T, D]), ref!, last);
        hidden.dispose();
      });
    });
  }

  it('= engine/bert.ts op by op within 1e-5: packed rows of different lengths, masked keys, a padded batch', () => {
    for (const preset of ['tiny', 'small'] as const) {
      withGraph(cachedModel({ preset }), (model, graph) => {
        const cases = [
          rows([1, 5, 13, 40], [0, 2, 0, 7], 1), // packed: gathered into a grid
          rows([37, 3], [0, 1], 2),
          rows([20, 20, 20], [0, 6, 19], 3), // uniform: a reshape, masked keys
          rows([12, 12], [0, 0], 4), // uniform, every key real
        ];
        cases.forEach((input, i) => {
          tf.tidy(() => {
            const want = eager(model, input);
            assertClose(graph.run(input).hidden, { shape: want.shape, data: want.dataSync() as Float32Array }, `${preset} case ${i}`, TOLERANCE.hidden);
          });
        });
      });
    }
  });

  it('hook-free forwards of ≥ COMPILE_MIN_TOKENS tokens (or 8× that in small ones) run the graph, then every hook-free one; hooked ones run op by op', () => {
    withModel(tiny(), (model) => {
      const compiled = () => (model as unknown as { compiled?: CompiledEncoder | null }).compiled;
      const small = { inputIds: [[101, 2000, 2001, 102]] };
      model.forward(small).dispose();
      assert.equal(compiled()?.nodes ?? 0, 0, 'a 4-token forward does not build the graph');
      const T = COMPILE_MIN_TOKENS / 2;
      const big = { inputIds: [0, 1].map((r) => Array.from({ length: T }, (_, t) => 1000 + 7 * t + r)) };
      const viaGraph = model.forward(big);
      const oneChain = encoderGraph(model.config, model.params, ['uniform']).graph.size;
      assert.equal(compiled()!.nodes, oneChain, `a ${2 * T}-token forward of one length builds its chain, and only it`);
      assert.ok(oneChain < encoderGraph(model.config, model.params).graph.size / 3, 'a quarter of the four chains');
      let seen = 0;
      const hooked = model.runWithHooks(big, [[blockHook(0, 'hook_resid_pre'), () => void seen++]]);
      assert.equal(seen, 1, 'a hooked forward runs engine/bert.ts, whose hooks run');
      const r = compareArrays(viaGraph.embedding.dataSync(), hooked.embedding.dataSync(), viaGraph.embedding.shape, { atol: TOLERANCE.embedding });
      assert.ok(r.pass, describeMismatch('embedding, graph vs op by op', r, { atol: TOLERANCE.embedding }));
      [viaGraph, hooked].forEach((o) => o.dispose());
      // Small forwards alone: compiled once they add up to 8 × COMPILE_MIN_TOKENS tokens.
      const queries = compileEncoderGraph(model.config, model.params)!;
      const query = packPadded({ inputIds: [Array.from({ length: 16 }, (_, t) => 1000 + t)] });
      const takes = Array.from({ length: (8 * COMPILE_MIN_TOKENS) / 16 }, () => queries.takes(query));
      assert.deepEqual([takes.indexOf(true), takes.lastIndexOf(false)], [takes.length - 1, takes.length - 2]);
      queries.dispose();
      assert.equal(queries.takes(query), false, 'a disposed graph takes nothing');
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) model.forward(small).dispose(); // now compiled too
      assert.equal(tf.memory().numTensors, before, 'no tensor left behind per forward');
    });
  });

  it('frees its TensorFlow session on dispose; a disposed graph refuses to run', () => {
    withModel(tiny(), (model) => {
      const backend = tf.backend() as unknown as { getNumOfSavedModels(): number };
      const sessions = backend.getNumOfSavedModels();
      const graph = graphOf(model);
      const input = rows([3, 4], [0, 0], 5);
      graph.run(input).hidden.dispose();
      assert.equal(backend.getNumOfSavedModels(), sessions + 1);
      graph.dispose();
      assert.equal(backend.getNumOfSavedModels(), sessions);
      assert.throws(() => graph.run(input), /disposed/);
    });
  });

  it('is on by default; initBackend({graph: false}) keeps every forward op by op', () => {
    assert.equal(typeof currentRuntime().compileEncoder, 'function');
    const code = `require('./engine/backend').initBackend({ backend: 'tensorflow', threads: 1, graph: false })
      .then((r) => console.log(JSON.stringify({ name: r.name, compiles: typeof r.compileEncoder })))`;
    const child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', code], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout.trim().split('\n').pop()!), { name: 'tensorflow', compiles: 'undefined' });
  });

  it('every activation the config allows compiles (gelu, gelu_new, relu): the graph equals op by op', () => {
    withModel(tiny(), (model) => {
      for (const hiddenAct of ['gelu', 'gelu_new', 'relu'] as const) {
        const c = { ...model.config, hiddenAct };
        const graph = compileEncoderGraph(c, model.params, 0)!;
        try {
          const input = rows([5, 9], [0, 2], 8);
          tf.tidy(() => {
            const want = encoder(model.params, eagerForward(c, currentRuntime().ops, input, new HookContext())) as tf.Tensor2D;
            assertClose(graph.run(input).hidden, { shape: want.shape, data: want.dataSync() as Float32Array }, hiddenAct, TOLERANCE.hidden);
          });
        } finally {
          graph.dispose();
        }
      }
    });
  });

  it('every hook point, fetched from the graph, equals op by op within its tolerance (packed rows and a padded batch)', () => {
    withGraph(cachedModel({ preset: 'small' }), (model, graph) => {
      const names = allHookNames(model.config.numHiddenLayers).filter((n) => !n.startsWith('hook_pooled') && n !== 'hook_embedding');
      for (const input of [rows([3, 11, 6], [0, 2, 1], 9), rows([8, 8], [0, 3], 10)]) {
        const ctx = new HookContext({ cache: '*' });
        const { hidden, hooks } = graph.run(input, { fetch: names });
        try {
          tf.tidy(() => encoder(model.params, eagerForward(model.config, currentRuntime().ops, input, ctx)));
          assert.deepEqual([...hooks.keys()], names);
          for (const name of names) {
            const want = ctx.cache.get(name)!;
            const got = hooks.get(name)!;
            assert.equal(got.size, want.size, `${name}: size`);
            const atol = toleranceFor(name);
            // Attention's grid: padding cells of a shorter row hold a copy of its first token, op by op too.
            const r = compareArrays(got.dataSync(), want.dataSync(), want.shape, { atol });
            assert.ok(r.pass, describeMismatch(`${name} (${input.rows.lengths})`, r, { atol }));
          }
        } finally {
          ctx.dispose();
          hidden.dispose();
          hooks.forEach((t) => t.dispose());
        }
      }
    });
  });

  it('a head intervention is an input of the graph: zero, mean and gates, for all rows or per row, equal op by op', () => {
    withGraph(cachedModel({ preset: 'small' }), (model, graph) => {
      const { numHiddenLayers: L, numAttentionHeads: H, hiddenSize: D } = model.config;
      const rand = mulberry32(12);
      const input = rows([4, 10, 7], [0, 3, 0], 11);
      const R = input.rows.count;
      const cases = {
        'zero [L,H]': { mask: tf.tensor2d(Array.from({ length: L * H }, (_, i) => (i % 5 === 1 ? 0 : 1)), [L, H]) },
        'mean [L,H]': {
          mask: tf.tensor2d(Array.from({ length: L * H }, (_, i) => (i % 3 === 0 ? 0 : 1)), [L, H]),
          fill: tf.tensor2d(Float32Array.from({ length: L * D }, () => rand() - 0.5), [L, D]),
        },
        'gates [R,L,H]': { mask: tf.tensor3d(Float32Array.from({ length: R * L * H }, () => rand()), [R, L, H]) },
      };
      try {
        for (const [what, heads] of Object.entries(cases)) {
          tf.tidy(() => {
            const want = encoder(model.params, eagerForward(model.config, currentRuntime().ops, input, new HookContext(), heads)) as tf.Tensor2D;
            const plain = eager(model, input);
            assert.ok(!compareArrays(want.dataSync(), plain.dataSync(), want.shape, { atol: 1e-3 }).pass, `${what}: the intervention moves the output`);
            assertClose(graph.run(input, { heads }).hidden, { shape: want.shape, data: want.dataSync() as Float32Array }, what, TOLERANCE.hidden);
          });
        }
      } finally {
        Object.values(cases).forEach((h) => tf.dispose([h.mask, (h as { fill?: tf.Tensor }).fill ?? []].flat()));
      }
    });
  });

  it("heads through the graph equal PyTorch's zeroed heads (the ablation golden), and mask 1 everywhere changes no bit", () => {
    const g = loadGolden('tiny-F32-ablate');
    withGraph(g.modelDir, (model, graph) => {
      const { numHiddenLayers: L, numAttentionHeads: H } = model.config;
      const off = (JSON.parse(g.metadata.ablate) as string[]).map((lh) => lh.split('.').map(Number));
      const mask = tf.tensor2d(Array.from({ length: L * H }, (_, i) => (off.some(([l, h]) => l * H + h === i) ? 0 : 1)), [L, H]);
      const ones = tf.ones([L, H]);
      try {
        const input = packPadded(goldenBatch(g));
        tf.tidy(() => {
          const embedding = l2Normalize(pool('mean', graph.run(input, { heads: { mask } }).hidden, input));
          assertClose(embedding, g.tensors.get('hook_embedding')!, 'hook_embedding');
        });
        const eagerOut = model.forward(goldenBatch(g), { heads: { mask }, compiled: false });
        assertClose(eagerOut.embedding, g.tensors.get('hook_embedding')!, 'hook_embedding');
        eagerOut.dispose();
        const kept = graph.run(input, { heads: { mask: ones } }).hidden, plain = graph.run(input).hidden;
        // 1·z + 0·0 is z exactly, and every other node is the plain chain's (same ops, same shapes, same kernels).
        assert.deepEqual(Array.from(kept.dataSync()), Array.from(plain.dataSync()));
        tf.dispose([kept, plain]);
      } finally {
        tf.dispose([mask, ones]);
      }
    });
  });

  it('runWithCache runs compiled, its hook points graph outputs; a hook function sends the forward op by op', () => {
    withModel(tiny(), (model) => {
      const compiled = () => (model as unknown as { compiled?: CompiledEncoder | null }).compiled;
      const T = COMPILE_MIN_TOKENS / 2;
      const big = { inputIds: [0, 1].map((r) => Array.from({ length: T }, (_, t) => 1000 + 7 * t + r)) };
      const names = [blockHook(0, 'attn.hook_pattern'), blockHook(1, 'hook_resid_post')];
      const viaGraph = model.runWithCache(big, { names });
      assert.ok(compiled()!.nodes > 0, 'the cached forward built and ran the graph');
      const opByOp = model.runWithCache(big, { names, compiled: false });
      try {
        for (const n of names) {
          assert.deepEqual(viaGraph.cache.get(n).shape, opByOp.cache.get(n).shape, n);
          const r = compareArrays(viaGraph.cache.get(n).dataSync(), opByOp.cache.get(n).dataSync(), opByOp.cache.get(n).shape, { atol: toleranceFor(n) });
          assert.ok(r.pass, describeMismatch(n, r, { atol: toleranceFor(n) }));
        }
      } finally {
        [viaGraph, opByOp].forEach((r) => { r.output.dispose(); r.cache.dispose(); });
      }
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const r = model.runWithCache(big, { names });
        r.output.dispose();
        r.cache.dispose();
      }
      assert.equal(tf.memory().numTensors, before, 'no tensor left behind per cached forward');
    });
  });

  it('an id outside its table is an InputError naming row and position, as op by op', () => {
    withGraph(tiny(), (model, graph) => {
      const input = rows([3, 4], [0, 0], 6);
      input.inputIds[5] = model.config.vocabSize;
      assert.throws(() => graph.run(input), (e: Error) => e instanceof InputError && /token id \d+ at row 1, position 2/.test(e.message));
    });
  });

  it('writes one graph with four chains (packed or uniform rows, with or without heads), every weight an input and no weight inside', () => {
    withModel(tiny(), (model) => {
      const { graph, weights, chains } = encoderGraph(model.config, model.params);
      const L = model.config.numHiddenLayers;
      assert.equal(weights.length, 3 + 2 + L * 16, 'embeddings (3 tables + LayerNorm) and 16 tensors per layer');
      assert.deepEqual(Object.keys(chains).sort(), ['packed', 'packed_heads', 'uniform', 'uniform_heads']);
      for (const chain of Object.values(chains)) assert.equal(chain.hooks.size, allHookNames(L).length - 2, 'every hook point inside the encoder');
      const bytes = graph.savedModel('serve');
      assert.ok(bytes.length < 800_000 * L, `the SavedModel holds the graph only (${bytes.length} bytes)`);
      const text = Buffer.from(bytes).toString('latin1');
      for (const name of ['packed', 'uniform_heads', 'input_ids', 'head_mask', 'encoder.layer.0.attention.self.query.weight', 'FusedBatchNormV3', 'Erfc', 'blocks.1.attn.hook_pattern']) {
        assert.ok(text.includes(name), `the graph names ${name}`);
      }
    });
  });
});
