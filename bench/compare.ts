/**
 * The side-by-side measurement: every engine on every workload, in one process run, engines
 * alternating within each repeat (the starting engine rotates each repeat), so slow drifts of
 * the machine hit all engines alike. Medians of the repeats are reported.
 */
import type { Engine, EngineInfo, EngineName, RunResult } from './engines';
import { maxAbsDiff, median, spread } from './stats';
import type { Workload } from './workloads';

export interface RunRecord {
  seconds: number;
  outsideSeconds: number;
  tokenizeSeconds?: number;
}

export interface EngineWorkloadResult {
  engine: EngineName;
  runs: RunRecord[];
  warmups: RunRecord[];
  medianSeconds: number;
  medianOutsideSeconds: number;
  /** (max - min) / median of the timed runs. */
  spread: number;
  realTokens: number;
  paddedTokens: number;
  /** Real tokens per second at the median. */
  tokensPerSecond: number;
  /** max |probe - ours' probe| over the embedding of the first text (absent for ours). */
  maxAbsDiffVsOurs?: number;
}

export interface WorkloadResult {
  workload: string;
  kind: Workload['kind'];
  realTokens: number;
  results: EngineWorkloadResult[];
}

export interface EngineSummary extends EngineInfo {
  /** The very first forward (1×16): cold, includes one-time work such as XNNPACK weight packing. */
  firstForwardSeconds: number;
  peakRssKiB: number;
  osThreads?: number;
}

export interface CompareReport {
  repeats: number;
  warmup: number;
  engines: EngineSummary[];
  workloads: WorkloadResult[];
  notes: string[];
}

export interface CompareOptions {
  repeats: number;
  /** Untimed runs per engine before the timed ones, for batch workloads (the corpus gets none). */
  warmup: number;
  /** Idle milliseconds before each timed run, so the previous engine's thread pools go quiet. */
  settleMs: number;
  log: (line: string) => void;
}

const ms = (s: number) => `${(s * 1000).toFixed(s < 1 ? 1 : 0)} ms`;

function record(r: RunResult): RunRecord {
  return { seconds: r.seconds, outsideSeconds: r.outsideSeconds, tokenizeSeconds: r.tokenizeSeconds };
}

/** `first` is a small batch workload run once per engine before anything else (the cold forward). */
export async function compare(engines: Engine[], first: Workload, workloads: Workload[], o: CompareOptions): Promise<CompareReport> {
  const notes: string[] = [];
  const firstForward = new Map<EngineName, number>();
  for (const e of engines) {
    await e.prepare(first);
    const r = await e.run(first.name);
    firstForward.set(e.info.name, r.seconds);
    o.log(`first forward (${first.name}, cold): ${e.info.name} ${ms(r.seconds)}`);
  }

  const results: WorkloadResult[] = [];
  for (const w of workloads) {
    for (const e of engines) await e.prepare(w);
    const runs = new Map<EngineName, RunResult[]>(engines.map((e) => [e.info.name, []]));
    const warmups = new Map<EngineName, RunRecord[]>(engines.map((e) => [e.info.name, []]));
    const nWarm = w.kind === 'batch' ? o.warmup : 0;
    for (let i = 0; i < nWarm; i++) {
      for (const e of engines) warmups.get(e.info.name)!.push(record(await e.run(w.name)));
    }
    for (let rep = 0; rep < o.repeats; rep++) {
      const order = engines.map((_, i) => engines[(i + rep) % engines.length]);
      const line: string[] = [];
      for (const e of order) {
        await new Promise((resolve) => setTimeout(resolve, o.settleMs));
        const r = await e.run(w.name);
        runs.get(e.info.name)!.push(r);
        line.push(`${e.info.name} ${ms(r.seconds)}`);
      }
      o.log(`${w.name} repeat ${rep + 1}/${o.repeats}: ${line.join(', ')}`);
    }
    const ours = runs.get('ours')?.[0]?.probe;
    const perEngine = engines.map((e): EngineWorkloadResult => {
      const rs = runs.get(e.info.name)!;
      const secs = rs.map((r) => r.seconds);
      const med = median(secs);
      const real = rs[0].realTokens;
      if (real !== w.realTokens) {
        notes.push(`${e.info.name} on ${w.name}: ${real} real tokens, the workload has ${w.realTokens} (its tokenizer differs from ours on these texts)`);
      }
      return {
        engine: e.info.name, runs: rs.map(record), warmups: warmups.get(e.info.name)!,
        medianSeconds: med, medianOutsideSeconds: median(rs.map((r) => r.outsideSeconds)), spread: spread(secs),
        realTokens: real, paddedTokens: rs[0].paddedTokens, tokensPerSecond: real / med,
        maxAbsDiffVsOurs: e.info.name !== 'ours' && ours ? maxAbsDiff(rs[0].probe, ours) : undefined,
      };
    });
    results.push({ workload: w.name, kind: w.kind, realTokens: w.realTokens, results: perEngine });
  }

  const summaries: EngineSummary[] = [];
  for (const e of engines) {
    summaries.push({ ...e.info, firstForwardSeconds: firstForward.get(e.info.name)!, peakRssKiB: await e.peakRssKiB(), osThreads: e.osThreads() });
  }
  return { repeats: o.repeats, warmup: o.warmup, engines: summaries, workloads: results, notes };
}
