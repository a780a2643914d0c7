// BertTokenizer = added-token splitting + BertNormalizer + BertPreTokenizer + WordPiece + template,
// the pipeline of HF `Tokenizer::encode` for BERT (google-research/bert's FullTokenizer plus [CLS]/[SEP]).
//
// Offsets are [start, end) in CODE POINTS of the original string, exactly what the npm `tokenizers`
// binding returns (Rust char offsets). They equal UTF-16 indices when the text has no astral chars
// (emoji, CJK Ext B...); use `toUtf16Offsets` to slice the JavaScript string in general.
// Lone surrogates are read as U+FFFD (as Node-API does before Rust sees the text), which clean_text
// then drops: they never produce a token and never shift offsets.

import { AddedToken, AddedTokenMatcher } from './added_tokens';
import { TokenizerSpec } from './config';
import { loadFolderSpec } from './folder';
import { parseTokenizerJson } from './tokenizer_json';
import { TokenizerError } from './errors';
import { BertNormalizer, NormalizedString } from './normalizer';
import { numAddedTokens, postProcess, RawEncoding, TemplateProcessing, truncateLongestFirst, truncateRaw } from './post_processor';
import { bertPreTokenize } from './pre_tokenizer';
import { WordpieceTokenizer } from './wordpiece';

export interface Encoding {
  inputIds: Int32Array; // [T]
  tokenTypeIds: Int32Array; // [T]
  attentionMask: Int32Array; // [T], all ones (padding only happens in encodeBatch)
  tokens: string[];
  /** [start, end) in code points of the original text; [0, 0] for [CLS]/[SEP]. */
  offsets: Array<[number, number]>;
  /** 1 where the post-processor added the token ([CLS], [SEP]), 0 for the text's own (HF special_tokens_mask). */
  specialTokensMask: Int32Array;
  /** Number of tokens, special tokens included (= T). */
  nTokens: number;
  /** True when maxLength cut tokens from the text (or from either text of a pair). */
  truncated: boolean;
}

/** A right-padded batch; the id arrays are row-major [B, T] with T = the longest row. */
export interface EncodedBatch {
  inputIds: Int32Array; // [B*T]
  tokenTypeIds: Int32Array; // [B*T], 0 on padding
  attentionMask: Int32Array; // [B*T], 0 on padding
  batchSize: number; // B
  seqLen: number; // T
  encodings: Encoding[]; // unpadded, one per row
}

export interface EncodeOptions {
  /** Second text of a pair: [CLS] A [SEP] B [SEP]. */
  pair?: string;
  /** Maximum number of tokens, special tokens included. Default: modelMaxLength. */
  maxLength?: number;
  /** Add [CLS]/[SEP] (default true). */
  addSpecialTokens?: boolean;
}

/** Where encodeSequence stands: still going, stopped at maxLength, or stopped with tokens left over. */
type Progress = 0 | 1 | 2;
const GOING = 0;
const STOPPED = 1;
const MORE = 2;

