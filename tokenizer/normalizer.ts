// The BERT normalizer (HF `BertNormalizer`), i.e. the first half of google-research/bert's
// BasicTokenizer, with alignments back to the original text.
//
// The steps, in HF Rust's order (which differs from google-research/bert: accents are stripped
// BEFORE lower-casing, and "strip_accents: null" means "strip when lower-casing"):
//   1. clean text: drop NUL, U+FFFD and control/format/private-use chars; whitespace -> ' '
//   2. space out Chinese characters:  '中' -> ' 中 '
//   3. strip accents: NFD, then drop non-spacing marks (Mn)
//   4. lower-case, one character at a time (so 'Σ' -> 'σ', never the final 'ς')
//
// Every step maps one character to zero or more characters, except NFD's canonical reordering of
// combining marks across characters. So the fast path normalizes code point by code point through a
// memo, and falls back to `normalizeExact` (a literal transcription of HF's NormalizedString
// transforms) only for text containing a combining mark that is reordered AND survives step 3.

import {
  cccRank, isChineseChar, isControl, isMarkNonspacing, isNonStarter, isWhitespace, lowercaseChar, nfdChar,
} from './unicode';

export interface BertNormalizerConfig {
  cleanText: boolean;
  handleChineseChars: boolean;
  /** Resolved: HF's `strip_accents: null` means "same as lowercase". */
  stripAccents: boolean;
  lowercase: boolean;
}

/**
 * A normalized piece of text. Offsets are in code points of the ORIGINAL string (what the npm
 * `tokenizers` binding reports): each UTF-16 unit of `text` descends from original chars [start, end).
 */
export interface NormalizedString {
  text: string;
  start: Int32Array; // [text.length]
  end: Int32Array; // [text.length]
}

// --- the four steps, on one character ------------------------------------------------------------

/** Step 1 (clean_text): drop NUL, U+FFFD and "controls"; any whitespace becomes a plain space. */
export function cleanTextChar(ch: string, cp: number): string {
  if (cp === 0 || cp === 0xfffd || isControl(cp)) return '';
  return isWhitespace(cp) ? ' ' : ch;
}

/** Step 2 (handle_chinese_chars): a CJK ideograph becomes a word of its own. */
export function padChineseChar(ch: string, cp: number): string {
  return isChineseChar(cp) ? ' ' + ch + ' ' : ch;
}

/** Step 3 (strip_accents), without cross-character reordering: NFD, then drop Mn. */
export function stripAccentsChar(ch: string, cp: number): string {
  const d = nfdChar(ch, cp);
  if (d.length === 1) return isMarkNonspacing(cp) ? '' : d;
  let out = '';
  for (const c of d) if (!isMarkNonspacing(c.codePointAt(0)!)) out += c;
  return out;
}

/** Step 4 (lowercase): per character, context-free. */
export { lowercaseChar } from './unicode';

/** Applies a per-character step to every code point of `s`. */
function mapChars(s: string, step: (ch: string, cp: number) => string): string {
  if (s.length === 1) return step(s, s.charCodeAt(0));
  let out = '';
  for (const ch of s) out += step(ch, ch.codePointAt(0)!);
  return out;
}

/** Steps 1-4 on one code point: its whole contribution to the normalized text. */
export function normalizeChar(ch: string, cp: number, cfg: BertNormalizerConfig): string {
  let s = cfg.cleanText ? cleanTextChar(ch, cp) : ch;
  if (cfg.handleChineseChars && s) s = mapChars(s, padChineseChar);
  if (cfg.stripAccents && s) s = mapChars(s, stripAccentsChar);
  if (cfg.lowercase && s) s = mapChars(s, lowercaseChar);
  return s;
}

