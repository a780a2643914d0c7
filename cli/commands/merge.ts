/**
 * `e5 merge`: join the outputs of `e5 embed --shard I/N` into one file in input order — the file a
 * single `e5 embed` over all the inputs writes (JSONL and .npy byte for byte). Every shard's
 * sidecar (cli/shard-manifest.ts) is checked first: all from one model, settings and input, each
 * shard exactly once, each file the size its sidecar says; any problem is exit 1 naming the files.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import { Command } from 'commander';
import { SafetensorsFile, writeSafetensors } from '../../index';
import { addGeneralOptions, GeneralOptions, Reporter, usageError } from '../common';
import { InputDataError } from '../errors';
import { NpyRowWriter, readNpyHeader } from '../npy';
import { AtomicFile, checkWritableFolder, outputConflict } from '../output';
import { manifestMismatch, readManifest, ShardedFormat, ShardManifest } from '../shard-manifest';

interface MergeOptions extends GeneralOptions {
  output: string;
  force?: boolean;
}

const EXTENSIONS: Record<ShardedFormat, string[]> = { jsonl: ['.jsonl', '.ndjson'], npy: ['.npy'], safetensors: ['.safetensors'] };

export function register(program: Command): Command {
  const cmd = program.command('merge')
    .description("join 'e5 embed --shard I/N' outputs into one file in input order")
    .argument('<shard-file...>', "the shards' output files (each with its FILE.shard.json beside it)")
    .requiredOption('-o, --output <file>', 'the joined file (same format as the shards; via a temp file, renamed when complete)')
    .option('--force', 'replace an existing --output file');
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
Refused (exit 1, naming the files): a shard missing or given twice, a file without its sidecar or
of another size than it says, shards of different models, settings, inputs or shard counts.

Example:
  $ e5 merge --output passages.npy parts/passages-*.npy`);
  return cmd.action((files: string[], o: MergeOptions, c: Command) => merge(files, o, c));
}

interface Part {
  file: string;
  m: ShardManifest;
}

async function merge(files: string[], o: MergeOptions, cmd: Command): Promise<void> {
  const conflict = outputConflict(o.output, !!o.force);
  if (conflict) usageError(cmd, conflict);
  checkWritableFolder(o.output);
  const inputs = files.map((f) => f.replace(/\.shard\.json$/, ''));
  if (inputs.some((f) => path.resolve(f) === path.resolve(o.output))) usageError(cmd, `--output ${o.output} is one of the shards`);
  const byIndex = checkedParts(inputs);
  const first = byIndex[0].m;
  const ext = path.extname(o.output).toLowerCase();
  const known = Object.entries(EXTENSIONS).find(([, exts]) => exts.includes(ext));
  if (known && known[0] !== first.output.format) usageError(cmd, `--output ${o.output} names a ${known[0]} file, but the shards are ${first.output.format}`);

  const t0 = performance.now();
  if (first.output.format === 'jsonl') await joinJsonl(byIndex, o.output);
  else if (first.output.format === 'npy') joinNpy(byIndex, o.output);
  else joinSafetensors(byIndex, o.output);
  Reporter.from(o).note(`merged ${byIndex.length} shards (${first.input.count} rows, ${first.output.format}) in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${o.output}`);
}

/** The parts by shard index, after every check that needs no data read. */
function checkedParts(files: string[]): Part[] {
  const parts = files.map((file) => ({ file, m: readManifest(file) }));
  const ref = parts[0];
  for (const p of parts.slice(1)) {
    const why = manifestMismatch(ref.m, p.m);
    if (why) throw new InputDataError(`${p.file} does not belong with ${ref.file}: ${why}`);
  }
  const N = ref.m.shard.count;
  const byIndex = new Array<Part | undefined>(N);
  for (const p of parts) {
    const i = p.m.shard.index;
    if (byIndex[i]) throw new InputDataError(`shard ${i}/${N} given twice: ${byIndex[i]!.file} and ${p.file}`);
    byIndex[i] = p;
  }
  const missing = [...byIndex.keys()].filter((i) => !byIndex[i]);
  if (missing.length) {
    const B = ref.m.shard.block_size, total = ref.m.input.count;
    const where = (i: number) => `${i}/${N} (inputs from ${i * B}${(i + N) * B < total ? `, ${(i + N) * B}` : ''}${(i + 2 * N) * B < total ? ', ...' : ''})`;
    throw new InputDataError(`missing shard${missing.length === 1 ? '' : 's'} ${missing.map(where).join(', ')} of the ${N} made from ${ref.file}'s input`);
  }
  return byIndex as Part[];
}

/** Global input order: block b of every shard's ranges, b = 0, 1, ... across shards round-robin. */
function* blocks(parts: Part[]): Generator<{ part: number; start: number; end: number }> {
  const nBlocks = Math.ceil(parts[0].m.input.count / parts[0].m.shard.block_size);
  const N = parts.length;
  for (let b = 0; b < nBlocks; b++) {
    const [start, end] = parts[b % N].m.ranges[Math.floor(b / N)];
    yield { part: b % N, start, end };
  }
}

