// Unit tests, one rule at a time, with a tiny inline vocabulary (the google-research/bert
// tokenization_test.py style). Expected values are worked out by hand from the rule, or taken from
// Hugging Face's own Rust tests where noted. No model files needed.

import * as assert from 'assert';
import { BertTokenizer, TokenizerError, toUtf16Offsets } from '../../tokenizer';
import { AddedToken, AddedTokenMatcher } from '../../tokenizer/added_tokens';
import { BertNormalizer, BertNormalizerConfig } from '../../tokenizer/normalizer';
import { truncateLongestFirst } from '../../tokenizer/post_processor';
import { cccRank } from '../../tokenizer/unicode';
import { bertPreTokenize } from '../../tokenizer/pre_tokenizer';
import { WordpieceTokenizer } from '../../tokenizer/wordpiece';
import { randomText, rng } from '../../devtools/random-text';
import { tinyTokenizerJson, VOCAB } from '../fixtures/tokenizer/support';

const tiny = () => BertTokenizer.fromTokenizerJson(tinyTokenizerJson(), 'tiny tokenizer.json');
const UNCASED: BertNormalizerConfig = { cleanText: true, handleChineseChars: true, stripAccents: true, lowercase: true };
const norm = (text: string, cfg: Partial<BertNormalizerConfig> = {}) => new BertNormalizer({ ...UNCASED, ...cfg }).normalize(text).text;

describe('tokenizer/normalizer: the four BERT steps', function () {
  it('1. clean text: drops NUL, U+FFFD, controls and format chars; whitespace becomes a space', function () {
    assert.strictEqual(norm('a\u0000b\u0007c\uFFFDd\u200Be\u00ADf\uFEFFg'), 'abcdefg');
    assert.strictEqual(norm('a\tb\nc\rd\u00A0e\u3000f\u2028g'), 'a b c d e f g');
    assert.strictEqual(norm('\uE000x\u{F0000}'), 'x', 'private use is dropped');
    assert.strictEqual(norm('\u0378'), '\u0378', 'unassigned code points are kept (Rust is_other has no Cn)');
    assert.strictEqual(norm('a\u0085b\u001Cc'), 'abc', 'U+0085 (White_Space) and U+001C (a space for Python) are Cc: dropped first');
  });

  it('2. Chinese characters are spaced out, astral ideographs included, with Rust\'s exact ranges', function () {
    assert.strictEqual(norm('ab中c'), 'ab 中 c');
    assert.strictEqual(norm('x\u{20000}y'), 'x \u{20000} y', 'Extension B');
    assert.strictEqual(norm('x\u{2B820}y'), 'x\u{2B820}y', 'start of Extension E is not in Rust\'s list');
    assert.strictEqual(norm('カナ한글', { stripAccents: false }), 'カナ한글', 'kana and hangul are not "Chinese"');
    assert.strictEqual(norm('한'), '\u1112\u1161\u11AB', 'and NFD splits hangul syllables into jamo');
    assert.strictEqual(norm('\uF900'), ' \u8C48 ', 'compatibility ideograph: spaced, then NFD');
  });

  it('3. strip accents: NFD then drop Mn; follows lowercase when strip_accents is null', function () {
    assert.strictEqual(norm('Héllo Ça ñ'), 'hello ca n');
    assert.strictEqual(norm('Héllo', { stripAccents: false }), 'héllo');
    assert.strictEqual(norm('Héllo', { lowercase: false, stripAccents: false }), 'Héllo');
    assert.strictEqual(norm('Héllo', { lowercase: false, stripAccents: true }), 'Hello');
    assert.strictEqual(norm('e\u0301\u0323'), 'e', 'decomposed input');
    assert.strictEqual(norm('\u0344'), '', 'a mark that decomposes into two marks');
  });

  it('4. lower-case one character at a time: Σ at the end of a word is σ, never ς', function () {
    assert.strictEqual(norm('ΣΟΦΟΣ'), 'σοφοσ');
    assert.strictEqual(norm('İ', { stripAccents: false }), 'i\u0307', 'İ lower-cases to two chars');
    assert.strictEqual(norm('İ'), 'i', 'but accents are stripped first');
  });

  it('offsets point at the original code points, lone surrogates count as one char', function () {
    const n = new BertNormalizer(UNCASED).normalize('a\u{1F600}é\uD800中');
    assert.strictEqual(n.text, 'a\u{1F600}e 中 ');
    assert.deepStrictEqual([...n.start], [0, 1, 1, 2, 4, 4, 4]);
    assert.deepStrictEqual([...n.end], [1, 2, 2, 3, 5, 5, 5]);
  });

  it('the fast per-character path agrees with the literal transcription of HF transforms', function () {
    const r = rng(7);
    for (const cfg of [UNCASED, { ...UNCASED, stripAccents: false }, { ...UNCASED, lowercase: false, stripAccents: false }]) {
      const n = new BertNormalizer(cfg);
      for (let i = 0; i < 2000; i++) {
        const s = randomText(r);
        assert.deepStrictEqual(n.normalize(s), n.normalizeExact(s), JSON.stringify(s));
      }
    }
  });

  it('combining-class ranks order marks like their classes (216 = 216 < 220 < 226 < 230)', function () {
    const r = (c: number) => cccRank(String.fromCodePoint(c));
    assert.strictEqual(r(0x0334), 1, 'class 1 is the first reference class');
    assert.strictEqual(r(0x031b), r(0x1d16e), 'both class 216');
    assert.ok(r(0x1d16e) < r(0x0316) && r(0x0316) < r(0x1d16d) && r(0x1d16d) < r(0x0301));
    assert.strictEqual(r(0x0301), r(0x0300), 'both class 230');
  });

  it('canonical reordering moves alignments with the change stream, as in Rust', function () {
    // NFD puts U+0334 (ccc 1) before U+1D165 (ccc 216): the surviving stem takes the mark's slot.
    const n = new BertNormalizer(UNCASED).normalize('a\u{1D165}\u0334');
    assert.strictEqual(n.text, 'a\u{1D165}');
    assert.deepStrictEqual([...n.end], [1, 3, 3]);
  });
});

