/**
 * A progress bar on stderr (cli-progress), shown per --progress: `on` always, `off` never,
 * `auto` when stderr is a terminal and the job has more than one batch.
 */
import * as cliProgress from 'cli-progress';

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
