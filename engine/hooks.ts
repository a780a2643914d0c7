/**
 * Named hook points, TransformerLens style: every activation the forward pass computes has a
 * name derived from the structure (`blocks.3.attn.hook_pattern`), typed so a typo fails to
 * compile. Hooks are scoped to one call (a HookContext lives for one forward) — there is no
 * global registry to forget to clean up.
 *
 * Shapes (B batch rows, T tokens per row, D hidden, H heads, Dh = D/H, F FFN width):
 *   embed.hook_embed, embed.hook_pos_embed, embed.hook_token_type_embed   [B,T,D]
 *   hook_full_embed (after the embedding LayerNorm = HF hidden_states[0])  [B,T,D]
 *   blocks.{i}.hook_resid_pre                                              [B,T,D]
 *   blocks.{i}.attn.hook_q|hook_k|hook_v|hook_z                           [B,T,H,Dh]
 *   blocks.{i}.attn.hook_attn_scores (scaled + masked), attn.hook_pattern  [B,H,T,T]
 *   blocks.{i}.hook_attn_out, hook_resid_mid, ln1.hook_normalized          [B,T,D]
 *   blocks.{i}.mlp.hook_pre, mlp.hook_post                                 [B,T,F]
 *   blocks.{i}.hook_mlp_out, hook_resid_post, hook_normalized_resid_post   [B,T,D]
 *   hook_pooled, hook_embedding                                            [B,D]
 *
 * Rows of different lengths (unpadded packing) have no [B,T] view: token-wise hook points then
 * see one row of all N tokens, [1,N,…], and attention's scores and pattern each row padded to the
 * longest, [R,H,T,T] (a shorter row's extra keys masked; its extra query rows mean nothing).
 */
import * as tf from '@tensorflow/tfjs-core';

export const EMBED_HOOKS = ['embed.hook_embed', 'embed.hook_pos_embed', 'embed.hook_token_type_embed', 'hook_full_embed'] as const;
export const BLOCK_HOOKS = [
  'hook_resid_pre',
  'attn.hook_q',
  'attn.hook_k',
  'attn.hook_v',
  'attn.hook_attn_scores',
  'attn.hook_pattern',
  'attn.hook_z',
  'hook_attn_out',
  'hook_resid_mid',
  'ln1.hook_normalized',
  'mlp.hook_pre',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
  'hook_normalized_resid_post',
] as const;
export const OUTPUT_HOOKS = ['hook_pooled', 'hook_embedding'] as const;

export type EmbedHook = (typeof EMBED_HOOKS)[number];
export type BlockHook = (typeof BLOCK_HOOKS)[number];
export type OutputHook = (typeof OUTPUT_HOOKS)[number];
export type HookName = EmbedHook | `blocks.${number}.${BlockHook}` | OutputHook;

/** The layer-independent part of a hook name: `attn.hook_pattern` for `blocks.3.attn.hook_pattern`. */
export type HookKind = EmbedHook | BlockHook | OutputHook;

export function blockHook(layer: number, hook: BlockHook): HookName {
  return `blocks.${layer}.${hook}`;
}

/** The hidden state at depth d: HF hidden_states[d] (0: the embedding LayerNorm's output; k: block k−1's output). */
export function depthHook(d: number): HookName {
  return d === 0 ? 'hook_full_embed' : blockHook(d - 1, 'hook_normalized_resid_post');
}

/** All hook names of a model with `nLayers` layers, in the order the forward pass reaches them. */
export function allHookNames(nLayers: number): HookName[] {
  const names: HookName[] = [...EMBED_HOOKS];
  for (let i = 0; i < nLayers; i++) names.push(...BLOCK_HOOKS.map((h) => blockHook(i, h)));
  names.push(...OUTPUT_HOOKS);
  return names;
}

/** The default dump: HF's hidden_states and attentions as hook points, plus the pooled and normalised outputs. */
export function defaultHookNames(nLayers: number): HookName[] {
  const names: HookName[] = ['hook_full_embed'];
  for (let i = 0; i < nLayers; i++) names.push(blockHook(i, 'hook_normalized_resid_post'), blockHook(i, 'attn.hook_pattern'));
  names.push('hook_pooled', 'hook_embedding');
  return names;
}

/**
 * How a hook point's value is laid out inside the encoder: per token, [N, C] (`heads`: C = H·Dh,
 * seen as [H, Dh]), or attention's [R, H, T, T] grid.
 */
export type HookLayout = 'tokens' | 'heads' | 'grid';

export function hookLayout(name: HookName): HookLayout {
  const kind = parseHookName(name)?.kind;
  if (kind === 'attn.hook_attn_scores' || kind === 'attn.hook_pattern') return 'grid';
  return kind?.startsWith('attn.hook_') ? 'heads' : 'tokens';
}

