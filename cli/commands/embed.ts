/**
 * `e5 embed`: one embedding per input, in input order. Long inputs are read, embedded and
 * written in chunks (--chunk-size texts per library call; the library sorts each chunk by
 * length into batches and restores the order), so memory stays flat.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { backendInfo } from '../../index';
import type { EmbeddingModel, PoolingMode, Prefix } from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, describeBackend, GeneralOptions, intArg,
  ModelOptions, modelLabel, openModel, Reporter, usageError,
} from '../common';
import { EMBED_FORMATS, EmbedFormat, embeddingWriter, RunSettings } from '../embedding-writers';
import { toolVersion } from '../format';
import { chunked } from '../input';
import { checkWritableFolder, isStdout, outputConflict, removeStaleTempFiles } from '../output';
import { addShardOptions, shardLabel, ShardOptions } from '../shard';
import { EmbedShard } from '../shard-embed';
import { addInputOptions, inputSource, InputOptions } from '../sources';
import { WarningTally } from '../warnings';

interface EmbedOptions extends ModelOptions, BackendOptions, GeneralOptions, InputOptions, ShardOptions {
  prefix: Prefix;
  pooling?: PoolingMode;
  normalize: boolean;
  maxLength?: number;
  batchSize: number;
  format?: EmbedFormat;
  output?: string;
  force?: boolean;
  chunkSize: number;
}

const EXTENSION_FORMATS: Record<string, EmbedFormat> = { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.json': 'json', '.npy': 'npy', '.safetensors': 'safetensors' };

export function register(program: Command): Command {
  const cmd = program.command('embed')
    .description('embed texts: one vector per input, in input order (JSONL on stdout by default)')
    .argument('[text...]', 'texts to embed (or --input)');
  addInputOptions(cmd);
  cmd
    .addOption(new Option('--prefix <prefix>', "prepend 'query: ' or 'passage: ' to every input (e5 was trained with them); none: as given — embed cannot know a text's role (a symmetric task wants 'query: ' on both sides), so it adds none unless told and warns about e5 inputs with neither (e5 similarity knows the roles and adds both)")
      .choices(['query', 'passage', 'none']).default('none'))
    .addOption(new Option('--pooling <mode>', "pooling (default: the model's 1_Pooling/config.json, else mean)").choices(['mean', 'cls', 'max']))
    .option('--no-normalize', 'do not L2-normalise the embeddings')
    .addOption(new Option('--max-length <n>', "truncate each input to N tokens incl. [CLS] and [SEP] (default: the model's limit, 512)").argParser(intArg(2)))
    .addOption(new Option('--batch-size <n>', 'rows per forward pass').argParser(intArg(1)).default(32))
    .addOption(new Option('-f, --format <fmt>', 'output format (default: from the --output extension, which must be one of .jsonl .ndjson .json .npy .safetensors; jsonl on stdout)').choices([...EMBED_FORMATS]))
    .option('-o, --output <file>', "write to FILE (via a temp file, renamed when complete) instead of stdout ('-' = stdout)")
    .option('--force', 'replace an existing --output file')
    .addOption(new Option('--chunk-size <n>', 'inputs per library call, and per --shard block: keep it the same in every shard of a job').argParser(intArg(1)).default(256));
  addShardOptions(cmd);
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
Output (jsonl, one line per input): {"index": 0, "id": "...", "n_tokens": 12, "truncated": false, "embedding": [...]}
  "id" is copied from --id-field of JSONL input when present; with --on-error skip, "line" is
  the input line number (safetensors: "lines" in __metadata__; npy has no place for it). Without TEXT or --input, texts are
  read from stdin when it is not a terminal. npy: an (N, dim) float32 matrix;
  safetensors: tensor "embeddings" [N, dim] with the run settings, ids and n_tokens in __metadata__.

Scale-out: with --shard I/N (or inside a Slurm job array / Kubernetes Indexed Job) only blocks
b = I, I+N, I+2N... of --chunk-size inputs are embedded, into --output (jsonl, npy or safetensors)
plus a sidecar FILE.shard.json; 'e5 merge --output ALL SHARD_FILES...' joins them in input order.
Every shard of a job needs the same model, input, --chunk-size, --prefix, --pooling, --max-length,
--backend (and environment: E5_SHARD_COUNT): a rerun of a task too (deploy/README.md).

Examples:
  $ e5 embed --prefix query "how much protein should a female eat"
  $ e5 embed --prefix passage --input passages.jsonl --id-field doc_id --output passages.jsonl
  $ cat texts.txt | e5 embed --prefix passage --format npy > texts.npy`);
  return cmd.action((texts: string[], o: EmbedOptions, c: Command) => embed(texts, o, c));
}

/** --format, else the --output extension's, else jsonl (stdout); an --output whose extension says no format is a usage error. */
function resolveFormat(o: EmbedOptions, cmd: Command): EmbedFormat {
  if (o.format) return o.format;
  if (!o.output) return 'jsonl';
  const byExtension = EXTENSION_FORMATS[path.extname(o.output).toLowerCase()];
  // A device, FIFO or link (/dev/null, a named pipe) has no extension to read: JSONL, the stream
  // format, and the output checks say what they say of it (a dangling link, a directory, ...).
  if (!byExtension && !isPlainFileOrNew(o.output)) return 'jsonl';
  if (!byExtension) {
    usageError(cmd, `--output ${o.output}: the extension names no format (${Object.keys(EXTENSION_FORMATS).join(', ')}); rename it or give --format`);
  }
  return byExtension;
}

