// The "slow" BERT files: vocab.txt + tokenizer_config.json + special_tokens_map.json, turned into
// the tokenizer transformers' BertConverter would build from them.

import { AddedToken } from './added_tokens';
import { BERT_DEFAULTS, DEFAULT_MAX_LENGTH, Json, SpecialTokenNames, TokenizerSpec, bad, getBool, getString, isObject } from './config';
import { TokenizerError } from './errors';
import { BertNormalizerConfig } from './normalizer';
import { TemplatePiece } from './post_processor';
import { WordPieceConfig } from './wordpiece';

/** vocab.txt as transformers' load_vocab reads it: one token per line, only the "\n" removed. */
export function parseVocabTxt(text: string, file = 'vocab.txt'): { vocab: Map<string, number>; duplicates: string[] } {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new TokenizerError('bad_field', 'empty vocabulary', { file });
  const vocab = new Map<string, number>();
  const duplicates: string[] = [];
  lines.forEach((token, i) => {
    if (vocab.has(token)) duplicates.push(token);
    vocab.set(token, i); // later lines win, like a Python dict
  });
  return { vocab, duplicates };
}

/** A special token entry: "[CLS]" or {"content": "[CLS]", "lstrip": ..., ...}. */
interface SpecialTokenEntry {
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

function parseSpecialEntry(v: unknown, file: string, field: string): SpecialTokenEntry | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return { content: v, singleWord: false, lstrip: false, rstrip: false, normalized: false };
  if (isObject(v)) {
    return {
      content: getString(v, 'content', undefined, file, field + '.'),
      singleWord: getBool(v, 'single_word', false, file, field + '.'),
      lstrip: getBool(v, 'lstrip', false, file, field + '.'),
      rstrip: getBool(v, 'rstrip', false, file, field + '.'),
      normalized: getBool(v, 'normalized', false, file, field + '.'),
    };
  }
  throw bad(file, field, 'expected a string or {content, ...}');
}

const SPECIAL_KEYS = ['unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
const SPECIAL_NAME: Record<(typeof SPECIAL_KEYS)[number], keyof SpecialTokenNames> = {
  unk_token: 'unk', sep_token: 'sep', pad_token: 'pad', cls_token: 'cls', mask_token: 'mask',
};

/** Special tokens declared by tokenizer_config.json and special_tokens_map.json (the latter wins, as in transformers). */
export function declaredSpecialTokens(config: Json, configFile: string, map: Json, mapFile: string): Map<string, SpecialTokenEntry> {
  const out = new Map<string, SpecialTokenEntry>();
  for (const [o, file] of [[config, configFile], [map, mapFile]] as const) {
    for (const key of SPECIAL_KEYS) {
      const e = parseSpecialEntry(o[key], file, key);
      if (e) out.set(key, e);
    }
    const extra = o.additional_special_tokens;
    if (!Array.isArray(extra)) continue;
    extra.forEach((x, i) => {
      const e = parseSpecialEntry(x, file, `additional_special_tokens[${i}]`);
      if (e) out.set(`additional_special_tokens[${i}]`, e);
    });
  }
  return out;
}

function modelMaxLengthOf(config: Json, file: string, warnings: string[]): number {
  const v = config.model_max_length;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= 1_000_000) return v;
  if (v !== undefined) warnings.push(`${file}: model_max_length ${JSON.stringify(v)} is not a usable length; using ${DEFAULT_MAX_LENGTH}`);
  return DEFAULT_MAX_LENGTH;
}

/** tokenizer_config.json `added_tokens_decoder` ({ "100": {content, lstrip, ...} }), when present. */
function parseAddedTokensDecoder(config: Json, file: string): AddedToken[] | null {
  const d = config.added_tokens_decoder;
  if (d === undefined || d === null) return null;
  if (!isObject(d)) throw bad(file, 'added_tokens_decoder', 'expected an object of id -> token');
  return Object.entries(d).map(([id, t]) => {
    const f = `added_tokens_decoder[${JSON.stringify(id)}]`;
    if (!/^\d+$/.test(id) || !isObject(t)) throw bad(file, f, 'expected a numeric key and an object value');
    return {
      id: Number(id),
      content: getString(t, 'content', undefined, file, f + '.'),
      singleWord: getBool(t, 'single_word', false, file, f + '.'),
      lstrip: getBool(t, 'lstrip', false, file, f + '.'),
      rstrip: getBool(t, 'rstrip', false, file, f + '.'),
      normalized: getBool(t, 'normalized', true, file, f + '.'),
      special: getBool(t, 'special', false, file, f + '.'),
    };
  });
}

