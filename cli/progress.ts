/**
 * Progress bars on stderr (cli-progress): the batch bar, shown per --progress (`on` always, `off`
 * never, `auto` when stderr is a terminal that takes cursor control and the job has more than one
 * batch; -q is `off` unless --progress on), and the byte bar of a hub download, drawn from the
 * counts the library reports. Where the bar cannot redraw in place (a pipe, a file, TERM=dumb) a
 * forced bar prints plain lines, never cursor escapes.
 */
import * as cliProgress from 'cli-progress';
import type { DownloadProgress } from '../index';

export type ProgressMode = 'auto' | 'on' | 'off';

/**
 * `stream` as cli-progress should see it, and whether a bar may redraw in place there. cli-progress
 * writes cursor escapes wherever `stream.isTTY` is true; a terminal with TERM=dumb cannot take them,
 * so it gets a plain writer that says it is not a terminal.
 */
export function barStream(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): { stream: NodeJS.WriteStream; tty: boolean } {
  if (!stream.isTTY) return { stream, tty: false };
  if (env.TERM !== 'dumb') return { stream, tty: true };
  const plain = { write: (s: string) => stream.write(s), isTTY: false, columns: stream.columns };
  return { stream: plain as unknown as NodeJS.WriteStream, tty: false };
}

export class Progress {
  private readonly t0 = performance.now();
  private constructor(private readonly bar: cliProgress.SingleBar | undefined, private total: number, private readonly unit: string) {}

  static create(mode: ProgressMode, label: string, total: number | undefined, batches: number | undefined, stream: NodeJS.WriteStream, unit = 'inputs'): Progress {
    const out = barStream(stream);
    const show = mode === 'on' || (mode === 'auto' && out.tty && (batches === undefined || batches > 1));
    if (!show) return new Progress(undefined, total ?? 0, unit);
    const bar = new cliProgress.SingleBar({
      stream: out.stream,
      format: `${label} [{bar}] {value}/{total} | {rate} | {duration_formatted} | eta {eta_formatted}`,
      noTTYOutput: !out.tty, // --progress on with a pipe or TERM=dumb: print plain lines
      notTTYSchedule: 2000,
      hideCursor: out.tty,
      clearOnComplete: false,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    const progress = new Progress(bar, total ?? 0, unit);
    bar.start(total ?? 0, 0, { rate: progress.rate(0) });
    return progress;
  }

  /** "12.3 inputs/s" since the bar started. */
  private rate(done: number): string {
    const seconds = (performance.now() - this.t0) / 1000;
    return `${seconds > 0 ? (done / seconds).toFixed(1) : '0.0'} ${this.unit}/s`;
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
    this.bar.update(done, { rate: this.rate(done) });
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** A byte bar for a hub download, in cli-progress: `update` with the hub's counts, then `stop`. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): { update: (p: DownloadProgress) => void; stop: () => void } {
  const out = barStream(stream);
  const bar = new cliProgress.SingleBar({
    stream: out.stream,
    format: `${label} |{bar}| {percentage}% {doneBytes}/{totalBytes} {file}`,
    hideCursor: out.tty,
    noTTYOutput: !out.tty,
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
