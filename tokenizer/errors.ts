// Typed errors for everything under tokenizer/: one class, a machine-readable `code`, and a message
// that names the file and the field (or the argument) at fault.

export type TokenizerErrorCode =
  | 'not_found' // the folder has neither tokenizer.json nor vocab.txt, or a named file is missing
  | 'io_error' // the file exists but cannot be read
  | 'bad_json' // not valid JSON
  | 'bad_field' // a field is missing or has the wrong type/value
  | 'unsupported' // a component we do not implement (e.g. a BPE model, a Sequence normalizer)
  | 'mismatch' // tokenizer.json and vocab.txt / tokenizer_config.json / special_tokens_map.json disagree
  | 'bad_argument'; // a bad argument to encode/encodeBatch/idToToken

export class TokenizerError extends Error {
  readonly code: TokenizerErrorCode;
  /** The file at fault, when there is one (a path or a name such as "tokenizer.json"). */
  readonly file?: string;
  /** The JSON path or argument at fault, e.g. "model.unk_token" or "maxLength". */
  readonly field?: string;

  constructor(code: TokenizerErrorCode, message: string, where: { file?: string; field?: string } = {}) {
    const prefix = [where.file, where.field].filter(Boolean).join(': ');
    super(prefix ? `${prefix}: ${message}` : message);
    this.name = 'TokenizerError';
    this.code = code;
    this.file = where.file;
    this.field = where.field;
  }
}
