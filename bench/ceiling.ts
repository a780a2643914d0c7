/**
 * "At the ceiling": our forward next to the same matmuls run alone on the same backend and
 * threads, so engine overhead (everything that is not a matmul, plus glue) is a number.
 *
 *   linear GEMMs     the 6 Linear layers per layer × layers (Q, K, V, attention output, FFN in,
 *                    FFN out: Q, K and V apart, as the engine runs them), each the runtime's
 *                    `ops.linear(x[N,in], lin)` — the engine's own fused matMul with W[in,out] + bias,
 *                    N = the forward's packed tokens, the model's own Linears (so XNNPACK's
 *                    packed weights are the same ones), x random
 *   attention matmuls  per row and head, [T,Dh]×[Dh,T] and [T,T]×[T,Dh] on random data,
 *                    2-D un-transposed like the engine's (the only form XNNPACK takes)
 *
 * Overhead = forward / linear GEMMs - 1 (and / all matmuls - 1). Forward, GEMMs and attention
 * matmuls alternate within each repeat; medians are reported.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { EmbeddingModel } from '../e5/model';
import { planBatches } from '../e5/model';
import { HookContext } from '../engine/hooks';

import { packSequences } from '../engine/rows';
import type { Encoding } from '../tokenizer';
import { median } from './stats';
import type { Workload } from './workloads';

export interface CeilingReport {
  workload: string;
  /** Packed tokens per forward. */
  tokensPerForward: number[];
  forwardMs: number;
  linearMs: number;
  attentionMatmulMs: number;
  /** forward / linear - 1 */
  overheadVsLinear: number;
  /** forward / (linear + attention matmuls) - 1 */
  overheadVsAllMatmuls: number;
  linearGflops: number;
  runs: Array<{ forwardMs: number; linearMs: number; attentionMatmulMs: number }>;
}

/** The corpus' forwards as `embed` makes them: length-sorted batches (default token budget). */
export function corpusBatches(m: EmbeddingModel, w: Extract<Workload, { kind: 'corpus' }>): Encoding[][] {
  const encodings = w.texts.map((t) => m.tokenizer.encode(t, { maxLength: m.maxLength }));
  return planBatches(encodings, w.batchSize, 8192).map((b) => b.map((i) => encodings[i]));
}

async function timeForwards(m: EmbeddingModel, batches: Encoding[][]): Promise<number> {
  const t0 = performance.now();
  for (const b of batches) {
    const out = m.bert.run(packSequences(b), { poolerOutput: false }, new HookContext());
    await out.embedding.data();
    out.dispose();
  }
  return performance.now() - t0;
}

async function timeLinear(m: EmbeddingModel, tokenCounts: number[]): Promise<number> {
  const c = m.config;
  let total = 0;
  for (const N of tokenCounts) {
    const x = tf.randomNormal([N, c.hiddenSize]) as tf.Tensor2D;
    const h = tf.randomNormal([N, c.intermediateSize]) as tf.Tensor2D;
    await x.data();
    await h.data();
    const t0 = performance.now();
    let last: tf.Tensor | null = null;
    for (const p of m.bert.params.layers) {
      for (const [input, lin] of [[x, p.query], [x, p.key], [x, p.value], [x, p.attnOutput], [x, p.intermediate], [h, p.output]] as const) {
        last?.dispose();
        last = m.bert.runtime.ops.linear(input, lin);
      }
    }
    await last!.data();
    total += performance.now() - t0;
    last!.dispose();
    x.dispose();
    h.dispose();
  }
  return total;
}

async function timeAttention(m: EmbeddingModel, batches: Encoding[][]): Promise<number> {
  const c = m.config;
  const H = c.numAttentionHeads, Dh = c.hiddenSize / H, L = c.numHiddenLayers;
  let total = 0;
  for (const b of batches) {
    const lengths = b.map((e) => e.nTokens);
    const byT = new Map(lengths.map((T) => [T, {
      q: tf.randomNormal([T, Dh]) as tf.Tensor2D, kT: tf.randomNormal([Dh, T]) as tf.Tensor2D,
      p: tf.randomNormal([T, T]) as tf.Tensor2D, v: tf.randomNormal([T, Dh]) as tf.Tensor2D,
    }]));
    for (const t of byT.values()) await t.v.data();
    const t0 = performance.now();
    let last: tf.Tensor | null = null;
    for (let l = 0; l < L; l++) {
      for (const T of lengths) {
        const t = byT.get(T)!;
        for (let h = 0; h < H; h++) {
          tf.matMul(t.q, t.kT).dispose();
          last?.dispose();
          last = tf.matMul(t.p, t.v);
        }
      }
    }
    await last!.data();
    total += performance.now() - t0;
    last!.dispose();
    for (const t of byT.values()) Object.values(t).forEach((x) => x.dispose());
  }
  return total;
}

export async function measureCeiling(m: EmbeddingModel, w: Workload, repeats: number, log: (s: string) => void): Promise<CeilingReport> {
  const batches = w.kind === 'batch' ? [w.encodings] : corpusBatches(m, w);
  const tokenCounts = batches.map((b) => b.reduce((n, e) => n + e.nTokens, 0));
  await timeForwards(m, batches.slice(0, 1)); // one-time costs (XNNPACK packing) out of the way
  const runs: CeilingReport['runs'] = [];
  for (let r = 0; r < repeats; r++) {
    const run = { forwardMs: await timeForwards(m, batches), linearMs: await timeLinear(m, tokenCounts), attentionMatmulMs: await timeAttention(m, batches) };
    runs.push(run);
    log(`ceiling ${w.name} repeat ${r + 1}/${repeats}: forward ${run.forwardMs.toFixed(1)} ms, linear GEMMs ${run.linearMs.toFixed(1)} ms, attention matmuls ${run.attentionMatmulMs.toFixed(1)} ms`);
  }
  const forwardMs = median(runs.map((r) => r.forwardMs));
  const linearMs = median(runs.map((r) => r.linearMs));
  const attentionMatmulMs = median(runs.map((r) => r.attentionMatmulMs));
  const c = m.config;
  const flopsPerToken = 2 * c.numHiddenLayers * (4 * c.hiddenSize * c.hiddenSize + 2 * c.hiddenSize * c.intermediateSize);
  const tokens = tokenCounts.reduce((a, b) => a + b, 0);
  return {
    workload: w.name, tokensPerForward: tokenCounts, forwardMs, linearMs, attentionMatmulMs,
    overheadVsLinear: forwardMs / linearMs - 1, overheadVsAllMatmuls: forwardMs / (linearMs + attentionMatmulMs) - 1,
    linearGflops: (flopsPerToken * tokens) / (linearMs / 1000) / 1e9, runs,
  };
}
