// Regenerates tokenizer/unicode_tables.ts by probing the Hugging Face Rust library (npm `tokenizers`,
// a devDependency) one code point at a time. Dev tool only: nothing at run time imports it.
//
//   npx ts-node --transpile-only tokenizer/generate_unicode_tables.ts
//
// Why probe instead of reading the Unicode Character Database: the Rust BertNormalizer and
// BertPreTokenizer use the `unicode_categories` crate (frozen at an old Unicode version) for
// "other", punctuation and non-spacing marks, `unicode-normalization-alignments` (also old) for NFD,
// and Rust std for whitespace and lower-casing. The only way to reproduce *those* tables exactly is to
// ask the library itself. test/tokenizer/unicode.test.ts re-checks every code point against it.

import * as fs from 'fs';
import * as path from 'path';
import { ICU_WORD_CHAR } from './added_tokens';

type Ranges = number[]; // flat [start0, end0, start1, end1, ...], inclusive

interface RustNormalizer { normalizeString(s: string): string }
interface RustPreTokenizer { preTokenizeString(s: string): [string, [number, number]][] }
interface RustEncodingLike { getIds(): number[] }
interface RustTokenizerLike { encodeBatch(texts: string[], o: { addSpecialTokens: boolean }): Promise<RustEncodingLike[]> }
interface RustBindings {
  Tokenizer: { fromString(json: string): RustTokenizerLike };
  bertNormalizer(o: { cleanText: boolean; handleChineseChars: boolean; stripAccents: boolean; lowercase: boolean }): RustNormalizer;
  nfdNormalizer(): RustNormalizer;
  bertPreTokenizer(): RustPreTokenizer;
}

const SEP = '\u01C2'; // LATIN LETTER ALVEOLAR CLICK: untouched by every probed step, decomposes from nothing

/** Every Unicode scalar value except the separator (surrogates cannot reach Rust: Node-API turns them into U+FFFD). */
export function allScalars(): number[] {
  const cps: number[] = [];
  for (let c = 0; c < 0x110000; c++) if ((c < 0xd800 || c > 0xdfff) && c !== 0x1c2) cps.push(c);
  return cps;
}

/** Runs a Rust normalizer on each code point (batched, joined by SEP) and returns its output per code point. */
export function probeNormalizer(norm: RustNormalizer, cps: number[]): Map<number, string> {
  const out = new Map<number, string>();
  const CHUNK = 8192;
  for (let i = 0; i < cps.length; i += CHUNK) {
    const chunk = cps.slice(i, i + CHUNK);
    const parts = norm.normalizeString(chunk.map((c) => String.fromCodePoint(c)).join(SEP)).split(SEP);
    if (parts.length !== chunk.length) throw new Error(`probe split mismatch near U+${chunk[0].toString(16)}`);
    chunk.forEach((c, k) => out.set(c, parts[k]));
  }
  // The separator itself, probed alone.
  out.set(0x1c2, norm.normalizeString(SEP));
  return out;
}

/** For each code point c, what BertPreTokenizer does with "x" + c + "x": 'P' isolated, 'W' removed, 'N' kept. */
export function probePreTokenizer(pre: RustPreTokenizer, cps: number[]): Map<number, 'P' | 'W' | 'N'> {
  const out = new Map<number, 'P' | 'W' | 'N'>();
  const CHUNK = 4096;
  for (let i = 0; i < cps.length; i += CHUNK) {
    const chunk = cps.slice(i, i + CHUNK);
    const units = chunk.map((c) => 'x' + String.fromCodePoint(c) + 'x');
    const byUnit: string[][] = chunk.map(() => []);
    for (const [tok, [start]] of pre.preTokenizeString(units.join(' '))) byUnit[Math.floor(start / 4)].push(tok); // offsets are code points
    chunk.forEach((c, k) => {
      const ch = String.fromCodePoint(c);
      const got = byUnit[k].join('|');
      if (got === `x|${ch}|x`) out.set(c, 'P');
      else if (got === 'x|x') out.set(c, 'W');
      else if (got === `x${ch}x`) out.set(c, 'N');
      else throw new Error(`unexpected pre-tokenization of U+${c.toString(16)}: ${JSON.stringify(byUnit[k])}`);
    });
  }
  return out;
}

export function toRanges(cps: Iterable<number>): Ranges {
  const sorted = [...cps].sort((a, b) => a - b);
  const r: Ranges = [];
  for (const c of sorted) {
    if (r.length && r[r.length - 1] === c - 1) r[r.length - 1] = c;
    else r.push(c, c);
  }
  return r;
}

/** Canonical reordering swaps a then b iff ccc(a) > ccc(b) > 0; ask an NFD implementation. */
function swaps(nfd: (s: string) => string, a: string, b: string): boolean {
  return nfd(a + b) === b + a;
}

