/**
 * A progress bar with ETA on stderr for the corpus encoding (hours on CPU), via cli-progress.
 * Shown when the stream is a TTY, or when forced (`progress: true`); never in pipes by default, so
 * logs and JSON output stay clean.
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  start(total: number, done: number): void;
  update(done: number): void;
  stop(): void;
}

const SILENT: Progress = { start() {}, update() {}, stop() {} };

export function makeProgress(label: string, enabled: boolean | 'auto', stream: NodeJS.WritableStream = process.stderr): Progress {
  // A terminal with TERM=dumb takes no cursor escapes: there the bar is as on a pipe (cli-progress
  // writes escapes wherever stream.isTTY is true, so it gets a plain writer).
  const terminal = (stream as NodeJS.WriteStream).isTTY === true;
  const isTTY = terminal && process.env.TERM !== 'dumb';
  if (enabled === false || (enabled === 'auto' && !isTTY)) return SILENT;
  const bar = new SingleBar({
    stream: terminal && !isTTY ? ({ write: (s: string) => stream.write(s), isTTY: false } as unknown as NodeJS.WritableStream) : stream,
    format: `${label} [{bar}] {percentage}% | {value}/{total} | {speed}/s | elapsed {duration_formatted} | ETA {eta_formatted}`,
    barsize: 30,
    hideCursor: isTTY,
    noTTYOutput: !isTTY, // forced on a pipe: plain lines at `notTTYSchedule` intervals
    notTTYSchedule: 10_000,
    etaBuffer: 50,
    fps: 5,
  });
  let startedAt = 0;
  let startValue = 0;
  const speed = (done: number) => {
    const s = (Date.now() - startedAt) / 1000;
    return s > 0 ? ((done - startValue) / s).toFixed(1) : '0';
  };
  return {
    start(total, done) {
      startedAt = Date.now();
      startValue = done;
      bar.start(total, done, { speed: '0' });
    },
    update(done) {
      bar.update(done, { speed: speed(done) });
    },
    stop() {
      bar.stop();
    },
  };
}
