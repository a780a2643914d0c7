/**
 * One forward pass for inspect and parity: the outputs plus the activations named `names`,
 * optionally with hook functions that replace activations (ablation, patching) in the same
 * pass. Built from the library's public pieces; the caller disposes both results.
 */
import {
  ActivationCache, EmbeddingModel, ForwardOutput, HeadIntervention, HookContext, HookFilter, HookFn, HookName, PackedInput, packPadded, PaddedBatch, PoolingMode,
} from '../index';

export interface CapturedRun {
  output: ForwardOutput;
  cache: ActivationCache;
  dispose(): void;
}

export function runCaptured(
  m: EmbeddingModel,
  batch: PaddedBatch | PackedInput,
  names: HookName[],
  opts: { pooling?: PoolingMode; hooks?: Array<[HookFilter, HookFn]>; heads?: HeadIntervention } = {},
): CapturedRun {
  const ctx = new HookContext({ hooks: opts.hooks, cache: names.length ? names : () => false });
  try {
    const output = m.bert.run('rows' in batch ? batch : packPadded(batch), { pooling: opts.pooling, heads: opts.heads }, ctx);
    const cache = new ActivationCache(ctx.takeCache());
    return { output, cache, dispose: () => (output.dispose(), cache.dispose()) };
  } finally {
    ctx.dispose();
  }
}
