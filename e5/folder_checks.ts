/**
 * The checks that need more than one of a model folder's files at once. loadModel runs them
 * after reading config.json, the tokenizer and the sentence-transformers files; `e5 verify`
 * runs the same function, so a folder verify passes is a folder that loads.
 */
import * as path from 'path';
import type { BertTokenizer } from '../tokenizer';
import type { BertConfig } from '../weights/config';
import type { SentenceTransformersConfig } from '../weights/sentence_transformers';

/** The longest input in tokens: the tokenizer's, sentence-transformers' and the position table's minimum. */
export function sequenceLimit(config: BertConfig, tokenizer: BertTokenizer, st: SentenceTransformersConfig): number {
  const limits = [tokenizer.modelMaxLength, config.maxPositionEmbeddings, st.maxSeqLength];
  return Math.min(...limits.filter((x): x is number => typeof x === 'number' && x > 0));
}

/** Throws an Error naming the file and field when the files disagree in a way no input could survive. */
export function checkFolderAgreement(dir: string, config: BertConfig, tokenizer: BertTokenizer, st: SentenceTransformersConfig): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new FolderAgreementError(`${path.join(dir, 'config.json')}: vocab_size ${config.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize} tokens`);
  }
  if (tokenizer.maxId >= config.vocabSize) { // every id must have a row in the word-embedding table
    throw new FolderAgreementError(`${tokenizer.source}: token ${JSON.stringify(tokenizer.idToToken(tokenizer.maxId))} has id ${tokenizer.maxId}, outside ${path.join(dir, 'config.json')} vocab_size ${config.vocabSize} (ids 0-${config.vocabSize - 1})`);
  }
  const limit = sequenceLimit(config, tokenizer, st);
  if (limit < 2) { // [CLS] and [SEP] alone take two positions
    const from = limit === tokenizer.modelMaxLength ? [path.join(dir, 'tokenizer_config.json'), 'model_max_length']
      : limit === st.maxSeqLength ? [path.join(dir, 'sentence_bert_config.json'), 'max_seq_length']
        : [path.join(dir, 'config.json'), 'max_position_embeddings'];
    throw new FolderAgreementError(`${from[0]}: ${from[1]} ${limit} leaves no room for a text ([CLS] and [SEP] take 2 tokens)`);
  }
}

export class FolderAgreementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderAgreementError';
  }
}
