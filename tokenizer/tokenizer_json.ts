// tokenizer.json (HF "fast" format) for a BERT WordPiece tokenizer: BertNormalizer,
// BertPreTokenizer, WordPiece model, TemplateProcessing/BertProcessing post-processor, added tokens.
// A truncation/padding block is reported in `warnings`, never applied.

import { AddedToken } from './added_tokens';
import { BERT_DEFAULTS, DEFAULT_MAX_LENGTH, TokenizerSpec, bad, getBool, getCount, getString, isObject, requireCount, unsupported } from './config';
import { BertNormalizerConfig } from './normalizer';
import { TemplatePiece, TemplateProcessing } from './post_processor';
import { WordPieceConfig } from './wordpiece';

function parseNormalizer(v: unknown, file: string): BertNormalizerConfig | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) throw bad(file, 'normalizer', 'expected an object or null');
  if (v.type !== 'BertNormalizer') {
    throw unsupported(file, 'normalizer.type', `normalizer type ${JSON.stringify(v.type)} is not supported (only BertNormalizer)`);
  }
  const lowercase = getBool(v, 'lowercase', true, file, 'normalizer.');
  const strip = v.strip_accents;
  if (strip !== undefined && strip !== null && typeof strip !== 'boolean') throw bad(file, 'normalizer.strip_accents', 'expected a boolean or null');
  return {
    cleanText: getBool(v, 'clean_text', true, file, 'normalizer.'),
    handleChineseChars: getBool(v, 'handle_chinese_chars', true, file, 'normalizer.'),
    stripAccents: typeof strip === 'boolean' ? strip : lowercase, // null: follow lowercase (HF)
    lowercase,
  };
}

function parseModel(v: unknown, file: string): { vocab: Map<string, number>; wordpiece: WordPieceConfig } {
  if (!isObject(v)) throw bad(file, 'model', 'expected an object');
  if (v.type !== undefined && v.type !== 'WordPiece') {
    throw unsupported(file, 'model.type', `model type ${JSON.stringify(v.type)} is not supported (only WordPiece)`);
  }
  if (!isObject(v.vocab)) throw bad(file, 'model.vocab', 'expected an object of token -> id');
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(v.vocab)) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      throw bad(file, `model.vocab[${JSON.stringify(token)}]`, `expected a non-negative integer id, got ${JSON.stringify(id)}`);
    }
    vocab.set(token, id);
  }
  const wordpiece: WordPieceConfig = {
    unkToken: getString(v, 'unk_token', '[UNK]', file, 'model.'),
    continuingSubwordPrefix: getString(v, 'continuing_subword_prefix', '##', file, 'model.'),
    maxInputCharsPerWord: getCount(v, 'max_input_chars_per_word', 100, file, 'model.'),
  };
  if (!vocab.has(wordpiece.unkToken)) throw bad(file, 'model.unk_token', `${JSON.stringify(wordpiece.unkToken)} is not in model.vocab`);
  return { vocab, wordpiece };
}

function parseAddedTokens(v: unknown, file: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(file, 'added_tokens', 'expected an array');
  return v.map((t, i) => {
    const at = `added_tokens[${i}].`;
    if (!isObject(t)) throw bad(file, `added_tokens[${i}]`, 'expected an object');
    return {
      id: requireCount(t, 'id', file, at),
      content: getString(t, 'content', undefined, file, at),
      singleWord: getBool(t, 'single_word', false, file, at),
      lstrip: getBool(t, 'lstrip', false, file, at),
      rstrip: getBool(t, 'rstrip', false, file, at),
      normalized: getBool(t, 'normalized', true, file, at),
      special: getBool(t, 'special', false, file, at),
    };
  });
}

function parseTemplatePieces(v: unknown, file: string, field: string): TemplatePiece[] {
  if (!Array.isArray(v)) throw bad(file, field, 'expected an array of {SpecialToken} / {Sequence}');
  return v.map((p, i) => {
    const f = `${field}[${i}]`;
    if (isObject(p) && isObject(p.SpecialToken)) {
      const at = f + '.SpecialToken.';
      return { kind: 'special', id: getString(p.SpecialToken, 'id', undefined, file, at), typeId: getCount(p.SpecialToken, 'type_id', 0, file, at) };
    }
    if (isObject(p) && isObject(p.Sequence)) {
      const seq = p.Sequence.id;
      if (seq !== 'A' && seq !== 'B') throw bad(file, f + '.Sequence.id', `expected "A" or "B", got ${JSON.stringify(seq)}`);
      return { kind: 'sequence', sequence: seq, typeId: getCount(p.Sequence, 'type_id', 0, file, f + '.Sequence.') };
    }
    throw bad(file, f, 'expected {SpecialToken: {...}} or {Sequence: {...}}');
  });
}