export interface ProbedTables {
  other: Ranges; whitespace: Ranges; bertPunctuation: Ranges; markNonspacing: Ranges;
  nfdExceptions: Array<[number, string]>; lowercaseExceptions: Array<[number, string]>; cccUnknownToRust: Ranges;
  notWordChars: Ranges;
}


/**
 * Code points ICU calls `\w` but the Rust `regex` crate does not (its Unicode tables are older), as
 * seen by an added token with single_word: "c" + "ony" keeps "ony" as the token iff c is not `\w`.
 */
export async function probeWordChars(tk: RustBindings, cps: number[]): Promise<Ranges> {
  const json = {
    version: '1.0', truncation: null, padding: null, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    added_tokens: [{ id: 1, content: 'ony', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false }],
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { '[UNK]': 0 } },
  };
  const t = tk.Tokenizer.fromString(JSON.stringify(json));
  const notWord: number[] = [];
  for (let i = 0; i < cps.length; i += 65536) {
    const chunk = cps.slice(i, i + 65536);
    const encs = await t.encodeBatch(chunk.map((c) => String.fromCodePoint(c) + 'ony'), { addSpecialTokens: false });
    encs.forEach((e, k) => {
      const rustWord = !e.getIds().includes(1);
      const icuWord = ICU_WORD_CHAR.test(String.fromCodePoint(chunk[k]));
      if (rustWord && !icuWord) throw new Error(`U+${chunk[k].toString(16)} is \\w for Rust but not for ICU`);
      if (icuWord && !rustWord) notWord.push(chunk[k]);
    });
  }
  return toRanges(notWord);
}

export async function probeAll(tk: RustBindings): Promise<ProbedTables> {
  const cps = allScalars();
  const withSep = [...cps, 0x1c2];
  const only = (o: Partial<{ cleanText: boolean; handleChineseChars: boolean; stripAccents: boolean; lowercase: boolean }>) =>
    tk.bertNormalizer({ cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false, ...o });
  const clean = probeNormalizer(only({ cleanText: true }), cps);
  const strip = probeNormalizer(only({ stripAccents: true }), cps);
  const lower = probeNormalizer(only({ lowercase: true }), cps);
  const rustNfd = probeNormalizer(tk.nfdNormalizer(), cps);
  const pre = probePreTokenizer(tk.bertPreTokenizer(), withSep);

  const other = new Set<number>([0x9, 0xa, 0xd]); // Cc, excluded from "control" by BERT itself (they are whitespace)
  const cleanSpace = new Set<number>();
  for (const c of withSep) {
    const got = clean.get(c);
    if (c === 0xfffd) { if (got !== '') throw new Error('clean_text keeps U+FFFD'); continue; }
    if (got === '') other.add(c);
    else if (got === ' ' && c !== 0x20) cleanSpace.add(c);
    else if (got !== String.fromCodePoint(c)) throw new Error(`clean_text maps U+${c.toString(16)} to ${JSON.stringify(got)}`);
  }
  const whitespace = withSep.filter((c) => pre.get(c) === 'W');
  const ws = new Set(whitespace);
  for (const c of cleanSpace) if (!ws.has(c)) throw new Error(`clean_text whitespace U+${c.toString(16)} is not pre-tokenizer whitespace`);
  const bertPunctuation = withSep.filter((c) => pre.get(c) === 'P');

  const mn = withSep.filter((c) => strip.get(c) === '');
  const icuNfd = (s: string) => s.normalize('NFD');
  const nfdExceptions: Array<[number, string]> = [];
  for (const c of withSep) {
    const ch = String.fromCodePoint(c);
    if (rustNfd.get(c) !== icuNfd(ch)) nfdExceptions.push([c, rustNfd.get(c)!]);
  }
  const lowercaseExceptions: Array<[number, string]> = [];
  for (const c of withSep) {
    const ch = String.fromCodePoint(c);
    if (lower.get(c) !== ch.toLowerCase()) lowercaseExceptions.push([c, lower.get(c)!]);
  }

  // Non-starters by ICU (those that reorder against U+0301 or U+0334) that Rust's older NFD treats as starters.
  const nonStarters = cps.filter((c) => {
    const ch = String.fromCodePoint(c);
    return icuNfd(ch) === ch && (swaps(icuNfd, '\u0301', ch) || swaps(icuNfd, ch, '\u0334'));
  });
  const nfdRust = tk.nfdNormalizer();
  const probes = nonStarters.map((c) => {
    const ch = String.fromCodePoint(c);
    return [`a\u0301${ch}`, `a${ch}\u0334`];
  });
  const answers = nfdRust.normalizeString(probes.map((p) => p.join(SEP)).join(SEP)).split(SEP);
  const cccUnknownToRust: number[] = [];
  nonStarters.forEach((c, k) => {
    const [p1, p2] = probes[k];
    const icu = [icuNfd(p1), icuNfd(p2)];
    const rust = [answers[2 * k], answers[2 * k + 1]];
    if (rust[0] === icu[0] && rust[1] === icu[1]) return;
    if (rust[0] === p1 && rust[1] === p2) cccUnknownToRust.push(c);
    else throw new Error(`U+${c.toString(16)} reorders differently in Rust: ${JSON.stringify({ rust, icu })}`);
  });

  return {
    other: toRanges(other), whitespace: toRanges(whitespace), bertPunctuation: toRanges(bertPunctuation),
    markNonspacing: toRanges(mn), nfdExceptions, lowercaseExceptions, cccUnknownToRust: toRanges(cccUnknownToRust),
    notWordChars: await probeWordChars(tk, withSep),
  };
}

