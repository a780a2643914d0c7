// Character predicates of the BERT tokenizer, as the Hugging Face Rust library evaluates them.
//
// google-research/bert defines these with Python's unicodedata; HF Rust uses the `unicode_categories`
// crate (an old Unicode version), Rust std and `unicode-normalization-alignments` (also old). We
// reproduce Rust, not current Unicode: the tables in unicode_tables.ts were probed from the Rust
// library itself (see generate_unicode_tables.ts), and each predicate says where it departs from
// Unicode. Node's ICU is used only for NFD and lower-casing, with the probed exceptions applied.

import {
  RUST_CCC_UNKNOWN, RUST_IS_BERT_PUNCTUATION, RUST_IS_MARK_NONSPACING, RUST_IS_OTHER, RUST_IS_WHITESPACE,
  RUST_LOWERCASE_EXCEPTIONS, RUST_NFD_EXCEPTIONS,
} from './unicode_tables';

/** Binary search in flat inclusive [start, end] pairs. */
export function inRanges(ranges: readonly number[], cp: number): boolean {
  let lo = 0;
  let hi = (ranges.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[2 * mid]) hi = mid - 1;
    else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * BERT whitespace: \t \n \r plus Rust std `char::is_whitespace` (the White_Space property).
 * Departs from JavaScript's `\s`: U+FEFF (BOM) is not whitespace (it is a format char, dropped).
 * Departs from Python's `str.isspace` used by google-research/bert: U+001C..U+001F are not whitespace.
 */
export function isWhitespace(cp: number): boolean {
  return cp === 0x20 || inRanges(RUST_IS_WHITESPACE, cp);
}

/**
 * BERT "control" (removed by clean_text): Rust `unicode_categories::is_other` minus \t \n \r.
 * Departs from Unicode: it covers Cc, Cf and Co (private use) but NOT Cn (unassigned code points are
 * kept), and its Cf list is old: format characters assigned later (e.g. U+0890 ARABIC POUND MARK
 * ABOVE, U+13430 EGYPTIAN HIEROGLYPH VERTICAL JOINER) are kept as ordinary characters.
 */
export function isControl(cp: number): boolean {
  if (cp === 0x09 || cp === 0x0a || cp === 0x0d) return false;
  return inRanges(RUST_IS_OTHER, cp);
}

/**
 * BERT punctuation: every non-alphanumeric printable ASCII char ($ + < = > ^ ` | ~ included, which
 * Unicode calls symbols) or a Unicode P* char — in the old Unicode of `unicode_categories`:
 * punctuation assigned later (e.g. U+2E43 DASH WITH LEFT UPTURN, U+061D ARABIC END OF TEXT MARK) is
 * not split off, and U+166D CANADIAN SYLLABICS CHI SIGN (Po then, So now) still is.
 */
export function isPunctuation(cp: number): boolean {
  return inRanges(RUST_IS_BERT_PUNCTUATION, cp);
}

/**
 * "Chinese character": the CJK Unified Ideographs blocks as HF Rust lists them. Departs from the
 * Unicode blocks: 0x2B820..0x2B91F (the start of Extension E) and Extensions G and later are not
 * included; Hiragana, Katakana and Hangul never are (they are written with spaces).
 */
export function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * Mn (non-spacing mark), dropped by accent stripping. Old Unicode: marks assigned later (e.g. the
 * Arabic U+0897..U+089F, U+1AC1..) are kept; U+1734 HANUNOO SIGN PAMUDPOD (Mn then, Mc now) is dropped.
 */
export function isMarkNonspacing(cp: number): boolean {
  return cp >= 0x300 && inRanges(RUST_IS_MARK_NONSPACING, cp);
}

const nfdExceptions = new Map<number, string>(RUST_NFD_EXCEPTIONS.map(([c, s]) => [c, s]));
const lowercaseExceptions = new Map<number, string>(RUST_LOWERCASE_EXCEPTIONS.map(([c, s]) => [c, s]));

/**
 * Canonical decomposition of one code point. ICU's, except for characters whose decomposition is
 * newer than Rust's tables (e.g. U+11938 DIVES AKURU VOWEL SIGN O), which Rust leaves whole.
 */
export function nfdChar(ch: string, cp: number): string {
  if (cp < 0xc0) return ch; // nothing below À decomposes
  return nfdExceptions.get(cp) ?? ch.normalize('NFD');
}

/**
 * Lower-case of one code point, context-free (Σ → σ, never the final ς; İ → i + U+0307), as Rust's
 * `char::to_lowercase`. `String.prototype.toLowerCase` on a single code point is context-free too.
 */
export function lowercaseChar(ch: string, cp: number): string {
  return lowercaseExceptions.get(cp) ?? ch.toLowerCase();
}

// One character of each canonical combining class, in increasing class order (1, 6, 7, 8, 9, 10..36,
// 84, 91, 103, 107, 118, 122, 129, 130, 132, 202, 214, 216, ..., 240). Classes never change.
const CCC_REFERENCE = [
  0x0334, 0x16FF0, 0x093C, 0x3099, 0x094D, 0x05B0, 0x05B1, 0x05B2, 0x05B3, 0x05B4, 0x05B5, 0x05B6, 0x05B7, 0x05B8,
  0x05B9, 0x05BB, 0x05BC, 0x05BD, 0x05BF, 0x05C1, 0x05C2, 0xFB1E, 0x064B, 0x064C, 0x064D, 0x0618, 0x0619, 0x061A,
  0x0651, 0x0652, 0x0670, 0x0711, 0x0C55, 0x0C56, 0x0E38, 0x0E48, 0x0EB8, 0x0EC8, 0x0F71, 0x0F72, 0x0F74, 0x0321,
  0x1DCE, 0x031B, 0x1DFA, 0x0316, 0x059A, 0x302E, 0x1D16D, 0x05AE, 0x0300, 0x0315, 0x035C, 0x035D, 0x0345,
].map((c) => String.fromCodePoint(c));

/** ICU reorders the pair: ccc(a) > ccc(b) > 0. */
function icuSwaps(a: string, b: string): boolean {
  return a !== b && (a + b).normalize('NFD') === b + a;
}

const nonStarterMemo = new Map<number, boolean>();
const cccRankMemo = new Map<number, number>();

/**
 * A non-starter (canonical combining class > 0) for Rust's NFD: ICU's classes, except characters
 * Rust's older tables do not know, which are starters there and never move.
 */
export function isNonStarter(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if (cp < 0x300) return false;
  let v = nonStarterMemo.get(cp);
  if (v === undefined) {
    // ccc 1..229 reorders before U+0301 (ccc 230); ccc >= 2 reorders after U+0334 (ccc 1).
    v = !inRanges(RUST_CCC_UNKNOWN, cp) && (icuSwaps('\u0301', ch) || icuSwaps(ch, '\u0334'));
    nonStarterMemo.set(cp, v);
  }
  return v;
}

/**
 * A number that orders non-starters as their combining classes do (for the stable sort of
 * canonical reordering): 2k+1 for the class of CCC_REFERENCE[k], 2k for a class between k-1 and k.
 */
export function cccRank(ch: string): number {
  const cp = ch.codePointAt(0)!;
  let rank = cccRankMemo.get(cp);
  if (rank === undefined) {
    let lo = 0;
    let hi = CCC_REFERENCE.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (icuSwaps(ch, CCC_REFERENCE[mid])) lo = mid + 1; // ccc(ch) > ccc(ref)
      else hi = mid;
    }
    const sameClass = lo < CCC_REFERENCE.length && !icuSwaps(CCC_REFERENCE[lo], ch);
    rank = 2 * lo + (sameClass ? 1 : 0);
    cccRankMemo.set(cp, rank);
  }
  return rank;
}
