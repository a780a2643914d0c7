// A model folder: tokenizer.json when present, else vocab.txt + tokenizer_config.json (+
// special_tokens_map.json). When both kinds are present they must agree (vocabulary ids, lower-casing,
// accents, Chinese chars, special tokens); the first difference is a 'mismatch' TokenizerError.

import * as path from 'path';
import { Json, TokenizerSpec, asTokenizerError, bad, isObject, readJsonFile } from './config';
import { pathExists, readModelText } from '../util/model_file';
import { TokenizerError } from './errors';
import { parseTokenizerJson, templateClsSep } from './tokenizer_json';
import { declaredSpecialTokens, parseVocabTxt, specFromVocab } from './vocab_files';

function mismatch(file: string, field: string, message: string): TokenizerError {
  return new TokenizerError('mismatch', message, { file, field });
}

/** Throws a 'mismatch' TokenizerError naming the first difference between the two descriptions. */
export function crossCheck(fast: TokenizerSpec, slow: TokenizerSpec, present: { vocab: boolean; config: Json; special: Json },
  files: { json: string; vocab: string; config: string; special: string }): void {
  if (present.vocab) {
    for (const [token, id] of slow.vocab) {
      const other = fast.vocab.get(token);
      if (other === id) continue;
      const there = other === undefined ? 'is missing from' : `id ${other} in`;
      throw mismatch(files.vocab, `line ${id + 1}`, `token ${JSON.stringify(token)} has id ${id} here but ${there} ${files.json} model.vocab`);
    }
    if (fast.vocab.size !== slow.vocab.size) {
      const extra = [...fast.vocab.keys()].find((t) => !slow.vocab.has(t));
      const msg = `${slow.vocab.size} tokens here but ${fast.vocab.size} in ${files.json} model.vocab (e.g. ${JSON.stringify(extra)} is only there)`;
      throw mismatch(files.vocab, '(size)', msg);
    }
  }
  const n = fast.normalizer;
  const cfg = present.config;
  // Compared as resolved behaviour (strip_accents null means "follow lowercase" on both sides).
  const checkFlag = (key: string, fastValue: boolean, slowValue: boolean, jsonField: string) => {
    if (cfg[key] === undefined || fastValue === slowValue) return;
    throw mismatch(files.config, key, `${key}=${JSON.stringify(cfg[key])} but ${files.json} has ${jsonField}=${JSON.stringify(fastValue)}`);
  };
  const slowN = slow.normalizer!;
  checkFlag('do_lower_case', n?.lowercase ?? false, slowN.lowercase, 'normalizer.lowercase');
  checkFlag('strip_accents', n?.stripAccents ?? false, slowN.stripAccents, 'normalizer.strip_accents (resolved)');
  checkFlag('tokenize_chinese_chars', n?.handleChineseChars ?? false, slowN.handleChineseChars, 'normalizer.handle_chinese_chars');

  // Special tokens that the slow files name explicitly must be special tokens of tokenizer.json too.
  const declared = declaredSpecialTokens(present.config, files.config, present.special, files.special);
  for (const [key, e] of declared) {
    const where = present.special[key.replace(/\[\d+\]$/, '')] !== undefined ? files.special : files.config;
    const added = fast.addedTokens.find((t) => t.content === e.content);
    if (!added) throw mismatch(where, key, `${JSON.stringify(e.content)} is not an added token in ${files.json} added_tokens`);
    const slowId = slow.vocab.get(e.content);
    if (present.vocab && slowId !== undefined && slowId !== added.id) {
      throw mismatch(where, key, `${JSON.stringify(e.content)} has id ${slowId} in ${files.vocab} but ${added.id} in ${files.json} added_tokens`);
    }
  }
  const names = slow.specialTokens;
  const { cls, sep } = templateClsSep(fast.postProcessor);
  const whereOf = (key: string) => (present.special[key] !== undefined ? files.special : files.config);
  const same = (key: string, ours: string, theirs: string | undefined, what: string) => {
    if (!declared.has(key) || theirs === undefined || ours === theirs) return;
    throw mismatch(whereOf(key), key, `${JSON.stringify(ours)} but ${files.json} ${what} ${JSON.stringify(theirs)}`);
  };
  same('unk_token', names.unk, fast.wordpiece.unkToken, 'model.unk_token is');
  same('cls_token', names.cls, cls, 'post_processor starts with');
  same('sep_token', names.sep, sep, 'post_processor ends with');
}

export function loadFolderSpec(dir: string): TokenizerSpec {
  const f = {
    json: path.join(dir, 'tokenizer.json'),
    vocab: path.join(dir, 'vocab.txt'),
    config: path.join(dir, 'tokenizer_config.json'),
    special: path.join(dir, 'special_tokens_map.json'),
  };
  const has = (p: string) => pathExists(p); // a dangling link is there, and reading it fails naming it
  if (!has(dir)) throw new TokenizerError('not_found', 'model folder does not exist', { file: dir });
  const readObject = (p: string): Json => {
    if (!has(p)) return {};
    const j = readJsonFile(p);
    if (!isObject(j)) throw bad(p, '(root)', 'expected a JSON object');
    return j;
  };
  const config = readObject(f.config);
  const special = readObject(f.special);
  const readVocab = () => {
    let text: string;
    try {
      text = readModelText(f.vocab);
    } catch (e) {
      throw asTokenizerError(e);
    }
    return parseVocabTxt(text, f.vocab);
  };
  if (has(f.json)) {
    const fast = parseTokenizerJson(readJsonFile(f.json), f.json);
    const hasVocab = has(f.vocab);
    // What the slow files alone would give, to compare with (tokenizer.json's vocabulary stands in for a missing vocab.txt).
    const slow = hasVocab
      ? specFromVocab(readVocab(), config, special, f)
      : specFromVocab({ vocab: fast.vocab, duplicates: [] }, config, special, { ...f, vocab: `${f.json} model.vocab` });
    crossCheck(fast, slow, { vocab: hasVocab, config, special }, f);
    fast.modelMaxLength = slow.modelMaxLength;
    fast.specialTokens = { ...fast.specialTokens, pad: slow.specialTokens.pad, mask: slow.specialTokens.mask };
    fast.warnings.push(...slow.warnings);
    return fast;
  }
  if (!has(f.vocab)) throw new TokenizerError('not_found', 'neither tokenizer.json nor vocab.txt in the model folder', { file: dir });
  return specFromVocab(readVocab(), config, special, f);
}
