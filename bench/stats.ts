/** Small statistics and machine facts for benchmark reports. */
import * as os from 'os';

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** (max - min) / median: how much the repeats disagree. */
export function spread(xs: number[]): number {
  return xs.length < 2 ? 0 : (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  platform: string;
  /** 1-minute load average when the run started and ended (other work on the machine = noise). */
  loadAvgStart: number;
  loadAvgEnd?: number;
  startedAt: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version, platform: `${os.platform()} ${os.release()}`,
    loadAvgStart: os.loadavg()[0], startedAt: new Date().toISOString(),
  };
}

/** A sentence about machine noise from the load averages. */
export function noiseNote(m: MachineInfo): string {
  const end = m.loadAvgEnd ?? m.loadAvgStart;
  const busiest = Math.max(m.loadAvgStart, end);
  const verdict = busiest > 0.5
    ? `other processes were using the CPUs (load > 0.5 on ${m.cores} cores): absolute times are noisy; ratios from the same run, alternating, are the numbers to trust`
    : 'the machine was otherwise idle';
  return `load average ${m.loadAvgStart.toFixed(2)} at start, ${end.toFixed(2)} at end — ${verdict}`;
}
