/**
 * Inputs for embed / tokenize / inspect: TEXT arguments, or a file (or `-` for stdin) read
 * incrementally, one line at a time, as plain lines or JSON Lines.
 *
 * Bad input never passes silently: a line that is not UTF-8 is reported with its byte offset
 * in the file, a malformed JSONL line with its line number and what is wrong; `--on-error
 * skip` skips such lines (each reported as a warning, the count at the end) instead of stopping.
 * Whitespace-only lines are skipped in JSONL (there is no record on them); in `lines` format
 * every line is a text, an empty one included, so record i is line i+1.
 *
 * A line may hold at most `maxLineBytes` (default 1 MiB; --max-line-bytes): a longer one is an
 * error naming its line (or skipped with --on-error skip), read no further than the limit, so
 * `--input /dev/zero` or a file without newlines cannot fill memory.
 */
import * as fs from 'fs';
import { InputDataError } from './errors';

export type InputFormat = 'lines' | 'jsonl';

/** The longest input line read by default: far beyond the 512 tokens a text is cut to. */
export const DEFAULT_MAX_LINE_BYTES = 1 << 20;
export type OnError = 'abort' | 'skip';

export interface InputRecord {
  /** 0-based position among the records delivered (skipped lines do not count). */
  index: number;
  text: string;
  /** The second text of a pair (tokenize: `text_pair`). */
  pair?: string;
  id?: string | number;
  /** 1-based line in the input file (0 for TEXT arguments). */
  line: number;
}

export interface ReadOptions {
  format: InputFormat;
  textField: string;
  idField?: string;
  pairField?: string;
  onError: OnError;
  /** The longest line accepted, in bytes (default DEFAULT_MAX_LINE_BYTES). */
  maxLineBytes?: number;
  /** Called with each skipped line's message (`--on-error skip`). */
  onSkip?: (message: string) => void;
  /** Called once when a line of `lines` input looks like a JSON object (the format was guessed, not given). */
  onJsonLookingLine?: (message: string) => void;
  /** Called for each line with text the user likely did not mean (see InputNotice). */
  onNotice?: (kind: InputNotice, where: string) => void;
}

/**
 * Text that is read, but probably not as meant: a lone UTF-16 surrogate (from a JSON escape;
 * not a character, the tokenizer drops it) or a carriage return not followed by a newline (old
 * Mac line endings: the whole file reads as one line).
 */
export type InputNotice = 'lone_surrogate' | 'bare_cr';
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The input format a file name suggests, when --input-format is not given. */
export function guessFormat(file: string | undefined): InputFormat {
  return file && /\.(jsonl|ndjson)$/i.test(file) ? 'jsonl' : 'lines';
}

/** How a file is named in messages. */
export function displayName(file: string): string {
  return file === '-' ? '<stdin>' : file;
}

export async function* recordsFromArgs(texts: string[]): AsyncGenerator<InputRecord> {
  for (let i = 0; i < texts.length; i++) yield { index: i, text: texts[i], line: 0 };
}

/** Records from a file or stdin; throws InputDataError (or skips, per onError) on a bad line. */
export async function* readRecords(file: string, opts: ReadOptions): AsyncGenerator<InputRecord> {
  const name = displayName(file);
  let index = 0;
  const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  for await (const { line, offset, bytes, tooLong } of readLines(openInput(file), name, max)) {
    let record: Omit<InputRecord, 'index'> | undefined;
    try {
      if (tooLong) throw new InputDataError(`${name}:${line}: the line is longer than ${max} bytes (--max-line-bytes ${max}; raise it for longer lines)`);
      const text = decodeUtf8(bytes, offset, `${name}:${line}`);
      record = opts.format === 'lines' ? { text, line } : parseJsonlRecord(text, `${name}:${line}`, line, opts);
      if (bytes.includes(0x0d)) opts.onNotice?.('bare_cr', `${name}:${line}`);
      if (record && (LONE_SURROGATE.test(record.text) || (record.pair !== undefined && LONE_SURROGATE.test(record.pair)))) {
        opts.onNotice?.('lone_surrogate', `${name}:${line}`);
      }
      if (opts.format === 'lines' && opts.onJsonLookingLine && looksLikeJsonObject(text)) {
        opts.onJsonLookingLine(`${name}:${line} looks like a JSON object, but input is read as plain lines and each line is embedded as it is; pass --input-format jsonl to read its "${opts.textField}" field`);
        opts.onJsonLookingLine = undefined; // once per input
      }
    } catch (e) {
      if (!(e instanceof InputDataError) || opts.onError === 'abort') throw e;
      opts.onSkip?.(e.message);
      continue;
    }
    if (record) yield { index: index++, ...record };
  }
}

