// What a BERT tokenizer is made of (TokenizerSpec), whichever files it was read from, plus the small
// validated JSON accessors every loader uses: errors name the file and the field.
//   tokenizer_json.ts  tokenizer.json (HF "fast" format)
//   vocab_files.ts     vocab.txt + tokenizer_config.json + special_tokens_map.json (the "slow" files)
//   folder.ts          a model folder: picks one, cross-checks it against the other

import { AddedToken } from './added_tokens';
import { TokenizerError } from './errors';
import { ModelFileError, readModelJson } from '../util/model_file';
import { BertNormalizerConfig } from './normalizer';
import { TemplateProcessing } from './post_processor';
import { WordPieceConfig } from './wordpiece';

/** Everything needed to build a BertTokenizer, independent of where it came from. */
export interface TokenizerSpec {
  source: string; // file(s) it was read from, for messages
  vocab: Map<string, number>; // the WordPiece model's vocabulary
  normalizer: BertNormalizerConfig | null;
  wordpiece: WordPieceConfig;
  postProcessor: TemplateProcessing | null;
  addedTokens: AddedToken[];
  modelMaxLength: number;
  specialTokens: SpecialTokenNames;
  /** tokenizer.json `truncation` / `padding` blocks: reported, never applied. */
  ignoredTruncation: unknown;
  ignoredPadding: unknown;
  warnings: string[];
}

export interface SpecialTokenNames {
  unk: string;
  cls: string;
  sep: string;
  pad: string;
  mask: string;
}

export const BERT_DEFAULTS: SpecialTokenNames = { unk: '[UNK]', cls: '[CLS]', sep: '[SEP]', pad: '[PAD]', mask: '[MASK]' };
export const DEFAULT_MAX_LENGTH = 512; // BERT's position-embedding table
export type Json = Record<string, unknown>;

// --- small validated accessors ---------------------------------------------------------------------

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function bad(file: string, field: string, message: string): TokenizerError {
  return new TokenizerError('bad_field', message, { file, field });
}

export function unsupported(file: string, field: string, message: string): TokenizerError {
  return new TokenizerError('unsupported', message, { file, field });
}

export function getBool(o: Json, key: string, dflt: boolean, file: string, prefix: string): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw bad(file, prefix + key, `expected a boolean, got ${JSON.stringify(v)}`);
  return v;
}

export function getString(o: Json, key: string, dflt: string | undefined, file: string, prefix: string): string {
  const v = o[key];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string') throw bad(file, prefix + key, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

export function getCount(o: Json, key: string, dflt: number, file: string, prefix: string): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(file, prefix + key, `expected a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function requireCount(o: Json, key: string, file: string, prefix: string): number {
  if (o[key] === undefined) throw bad(file, prefix + key, 'missing');
  return getCount(o, key, 0, file, prefix);
}

export function readJsonFile(file: string): unknown {
  try {
    return readModelJson(file);
  } catch (e) {
    throw asTokenizerError(e);
  }
}

/** A model_file.ts error as a TokenizerError (same message); anything else unchanged. */
export function asTokenizerError(e: unknown): unknown {
  if (!(e instanceof ModelFileError)) return e;
  const code = e.code === 'not_found' ? 'not_found' : e.code === 'bad_json' || e.code === 'not_utf8' ? 'bad_json' : 'io_error';
  return new TokenizerError(code, e.detail, { file: e.file });
}
