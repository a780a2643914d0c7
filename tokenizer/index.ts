// Public API of the BERT WordPiece tokenizer (pure TypeScript, no run-time dependencies).
export { BertTokenizer } from './tokenizer';
export type { Encoding, EncodedBatch, EncodeOptions } from './tokenizer';
export { TokenizerError } from './errors';
export type { TokenizerErrorCode } from './errors';
export { toUtf16Offsets } from './offsets';
