/** The input options shared by embed, tokenize and inspect, and the record stream they select. */
import { Command, Option } from 'commander';
import { intArg, usageError, Reporter } from './common';
import { countLines, DEFAULT_MAX_LINE_BYTES, displayName, guessFormat, InputFormat, InputNotice, InputRecord, OnError, readRecords, recordsFromArgs } from './input';

const NOTICES: Record<InputNotice, string> = {
  lone_surrogate: 'a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), which is not a character; the tokenizer drops it',
  bare_cr: 'a carriage return not followed by a newline (old Mac line endings?): it is not a line break here, the text around it is one input',
};

export interface InputOptions {
  input?: string;
  inputFormat?: InputFormat;
  textField: string;
  idField?: string;
  onError: OnError;
  maxLineBytes: number;
}

export function addInputOptions(cmd: Command, opts: { ids?: boolean; onError?: boolean } = {}): Command {
  cmd
    .option('-i, --input <file>', "read inputs from FILE ('-' = stdin)")
    .addOption(new Option('--input-format <fmt>', 'lines: one text per line; jsonl: one JSON object per line (default: jsonl for .jsonl/.ndjson files, else lines)')
      .choices(['lines', 'jsonl']))
    .option('--text-field <name>', 'JSONL field holding the text', 'text')
    .addOption(new Option('--max-line-bytes <n>', 'the longest input line read; a longer one is a malformed line (see --on-error)')
      .argParser(intArg(1)).default(DEFAULT_MAX_LINE_BYTES, '1048576 = 1 MiB'));
  if (opts.ids !== false) cmd.option('--id-field <name>', 'JSONL field copied to the output as "id"', 'id');
  if (opts.onError !== false) {
    cmd.addOption(new Option('--on-error <what>', 'a malformed input line (bad JSON, missing field, not UTF-8, too long): abort with its line number, or skip it (each reported, the count at the end)')
      .choices(['abort', 'skip']).default('abort'));
  }
  return cmd;
}

export interface Source {
  records: AsyncIterable<InputRecord>;
  /** The input file ('-' for stdin), when not TEXT arguments. */
  file?: string;
  /** Number of inputs when known up front (TEXT arguments, or a counted file); for progress. */
  total(): Promise<number | undefined>;
  /** Lines skipped so far (--on-error skip). */
  skipped(): number;
  /** Print the skip count (always: skipped lines are lost data, even under -q). */
  reportSkips(): void;
  /**
   * Wait for the first record before any slow work (loading a model). Stdin read because it is
   * not a terminal and no TEXT was given is a usage error when it turns out empty.
   */
  ready(): Promise<void>;
}

/** The records, with the first one pulled ahead (so a source can be found empty early). */
function withFirstPulled(records: AsyncIterable<InputRecord>): { records: AsyncIterable<InputRecord>; first: () => Promise<boolean> } {
  const it = records[Symbol.asyncIterator]();
  let head: Promise<IteratorResult<InputRecord>> | undefined;
  const first = () => (head ??= it.next());
  async function* all(): AsyncGenerator<InputRecord> {
    let r = await first();
    while (!r.done) {
      yield r.value;
      r = await it.next();
    }
  }
  return { records: all(), first: async () => !(await first()).done };
}

const NOTHING_TO_DO = "nothing to do: give TEXT arguments or --input FILE ('-' for stdin)";

/**
 * TEXT arguments xor --input; `pairField` adds tokenize's optional second text. With neither,
 * texts are read from stdin when it is not a terminal (`echo hi | e5 embed`).
 */
export function inputSource(cmd: Command, texts: string[], o: InputOptions, r: Reporter, pairField?: string, stdin: { isTTY?: boolean } = process.stdin): Source {
  if (texts.length && o.input !== undefined) usageError(cmd, 'give TEXT arguments or --input FILE, not both');
  const implicitStdin = !texts.length && o.input === undefined && !stdin.isTTY;
  if (!texts.length && o.input === undefined && !implicitStdin) usageError(cmd, NOTHING_TO_DO);
  if (o.input === undefined && !implicitStdin) {
    return { records: recordsFromArgs(texts), total: async () => texts.length, skipped: () => 0, reportSkips: () => {}, ready: async () => {} };
  }
  const file = o.input ?? '-';
  let skipped = 0;
  const notices = new Map<InputNotice, { first: string; count: number }>();
  const read = withFirstPulled(readRecords(file, {
    format: o.inputFormat ?? guessFormat(file),
    textField: o.textField,
    idField: o.idField,
    pairField,
    onError: o.onError ?? 'abort',
    maxLineBytes: o.maxLineBytes,
    onSkip: (message) => {
      skipped++;
      r.warn(`skipped ${message}`);
    },
    onJsonLookingLine: o.inputFormat === undefined ? (message) => r.warn(message) : undefined,
    onNotice: (kind, where) => {
      const n = notices.get(kind);
      if (n) n.count++;
      else notices.set(kind, { first: where, count: 1 });
    },
  }));
  return {
    records: read.records,
    ready: async () => {
      if (!(await read.first()) && implicitStdin) usageError(cmd, `${NOTHING_TO_DO}; stdin was empty`);
    },
    file,
    total: () => countLines(file).catch(() => undefined),
    skipped: () => skipped,
    reportSkips: () => {
      for (const [kind, n] of notices) {
        r.warn(`${n.count} line${n.count === 1 ? '' : 's'} of ${displayName(file)} (first: ${n.first}) contain${n.count === 1 ? 's' : ''} ${NOTICES[kind]}`);
      }
      if (skipped) process.stderr.write(`e5 ${cmd.name()}: skipped ${skipped} malformed line${skipped === 1 ? '' : 's'} of ${displayName(file)} (--on-error skip)\n`);
    },
  };
}
