/**
 * Which share of the work this process does: `--shard I/N` (0-based), else the job scheduler's
 * array index, so the same command line runs unchanged as every task of a Slurm job array or a
 * Kubernetes Indexed Job.
 *
 *   --shard I/N                 explicit; always wins (--no-shard: never shard, whatever the env says)
 *   Slurm job array             I = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP,
 *                               N = SLURM_ARRAY_TASK_COUNT (the array must be one evenly spaced range)
 *   Kubernetes Indexed Job      I = JOB_COMPLETION_INDEX, N = --shard-count or E5_SHARD_COUNT
 *   --shard-count / E5_SHARD_COUNT with Slurm: N is given, and the task id itself is I (so a rerun of
 *                               single tasks, `sbatch --array=3,7`, still does shards 3 and 7 of N)
 *
 * When both a Slurm array id and JOB_COMPLETION_INDEX are set, neither wins: that is refused, and
 * --shard says which. Every malformed value is a usage error naming the variable.
 *
 * The work is cut into blocks (consecutive inputs, or corpus cache shards) dealt round-robin:
 * block b belongs to shard b mod N. The split depends only on input positions, never on timing.
 */
import { Command, Option } from 'commander';

export interface ShardSpec {
  /** 0-based. */
  index: number;
  count: number;
  /** Where I/N came from, for messages: '--shard', 'SLURM_ARRAY_TASK_ID=3 ...'. */
  source: string;
}

export interface ShardOptions {
  /** The I/N text, or false for --no-shard. */
  shard?: string | false;
  shardCount?: string;
}

/** A shard setting that cannot be used; the command reports it as a usage error (exit 2). */
export class ShardUsageError extends Error {}

/** --shard, --no-shard, --shard-count */
export function addShardOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--shard <I/N>', 'do only share I of N (0-based); default: from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when set'))
    .option('--no-shard', 'do all the work even inside a Slurm array or Kubernetes Indexed Job')
    .addOption(new Option('--shard-count <n>', 'N for a scheduler index without a count (Kubernetes; also E5_SHARD_COUNT)'));
}

const INTEGER = /^(0|[1-9][0-9]*)$/;

function integer(text: string, what: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!INTEGER.test(t) || !Number.isSafeInteger(n)) throw new ShardUsageError(`${what} is ${JSON.stringify(text)}, expected a non-negative integer`);
  return n;
}

function spec(index: number, count: number, source: string): ShardSpec {
  if (count < 1) throw new ShardUsageError(`${source}: the shard count must be at least 1, got ${count}`);
  if (index >= count) throw new ShardUsageError(`${source}: shard index ${index} is not below the shard count ${count} (indexes are 0-based)`);
  return { index, count, source };
}

/** "I/N" → a checked spec. */
export function parseShard(text: string, source = '--shard'): ShardSpec {
  const m = /^\s*([^/]*)\/([^/]*)$/.exec(text);
  if (!m) throw new ShardUsageError(`${source} ${JSON.stringify(text)}: expected I/N, e.g. 0/4 (the first of 4 shards)`);
  return spec(integer(m[1], `${source} index`), integer(m[2], `${source} count`), `${source} ${text.trim()}`);
}