/** True when NFD of this char yields a combining mark that survives step 3, so reordering is visible. */
function needsExactPath(ch: string, cp: number, cfg: BertNormalizerConfig): boolean {
  if (!cfg.stripAccents || cp < 0x300) return false;
  const afterClean = cfg.cleanText ? cleanTextChar(ch, cp) : ch;
  if (!afterClean) return false;
  for (const c of nfdChar(afterClean, afterClean.codePointAt(0)!)) {
    if (isNonStarter(c) && !isMarkNonspacing(c.codePointAt(0)!)) return true;
  }
  return false;
}

// --- alignment bookkeeping -----------------------------------------------------------------------

class AlignedBuilder {
  text = '';
  start: Int32Array;
  end: Int32Array;
  n = 0;

  constructor(capacity: number) {
    this.start = new Int32Array(Math.max(16, capacity));
    this.end = new Int32Array(Math.max(16, capacity));
  }

  push(s: string, origStart: number, origEnd: number): void {
    const k = s.length;
    if (this.n + k > this.start.length) this.grow(this.n + k);
    for (let j = 0; j < k; j++) {
      this.start[this.n] = origStart;
      this.end[this.n++] = origEnd;
    }
    this.text += s;
  }

  private grow(min: number): void {
    const size = Math.max(min, this.start.length * 2);
    const s = new Int32Array(size);
    const e = new Int32Array(size);
    s.set(this.start);
    e.set(this.end);
    this.start = s;
    this.end = e;
  }

  build(): NormalizedString {
    return { text: this.text, start: this.start.subarray(0, this.n), end: this.end.subarray(0, this.n) };
  }
}