const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** What Node-API hands to Rust: every lone surrogate becomes U+FFFD (one code point, one UTF-16 unit). */
function toWellFormed(text: string): string {
  return SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

/** Number of code points in text[from, to). */
function codePointCount(text: string, from: number, to: number, hasSurrogates: boolean): number {
  if (!hasSurrogates) return to - from;
  let n = 0;
  for (let i = from; i < to; i++, n++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

/** The identity "normalization" for tokenizers without a normalizer. */
function identity(text: string, from: number, to: number, cpFrom: number): NormalizedString {
  const start = new Int32Array(to - from);
  const end = new Int32Array(to - from);
  let cp = cpFrom;
  for (let i = from; i < to; i++, cp++) {
    start[i - from] = cp;
    end[i - from] = cp + 1;
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      start[i + 1 - from] = cp;
      end[i + 1 - from] = cp + 1;
      i++;
    }
  }
  return { text: text.slice(from, to), start, end };
}

export class BertTokenizer {
  readonly vocabSize: number;
  /** The largest id any token maps to (-1 for none): the embedding table needs a row for it. */
  readonly maxId: number;
  readonly modelMaxLength: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  /** -1 when the vocabulary has no mask token. */
  readonly maskId: number;
  /** Where it was loaded from. */
  readonly source: string;
  /** Things in the files we deliberately did not apply (e.g. a truncation block in tokenizer.json). */
  readonly warnings: readonly string[];
  readonly ignoredTruncation: unknown;
  readonly ignoredPadding: unknown;

  private readonly normalizer: BertNormalizer | null;
  private readonly wordpiece: WordpieceTokenizer;
  private readonly template: TemplateProcessing | null;
  private readonly rawMatcher: AddedTokenMatcher; // added tokens with normalized=false
  private readonly normalizedMatcher: AddedTokenMatcher; // normalized=true, matched after normalization
  private readonly tokenToIdMap: Map<string, number>;
  private readonly idToTokenMap: Map<number, string>;

  constructor(spec: TokenizerSpec) {
    this.source = spec.source;
    this.warnings = [...spec.warnings];
    this.ignoredTruncation = spec.ignoredTruncation;
    this.ignoredPadding = spec.ignoredPadding;
    this.modelMaxLength = spec.modelMaxLength;
    this.normalizer = spec.normalizer ? new BertNormalizer(spec.normalizer) : null;
    this.wordpiece = new WordpieceTokenizer(spec.vocab, spec.wordpiece);
    this.template = spec.postProcessor;

    // Vocabulary as HF's Tokenizer sees it: model vocab, overridden by added tokens.
    this.tokenToIdMap = new Map(spec.vocab);
    for (const t of spec.addedTokens) this.tokenToIdMap.set(t.content, t.id);
    this.idToTokenMap = new Map<number, string>();
    for (const [t, id] of spec.vocab) this.idToTokenMap.set(id, t);
    for (const t of spec.addedTokens) this.idToTokenMap.set(t.id, t.content);
    this.vocabSize = this.tokenToIdMap.size;
    this.maxId = -1;
    for (const id of this.idToTokenMap.keys()) if (id > this.maxId) this.maxId = id;

    this.rawMatcher = new AddedTokenMatcher(spec.addedTokens.filter((t) => !t.normalized));
    const normalizedTokens = spec.addedTokens.filter((t) => t.normalized);
    this.normalizedMatcher = new AddedTokenMatcher(normalizedTokens, (t: AddedToken) => this.normalizePiece(t.content, 0, t.content.length, 0).text);

    const idOf = (t: string) => this.tokenToIdMap.get(t) ?? -1;
    this.unkId = this.wordpiece.unkId;
    this.padId = idOf(spec.specialTokens.pad);
    this.maskId = idOf(spec.specialTokens.mask);
    this.clsId = idOf(spec.specialTokens.cls);
    this.sepId = idOf(spec.specialTokens.sep);
  }

  /** Loads tokenizer.json (cross-checked with the slow files if present), else vocab.txt + tokenizer_config.json. */
  static fromFolder(dir: string): BertTokenizer {
    return new BertTokenizer(loadFolderSpec(dir));
  }

  /** From a parsed tokenizer.json. `source` names it in error messages. */
  static fromTokenizerJson(json: unknown, source = 'tokenizer.json'): BertTokenizer {
    return new BertTokenizer(parseTokenizerJson(json, source));
  }

  tokenToId(token: string): number | undefined {
    return this.tokenToIdMap.get(token);
  }

  idToToken(id: number): string {
    const t = this.idToTokenMap.get(id);
    if (t === undefined) throw new TokenizerError('bad_argument', `no token has id ${id}`, { field: 'id' });
    return t;
  }

  /** Token strings of one text, without special tokens or truncation (HF `tokenizer.tokenize`). */
  tokenize(text: string): string[] {
    return this.encodeSequence(checkText(text, 'text')).tokens;
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    checkText(text, 'text');
    if (opts.pair !== undefined) checkText(opts.pair, 'pair');
    const addSpecialTokens = opts.addSpecialTokens ?? true;
    const isPair = opts.pair !== undefined;
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const nAdded = addSpecialTokens ? numAddedTokens(this.template, isPair) : 0;
    if (!Number.isSafeInteger(maxLength) || maxLength < nAdded) {
      const what = `the special tokens of a ${isPair ? 'pair' : 'single text'}`;
      throw new TokenizerError('bad_argument', `must be an integer >= ${nAdded} (${what}), got ${maxLength}`, { field: 'maxLength' });
    }
    const a = this.encodeSequence(text, maxLength);
    const b = isPair ? this.encodeSequence(opts.pair!, maxLength) : null;
    const [keepA, keepB] = truncateLongestFirst(a.ids.length, b ? b.ids.length : null, maxLength - nAdded);
    const truncated = a.more || keepA < a.ids.length || (b !== null && (b.more || keepB < b.ids.length));
    const out = postProcess(this.template, truncateRaw(a, keepA), b ? truncateRaw(b, keepB) : null, addSpecialTokens);
    const n = out.ids.length;
    const offsets: Array<[number, number]> = new Array(n);
    for (let i = 0; i < n; i++) offsets[i] = [out.starts[i], out.ends[i]];
    return {
      inputIds: Int32Array.from(out.ids),
      tokenTypeIds: Int32Array.from(out.typeIds),
      attentionMask: new Int32Array(n).fill(1),
      tokens: out.tokens,
      offsets,
      specialTokensMask: Int32Array.from(out.specialTokensMask),
      nTokens: n,
      truncated,
    };
  }

  /** Encodes each text (or [text, pair]) and right-pads to the longest row with padId. */
  encodeBatch(texts: Array<string | [string, string]>, opts: { maxLength?: number; addSpecialTokens?: boolean } = {}): EncodedBatch {
    if (!Array.isArray(texts)) throw new TokenizerError('bad_argument', 'expected an array of strings or [string, string] pairs', { field: 'texts' });
    const encodings = texts.map((t: unknown, i) => {
      if (Array.isArray(t)) {
        if (t.length !== 2) {
          throw new TokenizerError('bad_argument', `a pair must be [text, text_pair], got ${t.length} items`, { field: `texts[${i}]` });
        }
        return this.encode(t[0], { ...opts, pair: t[1] });
      }
      return this.encode(checkText(t, `texts[${i}]`), opts);
    });
    const B = encodings.length;
    const T = encodings.reduce((m, e) => Math.max(m, e.nTokens), 0);
    if (encodings.some((e) => e.nTokens < T) && this.padId < 0) {
      throw new TokenizerError('bad_argument', 'rows differ in length but the vocabulary has no pad token', { field: 'texts' });
    }
    const inputIds = new Int32Array(B * T).fill(this.padId);
    const tokenTypeIds = new Int32Array(B * T);
    const attentionMask = new Int32Array(B * T);
    encodings.forEach((e, b) => {
      inputIds.set(e.inputIds, b * T);
      tokenTypeIds.set(e.tokenTypeIds, b * T);
      attentionMask.set(e.attentionMask, b * T);
    });
    return { inputIds, tokenTypeIds, attentionMask, batchSize: B, seqLen: T, encodings };
  }

  // --- one sequence, before truncation and special tokens -----------------------------------------

  private normalizePiece(text: string, from: number, to: number, cpFrom: number): NormalizedString {
    return this.normalizer ? this.normalizer.normalize(text, from, to, cpFrom) : identity(text, from, to, cpFrom);
  }

  /**
   * Tokens of one text, before truncation and special tokens.
   *
   * With `stopAt` (= maxLength), this reproduces the early stop of tokenizers 0.23 when truncation
   * is on: after each WORD is tokenized, if the sequence has reached stopAt tokens, the rest of the
   * text is skipped (an added token such as "[PAD]" counts, but never triggers the stop itself).
   * The stop is observable: the lengths it leaves are what longest_first compares when it decides
   * which text of a pair gets the odd token. `more` tells whether anything skipped had tokens.
   */
  private encodeSequence(input: string, stopAt = Infinity): RawEncoding & { more: boolean } {
    const text = toWellFormed(input);
    const hasSurrogates = SURROGATE.test(text);
    const out: RawEncoding & { more: boolean } = { ids: [], tokens: [], starts: [], ends: [], more: false };
    // 1. Added tokens typed in the raw text ("[CLS]", "[MASK]", ...) are kept whole.
    const splits = this.rawMatcher.isEmpty ? [{ start: 0, end: text.length, id: -1 }] : this.rawMatcher.split(text);
    let cp = 0; // code point index of splits[k].start
    let stopped = false;
    for (const s of splits) {
      const cpEnd = cp + codePointCount(text, s.start, s.end, hasSurrogates);
      if (s.id >= 0) {
        if (stopped) return { ...out, more: true };
        this.push(out, s.id, text.slice(s.start, s.end), cp, cpEnd);
      } else if (s.end > s.start) {
        // 2. Normalize the rest; 3. pre-tokenize; 4. WordPiece.
        const norm = this.normalizePiece(text, s.start, s.end, cp);
        const r = this.encodeNormalized(norm, stopped ? null : out, stopAt);
        if (r === MORE) return { ...out, more: true };
        if (r === STOPPED) stopped = true;
      }
      cp = cpEnd;
    }
    return out;
  }

  /**
   * Appends the tokens of a normalized piece. With `out` null (the sequence already stopped), only
   * looks for a word or added token, answering MORE if there is one.
   */
  private encodeNormalized(norm: NormalizedString, out: RawEncoding | null, stopAt: number): Progress {
    const splits = this.normalizedMatcher.isEmpty ? [{ start: 0, end: norm.text.length, id: -1 }] : this.normalizedMatcher.split(norm.text);
    const words: number[] = [];
    let stopped = out === null;
    for (const s of splits) {
      if (s.id >= 0) {
        if (stopped) return MORE;
        this.push(out!, s.id, norm.text.slice(s.start, s.end), norm.start[s.start], norm.end[s.end - 1]);
        continue;
      }
      words.length = 0;
      bertPreTokenize(norm.text, s.start, s.end, words);
      if (stopped) {
        if (words.length > 0) return MORE;
        continue;
      }
      const r = this.pushWords(norm, words, out!, stopAt);
      if (r === MORE) return MORE;
      if (r === STOPPED) stopped = true;
    }
    return stopped ? STOPPED : GOING;
  }

  private pushWords(norm: NormalizedString, words: number[], out: RawEncoding, stopAt: number): Progress {
    for (let w = 0; w < words.length; w += 2) {
      const ws = words[w];
      const we = words[w + 1];
      const pieces = this.wordpiece.tokenize(norm.text.slice(ws, we));
      if (pieces === null) {
        this.push(out, this.unkId, this.wordpiece.config.unkToken, norm.start[ws], norm.end[we - 1]);
      } else {
        let s = 0;
        for (let k = 0; k < pieces.ids.length; k++) {
          const e = pieces.ends[k];
          this.push(out, pieces.ids[k], pieces.tokens[k], norm.start[ws + s], norm.end[ws + e - 1]);
          s = e;
        }
      }
      if (out.ids.length >= stopAt) return w + 2 < words.length ? MORE : STOPPED;
    }
    return GOING;
  }

  private push(out: RawEncoding, id: number, token: string, start: number, end: number): void {
    out.ids.push(id);
    out.tokens.push(token);
    out.starts.push(start);
    out.ends.push(end);
  }
}

function checkText(text: unknown, field: string): string {
  if (typeof text !== 'string') throw new TokenizerError('bad_argument', `expected a string, got ${text === null ? 'null' : typeof text}`, { field });
  return text;
}
