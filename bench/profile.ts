/**
 * Per-op profile of our engine: where one forward's time goes, by kernel and by category.
 *
 * Every kernel registered for the active backend is re-registered wrapped in a timer for the
 * duration of one forward (wasm and cpu kernels are synchronous, so performance.now() around
 * the call is the kernel's time; XNNPACK's worker threads finish before the call returns).
 * Time is exclusive: a kernel that calls another through the registry is not counted twice.
 * What is left of the forward's wall time is "outside kernels": tfjs bookkeeping, tidy,
 * tensor creation, our JavaScript (and, for the corpus, tokenization).
 *
 * Categories are by kernel name; the element-wise kernels (Add, Multiply, Sub, RealDiv, …) are
 * attributed by output shape: a token matrix [N, D | F | 1] (N = the forward's packed tokens)
 * is layer norm / residual, or GELU when its width is F = the intermediate size; [.., T, T]
 * with T a row's length is attention (scale + mask).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ATTENTION_KERNEL, ATTN_SCORES_KERNEL, ATTN_SOFTMAX_KERNEL, ATTN_Z_KERNEL, GELU_ERF_KERNEL, LAYER_NORM_KERNEL } from '../engine/backends/wasm/kernels';
import type { EmbeddingModel } from '../e5/model';
import { corpusBatches } from './ceiling';
import { forwardBatch } from './engines';
import type { Workload } from './workloads';

export const CATEGORIES = [
  'matmul: linear', 'matmul: attention', 'attention softmax', 'layernorm + residual', 'gelu', 'data movement', 'other',
] as const;
export type Category = (typeof CATEGORIES)[number];

const DATA_MOVEMENT = new Set(['Slice', 'StridedSlice', 'SplitV', 'Transpose', 'Concat', 'Reshape', 'GatherV2', 'GatherNd', 'Pack',
  'Unpack', 'Identity', 'Cast', 'Tile', 'ExpandDims', 'Squeeze', 'Fill', 'ZerosLike', 'OnesLike', 'Reverse', 'PadV2', 'MirrorPad']);
const ELEMENTWISE = new Set(['Add', 'AddN', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'Neg', 'Square', 'Pow',
  'SquaredDifference', 'Sqrt', 'Rsqrt', 'Mean', 'Sum', 'Max', 'Exp', 'Log', 'Reciprocal']);

/** What the categorizer knows about the forward: the model's widths and the token layout. */
export interface ShapeContext {
  hidden: number;
  intermediate: number;
  /** N of each forward pass (packed tokens). */
  tokenTotals: ReadonlySet<number>;
  /** T of each row. */
  rowLengths: ReadonlySet<number>;
}

/** The category of one kernel call from its name and its (first) output's shape. */
export function categorize(kernel: string, outShape: readonly number[], c: ShapeContext): Category {
  if (kernel === '_FusedMatMul' || kernel === 'MatMul') return 'matmul: linear';
  // E5Attention is all of attention in one kernel: q·kᵀ, scale, mask, softmax, ·v (engine/backends/wasm/simd.ts).
  if (kernel === 'BatchMatMul' || kernel === ATTENTION_KERNEL || kernel === ATTN_SCORES_KERNEL || kernel === ATTN_Z_KERNEL) return 'matmul: attention';
  if (kernel === 'Softmax' || kernel === 'LogSoftmax' || kernel === ATTN_SOFTMAX_KERNEL) return 'attention softmax';
  if (kernel === 'Erf' || kernel === 'Tanh' || kernel === GELU_ERF_KERNEL) return 'gelu';
  if (kernel === LAYER_NORM_KERNEL) return 'layernorm + residual';
  if (DATA_MOVEMENT.has(kernel)) return 'data movement';
  if (!ELEMENTWISE.has(kernel)) return 'other';
  const r = outShape.length, last = outShape[r - 1];
  const tokenMatrix = r === 2 && c.tokenTotals.has(outShape[0]) && (last === c.hidden || last === c.intermediate || last === 1);
  const scores = r >= 2 && outShape[r - 2] === last && c.rowLengths.has(last); // [.., T, T]
  if (!tokenMatrix && scores) return 'attention softmax';
  return last === c.intermediate && c.intermediate !== c.hidden ? 'gelu' : 'layernorm + residual';
}

