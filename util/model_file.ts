/**
 * Reading a model folder's small text files (config.json, tokenizer.json, vocab.txt, ...) so that
 * no file can hang, exhaust memory or be misread:
 *
 *   1. the path must name a regular file (a FIFO would block the open forever; a link to
 *      /dev/zero would be read until memory runs out): checked with stat before opening, and
 *      again on the descriptor, which is opened non-blocking;
 *   2. at most `maxBytes` are read (checked before reading, and while reading);
 *   3. the bytes must be UTF-8: the first invalid byte is reported by its offset (a silent
 *      U+FFFD would turn "hello" into other tokens);
 *   4. JSON must nest at most MAX_JSON_DEPTH levels (serde_json's limit, so Hugging Face's own
 *      loaders refuse the same files): deeper values would overflow the stack of any recursive
 *      code that later describes them (JSON.stringify in an error message).
 *
 * Errors are ModelFileError with a code; loaders re-throw them as their own error class.
 */
import * as fs from 'fs';

/** The largest text file read: real tokenizer.json files are under 20 MB. */
export const MAX_MODEL_TEXT_BYTES = 128 * 1024 * 1024;
export const MAX_JSON_DEPTH = 128;

export type ModelFileErrorCode = 'not_found' | 'not_a_file' | 'too_large' | 'io_error' | 'not_utf8' | 'bad_json';

export class ModelFileError extends Error {
  /** The message without the file name, for loaders that add it their own way. */
  constructor(readonly code: ModelFileErrorCode, readonly file: string, readonly detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'ModelFileError';
  }
}

/** What a non-regular file is, for "not a regular file (a FIFO)". */
export function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

function checkStat(file: string, st: fs.Stats, maxBytes: number): void {
  if (!st.isFile()) throw new ModelFileError('not_a_file', file, `not a regular file (${kindOf(st)})`);
  if (st.size > maxBytes) throw new ModelFileError('too_large', file, `is ${st.size} bytes, more than the ${maxBytes} a model text file may have`);
}

/**
 * Whether the folder has an entry named `file`: a dangling or looping link counts (reading it is
 * then an error naming it), so an optional file that is there but unreadable is never taken for
 * an absent one. Never opens or follows it.
 */
export function pathExists(file: string): boolean {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return true; // e.g. EACCES on the folder: there may be something; reading it says what
  }
}

/** Throws unless `file` is a regular file of at most `maxBytes` (stat only: safe on FIFOs). */
export function requireRegularFile(file: string, maxBytes = Number.MAX_SAFE_INTEGER): fs.Stats {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file, { throwIfNoEntry: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new ModelFileError('not_a_file', file, 'a symbolic link loop (ELOOP)');
    throw new ModelFileError('io_error', file, `cannot read (${code ?? String(e)})`);
  }
  if (!st) {
    const link = fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink();
    if (link) throw new ModelFileError('not_a_file', file, `a symbolic link to a missing file (${fs.readlinkSync(file)})`);
    throw new ModelFileError('not_found', file, 'missing');
  }
  checkStat(file, st, maxBytes);
  return st;
}

/** The file's bytes, after the checks above. */
export function readModelBytes(file: string, maxBytes = MAX_MODEL_TEXT_BYTES): Buffer {
  requireRegularFile(file, maxBytes);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new ModelFileError('io_error', file, `cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    checkStat(file, fs.fstatSync(fd), maxBytes); // the path may have been swapped since the stat
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new ModelFileError('too_large', file, `grew past the ${maxBytes} bytes a model text file may have while being read`);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    throw new ModelFileError('io_error', file, `read failed (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The file as text; invalid UTF-8 is an error naming the byte offset. A BOM is kept, as Node's 'utf8' reading does. */
export function readModelText(file: string, maxBytes = MAX_MODEL_TEXT_BYTES): string {
  const bytes = readModelBytes(file, maxBytes);
  const bad = firstInvalidUtf8(bytes);
  if (bad < bytes.length) {
    throw new ModelFileError('not_utf8', file, `not valid UTF-8 at byte offset ${bad} (byte 0x${bytes[bad].toString(16).padStart(2, '0')})`);
  }
  return bytes.toString('utf8');
}

/** The file parsed as JSON, after every check above and the nesting limit. */
export function readModelJson(file: string, maxBytes = MAX_MODEL_TEXT_BYTES): unknown {
  return parseModelJson(readModelText(file, maxBytes), file);
}

/** JSON.parse with the nesting limit checked first (the parse itself is not recursive; later code is). */
export function parseModelJson(text: string, file: string): unknown {
  const deep = tooDeepAt(text, MAX_JSON_DEPTH);
  if (deep !== undefined) {
    const offset = Buffer.byteLength(text.slice(0, deep), 'utf8');
    throw new ModelFileError('bad_json', file, `not valid JSON (nested deeper than ${MAX_JSON_DEPTH} levels at byte offset ${offset})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError('bad_json', file, `not valid JSON (${(e as Error).message})`);
  }
}

/** Index of the bracket that opens level `limit + 1`, outside strings; undefined if none. */
export function tooDeepAt(text: string, limit: number): number | undefined {
  let depth = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) { // [ {
      if (++depth > limit) return i;
    } else if (c === 0x5d || c === 0x7d) { // ] }
      depth--;
    }
  }
  return undefined;
}

/**
 * Offset of the first byte that does not belong to a well-formed UTF-8 sequence (bytes.length
 * when all are valid): overlong forms, surrogates (ED A0..BF) and code points above U+10FFFF
 * are invalid, as the Unicode standard's Table 3-7 and a fatal TextDecoder say.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) { i++; continue; }
    let len: number, lo = 0x80, hi = 0xbf; // allowed range of the second byte
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) { len = 3; if (b === 0xe0) lo = 0xa0; if (b === 0xed) hi = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { len = 4; if (b === 0xf0) lo = 0x90; if (b === 0xf4) hi = 0x8f; }
    else return i;
    if (i + len > n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return n;
}
