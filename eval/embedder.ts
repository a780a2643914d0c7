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
