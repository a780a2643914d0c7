/**
 * BertModel: the parameters of weights/ plus the forward pass of engine/bert.ts, with the
 * three ways a researcher calls it — `forward` (HF-shaped outputs), `runWithCache` (outputs +
 * named activations) and `runWithHooks` (read or replace activations: ablation, patching).
 * Results own their tensors and have dispose(); everything else a call creates is freed.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from '../weights/config';
import { BertParams, isBf16, paramTensors } from '../weights/params';
import type { PoolingMode } from '../weights/sentence_transformers';
import { BackendInfo, CompiledEncoder, currentRuntime, PendingWeights, Runtime } from './runtime';
import { encoder } from './bert';
import { eagerForward, publicView } from './eager';
import { checkHeadIntervention } from './heads';
import { allHookNames, blockHook, HookContext, HookFilter, HookFn, HookName, OUTPUT_HOOKS } from './hooks';
import type { HeadIntervention } from './ops';
import { bertPooler, l2Normalize, pool } from './pooling';
import { packPadded, PackedInput, PaddedBatch } from './rows';

export interface ForwardOptions {
  /** Pooling for `pooled`/`embedding` (default: the model's, i.e. 1_Pooling/config.json or mean). */
  pooling?: PoolingMode;
  /** HF `output_hidden_states`: embeddings output + one [B,T,D] per layer. */
  outputHiddenStates?: boolean;
  /** HF `output_attentions`: one [B,H,T,T] post-softmax pattern per layer. */
  outputAttentions?: boolean;
  /** Compute BERT's pooler output (tanh dense on [CLS]) when the model has one (default true, as HF). */
  poolerOutput?: boolean;
  /**
   * Heads removed or scaled at attn.hook_z (engine/ops.ts HeadIntervention: z' = m·z + (1 − m)·fill),
   * an input of the forward: it runs compiled where the backend compiles, and tf.grad reaches the
   * mask op by op. The caller keeps ownership of its tensors.
   */
  heads?: HeadIntervention;
  /**
   * Run compiled where the runtime compiles the encoder (default true); false runs engine/bert.ts op
   * by op, as forwards with hook functions always do — the same kernels as theirs, so outputs can be
   * compared bit for bit.
   */
  compiled?: boolean;
}

export interface ForwardOutput {
  /** [B,T,D] = HF last_hidden_state. */
  lastHiddenState: tf.Tensor3D;
  /** [B,D] pooled (masked mean by default) = hook_pooled. */
  pooled: tf.Tensor2D;
  /** [B,D] L2-normalised `pooled` = hook_embedding. */
  embedding: tf.Tensor2D;
  /** [B,D] HF pooler_output (tanh dense on [CLS]) when the checkpoint has a pooler. */
  poolerOutput?: tf.Tensor2D;
  /** HF hidden_states (L+1 tensors [B,T,D]) when asked for. */
  hiddenStates?: tf.Tensor3D[];
  /** HF attentions (L tensors [B,H,T,T]) when asked for. */
  attentions?: tf.Tensor4D[];
  /** The backend that computed this. */
  backend: BackendInfo;
  dispose(): void;
}

