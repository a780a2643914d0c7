/**
 * Run `fn` with file descriptor 2 pointed at /dev/null, then give it back. For TensorFlow's
 * load-time log lines, which it writes to fd 2 itself (no setting reaches them). Node has no
 * dup(), so stderr is re-opened through /proc/self/fd: Linux only, and only where that works — a
 * terminal, a pipe, a file. Elsewhere, or when stderr is a socket (Node's own 'pipe' stdio for a
 * child), `fn` runs with stderr as it is and the lines show.
 */
import * as fs from 'fs';

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

export function withStderrSilenced<T>(fn: () => T): T {
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