function parsePostProcessor(v: unknown, file: string): TemplateProcessing | null {
  if (v === null || v === undefined) return null;
  if (!isObject(v)) throw bad(file, 'post_processor', 'expected an object or null');
  if (v.type === 'BertProcessing') {
    const pair = (key: 'cls' | 'sep'): [string, number] => {
      const x = v[key];
      if (!Array.isArray(x) || typeof x[0] !== 'string' || typeof x[1] !== 'number') throw bad(file, `post_processor.${key}`, 'expected [token, id]');
      return [x[0], x[1]];
    };
    const [cls, clsId] = pair('cls');
    const [sep, sepId] = pair('sep');
    const sp = (id: string, typeId: number): TemplatePiece => ({ kind: 'special', id, typeId });
    const seq = (s: 'A' | 'B', typeId: number): TemplatePiece => ({ kind: 'sequence', sequence: s, typeId });
    return {
      single: [sp(cls, 0), seq('A', 0), sp(sep, 0)],
      pair: [sp(cls, 0), seq('A', 0), sp(sep, 0), seq('B', 1), sp(sep, 1)],
      specialTokens: new Map([[cls, { ids: [clsId], tokens: [cls] }], [sep, { ids: [sepId], tokens: [sep] }]]),
    };
  }
  if (v.type !== 'TemplateProcessing') {
    const msg = `post_processor type ${JSON.stringify(v.type)} is not supported (TemplateProcessing, BertProcessing)`;
    throw unsupported(file, 'post_processor.type', msg);
  }
  const single = parseTemplatePieces(v.single, file, 'post_processor.single');
  const pair = parseTemplatePieces(v.pair, file, 'post_processor.pair');
  if (!isObject(v.special_tokens)) throw bad(file, 'post_processor.special_tokens', 'expected an object');
  const specialTokens = new Map<string, { ids: number[]; tokens: string[] }>();
  for (const [name, st] of Object.entries(v.special_tokens)) {
    const f = `post_processor.special_tokens[${JSON.stringify(name)}]`;
    if (!isObject(st) || !Array.isArray(st.ids) || !Array.isArray(st.tokens) || st.ids.length !== st.tokens.length ||
      !st.ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0) || !st.tokens.every((x) => typeof x === 'string')) {
      throw bad(file, f, 'expected {id, ids: number[], tokens: string[]} with as many ids as tokens');
    }
    specialTokens.set(name, { ids: st.ids as number[], tokens: st.tokens as string[] });
  }
  for (const [field, pieces] of [['single', single], ['pair', pair]] as const) {
    for (const p of pieces) {
      if (p.kind === 'special' && !specialTokens.has(p.id)) {
        throw bad(file, `post_processor.${field}`, `special token ${JSON.stringify(p.id)} is not in post_processor.special_tokens`);
      }
    }
  }
  return { single, pair, specialTokens };
}

/** cls/sep as the template uses them: the first and the last special token of the single template. */
export function templateClsSep(tpl: TemplateProcessing | null): { cls?: string; sep?: string } {
  const specials = (tpl?.single ?? []).filter((p): p is Extract<TemplatePiece, { kind: 'special' }> => p.kind === 'special');
  if (specials.length === 0) return {};
  const tokenOf = (name: string) => tpl!.specialTokens.get(name)!.tokens[0];
  return { cls: tokenOf(specials[0].id), sep: tokenOf(specials[specials.length - 1].id) };
}

export function parseTokenizerJson(json: unknown, file = 'tokenizer.json'): TokenizerSpec {
  if (!isObject(json)) throw bad(file, '(root)', 'expected a JSON object');
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'BertPreTokenizer') {
    const got = JSON.stringify(isObject(pre) ? pre.type : pre);
    throw unsupported(file, 'pre_tokenizer.type', `pre_tokenizer ${got} is not supported (only BertPreTokenizer)`);
  }
  const { vocab, wordpiece } = parseModel(json.model, file);
  const postProcessor = parsePostProcessor(json.post_processor, file);
  const warnings: string[] = [];
  const ignoredTruncation = json.truncation ?? null;
  const ignoredPadding = json.padding ?? null;
  if (ignoredTruncation !== null) {
    warnings.push(`${file}: "truncation" ${JSON.stringify(ignoredTruncation)} is ignored; pass maxLength to encode() instead`);
  }
  if (ignoredPadding !== null) {
    warnings.push(`${file}: "padding" ${JSON.stringify(ignoredPadding)} is ignored; encodeBatch() pads to the longest row`);
  }
  const { cls, sep } = templateClsSep(postProcessor);
  return {
    source: file,
    vocab,
    normalizer: parseNormalizer(json.normalizer, file),
    wordpiece,
    postProcessor,
    addedTokens: parseAddedTokens(json.added_tokens, file),
    modelMaxLength: DEFAULT_MAX_LENGTH,
    specialTokens: { ...BERT_DEFAULTS, unk: wordpiece.unkToken, ...(cls ? { cls } : {}), ...(sep ? { sep } : {}) },
    ignoredTruncation,
    ignoredPadding,
    warnings,
  };
}