/** Parse `blocks.12.attn.hook_pattern` → {layer: 12, kind: 'attn.hook_pattern'}; undefined if not a hook name. */
export function parseHookName(name: string, nLayers?: number): { layer?: number; kind: HookKind } | undefined {
  if ((EMBED_HOOKS as readonly string[]).includes(name) || (OUTPUT_HOOKS as readonly string[]).includes(name)) {
    return { kind: name as HookKind };
  }
  const m = /^blocks\.(0|[1-9]\d*)\.(.+)$/.exec(name);
  if (!m || !(BLOCK_HOOKS as readonly string[]).includes(m[2])) return undefined;
  const layer = Number(m[1]);
  if (nLayers !== undefined && layer >= nLayers) return undefined;
  return { layer, kind: m[2] as BlockHook };
}

/** A filter: an exact name, a glob (`blocks.*.attn.hook_pattern`, `*` = everything), a RegExp or a predicate. */
export type HookFilter = HookName | string | RegExp | ((name: HookName) => boolean);

export function hookMatcher(filter: HookFilter | HookFilter[]): (name: HookName) => boolean {
  const list = Array.isArray(filter) ? filter : [filter];
  const tests = list.map((f): ((n: HookName) => boolean) => {
    if (typeof f === 'function') return f;
    if (f instanceof RegExp) return (n) => f.test(n);
    if (f === '*') return () => true;
    if (!f.includes('*')) return (n) => n === f;
    const re = new RegExp('^' + f.split('*').map(escapeRegExp).join('[^]*') + '$');
    return (n) => re.test(n);
  });
  return (n) => tests.some((t) => t(n));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** What a hook function is told about the activation it sees. */
export interface HookInfo {
  name: HookName;
  layer?: number;
}
/** Return a tensor of the same shape to replace the activation, or nothing to leave it as is. */
export type HookFn = (activation: tf.Tensor, info: HookInfo) => tf.Tensor | void | undefined;

/**
 * One forward pass's hooks. `apply` is called at every hook point with the activation in its
 * public (HF-like, batch-first) shape; only hook points somebody asked for cost anything.
 */
export class HookContext {
  readonly cache = new Map<HookName, tf.Tensor>();
  private readonly hooks: Array<[(n: HookName) => boolean, HookFn]>;
  private readonly caching: (n: HookName) => boolean;

  /**
   * @param opts.hooks  functions run at the matching hook points, in order
   * @param opts.cache  names whose (final, post-hook) activation is kept in `cache`
   */
  constructor(opts: { hooks?: Array<[HookFilter, HookFn]>; cache?: HookFilter | HookFilter[] } = {}) {
    this.hooks = (opts.hooks ?? []).map(([f, fn]) => [hookMatcher(f), fn]);
    const filters = opts.cache === undefined ? [] : Array.isArray(opts.cache) ? opts.cache : [opts.cache];
    this.caching = filters.length ? hookMatcher(filters) : () => false;
  }

  /** A context that also caches `names` (used for HF's hidden_states/attentions views). */
  withCached(names: HookName[]): HookContext {
    const inner = this.caching;
    const extra = new Set(names);
    const ctx = Object.create(this) as HookContext;
    (ctx as unknown as { caching: (n: HookName) => boolean }).caching = (n) => extra.has(n) || inner(n);
    return ctx;
  }

  /** Whether a hook function (not only a cache) is at any of `names`: such a forward runs op by op. */
  hasFunctionsAt(names: readonly HookName[]): boolean {
    return this.hooks.some(([matches]) => names.some(matches));
  }

  /** Those of `names` whose activation is cached. */
  cachedAmong(names: readonly HookName[]): HookName[] {
    return names.filter(this.caching);
  }

  /** Whether anything listens at `name` (so the caller can skip building the public view). */
  wants(name: HookName): boolean {
    return this.caching(name) || this.hooks.some(([m]) => m(name));
  }

  /**
   * Run the hooks at `name` on `x` (already in its public shape) and return the activation to
   * continue with. Cached tensors are `keep`-ed so they outlive the forward's tidy.
   */
  apply(name: HookName, x: tf.Tensor): tf.Tensor {
    const info: HookInfo = { name, layer: parseHookName(name)?.layer };
    for (const [matches, fn] of this.hooks) {
      if (!matches(name)) continue;
      const out = fn(x, info);
      if (out && out !== x) {
        if (!tf.util.arraysEqual(out.shape, x.shape)) {
          throw new Error(`hook at '${name}' returned shape [${out.shape}], expected [${x.shape}]`);
        }
        // A clone (shared data, own handle): the forward pass may dispose what it continues
        // with, and a tensor the caller made (a patch source) must survive that.
        x = out.dtype === 'float32' ? out.clone() : tf.cast(out, 'float32');
      }
    }
    if (this.caching(name)) {
      this.cache.get(name)?.dispose();
      this.cache.set(name, tf.keep(x.clone()));
    }
    return x;
  }

  /** Hand the cache over (the caller owns and disposes it). */
  takeCache(): Map<HookName, tf.Tensor> {
    const c = new Map(this.cache);
    this.cache.clear();
    return c;
  }

  dispose(): void {
    this.cache.forEach((t) => t.dispose());
    this.cache.clear();
  }
}