describe('tokenizer/pre_tokenizer: whitespace and punctuation', function () {
  const split = (s: string) => {
    const out: number[] = [];
    bertPreTokenize(s, 0, s.length, out);
    const words: string[] = [];
    for (let i = 0; i < out.length; i += 2) words.push(s.slice(out[i], out[i + 1]));
    return words;
  };
  it('splits on whitespace and isolates every punctuation char', function () {
    assert.deepStrictEqual(split('hi!!  there,you'), ['hi', '!', '!', 'there', ',', 'you']);
  });
  it('all non-alphanumeric ASCII is punctuation; Unicode symbols are not', function () {
    assert.deepStrictEqual(split('a$b+c<d'), ['a', '$', 'b', '+', 'c', '<', 'd']);
    assert.deepStrictEqual(split('a€b©c'), ['a€b©c']);
    assert.deepStrictEqual(split('a«b»c—d'), ['a', '«', 'b', '»', 'c', '—', 'd']);
  });
  it('uses Rust\'s old punctuation table: newer punctuation stays inside words', function () {
    assert.deepStrictEqual(split('a\u2E43b'), ['a\u2E43b']);
    assert.deepStrictEqual(split('a\u166Db'), ['a', '\u166D', 'b']);
  });
});

describe('tokenizer/wordpiece: greedy longest-match-first', function () {
  const wp = new WordpieceTokenizer(new Map(VOCAB.map((t, i) => [t, i])), { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 });
  const pieces = (w: string) => wp.tokenize(w)?.tokens ?? ['[UNK]'];
  it('splits into the longest known prefix, then ## pieces (google-research/bert test)', function () {
    assert.deepStrictEqual(pieces('unwanted'), ['un', '##want', '##ed']);
    assert.deepStrictEqual(pieces('running'), ['runn', '##ing']);
  });
  it('a word with an unknown part is one [UNK]', function () {
    assert.deepStrictEqual(pieces('unwantedx'), ['[UNK]']);
  });
  it('longest match first, not shortest', function () {
    assert.deepStrictEqual(pieces('lowest'), ['lowest']);
  });
  it('more than max_input_chars_per_word chars is [UNK]; exactly the limit is not', function () {
    assert.deepStrictEqual(pieces('a'.repeat(100)), ['a', ...Array(99).fill('##a')]);
    assert.deepStrictEqual(pieces('a'.repeat(101)), ['[UNK]']);
  });
});

