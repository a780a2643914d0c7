/**
 * Run `fn` with file descriptor 2 pointed at /dev/null, then give it back. For TensorFlow's
 * load-time log lines, which it writes to fd 2 itself (no setting reaches them).
 *
 * Node has no dup(): `make native` builds one (scripts/posix-addon, installed as e5-tfjs-posix), which
 * works whatever stderr is. Without it, stderr is re-opened through /proc/self/fd (Linux), which
 * works for a terminal, a pipe or a file but not a socket (Node's own 'pipe' stdio for a child):
 * there, or elsewhere, `fn` runs with stderr as it is and the lines show.
 */
import * as fs from 'fs';
import { PosixAddon, posixAddon } from './posix';

export function withStderrSilenced<T>(fn: () => T): T {
  const ops = posixAddon();
  return ops ? withDup(ops, fn) : withReopen(fn);
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

function withReopen<T>(fn: () => T): T {
  let saved: number;
  try {
    saved = fs.openSync('/proc/self/fd/2', 'a');
  } catch {
    return fn();
  }
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
      fs.openSync(`/proc/self/fd/${saved}`, 'a'); // the lowest free descriptor: 2 (extras hold 0 and 1 if they were free)
      extras.forEach((fd) => fs.closeSync(fd));
    }
  } finally {
    fs.closeSync(saved);
  }
}