/** The shard this process does, or undefined for all of the work. */
export function resolveShard(o: ShardOptions, env: NodeJS.ProcessEnv = process.env): ShardSpec | undefined {
  if (o.shard === false) return undefined;
  if (o.shard !== undefined) {
    if (o.shardCount !== undefined) throw new ShardUsageError('--shard-count goes with a scheduler index; --shard I/N already gives the count');
    return parseShard(o.shard);
  }
  const slurm = env.SLURM_ARRAY_TASK_ID, k8s = env.JOB_COMPLETION_INDEX;
  if (slurm !== undefined && k8s !== undefined) {
    throw new ShardUsageError(`both SLURM_ARRAY_TASK_ID=${slurm} and JOB_COMPLETION_INDEX=${k8s} are set; pass --shard I/N (or --no-shard)`);
  }
  const given = o.shardCount !== undefined ? { text: o.shardCount, name: '--shard-count' }
    : env.E5_SHARD_COUNT !== undefined ? { text: env.E5_SHARD_COUNT, name: 'E5_SHARD_COUNT' } : undefined;
  const count = given && integer(given.text, given.name);
  if (k8s !== undefined) {
    if (count === undefined) throw new ShardUsageError(`JOB_COMPLETION_INDEX=${k8s} is set but not the shard count: pass --shard-count N or set E5_SHARD_COUNT (the Job's completions)`);
    return spec(integer(k8s, 'JOB_COMPLETION_INDEX'), count, `JOB_COMPLETION_INDEX=${k8s}, ${given!.name}=${count}`);
  }
  if (slurm !== undefined) return slurmShard(env, count === undefined ? undefined : { count, name: given!.name });
  if (given) throw new ShardUsageError(`${given.name} needs a scheduler index (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); neither is set`);
  return undefined;
}

/** Slurm: the array's own count and offset, or a given count with the task id as the index. */
function slurmShard(env: NodeJS.ProcessEnv, given: { count: number; name: string } | undefined): ShardSpec {
  const id = integer(env.SLURM_ARRAY_TASK_ID!, 'SLURM_ARRAY_TASK_ID');
  if (given) return spec(id, given.count, `SLURM_ARRAY_TASK_ID=${id}, ${given.name}=${given.count}`);
  const read = (name: string, fallback?: number): number => {
    const v = env[name];
    if (v !== undefined) return integer(v, name);
    if (fallback === undefined) throw new ShardUsageError(`SLURM_ARRAY_TASK_ID is set but ${name} is not; pass --shard I/N or set E5_SHARD_COUNT`);
    return fallback;
  };
  const count = read('SLURM_ARRAY_TASK_COUNT');
  const min = read('SLURM_ARRAY_TASK_MIN', 0);
  const step = read('SLURM_ARRAY_TASK_STEP', 1);
  const max = read('SLURM_ARRAY_TASK_MAX', min + (count - 1) * step);
  if (step < 1 || max !== min + (count - 1) * step) {
    throw new ShardUsageError(`the Slurm array ${min}-${max}:${step} has ${count} tasks, not one evenly spaced range; use --array=0-(N-1), or set E5_SHARD_COUNT=N to take the task id as the shard index`);
  }
  if (id < min || (id - min) % step !== 0) throw new ShardUsageError(`SLURM_ARRAY_TASK_ID=${id} is not in the array ${min}-${max}:${step}`);
  return spec((id - min) / step, count, `SLURM_ARRAY_TASK_ID=${id} of ${min}-${max}:${step}`);
}

/** Does shard `s` own block `b`? (round-robin) */
export function ownsBlock(s: ShardSpec, block: number): boolean {
  return block % s.count === s.index;
}

/** How many blocks of `blockSize` among `total` items shard `s` owns (arithmetic: bounded for any total). */
export function ownedBlocks(s: ShardSpec, total: number, blockSize: number): number {
  const blocks = Math.ceil(total / blockSize);
  return blocks > s.index ? Math.ceil((blocks - s.index) / s.count) : 0;
}

/** [start, end) of the k-th block shard `s` owns (block s.index + k * s.count). */
export function ownedBlock(s: ShardSpec, k: number, total: number, blockSize: number): [number, number] {
  const b = s.index + k * s.count;
  return [b * blockSize, Math.min((b + 1) * blockSize, total)];
}

/** How many of `total` items, in blocks of `blockSize`, shard `s` owns. */
export function ownedCount(s: ShardSpec, total: number, blockSize: number): number {
  const k = ownedBlocks(s, total, blockSize);
  if (k === 0) return 0;
  const [start, end] = ownedBlock(s, k - 1, total, blockSize);
  return (k - 1) * blockSize + (end - start);
}

/** "2/8" */
export function shardLabel(s: ShardSpec): string {
  return `${s.index}/${s.count}`;
}