describe('tokenizer/added_tokens: special-token text typed by the user', function () {
  const tok = (content: string, flags: Partial<AddedToken> = {}): AddedToken => ({ id: 0, content, singleWord: false, lstrip: false, rstrip: false, normalized: false, special: false, ...flags });
  const pieces = (m: AddedTokenMatcher, s: string) => m.split(s).map((x) => s.slice(x.start, x.end));
  it('[CLS] matches anywhere, even inside a word, in exact case only', function () {
    const t = tiny();
    assert.deepStrictEqual(t.tokenize('x[CLS]y [MASK] [mask]'), ['x', '[CLS]', 'y', '[MASK]', '[UNK]', '[UNK]', '[UNK]']);
  });
  it('single_word (Hugging Face test_single_word_is_correct)', function () {
    const m = new AddedTokenMatcher([tok('<mask>', { singleWord: true })]);
    assert.deepStrictEqual(pieces(m, '<mask> My name <mask> A<mask> <mask>ony <mask>'), ['<mask>', ' My name ', '<mask>', ' A<mask> <mask>ony ', '<mask>']);
  });
  it('lstrip/rstrip swallow Unicode whitespace (Hugging Face test_lstrip_unicode_space)', function () {
    const m = new AddedTokenMatcher([tok('<mask>', { singleWord: true, lstrip: true, rstrip: true })]);
    assert.deepStrictEqual(pieces(m, 'Hi <mask> there\t<mask>\t<mask>\u2000'), ['Hi', ' <mask> ', 'there', '\t<mask>\t', '<mask>\u2000']);
  });
  it('leftmost-longest: the longer token wins at the same position', function () {
    const m = new AddedTokenMatcher([tok('[A]'), tok('[A][B]')]);
    assert.deepStrictEqual(pieces(m, 'x[A][B]y[A]'), ['x', '[A][B]', 'y', '[A]']);
  });
});

describe('tokenizer/post_processor: longest_first truncation', function () {
  it('matches the table of Hugging Face truncation.rs test (max_length 7)', function () {
    const lens = [0, 2, 4, 8];
    const expected: Record<string, [number, number]> = {
      '0,0': [0, 0], '0,2': [0, 2], '0,4': [0, 4], '0,8': [0, 7], '2,0': [2, 0], '2,2': [2, 2], '2,4': [2, 4], '2,8': [2, 5],
      '4,0': [4, 0], '4,2': [4, 2], '4,4': [3, 4], '4,8': [3, 4], '8,0': [7, 0], '8,2': [5, 2], '8,4': [4, 3], '8,8': [3, 4],
    };
    for (const a of lens) for (const b of lens) assert.deepStrictEqual(truncateLongestFirst(a, b, 7), expected[`${a},${b}`], `${a},${b}`);
    assert.deepStrictEqual(truncateLongestFirst(4, 4, 0), [0, 0]);
    assert.deepStrictEqual(truncateLongestFirst(9, null, 7), [7, 0]);
  });
});