function hex(c: number): string {
  return '0x' + c.toString(16).toUpperCase().padStart(4, '0');
}

function formatRanges(name: string, doc: string, r: Ranges): string {
  const pairs: string[] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push(`${hex(r[i])}, ${hex(r[i + 1])}`);
  const lines: string[] = [];
  for (let i = 0; i < pairs.length; i += 6) lines.push('  ' + pairs.slice(i, i + 6).join(', ') + ',');
  return `/** ${doc} (${r.length / 2} ranges) */\nexport const ${name}: readonly number[] = [\n${lines.join('\n')}\n];\n`;
}

/** A string literal with every non-ASCII code point escaped, so the table reads the same in any editor. */
function jsString(s: string): string {
  return "'" + [...s].map((ch) => { const c = ch.codePointAt(0)!; return c >= 0x20 && c < 0x7f && ch !== "'" && ch !== '\\' ? ch : `\\u{${c.toString(16).toUpperCase()}}`; }).join('') + "'";
}

function formatMap(name: string, doc: string, m: Array<[number, string]>): string {
  const body = m.map(([c, s]) => `\n  [${hex(c)}, ${jsString(s)}],`).join('');
  return `/** ${doc} (${m.length} entries) */\nexport const ${name}: ReadonlyArray<readonly [number, string]> = [${body}${m.length ? '\n' : ''}];\n`;
}

export function render(t: ProbedTables, versions: { tokenizers: string; icu: string; unicode: string }): string {
  return [
    '// GENERATED by tokenizer/generate_unicode_tables.ts: do not edit by hand.',
    `// Probed from npm tokenizers ${versions.tokenizers} (Hugging Face Rust); exceptions are relative to`,
    `// Node's ICU ${versions.icu} (Unicode ${versions.unicode}). Ranges are flat inclusive [start, end] pairs.`,
    '',
    formatRanges('RUST_IS_OTHER', 'unicode_categories `is_other` as Rust has it: Cc, Cf, Co (old Unicode); Cn is NOT included', t.other),
    formatRanges('RUST_IS_WHITESPACE', 'Rust std `char::is_whitespace` (White_Space property)', t.whitespace),
    formatRanges('RUST_IS_BERT_PUNCTUATION', '`is_ascii_punctuation || is_punctuation` (Pc Pd Pe Pf Pi Po Ps, old Unicode)', t.bertPunctuation),
    formatRanges('RUST_IS_MARK_NONSPACING', '`is_mark_nonspacing` (Mn, old Unicode), plus code points whose whole NFD is Mn', t.markNonspacing),
    formatMap('RUST_NFD_EXCEPTIONS', 'code points whose Rust NFD differs from ICU `normalize("NFD")` (decompositions newer than Rust\'s tables)', t.nfdExceptions),
    formatMap('RUST_LOWERCASE_EXCEPTIONS', 'code points whose Rust `to_lowercase` differs from ICU `toLowerCase`', t.lowercaseExceptions),
    formatRanges('RUST_CCC_UNKNOWN', 'ICU non-starters that Rust\'s older NFD tables treat as starters (never reordered)', t.cccUnknownToRust),
    formatRanges('RUST_NOT_WORD_CHARS', 'ICU `\\w` chars that the Rust regex crate\'s `\\w` (older Unicode) does not match (single_word)', t.notWordChars),
  ].join('\n');
}

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const tk = require('tokenizers') as RustBindings;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const tkVersion = (require('tokenizers/package.json') as { version: string }).version;
  const tables = await probeAll(tk);
  const text = render(tables, { tokenizers: tkVersion, icu: process.versions.icu ?? '?', unicode: process.versions.unicode ?? '?' });
  const target = path.join(__dirname, 'unicode_tables.ts');
  fs.writeFileSync(target + '.tmp', text);
  fs.renameSync(target + '.tmp', target);
  console.log(`wrote ${target}`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