/** The code point at UTF-16 index i of text[.. to); a lone surrogate reads as U+FFFD, as Node-API does. */
export function codePointAt(text: string, i: number, to: number): number {
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return c;
  if (c <= 0xdbff && i + 1 < to) {
    const lo = text.charCodeAt(i + 1);
    if (lo >= 0xdc00 && lo <= 0xdfff) return ((c - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
  }
  return 0xfffd;
}

// --- the normalizer --------------------------------------------------------------------------------

const UNKNOWN = 0;
const FAST = 1;
const EXACT = 2;

export class BertNormalizer {
  readonly config: BertNormalizerConfig;
  // Memo of normalizeChar: BMP in arrays, astral in maps. Filled lazily.
  private readonly bmpOut: string[] = new Array<string>(0x10000);
  private readonly bmpKind = new Uint8Array(0x10000);
  private readonly astralOut = new Map<number, string>();
  private readonly astralExact = new Set<number>();

  constructor(config: BertNormalizerConfig) {
    this.config = { ...config };
  }

  /**
   * Normalizes text[from, to), whose first code point is code point number `cpFrom` of the whole
   * original string. Returns the normalized text with per-unit original offsets.
   */
  normalize(text: string, from = 0, to = text.length, cpFrom = 0): NormalizedString {
    const b = new AlignedBuilder(to - from + 8);
    let cpIndex = cpFrom;
    for (let i = from; i < to; cpIndex++) {
      const c = text.charCodeAt(i);
      let out: string;
      if (c < 0xd800) {
        let kind = this.bmpKind[c];
        if (kind === UNKNOWN) kind = this.learnBmp(c);
        if (kind === EXACT) return this.normalizeExact(text, from, to, cpFrom);
        out = this.bmpOut[c];
        i++;
      } else {
        const cp = codePointAt(text, i, to);
        i += cp > 0xffff ? 2 : 1;
        if (cp <= 0xffff) {
          let kind = this.bmpKind[cp];
          if (kind === UNKNOWN) kind = this.learnBmp(cp);
          if (kind === EXACT) return this.normalizeExact(text, from, to, cpFrom);
          out = this.bmpOut[cp];
        } else {
          let o = this.astralOut.get(cp);
          if (o === undefined) o = this.learnAstral(cp);
          if (this.astralExact.has(cp)) return this.normalizeExact(text, from, to, cpFrom);
          out = o;
        }
      }
      if (out.length !== 0) b.push(out, cpIndex, cpIndex + 1);
    }
    return b.build();
  }

  private learnBmp(cp: number): number {
    const ch = String.fromCharCode(cp);
    this.bmpOut[cp] = normalizeChar(ch, cp, this.config);
    this.bmpKind[cp] = needsExactPath(ch, cp, this.config) ? EXACT : FAST;
    return this.bmpKind[cp];
  }

  private learnAstral(cp: number): string {
    const ch = String.fromCodePoint(cp);
    const out = normalizeChar(ch, cp, this.config);
    this.astralOut.set(cp, out);
    if (needsExactPath(ch, cp, this.config)) this.astralExact.add(cp);
    return out;
  }

  /**
   * HF's NormalizedString transforms, literally: each step produces (char, change) pairs where change
   * 0 replaces the next unconsumed char (and takes its alignment) and change 1 is inserted (taking
   * the alignment of the last consumed char, or the piece start if none). Canonical reordering
   * stable-sorts each run of non-starters with the change values travelling with their chars, which
   * is how a surviving mark can end up with a neighbour's alignment.
   */
  normalizeExact(text: string, from = 0, to = text.length, cpFrom = 0): NormalizedString {
    const cfg = this.config;
    // Steps 1-2 never reorder: every output char keeps its source char's alignment.
    let items: AlignedChar[] = [];
    let cpIndex = cpFrom;
    for (let i = from; i < to; cpIndex++) {
      const cp = codePointAt(text, i, to);
      i += cp > 0xffff ? 2 : 1;
      const ch = String.fromCodePoint(cp);
      let s = cfg.cleanText ? cleanTextChar(ch, cp) : ch;
      if (cfg.handleChineseChars && s) s = mapChars(s, padChineseChar);
      for (const c of s) items.push({ ch: c, start: cpIndex, end: cpIndex + 1 });
    }
    if (cfg.stripAccents) items = stripAccentsExact(items, cpFrom);
    const b = new AlignedBuilder(items.length + 8);
    for (const it of items) b.push(cfg.lowercase ? lowercaseChar(it.ch, it.ch.codePointAt(0)!) : it.ch, it.start, it.end);
    return b.build();
  }
}

interface AlignedChar {
  ch: string; // one code point
  start: number;
  end: number;
}

/** Step 3 over a whole piece: NFD with canonical reordering and HF's change-based alignments, then drop Mn. */
function stripAccentsExact(items: AlignedChar[], pieceStart: number): AlignedChar[] {
  // NFD stream: first char of each decomposition replaces its source (change 0), the rest are inserted.
  const stream: Array<{ ch: string; change: 0 | 1 }> = [];
  for (const it of items) {
    let first = true;
    for (const c of nfdChar(it.ch, it.ch.codePointAt(0)!)) {
      stream.push({ ch: c, change: first ? 0 : 1 });
      first = false;
    }
  }
  // Canonical ordering: stable sort by combining class inside each maximal run of non-starters.
  for (let i = 0; i < stream.length; ) {
    if (!isNonStarter(stream[i].ch)) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < stream.length && isNonStarter(stream[j].ch)) j++;
    if (j - i > 1) {
      const run = stream.slice(i, j).sort((x, y) => cccRank(x.ch) - cccRank(y.ch)); // Array.sort is stable
      for (let k = 0; k < run.length; k++) stream[i + k] = run[k];
    }
    i = j;
  }
  // Alignments by consumption, then the Mn filter (which keeps the survivors' alignments).
  const out: AlignedChar[] = [];
  let consumed = 0;
  for (const s of stream) {
    let start: number;
    let end: number;
    if (s.change === 0) {
      ({ start, end } = items[consumed++]);
    } else if (consumed > 0) {
      ({ start, end } = items[consumed - 1]);
    } else {
      start = end = pieceStart;
    }
    if (!isMarkNonspacing(s.ch.codePointAt(0)!)) out.push({ ch: s.ch, start, end });
  }
  return out;
}