/** Whether `file` does not exist (not even as a link) or is a regular file: a file an extension can name the format of. */
function isPlainFileOrNew(file: string): boolean {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  return st === undefined || st.isFile();
}

/** What this run used, as JSON and safetensors outputs record it. */
function runSettings(m: EmbeddingModel, o: EmbedOptions): RunSettings {
  return {
    model: modelLabel(m),
    model_dir: m.info.dir,
    revision: m.info.revision,
    commit: m.info.commit,
    backend: backendInfo(),
    precision: m.info.precision,
    prefix: o.prefix,
    pooling: o.pooling ?? m.bert.defaultPooling,
    normalize: o.normalize,
    max_length: o.maxLength ?? m.maxLength,
    batch_size: o.batchSize,
    dim: m.config.hiddenSize,
    tool: toolVersion(),
  };
}

async function embed(texts: string[], o: EmbedOptions, cmd: Command): Promise<void> {
  const r = Reporter.from(o);
  if (o.output !== undefined && isStdout(o.output)) o.output = undefined; // '-', /dev/stdout: stdout
  const format = resolveFormat(o, cmd);
  if ((format === 'npy' || format === 'safetensors') && !o.output && process.stdout.isTTY) {
    usageError(cmd, `--format ${format} is binary: give --output FILE, or redirect stdout`);
  }
  if (o.output) {
    const conflict = outputConflict(o.output, !!o.force);
    if (conflict) usageError(cmd, conflict);
    checkWritableFolder(o.output);
    removeStaleTempFiles(o.output).forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  }
  const shard = EmbedShard.resolve(cmd, o, format);
  const source = inputSource(cmd, texts, o, r);
  await source.ready();

  const t0 = performance.now();
  const m = await openModel(o, { embeddingOnly: true });
  if (o.maxLength !== undefined && o.maxLength > m.config.maxPositionEmbeddings) {
    usageError(cmd, `--max-length ${o.maxLength} exceeds the model's ${m.config.maxPositionEmbeddings} positions`);
  }
  const settings = runSettings(m, o);
  shard?.start().forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  const writer = embeddingWriter(format, o.output, settings, { replace: !!o.force, lines: o.onError === 'skip' });
  const tally = new WarningTally();
  // Counting a file's lines costs a read of it: only when a bar may be shown.
  const all = r.mayShowBar() ? await source.total() : undefined;
  const total = shard ? shard.owned(all) : all;
  const bar = r.progress('embed', total, total === undefined ? undefined : Math.ceil(total / o.batchSize));
  let done = 0;
  try {
    for await (const chunk of chunked(shard ? shard.records(source.records) : source.records, o.chunkSize)) {
      const res = await m.embed(chunk.map((x) => x.text), {
        prefix: o.prefix,
        pooling: o.pooling,
        normalize: o.normalize,
        batchSize: o.batchSize,
        maxLength: o.maxLength,
        onProgress: (d) => bar.update(done + d, done + chunk.length),
      });
      res.warnings.forEach((w) => tally.add(w));
      tally.countInputs(chunk.length);
      await writer.write(chunk, res);
      done += chunk.length;
    }
    if (done === 0 && source.skipped() > 0) {
      source.reportSkips();
      throw new Error(`nothing embedded: every input line was skipped (--on-error skip); no output written`);
    }
    await writer.finish();
    shard?.finish(m, settings, done);
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    bar.stop();
  }
  tally.messages().forEach((w) => r.warn(w));
  source.reportSkips();
  const seconds = (performance.now() - t0) / 1000;
  const part = shard ? ` as shard ${shardLabel(shard.spec)} (${shard.spec.source})` : '';
  r.note(`embedded ${done} input${done === 1 ? '' : 's'}${part} (dim ${settings.dim}) with ${settings.model} on ${describeBackend(settings.backend)} in ${seconds.toFixed(1)} s${o.output ? ` → ${o.output}` : ''}`);
}
