/**
 * `e5 explain` on the e5-large shape: the issue's three targets, and the two ways of computing C of
 * the shorter text (per-token JVPs vs VJPs over the output dimensions), each measured, not assumed.
 *
 *   npx ts-node --transpile-only bench/explain.ts --model .cache/models/e5-large-random \
 *       [--backend tensorflow] [--threads 2] [--workloads tokens,pairs,heads,jacobian]
 *
 * Workloads (texts built to exact token counts, [CLS]/[SEP] and the prefixes included):
 *   tokens    16-token query × 128-token passage, ℓ = 0, N = 32        (target ≤ 60 s)
 *   pairs     16 × 64, ℓ = 12, N = 16                                    (target ≤ 5 min)
 *   heads     16 × 128, all 24 layers, N = 8                             (target ≤ 6 min)
 *   jacobian  one step of C for the 16-token query at ℓ = 12: n JVPs vs Dout VJPs (the VJPs timed
 *             on 64 of the 1024 rows and scaled: the full set is ~16× the JVPs' work)
 *   calibrate embed 8 texts of 128 tokens (docs/PERFORMANCE.md's 8×128 workload: 2.15 s on an idle machine,
 *             tensorflow, 2 threads), to read the other numbers against the machine's load
 * Prints one line per workload and a JSON summary on stdout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendName, EmbeddingModel, initBackend, loadModel } from '../index';
import { differentiableOps, jvpRows, vjpContracted } from '../engine/attribution';
import { depthHook } from '../engine/hooks';

interface Args {
  model: string;
  backend?: BackendName;
  threads: number;
  workloads: string[];
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const model = get('--model');
  if (!model) throw new Error('--model DIR is required (make large-model writes .cache/models/e5-large-random)');
  return {
    model,
    backend: get('--backend') as BackendName | undefined,
    threads: Number(get('--threads') ?? 2),
    workloads: (get('--workloads') ?? 'tokens,pairs,heads,jacobian').split(','),
  };
}

/** A text that tokenizes to exactly `n` tokens with its prefix and [CLS]/[SEP]. */
function textOfTokens(m: EmbeddingModel, prefix: 'query' | 'passage', n: number): string {
  const words = 'the highest point of a mountain is the summit and protein is what women should eat every day as a general guideline'.split(' ');
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const t = out.join(' ');
    const count = m.tokenizer.encode(`${prefix}: ${t}`).nTokens;
    if (count === n) return t;
    if (count > n) throw new Error(`cannot build a ${n}-token ${prefix}`);
    out.push(words[i % words.length]);
  }
}

async function timed<T>(f: () => Promise<T> | T): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const runtime = await initBackend({ backend: a.backend, threads: a.threads });
  const m = await loadModel(a.model, { runtime });
  const L = m.config.numHiddenLayers;
  console.error(`explain bench: ${a.model} (${L} layers, D ${m.config.hiddenSize}) on ${runtime.name}, ${runtime.threads} threads`);
  const q16 = textOfTokens(m, 'query', 16), p64 = textOfTokens(m, 'passage', 64), p128 = textOfTokens(m, 'passage', 128);
  const results: Record<string, unknown> = { backend: runtime.info, model: a.model };
  const progress = (label: string) => {
    let last = 0;
    return (done: number, total: number) => {
      const now = performance.now();
      if (now - last > 10_000) {
        console.error(`  ${label}: ${done}/${total}`);
        last = now;
      }
    };
  };
  for (const w of a.workloads) {
    if (w === 'tokens') {
      const [r, s] = await timed(() => m.explain(q16, p128, { mode: 'tokens', layer: 0, steps: 32, onProgress: progress('tokens') }));
      results.tokens = { seconds: s, target: 60, completenessError: r.completeness.error, tokens: [r.query.tokens.length, r.passage.tokens.length] };
    } else if (w === 'pairs') {
      const [r, s] = await timed(() => m.explain(q16, p64, { mode: 'pairs', layer: Math.min(12, L - 1), steps: 16, onProgress: progress('pairs') }));
      results.pairs = { seconds: s, target: 300, method: r.jacobian, completenessError: r.completeness.error, tokens: [r.query.tokens.length, r.passage.tokens.length] };
    } else if (w === 'heads') {
      const [r, s] = await timed(() => m.explain(q16, p128, { mode: 'heads', steps: 8, onProgress: progress('heads') }));
      results.heads = { seconds: s, target: 360, completenessError: r.completeness.error };
    } else if (w === 'calibrate') {
      const texts = Array.from({ length: 8 }, () => p128);
      await m.embed(texts, { prefix: 'passage' }); // builds the compiled encoder
      const [, s] = await timed(() => m.embed(texts, { prefix: 'passage' }));
      results.calibrate = { seconds: s, idleReadme: 2.15 };
    } else if (w === 'jacobian') {
      results.jacobian = jacobianRoutes(m, q16, Math.min(12, L - 1));
    } else {
      throw new Error(`unknown workload '${w}' (tokens, pairs, heads, jacobian)`);
    }
    console.error(`${w}: ${JSON.stringify(results[w])}`);
  }
  console.log(JSON.stringify(results));
}

/** One step (α = ½) of C for one text: its n own tokens by JVPs, vs Dout VJPs (64 of them timed, scaled). */
function jacobianRoutes(m: EmbeddingModel, text: string, layer: number): Record<string, number> {
  const enc = m.tokenizer.encode(`query: ${text}`);
  const T = enc.nTokens, D = m.config.hiddenSize;
  const fn = { config: m.config, params: m.bert.params, ops: differentiableOps(), pooling: m.bert.defaultPooling };
  const { output, cache } = m.bert.runWithCache({ inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, batchSize: 1, seqLen: T }, { names: [depthHook(layer)] });
  const x = tf.reshape(cache.get(depthHook(layer)), [T, D]) as tf.Tensor2D;
  output.dispose();
  const own = [...enc.specialTokensMask.keys()].filter((t) => enc.specialTokensMask[t] === 0);
  const half = (n: number) => tf.tidy(() => tf.tile(tf.expandDims(tf.mul(x, 0.5), 0), [n, 1, 1]) as tf.Tensor3D);
  const t0 = performance.now();
  jvpRows(fn, layer, own.length, T, (r0, r1) => half(r1 - r0), (r0, r1) => tf.tidy(() => {
    const sel = tf.tensor3d(Float32Array.from({ length: (r1 - r0) * T }, (_, i) => (Math.floor(i / T) + r0 === own.indexOf(i % T) ? 1 : 0)), [r1 - r0, T, 1]);
    return tf.mul(sel, tf.expandDims(x, 0)) as tf.Tensor3D;
  }), 512);
  const jvp = (performance.now() - t0) / 1000;
  const rows = 64;
  const t1 = performance.now();
  vjpContracted(fn, layer, rows, T, (r0, r1) => half(r1 - r0), (r0, r1) => tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(Array.from({ length: r1 - r0 }, (_, i) => r0 + i), 'int32'), D), 'float32') as tf.Tensor2D), x, 512);
  const vjp64 = (performance.now() - t1) / 1000;
  cache.dispose();
  return { layer, tokens: T, jvpRows: own.length, jvpSeconds: jvp, vjpRowsTimed: rows, vjpSecondsTimed: vjp64, vjpSecondsAllDout: (vjp64 * D) / rows };
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
