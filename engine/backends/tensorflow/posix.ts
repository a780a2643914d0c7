/**
 * `make native`'s addon (scripts/posix-addon, installed as e5-tfjs-posix): the POSIX calls Node
 * lacks. Optional: undefined where it is not built, and each user has a fallback.
 */
export interface PosixAddon {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  /** Fresh anonymous memory starting on a page boundary, its pages faulted in by a thread of the addon. */
  pageAlignedBuffer(bytes: number): ArrayBuffer;
  /**
   * Fills `dest` from the file at `position` on two threads, checking for NaN/Inf natively when
   * asked: the first non-finite element's index, or -1. Absent from builds before it (make native
   * rebuilds the addon when posix.c changes); the load then reads in JavaScript.
   */
  readF32?(fd: number, dest: Float32Array, position: number, checkFinite: boolean): number;
  /**
   * Starts reading jobs on two threads and returns at once (./background.ts): `jobs` holds 6 numbers
   * a job — fd, file position, F32 bytes, index into `buffers`, byte offset there, flags (1: check
   * for NaN/Inf, 2: round to bf16 into the slot). The batch reads through its own dup() of each fd.
   * Absent from builds before it (the load then reads synchronously), as are the two below.
   */
  readInBackground?(jobs: Float64Array, buffers: ArrayBuffer[]): BackgroundHandle;
  /** -1 while a thread still reads, else the seconds from the start to the last byte. Never waits. */
  backgroundDone?(handle: BackgroundHandle): number;
  /**
   * Waits for the threads (cancel: they stop at the next 1 MiB piece) and closes the batch's fds;
   * returns the first failed job in job order (a read error before a NaN/Inf, as readF32), or null.
   */
  backgroundJoin?(handle: BackgroundHandle, cancel: boolean): BackgroundFailure | null;
}

/** A batch of reads started by readInBackground (an opaque native handle). */
export type BackgroundHandle = { readonly __brand: 'e5-tfjs-posix background reads' };

export interface BackgroundFailure {
  job: number;
  code: 'non_finite' | 'truncated' | 'io_error';
  /** non_finite: the first bad element of the job's tensor. */
  element?: number;
  /** io_error: strerror's text. */
  reason?: string;
}

export function posixAddon(): PosixAddon | undefined {
  try {
    const addon = require('e5-tfjs-posix') as Partial<PosixAddon>;
    const complete = ['dup', 'dup2', 'pageAlignedBuffer'].every((f) => typeof addon[f as keyof PosixAddon] === 'function');
    return complete ? (addon as PosixAddon) : undefined; // an older build: make native rebuilds it
  } catch {
    return undefined;
  }
}