/** The tokenizer transformers' BertConverter would build from a slow BERT tokenizer's files. */
export function specFromVocab(
  parsed: { vocab: Map<string, number>; duplicates: string[] }, config: Json, special: Json,
  files: { vocab: string; config: string; special: string },
): TokenizerSpec {
  const warnings: string[] = [];
  const { vocab, duplicates } = parsed;
  if (duplicates.length) {
    const some = duplicates.slice(0, 5).map((d) => JSON.stringify(d)).join(', ');
    warnings.push(`${files.vocab}: ${duplicates.length} duplicate token(s), later lines win: ${some}`);
  }
  const lowercase = getBool(config, 'do_lower_case', true, files.config, '');
  const strip = config.strip_accents;
  if (strip !== undefined && strip !== null && typeof strip !== 'boolean') throw bad(files.config, 'strip_accents', 'expected a boolean or null');
  const normalizer: BertNormalizerConfig = {
    cleanText: true,
    handleChineseChars: getBool(config, 'tokenize_chinese_chars', true, files.config, ''),
    stripAccents: typeof strip === 'boolean' ? strip : lowercase,
    lowercase,
  };
  const declared = declaredSpecialTokens(config, files.config, special, files.special);
  const names: SpecialTokenNames = { ...BERT_DEFAULTS };
  for (const key of SPECIAL_KEYS) {
    const e = declared.get(key);
    if (e) names[SPECIAL_NAME[key]] = e.content;
    else declared.set(key, { content: names[SPECIAL_NAME[key]], singleWord: false, lstrip: false, rstrip: false, normalized: false });
  }
  // Added tokens: the config's explicit list when it has one, then every special token not yet in it.
  const addedTokens: AddedToken[] = parseAddedTokensDecoder(config, files.config) ?? [];
  let nextId = vocab.size; // a token missing from vocab.txt gets the next free id, as transformers adds it
  for (const id of vocab.values()) nextId = Math.max(nextId, id + 1);
  for (const t of addedTokens) nextId = Math.max(nextId, t.id + 1);
  for (const e of declared.values()) {
    if (addedTokens.some((t) => t.content === e.content)) continue;
    const id = vocab.get(e.content) ?? nextId++;
    addedTokens.push({ id, ...e, special: true });
  }
  const idOf = (t: string) => vocab.get(t) ?? addedTokens.find((a) => a.content === t)!.id;
  const wordpiece: WordPieceConfig = { unkToken: names.unk, continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 };
  if (!vocab.has(names.unk)) throw bad(files.vocab, 'unk_token', `${JSON.stringify(names.unk)} is not in the vocabulary`);
  const sp = (id: string, typeId: number): TemplatePiece => ({ kind: 'special', id, typeId });
  const seq = (s: 'A' | 'B', typeId: number): TemplatePiece => ({ kind: 'sequence', sequence: s, typeId });
  return {
    source: `${files.vocab} + ${files.config}`,
    vocab,
    normalizer,
    wordpiece,
    postProcessor: {
      single: [sp(names.cls, 0), seq('A', 0), sp(names.sep, 0)],
      pair: [sp(names.cls, 0), seq('A', 0), sp(names.sep, 0), seq('B', 1), sp(names.sep, 1)],
      specialTokens: new Map([
        [names.cls, { ids: [idOf(names.cls)], tokens: [names.cls] }],
        [names.sep, { ids: [idOf(names.sep)], tokens: [names.sep] }],
      ]),
    },
    addedTokens,
    modelMaxLength: modelMaxLengthOf(config, files.config, warnings),
    specialTokens: names,
    ignoredTruncation: null,
    ignoredPadding: null,
    warnings,
  };
}
