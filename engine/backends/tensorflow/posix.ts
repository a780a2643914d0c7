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
