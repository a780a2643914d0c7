/**
 * Whole reads and writes on a file descriptor, in chunks Node accepts, with failures turned into
 * SafetensorsErrors that name the file (and the tensor).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { SafetensorsError } from '../errors';

const IO_CHUNK = 1 << 30; // read(2)/write(2) move at most ~2 GiB per call; Node refuses larger requests

export function assertLittleEndianHost(file: string): void {
  if (os.endianness() !== 'LE') {
    throw new SafetensorsError('big_endian_host', file, 'safetensors data is little-endian and this reader maps it with native typed arrays');
  }
}

export function ioError(file: string, e: unknown, doing: string, tensor?: string): SafetensorsError {
  const errno = (e as NodeJS.ErrnoException)?.code;
  if (errno === 'ENOENT') return new SafetensorsError('not_found', file, 'no such file', tensor, { cause: e });
  if (errno === 'EISDIR') return new SafetensorsError('not_a_file', file, 'is a directory, expected a .safetensors file', tensor, { cause: e });
  const why = e instanceof Error ? e.message : String(e);
  return new SafetensorsError('io_error', file, `${doing} failed: ${why}`, tensor, { cause: e });
}

export function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Fills `dest` from `position`, looping over short reads; a read of 0 bytes means the file shrank. */
export function readExactly(fd: number, dest: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < dest.length) {
    let n: number;
    try {
      n = fs.readSync(fd, dest, done, Math.min(dest.length - done, IO_CHUNK), position + done);
    } catch (e) {
      throw ioError(file, e, `reading ${dest.length} bytes at ${position}`, tensor);
    }
    if (n === 0) {
      throw new SafetensorsError('truncated', file, `file ended at byte ${position + done} while reading ${dest.length} bytes at ${position} (changed since it was opened?)`, tensor);
    }
    done += n;
  }
}

export function writeAll(fd: number, bytes: Uint8Array, file: string, tensor?: string): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK));
    } catch (e) {
      throw ioError(file, e, 'writing', tensor);
    }
  }
}
