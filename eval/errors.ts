// Typed errors for eval/: a machine-readable `code`, and a message that names the file, the line and
// the field, so a broken data set can be fixed without guessing.

export type BeirErrorCode =
  | 'missing_file' // corpus.jsonl / queries.jsonl / qrels/<split>.tsv not found
  | 'bad_json' // a JSONL line that is not a JSON object
  | 'bad_field' // _id / title / text missing or of the wrong type
  | 'duplicate_id' // the same _id twice in corpus.jsonl or queries.jsonl
  | 'bad_qrels_header' // first qrels line is not a header
  | 'bad_qrels_line' // not 3 tab-separated fields, empty id, or a non-integer score
  | 'empty'; // no documents / no queries / no judgements

export class BeirFormatError extends Error {
  override readonly name = 'BeirFormatError';

  constructor(
    readonly code: BeirErrorCode,
    readonly file: string,
    detail: string,
    /** 1-based line number, when the problem is on one line. */
    readonly line?: number,
    /** The JSON field or TSV column at fault. */
    readonly field?: string,
  ) {
    const where = line === undefined ? file : `${file}:${line}`;
    super(`${where}: ${field === undefined ? '' : `${field}: `}${detail} [${code}]`);
  }
}

export type EvalErrorCode =
  | 'bad_option' // k, batchSize, shardSize, split ...
  | 'bad_embedding' // the embedder returned the wrong count, a wrong dimension or a non-finite value
  | 'cache_conflict'; // a cache directory holds a different key than its name promises

export class EvalError extends Error {
  override readonly name = 'EvalError';

  constructor(readonly code: EvalErrorCode, detail: string) {
    super(`${detail} [${code}]`);
  }
}
