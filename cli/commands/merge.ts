/**
 * `e5 merge`: join the outputs of `e5 embed --shard I/N` into one file in input order — the file a
 * single `e5 embed` over all the inputs writes (JSONL and .npy byte for byte). Every shard's
 * sidecar (cli/shard-manifest.ts) is checked first: all from one model, settings and input, each
 * shard exactly once, each file the name, size and sha256 its sidecar says; any problem is exit 1
 * naming the files.
 */
import * as path from 'path';
import { Command } from 'commander';
import { addGeneralOptions, GeneralOptions, Reporter, usageError } from '../common';
import { InputDataError } from '../errors';
import { checkWritableFolder, outputConflict, removeStaleTempFiles } from '../output';
import { joinJsonl, joinNpy, joinSafetensors, Part } from '../shard-join';
import { manifestMismatch, readManifest, ShardedFormat } from '../shard-manifest';

interface MergeOptions extends GeneralOptions {
  output: string;
  force?: boolean;
}

/** Missing shards listed by index; the rest are counted. */
const MAX_LISTED = 20;

const EXTENSIONS: Record<ShardedFormat, string[]> = { jsonl: ['.jsonl', '.ndjson'], npy: ['.npy'], safetensors: ['.safetensors'] };

export function register(program: Command): Command {
  const cmd = program.command('merge')
    .description("join 'e5 embed --shard I/N' outputs into one file in input order")
    .argument('<shard-file...>', "the shards' output files (each with its FILE.shard.json beside it)")
    .requiredOption('-o, --output <file>', 'the joined file (same format as the shards; via a temp file, renamed when complete)')
    .option('--force', 'replace an existing --output file');
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
Refused (exit 1, naming the files): a shard missing or given twice, a file without its sidecar, of
another size or sha256 than it records or renamed without it, shards of different models, settings
(batch size, backend... included), inputs or shard counts. A file that appears at --output during
the merge is kept unless --force.

Example:
  $ e5 merge --output passages.npy parts/passages-*.npy`);
  return cmd.action((files: string[], o: MergeOptions, c: Command) => merge(files, o, c));
}

async function merge(files: string[], o: MergeOptions, cmd: Command): Promise<void> {
  const conflict = outputConflict(o.output, !!o.force);
  if (conflict) usageError(cmd, conflict);
  checkWritableFolder(o.output);
  removeStaleTempFiles(o.output).forEach((f) => Reporter.from(o).note(`removed ${f}, left by a merge that was killed`));
  const inputs = files.map((f) => f.replace(/\.shard\.json$/, ''));
  if (inputs.some((f) => path.resolve(f) === path.resolve(o.output))) usageError(cmd, `--output ${o.output} is one of the shards`);
  const byIndex = checkedParts(inputs);
  const first = byIndex[0].m;
  const ext = path.extname(o.output).toLowerCase();
  const known = Object.entries(EXTENSIONS).find(([, exts]) => exts.includes(ext));
  if (known && known[0] !== first.output.format) usageError(cmd, `--output ${o.output} names a ${known[0]} file, but the shards are ${first.output.format}`);

  const t0 = performance.now();
  const join = { jsonl: joinJsonl, npy: joinNpy, safetensors: joinSafetensors }[first.output.format];
  await join(byIndex, o.output, !!o.force);
  Reporter.from(o).note(`merged ${byIndex.length} shards (${first.input.count} rows, ${first.output.format}) in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${o.output}`);
}

/** Where shard counts differ, the usual cause: a rerun of some array tasks that took the count from its own array. */
const SHARD_COUNT_HINT = '; a rerun of single Slurm array tasks needs E5_SHARD_COUNT=N (the whole job\'s task count, e.g. sbatch --array=3 --export=ALL,E5_SHARD_COUNT=16), or --shard I/N: without it the task takes its own array\'s count (--array=3 alone: shard 0/1, all of the input)';

/** The parts by shard index, after every check that needs no data read. */
function checkedParts(files: string[]): Part[] {
  const parts = files.map((file) => ({ file, m: readManifest(file) }));
  const ref = parts[0];
  for (const p of parts.slice(1)) {
    const why = manifestMismatch(ref.m, p.m);
    if (why) throw new InputDataError(`${p.file} does not belong with ${ref.file}: ${why}${why.startsWith('shard count') ? SHARD_COUNT_HINT : ''}`);
  }
  const N = ref.m.shard.count;
  const byIndex = new Map<number, Part>();
  for (const p of parts) {
    const i = p.m.shard.index;
    const seen = byIndex.get(i);
    if (seen) throw new InputDataError(`shard ${i}/${N} given twice: ${seen.file} and ${p.file}`);
    byIndex.set(i, p);
  }
  if (byIndex.size < N) {
    // The first few missing indexes and a count: N comes from a file and may be 10^15.
    const missing: number[] = [];
    for (let i = 0; i < N && missing.length < MAX_LISTED; i++) if (!byIndex.has(i)) missing.push(i);
    const rest = N - byIndex.size - missing.length;
    const B = ref.m.shard.block_size, total = ref.m.input.count;
    const where = (i: number) => `${i}/${N} (inputs from ${i * B}${(i + N) * B < total ? `, ${(i + N) * B}` : ''}${(i + 2 * N) * B < total ? ', ...' : ''})`;
    const count = N - byIndex.size;
    throw new InputDataError(`missing shard${count === 1 ? '' : 's'} ${missing.map(where).join(', ')}${rest ? ` and ${rest} more` : ''} of the ${N} made from ${ref.file}'s input`);
  }
  return Array.from({ length: N }, (_, i) => byIndex.get(i)!);
}