async function joinJsonl(parts: Part[], output: string): Promise<void> {
  const readers = parts.map((p) => {
    const rl = readline.createInterface({ input: fs.createReadStream(p.file), crlfDelay: Infinity });
    return { rl, lines: rl[Symbol.asyncIterator](), line: 0 };
  });
  const out = new AtomicFile(output);
  try {
    for (const { part, start, end } of blocks(parts)) {
      const rd = readers[part];
      let text = '';
      for (let i = start; i < end; i++) {
        const next = await rd.lines.next();
        rd.line++;
        const where = `${parts[part].file}:${rd.line}`;
        if (next.done) throw new InputDataError(`${where}: the file ends, expected the row of input ${i}`);
        const index = /^\{"index":(\d+)[,}]/.exec(next.value)?.[1];
        if (index !== String(i)) throw new InputDataError(`${where}: row ${index === undefined ? 'without an "index"' : `of input ${index}`}, expected input ${i}`);
        text += `${next.value}\n`;
      }
      out.write(text);
    }
    for (const [p, rd] of readers.entries()) {
      if (!(await rd.lines.next()).done) throw new InputDataError(`${parts[p].file}:${rd.line + 1}: more rows than its sidecar lists`);
    }
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  } finally {
    readers.forEach((rd) => rd.rl.close());
  }
}

function joinNpy(parts: Part[], output: string): void {
  const dim = parts[0].m.settings.dim;
  const inputs = parts.map((p) => {
    const h = readNpyHeader(p.file);
    if (h.shape.length !== 2 || h.shape[0] !== p.m.rows || h.shape[1] !== dim) {
      throw new InputDataError(`${p.file}: shape (${h.shape.join(', ')}), its sidecar says (${p.m.rows}, ${dim})`);
    }
    return { fd: fs.openSync(p.file, 'r'), at: h.dataOffset };
  });
  const out = new AtomicFile(output);
  try {
    const matrix = new NpyRowWriter(out, dim);
    for (const { part, start, end } of blocks(parts)) {
      const src = inputs[part];
      const rows = new Float32Array((end - start) * dim);
      const bytes = new Uint8Array(rows.buffer);
      if (fs.readSync(src.fd, bytes, 0, bytes.length, src.at) !== bytes.length) throw new InputDataError(`${parts[part].file}: ends before the rows of inputs ${start}-${end - 1}`);
      src.at += bytes.length;
      for (let r = 0; r < end - start; r++) matrix.append(rows.subarray(r * dim, (r + 1) * dim));
    }
    matrix.finish();
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  } finally {
    inputs.forEach((i) => fs.closeSync(i.fd));
  }
}

/** Shards are whole matrices in memory (as a safetensors output is anyway); metadata lists are joined in order. */
function joinSafetensors(parts: Part[], output: string): void {
  const dim = parts[0].m.settings.dim;
  const loaded = parts.map((p) => {
    const st = SafetensorsFile.open(p.file);
    try {
      const info = st.tensors.get('embeddings');
      if (!info || info.shape.length !== 2 || info.shape[0] !== p.m.rows || info.shape[1] !== dim) {
        throw new InputDataError(`${p.file}: tensor "embeddings" is ${info ? `[${info.shape.join(', ')}]` : 'missing'}, its sidecar says [${p.m.rows}, ${dim}]`);
      }
      const list = <T>(key: string): T[] | undefined => (st.metadata[key] === undefined ? undefined : JSON.parse(st.metadata[key]) as T[]);
      return { data: st.readF32('embeddings'), metadata: st.metadata, nTokens: list<number>('n_tokens'), truncated: list<boolean>('truncated'), ids: list<string | number | null>('ids'), at: 0 };
    } finally {
      st.close();
    }
  });
  const total = parts[0].m.input.count;
  const data = new Float32Array(total * dim);
  const nTokens: number[] = [], truncated: boolean[] = [], ids: Array<string | number | null> = [];
  for (const { part, start, end } of blocks(parts)) {
    const src = loaded[part];
    data.set(src.data.subarray(src.at * dim, (src.at + end - start) * dim), start * dim);
    for (let r = src.at; r < src.at + end - start; r++) {
      nTokens.push(src.nTokens?.[r] ?? 0);
      truncated.push(src.truncated?.[r] ?? false);
      ids.push(src.ids?.[r] ?? null);
    }
    src.at += end - start;
  }
  const { ids: _ids, ...base } = loaded[0].metadata;
  const metadata: Record<string, string> = {
    ...base,
    n_tokens: JSON.stringify(nTokens),
    truncated: JSON.stringify(truncated),
    ...(ids.some((x) => x !== null) ? { ids: JSON.stringify(ids) } : {}),
  };
  writeSafetensors(output, { embeddings: { dtype: 'F32', shape: [total, dim], data } }, metadata);
}