/** Activations captured by runWithCache, by hook name. The caller owns them. */
export class ActivationCache {
  constructor(private readonly tensors: Map<HookName, tf.Tensor>) {}
  get names(): HookName[] {
    return [...this.tensors.keys()];
  }
  has(name: HookName): boolean {
    return this.tensors.has(name);
  }
  get(name: HookName): tf.Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`activation '${name}' is not in the cache (cached: ${this.names.length ? this.names.slice(0, 5).join(', ') + (this.names.length > 5 ? ', …' : '') : 'none'})`);
    return t;
  }
  entries(): IterableIterator<[HookName, tf.Tensor]> {
    return this.tensors.entries();
  }
  dispose(): void {
    this.tensors.forEach((t) => t.dispose());
    this.tensors.clear();
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export class BertModel {
  /** The runtime's compiled encoder: made on the first forward that can use it, null when there is none. */
  private compiled?: CompiledEncoder | null;
  /** The hook points inside the encoder: a forward where nothing wants any of them may run compiled. */
  private readonly encoderHooks: HookName[];

  constructor(
    readonly config: BertConfig,
    readonly params: BertParams,
    /** Pooling used when a call does not say (from 1_Pooling/config.json, else mean). */
    readonly defaultPooling: PoolingMode = 'mean',
    /** The backend it computes on (default: the one tfjs computes on now, engine/backend.ts). */
    readonly runtime: Runtime = currentRuntime(),
    /**
     * The weights' bytes, when the backend still reads them in the background (WeightSink.deferred):
     * its barrier holds every op until they are in; a forward after the reads failed throws their error.
     */
    readonly pendingWeights?: PendingWeights,
  ) {
    this.encoderHooks = allHookNames(config.numHiddenLayers).filter((n) => !(OUTPUT_HOOKS as readonly string[]).includes(n));
  }

  /** Run a padded batch (HF semantics) and return HF-shaped outputs. */
  forward(batch: PaddedBatch, opts: ForwardOptions = {}): ForwardOutput {
    return this.runScoped(packPadded(batch), opts, new HookContext());
  }

  /** Forward and also return the activations whose names match `names` (`*` = all). */
  runWithCache(
    batch: PaddedBatch,
    opts: ForwardOptions & { names: HookFilter | HookFilter[]; hooks?: Array<[HookFilter, HookFn]> },
  ): { output: ForwardOutput; cache: ActivationCache } {
    // With hooks too, the cache holds what flowed on (the activation after the hooks ran).
    const ctx = new HookContext({ cache: opts.names, hooks: opts.hooks });
    try {
      const output = this.run(packPadded(batch), opts, ctx);
      return { output, cache: new ActivationCache(ctx.takeCache()) };
    } finally {
      ctx.dispose();
    }
  }

  /** Forward with hook functions that may read or replace activations, scoped to this call. */
  runWithHooks(batch: PaddedBatch, hooks: Array<[HookFilter, HookFn]>, opts: ForwardOptions = {}): ForwardOutput {
    return this.runScoped(packPadded(batch), opts, new HookContext({ hooks }));
  }

  /** Run with a context that lives for this call only: whatever it cached is freed after. */
  runScoped(input: PackedInput, opts: ForwardOptions, ctx: HookContext): ForwardOutput {
    try {
      return this.run(input, opts, ctx);
    } finally {
      ctx.dispose();
    }
  }

  /** The forward pass on a packed input (engine/rows.ts). Public for the embedding path. */
  run(input: PackedInput, opts: ForwardOptions, hooks: HookContext): ForwardOutput {
    // Never waits: the backend's barrier does, at the first op, so the reads overlap the graph's build.
    this.pendingWeights?.throwIfFailed();
    const L = this.config.numHiddenLayers;
    // HF's hidden_states / attentions are views of hook points, captured through the cache.
    const hiddenNames: HookName[] = opts.outputHiddenStates
      ? ['hook_full_embed', ...range(L).map((i) => blockHook(i, 'hook_normalized_resid_post'))] : [];
    const attnNames: HookName[] = opts.outputAttentions ? range(L).map((i) => blockHook(i, 'attn.hook_pattern')) : [];
    const ctx = hiddenNames.length || attnNames.length ? hooks.withCached([...hiddenNames, ...attnNames]) : hooks;
    if (opts.heads) checkHeadIntervention(this.config, input.rows, opts.heads);
    const out = tf.tidy(() => {
      const ops = this.runtime.ops;
      const hidden = this.encode(input, ctx, opts); // [N,D]
      const pooled = ctx.apply('hook_pooled', pool(opts.pooling ?? this.defaultPooling, hidden, input)) as tf.Tensor2D; // [R,D]
      const embedding = ctx.apply('hook_embedding', l2Normalize(pooled)) as tf.Tensor2D; // [R,D]
      const { count: R, uniformLength } = input.rows;
      return {
        // Rows of different lengths (unpadded packing) have no [B,T,D] view: one row of N tokens.
        lastHiddenState: tf.reshape(hidden, uniformLength ? [R, uniformLength, -1] : [1, input.rows.total, -1]) as tf.Tensor3D,
        pooled, embedding,
        poolerOutput: this.params.pooler && opts.poolerOutput !== false ? bertPooler(ops, hidden, input, this.params.pooler) : undefined,
      };
    });
    // The views are cloned out of the cache, so the caller's cache and the output own separate handles.
    const take = (names: HookName[]) => (names.length ? names.map((n) => ctx.cache.get(n)!.clone()) : undefined);
    const hiddenStates = take(hiddenNames) as tf.Tensor3D[] | undefined;
    const attentions = take(attnNames) as tf.Tensor4D[] | undefined;
    const owned: Array<tf.Tensor | undefined> = [out.lastHiddenState, out.pooled, out.embedding, out.poolerOutput, ...(hiddenStates ?? []), ...(attentions ?? [])];
    return { ...out, hiddenStates, attentions, backend: this.runtime.info, dispose: () => owned.forEach((t) => t?.dispose()) };
  }

  /**
   * The last hidden state [N, D]: engine/bert.ts op by op when a hook function looks inside the
   * encoder, else the runtime's compiled encoder where it has one (same numbers, within float
   * rounding), which also returns the hook points the context caches.
   */
  private encode(input: PackedInput, ctx: HookContext, { heads, compiled = true }: ForwardOptions): tf.Tensor2D {
    if (compiled && this.runtime.compileEncoder && !ctx.hasFunctionsAt(this.encoderHooks)) {
      if (this.compiled === undefined) this.compiled = this.runtime.compileEncoder(this.config, this.params) ?? null;
      if (this.compiled?.takes(input)) {
        const fetch = ctx.cachedAmong(this.encoderHooks);
        const { hidden, hooks } = this.compiled.run(input, { heads, fetch: fetch.length ? fetch : undefined });
        for (const [name, t] of hooks) {
          ctx.apply(name, publicView(this.config, input.rows, name, t));
          t.dispose();
        }
        return hidden;
      }
    }
    // bf16 op by op rounds where the graph holds bf16 (engine/eager.ts).
    return encoder(this.params, eagerForward(this.config, this.runtime.ops, input, ctx, heads, isBf16(this.params))) as tf.Tensor2D;
  }

  dispose(): void {
    this.pendingWeights?.cancel(); // no thread writes into the weights once they are given back
    this.compiled?.dispose();
    this.compiled = null;
    paramTensors(this.params).forEach((t) => t.dispose());
  }
}