function looksLikeJsonObject(text: string): boolean {
  const t = text.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return false;
  try {
    const v = JSON.parse(t);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

function openInput(file: string): AsyncIterable<Buffer> {
  if (file === '-') return process.stdin;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read input (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (stat.isDirectory()) throw new Error(`${file}: is a directory, expected an input file`);
  return fs.createReadStream(file, { highWaterMark: 1 << 16 });
}

/**
 * Lines as raw bytes with their 1-based number and the byte offset of their start; `\r\n` is
 * accepted. A line longer than `maxBytes` comes as `tooLong` with no bytes, as soon as it passes
 * the limit (a stream without newlines ends there); the rest of it is dropped as it arrives.
 */
export async function* readLines(chunks: AsyncIterable<Buffer | string>, name: string, maxBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<{ line: number; offset: number; bytes: Buffer; tooLong?: boolean }> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let dropping = false; // the current line passed maxBytes and was reported: its bytes are dropped
  let pendingStart = 0; // byte offset of the first pending byte
  let consumed = 0; // bytes of the file seen before the current chunk
  let line = 0;
  const tooLong = () => ({ line: ++line, offset: pendingStart, bytes: Buffer.alloc(0), tooLong: true });
  const take = (parts: Buffer[], start: number) => {
    let bytes = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    if (bytes.length && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    if (bytes.length > maxBytes) return tooLong();
    if (line === 0 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return { line: ++line, offset: start + 3, bytes: bytes.subarray(3) };
    return { line: ++line, offset: start, bytes };
  };
  /** Keep part of the current line; true when it just passed the limit (+ 1: a '\r' before '\n' is no part of it). */
  const keep = (part: Buffer): boolean => {
    if (dropping) return false;
    pendingBytes += part.length;
    if (pendingBytes <= maxBytes + 1) {
      pending.push(part);
      return false;
    }
    pending = [];
    dropping = true;
    return true;
  };
  try {
    for await (const raw of chunks) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      let from = 0;
      for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
        if (keep(chunk.subarray(from, nl))) yield tooLong();
        else if (!dropping) yield take(pending, pendingStart);
        pending = [];
        pendingBytes = 0;
        dropping = false;
        from = nl + 1;
        pendingStart = consumed + from;
      }
      if (from < chunk.length && keep(chunk.subarray(from))) yield tooLong();
      consumed += chunk.length;
    }
  } catch (e) {
    if (e instanceof InputDataError) throw e;
    throw new Error(`${name}: read failed (${(e as Error).message})`);
  }
  if (!dropping && pending.some((p) => p.length > 0)) yield take(pending, pendingStart);
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decode one line, or throw InputDataError naming the byte offset (in the file) of the first bad byte. */
export function decodeUtf8(bytes: Uint8Array, fileOffset: number, where: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new InputDataError(`${where}: not valid UTF-8 at byte offset ${fileOffset + at} (byte 0x${bytes[at].toString(16).padStart(2, '0')})`);
  }
}

/**
 * Index of the byte where the first invalid UTF-8 sequence starts (bytes.length if valid).
 * TextDecoder in streaming mode fails exactly at the first byte that cannot continue a valid
 * sequence, so the failing prefix length is monotonic: binary-search it, then step back to
 * the lead byte if the bad byte interrupted a sequence.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const decodes = (n: number, stream: boolean) => {
    try {
      new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(0, n), { stream });
      return true;
    } catch {
      return false;
    }
  };
  const leadBefore = (end: number) => {
    let i = end - 1;
    while (i > 0 && (bytes[i] & 0xc0) === 0x80) i--;
    return i;
  };
  if (decodes(bytes.length, false)) return bytes.length;
  if (decodes(bytes.length, true)) return leadBefore(bytes.length); // a sequence cut off at the end of the line
  let lo = 0, hi = bytes.length; // prefix lo decodes (streaming), prefix hi does not
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (decodes(mid, true)) lo = mid;
    else hi = mid;
  }
  const bad = hi - 1;
  // If the prefix before the bad byte ends inside a sequence, that sequence is what is broken.
  return decodes(bad, false) ? bad : leadBefore(bad);
}

function parseJsonlRecord(text: string, where: string, line: number, o: ReadOptions): Omit<InputRecord, 'index'> | undefined {
  if (text.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputDataError(`${where}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InputDataError(`${where}: expected a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}`);
  }
  const obj = v as Record<string, unknown>;
  const str = (field: string, required: boolean): string | undefined => {
    const x = obj[field];
    if (x === undefined) {
      if (required) throw new InputDataError(`${where}: field "${field}" is missing`);
      return undefined;
    }
    if (typeof x !== 'string') throw new InputDataError(`${where}: field "${field}" is ${x === null ? 'null' : `a ${typeof x}`}, expected a string`);
    return x;
  };
  const text_ = str(o.textField, true)!;
  const pair = o.pairField ? str(o.pairField, false) : undefined;
  let id: string | number | undefined;
  if (o.idField && obj[o.idField] !== undefined) {
    const x = obj[o.idField];
    if (typeof x !== 'string' && !(typeof x === 'number' && Number.isFinite(x))) {
      throw new InputDataError(`${where}: field "${o.idField}" is ${x === null ? 'null' : `a ${typeof x}`}, expected a string or number`);
    }
    id = x;
  }
  return { text: text_, line, ...(pair !== undefined ? { pair } : {}), ...(id !== undefined ? { id } : {}) };
}

/** Groups of up to `size` records, so a long input is processed (and written) chunk by chunk. */
export async function* chunked<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const x of source) {
    chunk.push(x);
    if (chunk.length >= size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length) yield chunk;
}

/** Lines in a regular file (for the progress bar's total); undefined for stdin. */
export async function countLines(file: string): Promise<number | undefined> {
  if (file === '-' || !fs.statSync(file).isFile()) return undefined; // a device or FIFO may never end
  let n = 0, last = 0x0a;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) n++;
    if (chunk.length) last = chunk[chunk.length - 1];
  }
  return last === 0x0a ? n : n + 1;
}