export interface KernelStat {
  kernel: string;
  category: Category;
  ms: number;
  calls: number;
}

export interface ProfileReport {
  workload: string;
  /** Wall time of the profiled forward. */
  wallMs: number;
  kernelMs: number;
  byCategory: Array<{ category: Category | 'outside kernels'; ms: number; calls: number }>;
  byKernel: KernelStat[];
}

type KernelFunc = tf.KernelConfig['kernelFunc'];

/** Wrap every kernel of the active backend in a timer; returns the stats and an undo function. */
export function instrumentKernels(ctx: ShapeContext): { stats: Map<string, KernelStat>; restore: () => void } {
  const backend = tf.getBackend();
  const originals = tf.getKernelsForBackend(backend);
  const stats = new Map<string, KernelStat>();
  const childMs: number[] = []; // time spent in nested kernel calls, per open call
  for (const k of originals) {
    const inner = k.kernelFunc;
    const timed: KernelFunc = (args) => {
      childMs.push(0);
      const t0 = performance.now();
      let total = 0, nested = 0;
      let out: ReturnType<KernelFunc>;
      try {
        out = inner(args);
      } finally {
        total = performance.now() - t0;
        nested = childMs.pop()!;
        if (childMs.length) childMs[childMs.length - 1] += total; // the caller's time excludes ours
      }
      const first = (Array.isArray(out) ? out[0] : out) as tf.TensorInfo | undefined;
      const category = categorize(k.kernelName, first?.shape ?? [], ctx);
      const key = `${k.kernelName}\u0000${category}`;
      const s = stats.get(key) ?? { kernel: k.kernelName, category, ms: 0, calls: 0 };
      s.ms += total - nested;
      s.calls += 1;
      stats.set(key, s);
      return out;
    };
    tf.unregisterKernel(k.kernelName, backend);
    tf.registerKernel({ ...k, kernelFunc: timed });
  }
  const restore = () => {
    for (const k of originals) {
      tf.unregisterKernel(k.kernelName, backend);
      tf.registerKernel(k);
    }
  };
  return { stats, restore };
}

/** One untimed forward (one-time costs), then one profiled forward of the workload. */
export async function profileWorkload(m: EmbeddingModel, w: Workload): Promise<ProfileReport> {
  const once = async () => {
    if (w.kind === 'batch') await forwardBatch(m, w);
    else await m.embed(w.texts, { batchSize: w.batchSize });
  };
  await once();
  const forwards = w.kind === 'batch' ? [w.encodings] : corpusBatches(m, w);
  const { stats, restore } = instrumentKernels({
    hidden: m.config.hiddenSize, intermediate: m.config.intermediateSize,
    tokenTotals: new Set(forwards.map((b) => b.reduce((n, e) => n + e.nTokens, 0))),
    rowLengths: new Set(forwards.flat().map((e) => e.nTokens)),
  });
  const t0 = performance.now();
  try {
    await once();
  } finally {
    restore();
  }
  const wallMs = performance.now() - t0;
  return summarize(w.name, wallMs, [...stats.values()]);
}

export function summarize(workload: string, wallMs: number, kernels: KernelStat[]): ProfileReport {
  const kernelMs = kernels.reduce((a, k) => a + k.ms, 0);
  const byCategory = CATEGORIES.map((category) => {
    const ks = kernels.filter((k) => k.category === category);
    return { category, ms: ks.reduce((a, k) => a + k.ms, 0), calls: ks.reduce((a, k) => a + k.calls, 0) };
  }).filter((c) => c.calls > 0) as ProfileReport['byCategory'];
  byCategory.push({ category: 'outside kernels', ms: Math.max(0, wallMs - kernelMs), calls: 0 });
  return { workload, wallMs, kernelMs, byCategory, byKernel: [...kernels].sort((a, b) => b.ms - a.ms) };
}
