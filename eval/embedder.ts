/**
 * The one thing evaluation needs from a model: turn texts into L2-normalised vectors.
 *
 * This is the contract of e5/model.ts (the e5 embedding API); it is restated here so eval/ depends
 * on a shape, not on the engine, and so tests can plug in a deterministic fake.
 */

export type EmbedPrefix = 'query' | 'passage' | 'none';

export interface EmbedCallOptions {
  /** 'query' / 'passage' prepends 'query: ' / 'passage: '; 'none' uses the texts as given. */
  prefix: EmbedPrefix;
  batchSize?: number;
  /** Truncate each input to this many tokens (incl. [CLS]/[SEP]); default: the model's limit. */
  maxLength?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EmbedCallResult {
  /** One L2-normalised vector per input, in input order. */
  embeddings: Float32Array[];
  nTokens: number[];
  truncated: boolean[];
}

export interface Embedder {
  /** Identity for cache keys: model dir/repo + revision/commit + weights fingerprint. */
  readonly id: string;
  /** Pooling mode, when the embedder has one; part of the cache key. */
  readonly pooling?: string;
  /** What computes the vectors (engine numerics revision, backend), when that can change them; part of the cache key. */
  readonly engine?: string;
  embed(texts: string[], opts: EmbedCallOptions): Promise<EmbedCallResult>;
}

/** The attention heads an embedder can remove: L layers of H heads, each layer's heads D wide together. */
export interface HeadShape {
  numHiddenLayers: number;
  numAttentionHeads: number;
  hiddenSize: number;
}

/**
 * An Embedder that can also embed with attention heads removed (eval/ablation.ts). Masks are [L*H]
 * (head h of layer l at l*H + h): 1 keeps the head, 0 replaces its output at attn.hook_z with `fill`
 * ([L*D], layer l's heads side by side at l*D; zeros when absent).
 */
export interface HeadEmbedder extends Embedder {
  readonly headShape: HeadShape;
  /**
   * Each layer's attn.hook_z averaged over every real token of `texts` (prefix applied, truncated at
   * maxLength, [CLS] and [SEP] included), as [L*D]: what mean ablation puts in place of a head.
   */
  headMeans(texts: string[], opts: EmbedCallOptions): Promise<Float32Array>;
  /** `texts` embedded once per mask: result c holds every text under masks[c], in input order. */
  embedMasked(texts: string[], masks: readonly Float32Array[], fill: Float32Array | undefined, opts: EmbedCallOptions): Promise<EmbedCallResult[]>;
}

/** Whether `m` can embed with heads removed. */
export function isHeadEmbedder(m: Embedder): m is HeadEmbedder {
  const h = m as Partial<HeadEmbedder>;
  return typeof h.embedMasked === 'function' && typeof h.headMeans === 'function' && !!h.headShape;
}
