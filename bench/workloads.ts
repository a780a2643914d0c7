/**
 * The benchmark's workloads, made deterministically from the model's own vocabulary so every
 * engine sees the same token ids and the token counts are known before anything runs.
 *
 *   query   1×16 tokens: one short query, the latency case
 *   RxT     R rows of exactly T tokens (8x128, 32x64 by default): the forward alone, no padding
 *   corpus  N texts (default 256) of 16–256 tokens, embedded end to end: tokenize + encode + pool
 *
 * Texts are whole words of the vocabulary ([a-z]{2,} entries, no `##` pieces), each exactly one
 * token, so a text of k words is k + 2 tokens with [CLS]/[SEP]; every text is re-tokenized and
 * its count checked, so a vocabulary where that fails is an error, not a silent mismatch.
 */
import type { BertTokenizer, Encoding } from '../tokenizer';

export const DEFAULT_WORKLOADS = ['query', '8x128', '32x64', 'corpus'];

export type WorkloadSpec =
  | { kind: 'batch'; name: string; rows: number; tokens: number }
  | { kind: 'corpus'; name: string; texts: number; minTokens: number; maxTokens: number };

/** A workload ready to run: token ids for a fixed batch, or texts for the corpus. */
export type Workload =
  | { kind: 'batch'; name: string; encodings: Encoding[]; realTokens: number }
  | { kind: 'corpus'; name: string; texts: string[]; batchSize: number; realTokens: number };

export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** `query` | `corpus` | `RxT` → a spec; anything else is an error naming the accepted forms. */
export function parseWorkload(name: string, corpusSize: number): WorkloadSpec {
  if (name === 'query') return { kind: 'batch', name, rows: 1, tokens: 16 };
  if (name === 'corpus') return { kind: 'corpus', name, texts: corpusSize, minTokens: 16, maxTokens: 256 };
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (m && Number(m[1]) >= 1 && Number(m[2]) >= 3) return { kind: 'batch', name, rows: Number(m[1]), tokens: Number(m[2]) };
  throw new WorkloadError(`unknown workload '${name}': use query, corpus or ROWSxTOKENS (e.g. 8x128, tokens >= 3)`);
}

/** mulberry32 (devtools/rng.ts): a seed always gives the same texts. */
import { mulberry32 as seededRandom } from '../devtools/rng';
export { seededRandom };

/** Vocabulary entries that are whole lower-case words: each tokenizes to exactly itself. */
export function wholeWords(tok: BertTokenizer): string[] {
  const words: string[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    const t = tok.idToToken(id);
    if (/^[a-z]{2,}$/.test(t)) words.push(t);
  }
  if (words.length === 0) throw new WorkloadError('the vocabulary has no whole-word entries ([a-z]{2,}) to build benchmark texts from');
  return words;
}

/** A text of exactly `nTokens` tokens including [CLS]/[SEP] (and the prefix, when given). */
function textOf(words: string[], rand: () => number, nTokens: number, prefix: string, prefixTokens: number): string {
  const k = nTokens - 2 - prefixTokens;
  if (k < 0) throw new WorkloadError(`cannot make a ${nTokens}-token text with the prefix '${prefix}'`);
  const body = Array.from({ length: k }, () => words[Math.floor(rand() * words.length)]).join(' ');
  return (prefix + body).trimEnd();
}

function encodeExactly(tok: BertTokenizer, text: string, nTokens: number): Encoding {
  const e = tok.encode(text, { maxLength: Math.max(nTokens, 512) });
  if (e.nTokens !== nTokens) {
    throw new WorkloadError(`benchmark text meant to be ${nTokens} tokens has ${e.nTokens}: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return e;
}

/** Build a workload from its spec; `seed` fixes the texts (the same seed gives the same ids). */
export function makeWorkload(spec: WorkloadSpec, tok: BertTokenizer, seed: number, batchSize = 32): Workload {
  const words = wholeWords(tok);
  const rand = seededRandom(seed ^ hashName(spec.name));
  if (spec.kind === 'batch') {
    // The single query reads like one; the fixed batches are passages.
    const prefix = spec.name === 'query' ? 'query: ' : 'passage: ';
    const encodings = Array.from({ length: spec.rows }, () => {
      const fits = spec.tokens >= 4 + 2;
      return encodeExactly(tok, textOf(words, rand, spec.tokens, fits ? prefix : '', fits ? 2 : 0), spec.tokens);
    });
    return { kind: 'batch', name: spec.name, encodings, realTokens: spec.rows * spec.tokens };
  }
  const lengths = Array.from({ length: spec.texts }, () => spec.minTokens + Math.floor(rand() * (spec.maxTokens - spec.minTokens + 1)));
  const texts = lengths.map((n) => textOf(words, rand, n, 'passage: ', 2));
  const realTokens = texts.reduce((sum, t, i) => sum + encodeExactly(tok, t, lengths[i]).nTokens, 0);
  return { kind: 'corpus', name: spec.name, texts, batchSize, realTokens };
}

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** Token ids of a batch workload as padded [B][T] lists (HF layout) with their attention mask. */
export function paddedLists(encodings: Encoding[]): { inputIds: number[][]; attentionMask: number[][] } {
  const T = Math.max(...encodings.map((e) => e.nTokens));
  const pad = (a: Int32Array, fill: number) => [...Array.from(a), ...new Array(T - a.length).fill(fill)];
  return {
    inputIds: encodings.map((e) => pad(e.inputIds, 0)),
    attentionMask: encodings.map((e) => pad(e.attentionMask, 0)),
  };
}
