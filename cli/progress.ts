/**
 * Progress bars on stderr (cli-progress): the batch bar, shown per --progress (`on` always, `off`
 * never, `auto` when stderr is a terminal and the job has more than one batch), and the byte bar
 * of a hub download, drawn from the counts the library reports.
 */
import * as cliProgress from 'cli-progress';
import type { DownloadProgress } from '../index';

export type ProgressMode = 'auto' | 'on' | 'off';

export class Progress {
  private constructor(private readonly bar: cliProgress.SingleBar | undefined, private total: number) {}

  static create(mode: ProgressMode, label: string, total: number | undefined, batches: number | undefined, stream: NodeJS.WriteStream): Progress {
    const tty = !!stream.isTTY;
    const show = mode === 'on' || (mode === 'auto' && tty && (batches === undefined || batches > 1));
    if (!show) return new Progress(undefined, total ?? 0);
    const bar = new cliProgress.SingleBar({
      stream,
      format: `${label} [{bar}] {value}/{total} | {duration_formatted} | eta {eta_formatted}`,
      noTTYOutput: !tty, // --progress on with a pipe: print plain lines
      notTTYSchedule: 2000,
      hideCursor: tty,
      clearOnComplete: false,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    bar.start(total ?? 0, 0);
    return new Progress(bar, total ?? 0);
  }

  get active(): boolean {
    return this.bar !== undefined;
  }

  /** `done` items so far; `seen` grows the total when the input length was not known up front. */
  update(done: number, seen?: number): void {
    if (!this.bar) return;
    if (seen !== undefined && seen > this.total) {
      this.total = seen;
      this.bar.setTotal(seen);
    }
    this.bar.update(done);
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** A byte bar for a hub download, in cli-progress: `update` with the hub's counts, then `stop`. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): { update: (p: DownloadProgress) => void; stop: () => void } {
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${label} |{bar}| {percentage}% {doneBytes}/{totalBytes} {file}`,
    hideCursor: true,
    noTTYOutput: !stream.isTTY,
    notTTYSchedule: 2000,
  });
  let running = false;
  const stop = () => {
    if (running) bar.stop();
    running = false;
    process.removeListener('exit', stop);
  };
  return {
    update(p) {
      const payload = { doneBytes: formatBytes(p.bytes), totalBytes: formatBytes(p.total), file: p.file };
      if (!running) {
        bar.start(Math.max(p.total, 1), p.bytes, payload);
        running = true;
        process.once('exit', stop); // a failed download still gives the cursor back
      }
      bar.setTotal(Math.max(p.total, 1));
      bar.update(p.bytes, payload);
    },
    stop,
  };
}

/**
 * The hub's progress callback for a model download: a bar on `stream` from the first byte count,
 * closed when every planned byte has arrived (a last file reported twice draws nothing more).
 */
export function downloadBar(label: string, stream: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  const bar = progressBar(label, stream);
  let finished = false;
  return (p) => {
    if (finished) return;
    bar.update(p);
    if (p.bytes >= p.total) {
      finished = true;
      bar.stop();
    }
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
