// The BERT pre-tokenizer (HF `BertPreTokenizer`; google-research/bert's whitespace_tokenize +
// _run_split_on_punc): split the normalized text on whitespace (removed) and make every punctuation
// character a word of its own.

import { isPunctuation, isWhitespace } from './unicode';

const WORD = 1;
const SPACE = 2;
const PUNCT = 3;

// Class of each code point, learnt lazily (0 = not yet known). 1.1 MB, shared by all tokenizers.
const charClass = new Uint8Array(0x110000);

function classify(cp: number): number {
  const k = isWhitespace(cp) ? SPACE : isPunctuation(cp) ? PUNCT : WORD;
  charClass[cp] = k;
  return k;
}

/**
 * Word boundaries in text[from, to) as flat [start0, end0, start1, end1, ...] UTF-16 indices,
 * appended to `out`. Whitespace separates words and is dropped; each punctuation char is a word.
 */
export function bertPreTokenize(text: string, from: number, to: number, out: number[]): void {
  let wordStart = -1;
  for (let i = from; i < to; ) {
    let cp = text.charCodeAt(i);
    let width = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < to) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
        width = 2;
      }
    }
    const k = charClass[cp] || classify(cp);
    if (k === WORD) {
      if (wordStart < 0) wordStart = i;
    } else {
      if (wordStart >= 0) out.push(wordStart, i);
      wordStart = -1;
      if (k === PUNCT) out.push(i, i + width);
    }
    i += width;
  }
  if (wordStart >= 0) out.push(wordStart, to);
}