describe('tokenizer: BertTokenizer.encode / encodeBatch', function () {
  it('[CLS] A [SEP] with offsets; empty text is [CLS] [SEP]', function () {
    const t = tiny();
    const e = t.encode('Unwanted, running!');
    assert.deepStrictEqual(e.tokens, ['[CLS]', 'un', '##want', '##ed', ',', 'runn', '##ing', '!', '[SEP]']);
    assert.deepStrictEqual([...e.inputIds], [2, 9, 6, 7, 12, 10, 11, 19, 3]);
    assert.deepStrictEqual(e.offsets, [[0, 0], [0, 2], [2, 6], [6, 8], [8, 9], [10, 14], [14, 17], [17, 18], [0, 0]]);
    assert.deepStrictEqual([...e.attentionMask], Array(9).fill(1));
    assert.strictEqual(e.nTokens, 9);
    assert.strictEqual(e.truncated, false);
    const empty = t.encode('');
    assert.deepStrictEqual(empty.tokens, ['[CLS]', '[SEP]']);
    assert.deepStrictEqual(empty.offsets, [[0, 0], [0, 0]]);
  });

  it('pairs: [CLS] A [SEP] B [SEP] with token type ids 0/1', function () {
    const e = tiny().encode('want', { pair: 'x y' });
    assert.deepStrictEqual(e.tokens, ['[CLS]', 'want', '[SEP]', 'x', 'y', '[SEP]']);
    assert.deepStrictEqual([...e.tokenTypeIds], [0, 0, 0, 1, 1, 1]);
    assert.deepStrictEqual(e.offsets, [[0, 0], [0, 4], [0, 0], [0, 1], [2, 3], [0, 0]]);
    assert.deepStrictEqual([...e.specialTokensMask], [1, 0, 1, 0, 0, 1]);
  });

  it('specialTokensMask: 1 only where the post-processor added a token, not for "[CLS]" typed in the text', function () {
    const t = tiny();
    const e = t.encode('[CLS] want');
    assert.deepStrictEqual(e.tokens, ['[CLS]', '[CLS]', 'want', '[SEP]']);
    assert.deepStrictEqual([...e.specialTokensMask], [1, 0, 0, 1]);
    assert.deepStrictEqual([...t.encode('want', { addSpecialTokens: false }).specialTokensMask], [0]);
  });

  it('truncation: single text, pair (longest_first), and the truncated flag', function () {
    const t = tiny();
    const s = t.encode('x y x y x', { maxLength: 4 });
    assert.deepStrictEqual(s.tokens, ['[CLS]', 'x', 'y', '[SEP]']);
    assert.strictEqual(s.truncated, true);
    const p = t.encode('x x x x x x', { pair: 'y y', maxLength: 7 }); // budget 4: B keeps 2, A gets 2
    assert.deepStrictEqual(p.tokens, ['[CLS]', 'x', 'x', '[SEP]', 'y', 'y', '[SEP]']);
    assert.strictEqual(p.truncated, true);
    assert.strictEqual(t.encode('x y', { maxLength: 4 }).truncated, false);
    assert.strictEqual(t.encode('x y \u0000 ', { maxLength: 4 }).truncated, false, 'nothing left that makes tokens');
  });

  it('early stop at maxLength decides the odd token, as in tokenizers 0.23', function () {
    // Budget 1. A stops after its 5th token (added tokens count but never trigger the stop), B has 4:
    // A is longer, so A keeps the single token.
    const t = tiny();
    assert.deepStrictEqual(t.encode('x x x [PAD] x x', { pair: '[PAD] [PAD] [PAD] [PAD]', maxLength: 4 }).tokens, ['[CLS]', 'x', '[SEP]', '[SEP]']);
    // A stops after its 4th token ([PAD] x x x): equal to B, so B keeps it.
    assert.deepStrictEqual(t.encode('[PAD] x x x x x', { pair: '[PAD] [PAD] [PAD] [PAD]', maxLength: 4 }).tokens, ['[CLS]', '[SEP]', '[PAD]', '[SEP]']);
  });

  it('addSpecialTokens: false keeps type ids 0/1 and truncates to maxLength', function () {
    const e = tiny().encode('x y', { pair: 'y x', addSpecialTokens: false, maxLength: 3 }); // equal: B gets the odd token
    assert.deepStrictEqual(e.tokens, ['x', 'y', 'x']);
    assert.deepStrictEqual([...e.tokenTypeIds], [0, 1, 1]);
  });

  it('maxLength below the number of special tokens is a TokenizerError', function () {
    const t = tiny();
    assert.throws(() => t.encode('x', { maxLength: 1 }), (e: unknown) => e instanceof TokenizerError && e.code === 'bad_argument' && /maxLength/.test(e.message));
    assert.throws(() => t.encode('x', { pair: 'y', maxLength: 2 }), TokenizerError);
    assert.throws(() => t.encode('x', { maxLength: 2.5 }), TokenizerError);
    assert.throws(() => t.encode(42 as unknown as string), /text: expected a string, got number/);
  });

  it('offsets are code points (like the npm tokenizers binding); toUtf16Offsets converts', function () {
    const text = '\u{1F600} a \u{20000}x';
    const e = tiny().encode(text);
    assert.deepStrictEqual(e.tokens, ['[CLS]', '[UNK]', 'a', '[UNK]', 'x', '[SEP]']);
    assert.deepStrictEqual(e.offsets, [[0, 0], [0, 1], [2, 3], [4, 5], [5, 6], [0, 0]]);
    const u = toUtf16Offsets(text, e.offsets);
    assert.deepStrictEqual(u.slice(1, 5).map(([s, f]) => text.slice(s, f)), ['\u{1F600}', 'a', '\u{20000}', 'x']);
  });

  it('lone surrogates read as U+FFFD and are dropped; they still count one char in offsets', function () {
    const e = tiny().encode('x\uD800x y\uDC00');
    assert.deepStrictEqual(e.tokens, ['[CLS]', '[UNK]', 'y', '[SEP]']);
    assert.deepStrictEqual(e.offsets, [[0, 0], [0, 3], [4, 5], [0, 0]]);
  });

  it('encodeBatch right-pads to the longest row with the pad id', function () {
    const b = tiny().encodeBatch(['x', ['x y', 'y'], '']);
    assert.strictEqual(b.batchSize, 3);
    assert.strictEqual(b.seqLen, 6);
    assert.deepStrictEqual([...b.inputIds], [2, 17, 3, 0, 0, 0, 2, 17, 18, 3, 18, 3, 2, 3, 0, 0, 0, 0]);
    assert.deepStrictEqual([...b.tokenTypeIds], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert.deepStrictEqual([...b.attentionMask], [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    assert.strictEqual(b.encodings[0].nTokens, 3);
    assert.deepStrictEqual(tiny().encodeBatch([]).seqLen, 0);
  });

  it('large hostile inputs neither crash nor escape the invariants', function () {
    const t = tiny();
    const inputs = [
      'a' + '\u{1D165}\u0334\u0301\u{1D16D}'.repeat(50_000), // canonical reordering on every char
      'x'.repeat(200_000), // one word far over max_input_chars_per_word
      '[[[[[[CLS'.repeat(20_000), // almost-special-tokens
      '\uD800\uDC00\uDC00'.repeat(50_000), // pairs and lone surrogates
      '中'.repeat(200_000),
      '\u0000\u200B\uFEFF '.repeat(50_000), // nothing but invisible chars
    ];
    for (const text of inputs) {
      const e = t.encode(text, { pair: text.slice(0, 1000) });
      assert.ok(e.nTokens <= 512 && e.nTokens === e.inputIds.length && e.tokens.length === e.nTokens);
      const nChars = [...text].length;
      for (const [s, f] of e.offsets) assert.ok(0 <= s && s <= f && f <= nChars, `offset [${s}, ${f}]`);
      for (const id of e.inputIds) assert.ok(id >= 0 && id < t.vocabSize);
    }
  });

  it('without a normalizer, text goes to the pre-tokenizer as is', function () {
    const t = BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ normalizer: null }));
    assert.deepStrictEqual(t.tokenize('Hello hello\u0000'), ['[UNK]', '[UNK]']);
    assert.deepStrictEqual(t.encode('héllo x').offsets, [[0, 0], [0, 5], [6, 7], [0, 0]]);
  });

  it('vocabulary accessors and special ids', function () {
    const t = tiny();
    assert.deepStrictEqual([t.padId, t.unkId, t.clsId, t.sepId, t.maskId, t.vocabSize, t.modelMaxLength], [0, 1, 2, 3, 4, VOCAB.length, 512]);
    assert.strictEqual(t.tokenToId('##want'), 6);
    assert.strictEqual(t.tokenToId('nope'), undefined);
    assert.strictEqual(t.idToToken(5), 'want');
    assert.throws(() => t.idToToken(999), TokenizerError);
  });
});
