// Added tokens (HF `AddedVocabulary`): text typed by the user that equals a special token such as
// "[CLS]" or "[MASK]" is kept whole as that token instead of being normalized and split.
//
// HF matches all non-normalized added tokens on the raw text first (Aho-Corasick, leftmost-longest,
// non-overlapping), then the "normalized" ones on each normalized remaining piece. Flags:
// single_word (no word char may touch the match), lstrip/rstrip (the match swallows adjacent
// whitespace). Special tokens in BERT files are normalized=false with no flags: "[CLS]" matches
// anywhere, even inside a word ("x[CLS]y"), and only in exact case.

import { inRanges, isWhitespace } from './unicode';
import { RUST_NOT_WORD_CHARS } from './unicode_tables';

export interface AddedToken {
  id: number;
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A stretch [start, end) of the searched string: an added token (id >= 0) or plain text (id = -1). */
export interface Split {
  start: number;
  end: number;
  id: number;
}

// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, joiners -- in the regex
// crate's Unicode version, older than ICU's: characters assigned since are not word chars there.
export const ICU_WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;

function isWordChar(cp: number): boolean {
  return ICU_WORD_CHAR.test(String.fromCodePoint(cp)) && !inRanges(RUST_NOT_WORD_CHARS, cp);
}

function endsWithWordChar(text: string, from: number, at: number): boolean {
  if (at <= from) return false;
  const lo = text.charCodeAt(at - 1);
  const cp = lo >= 0xdc00 && lo <= 0xdfff && at - 2 >= from ? text.codePointAt(at - 2)! : lo;
  return isWordChar(cp);
}

function startsWithWordChar(text: string, at: number, to: number): boolean {
  return at < to && isWordChar(text.codePointAt(at)!);
}

/** Index after the whitespace run that starts at `at`. */
function skipSpacesForward(text: string, at: number, to: number): number {
  while (at < to) {
    const cp = text.codePointAt(at)!;
    if (!isWhitespace(cp)) break;
    at += cp > 0xffff ? 2 : 1;
  }
  return at;
}

/** Start of the whitespace run that ends at `at`. */
function skipSpacesBackward(text: string, from: number, at: number): number {
  while (at > from) {
    const cp = text.charCodeAt(at - 1);
    if (cp >= 0xdc00 && cp <= 0xdfff && at - 2 >= from) {
      if (!isWhitespace(text.codePointAt(at - 2)!)) break;
      at -= 2;
    } else {
      if (!isWhitespace(cp)) break;
      at -= 1;
    }
  }
  return at;
}

/** Leftmost-longest literal matcher over a fixed set of added tokens. */
export class AddedTokenMatcher {
  readonly tokens: readonly AddedToken[];
  private readonly patterns: Array<{ text: string; token: AddedToken }>;
  private readonly firstUnits: Set<number>;

  /** `patternOf` gives the string to search for (the content, or its normalized form). */
  constructor(tokens: AddedToken[], patternOf: (t: AddedToken) => string = (t) => t.content) {
    this.tokens = tokens;
    this.patterns = tokens
      .map((token) => ({ text: patternOf(token), token }))
      .filter((p) => p.text.length > 0)
      .sort((a, b) => b.text.length - a.text.length); // longest first: the first hit at a position wins
    this.firstUnits = new Set(this.patterns.map((p) => p.text.charCodeAt(0)));
  }

  get isEmpty(): boolean {
    return this.patterns.length === 0;
  }

  /** Splits text[from, to) into plain stretches and added tokens, in order, covering it exactly. */
  split(text: string, from = 0, to = text.length): Split[] {
    const splits: Split[] = [];
    let startOffset = from; // end of the last emitted split
    let searchFrom = from; // where the matcher resumes (a discarded match is still consumed)
    while (searchFrom < to) {
      const m = this.findNext(text, searchFrom, to);
      if (!m) break;
      searchFrom = m.end;
      let { start, end } = m;
      const t = m.token;
      if (t.singleWord && (endsWithWordChar(text, from, start) || startsWithWordChar(text, end, to))) continue;
      if (t.lstrip) start = Math.max(skipSpacesBackward(text, from, start), startOffset);
      if (t.rstrip) end = skipSpacesForward(text, end, to);
      if (startOffset < start) splits.push({ start: startOffset, end: start, id: -1 });
      splits.push({ start, end, id: t.id });
      startOffset = end;
    }
    if (startOffset < to) splits.push({ start: startOffset, end: to, id: -1 });
    return splits;
  }

  private findNext(text: string, from: number, to: number): { start: number; end: number; token: AddedToken } | null {
    const only = this.firstUnits.size === 1 ? String.fromCharCode(this.patterns[0].text.charCodeAt(0)) : null;
    for (let i = from; i < to; i++) {
      if (only !== null) {
        i = text.indexOf(only, i); // all BERT special tokens start with "[": skip straight to the next one
        if (i < 0 || i >= to) return null;
      } else if (!this.firstUnits.has(text.charCodeAt(i))) continue;
      for (const p of this.patterns) {
        if (i + p.text.length <= to && text.startsWith(p.text, i)) return { start: i, end: i + p.text.length, token: p.token };
      }
    }
    return null;
  }
}
