/**
 * Run `fn` with file descriptor 2 pointed at /dev/null, then give it back. For TensorFlow's
 * load-time log lines, which it writes to fd 2 itself (no setting reaches them).
 *
 * Giving stderr back must leave it the same open file description the shell made: `cmd > log 2>&1`
 * shares one description (one file offset) between stdout and stderr, and a new description of the
 * same file would have an offset of its own, so the two streams would overwrite each other's lines.
 * Node has no dup(): `make native` (and `e5 native`) builds one (scripts/posix-addon, installed as
 * e5-tfjs-posix), which saves and restores the very description, whatever stderr is. Without it,
 * stderr is re-opened through /proc/self/fd (Linux) only where a new description writes exactly as
 * the old one did: a terminal, or a pipe that still has a reader (neither has an offset). A regular
 * file, a socket (Node's own 'pipe' stdio for a child), a pipe nobody reads, or anything else: `fn`
 * runs with stderr as it is, and the lines show.
 */
import * as fs from 'fs';
import { PosixAddon, posixAddon } from './posix';

export function withStderrSilenced<T>(fn: () => T): T {
  const ops = posixAddon();
  if (ops) return withDup(ops, fn);
  const saved = reopenableStderr();
  return saved === undefined ? fn() : withReopen(saved, fn);
}

function withDup<T>(ops: PosixAddon, fn: () => T): T {
  const saved = ops.dup(2);
  if (saved < 0) return fn();
  const devNull = fs.openSync('/dev/null', 'a');
  try {
    ops.dup2(devNull, 2);
    return fn();
  } finally {
    ops.dup2(saved, 2);
    fs.closeSync(saved);
    fs.closeSync(devNull);
  }
}

/**
 * A second descriptor on stderr's terminal or pipe, opened through /proc/self/fd/2 — or undefined
 * where re-opening would not give back an equivalent stderr. A pipe is opened non-blocking first:
 * that fails (ENXIO) when no one reads it, where a blocking open would wait forever.
 */
function reopenableStderr(): number | undefined {
  try {
    const st = fs.fstatSync(2);
    if (st.isCharacterDevice()) return fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY);
    if (!st.isFIFO()) return undefined;
    fs.closeSync(fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    return fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY);
  } catch {
    return undefined;
  }
}

/** Open /dev/null until it lands on descriptor 2 (0 and 1 may be closed too); the extras to close after. */
function devNullOnStderr(): number[] {
  const extras: number[] = [];
  for (;;) {
    const fd = fs.openSync('/dev/null', 'a');
    if (fd === 2) return extras;
    extras.push(fd);
    if (fd > 2) {
      extras.forEach((e) => fs.closeSync(e));
      throw new Error('descriptor 2 was taken meanwhile');
    }
  }
}

function withReopen<T>(saved: number, fn: () => T): T {
  let extras: number[] = [];
  try {
    fs.closeSync(2);
    try {
      extras = devNullOnStderr();
    } catch {
      // stderr is gone for good if someone else now holds descriptor 2: nothing safe to undo
      return fn();
    }
    try {
      return fn();
    } finally {
      fs.closeSync(2);
      fs.openSync(`/proc/self/fd/${saved}`, fs.constants.O_WRONLY); // the lowest free descriptor: 2 (extras hold 0 and 1 if they were free)
      extras.forEach((fd) => fs.closeSync(fd));
    }
  } finally {
    fs.closeSync(saved);
  }
}
