// WordPiece (HF `models::wordpiece::WordPiece`; google-research/bert's WordpieceTokenizer):
// greedy longest-match-first over one pre-tokenized word, continuation pieces prefixed with "##".
// A word with more than max_input_chars_per_word characters, or with any part that matches no
// vocabulary entry, becomes a single [UNK] covering the whole word.

export interface WordPieceConfig {
  unkToken: string;
  continuingSubwordPrefix: string; // "##"
  maxInputCharsPerWord: number; // 100; counted in code points, as Rust counts chars
}

/** The pieces of one word: ids, token strings, and each piece's end (UTF-16, exclusive) in the word. */
export interface WordPieces {
  ids: number[];
  tokens: string[];
  ends: number[];
}

const CACHE_LIMIT = 200_000;
const CACHE_MAX_WORD = 64;

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Number of code points (Rust chars) in s. */
export function charCount(s: string): number {
  let n = s.length;
  for (let i = 0; i + 1 < s.length; i++) if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) n--, i++;
  return n;
}

export class WordpieceTokenizer {
  readonly config: WordPieceConfig;
  readonly unkId: number;
  private readonly initial: Map<string, number>; // the vocabulary
  private readonly continuing = new Map<string, number>(); // "##xyz" stored as "xyz"
  private readonly maxInitialLen: number; // longest key, in UTF-16 units: no longer slice can match
  private readonly maxContinuingLen: number;
  private readonly cache = new Map<string, WordPieces | null>();

  constructor(vocab: Map<string, number>, config: WordPieceConfig) {
    const unkId = vocab.get(config.unkToken);
    if (unkId === undefined) throw new Error(`unk_token ${JSON.stringify(config.unkToken)} is not in the vocabulary`);
    this.config = { ...config };
    this.unkId = unkId;
    this.initial = vocab;
    const prefix = config.continuingSubwordPrefix;
    let maxInitial = 0;
    let maxCont = 0;
    for (const [token, id] of vocab) {
      maxInitial = Math.max(maxInitial, token.length);
      if (token.startsWith(prefix) && token.length > prefix.length) {
        this.continuing.set(token.slice(prefix.length), id);
        maxCont = Math.max(maxCont, token.length - prefix.length);
      }
    }
    this.maxInitialLen = maxInitial;
    this.maxContinuingLen = maxCont;
  }

  /** Pieces of one normalized word, or null when the whole word is [UNK]. Memoized. */
  tokenize(word: string): WordPieces | null {
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const pieces = this.tokenizeUncached(word);
    if (word.length <= CACHE_MAX_WORD) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, pieces);
    }
    return pieces;
  }

  private tokenizeUncached(word: string): WordPieces | null {
    const n = word.length;
    if (n > this.config.maxInputCharsPerWord && charCount(word) > this.config.maxInputCharsPerWord) return null;
    const pieces: WordPieces = { ids: [], tokens: [], ends: [] };
    let start = 0;
    while (start < n) {
      const vocab = start === 0 ? this.initial : this.continuing;
      let end = Math.min(n, start + (start === 0 ? this.maxInitialLen : this.maxContinuingLen));
      if (end < n && isLow(word.charCodeAt(end)) && isHigh(word.charCodeAt(end - 1))) end++; // stay on a char boundary
      let id: number | undefined;
      while (start < end) {
        id = vocab.get(word.slice(start, end));
        if (id !== undefined) break;
        end -= end - 2 >= start && isLow(word.charCodeAt(end - 1)) && isHigh(word.charCodeAt(end - 2)) ? 2 : 1;
      }
      if (id === undefined) return null;
      pieces.ids.push(id);
      pieces.tokens.push(start === 0 ? word.slice(0, end) : this.config.continuingSubwordPrefix + word.slice(start, end));
      pieces.ends.push(end);
      start = end;
    }
    return pieces;
  }
}
