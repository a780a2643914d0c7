/**
 * `e5 verify`: check a model folder without running it — config.json, every tensor (names,
 * shapes and dtypes against the config, then every value read once for NaN/Inf and dropped),
 * the tokenizer files and their agreement, sentence-transformers files — and print a summary.
 *
 * Exit 3 when the folder's files are wrong (a check failed); exit 1 when they cannot be reached
 * (no such folder, hub/network or I/O errors).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import {
  BertTokenizer, Checkpoint, checkFolderAgreement, installedBackends, ModelFolderError, planParams, readBertConfig, readSentenceTransformersConfig, resolveModel, SafetensorsError,
} from '../../index';
import { addGeneralOptions, addModelOptions, downloadProgress, GeneralOptions, ModelOptions, Reporter } from '../common';
import { CheckFailed } from '../errors';

type VerifyOptions = ModelOptions & GeneralOptions;

/** Errors that mean "the files are wrong", as opposed to "the files could not be read". */
const CHECK_ERRORS = new Set(['FolderAgreementError', 'ConfigError', 'ParamsError', 'TokenizerError', 'SentenceTransformersError']);
const IO_CODES = new Set(['not_found', 'not_a_file', 'io_error', 'closed', 'big_endian_host']);

export function register(program: Command): Command {
  const cmd = program.command('verify')
    .description('check a model folder (config, every weight tensor, tokenizer files) without running it');
  addModelOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
Exit 0 when the folder is usable, 3 when a check fails (the error names the file and field or tensor),
1 when the folder cannot be reached (not found, offline, I/O error).

Examples:
  $ e5 verify --model ./my-e5-folder
  $ e5 verify --model intfloat/e5-large-unsupervised --offline`);
  return cmd.action((o: VerifyOptions) => verify(o));
}

export function isCheckFailure(e: unknown): boolean {
  if (e instanceof ModelFolderError) return e.kind === 'incomplete' || e.kind === 'invalid';
  if (e instanceof SafetensorsError) return !IO_CODES.has(e.code);
  return e instanceof Error && CHECK_ERRORS.has(e.name);
}

async function verify(o: VerifyOptions): Promise<void> {
  const r = Reporter.from(o);
  try {
    const resolved = await resolveModel(o.model, {
      revision: o.revision, offline: o.offline ? true : undefined, progress: downloadProgress(o),
    });
    const summary = check(resolved.dir, r);
    const where = resolved.repoId ? `${resolved.repoId}@${resolved.commit ?? resolved.revision} (${resolved.dir})` : resolved.dir;
    const rows = [['model', where], ...summary, ['backends', `${installedBackends().join(', ')} installed; auto runs ${installedBackends()[0] ?? 'none'}`]];
    const w = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join('') + 'ok\n');
  } catch (e) {
    if (isCheckFailure(e)) throw new CheckFailed((e as Error).message, { cause: e });
    throw e;
  }
}

/** The first names of a list, and how many more: a header may hold a million of them. */
function listed(names: string[], max = 20): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Every check, in the order a load would hit them; returns [label, value] rows. */
function check(dir: string, r: Reporter): string[][] {
  const config = readBertConfig(dir);
  const tokenizer = BertTokenizer.fromFolder(dir);
  tokenizer.warnings.forEach((w) => r.warn(w));
  const st = readSentenceTransformersConfig(dir);
  checkFolderAgreement(dir, config, tokenizer, st);
  const ckpt = Checkpoint.open(dir);
  let plan;
  try {
    plan = planParams(ckpt, config, dir);
    // Read every used tensor once: readF32 throws on NaN/Inf (naming the tensor and element).
    const skipped = new Set(plan.skipped);
    for (const name of ckpt.tensors.keys()) {
      if (skipped.has(name)) continue;
      ckpt.readF32(name);
    }
  } finally {
    ckpt.close();
  }
  const bytes = ckpt.files.reduce((n, f) => n + fs.statSync(f).size, 0);
  const files = fs.readdirSync(dir).filter((f) => /\.(json|txt|safetensors)$/.test(f)).sort();
  const c = config;
  return [
    ['files', `${files.join(', ')}`],
    ['weights', `${ckpt.files.length} file${ckpt.files.length === 1 ? '' : 's'}, ${(bytes / 1e6).toFixed(1)} MB`],
    ['tensors', `${ckpt.tensors.size - plan.skipped.length} used (${plan.dtypes.join(', ')})${plan.skipped.length ? `, skipped ${listed(plan.skipped)}` : ''}${plan.prefix ? `, names prefixed '${plan.prefix}'` : ''}`],
    ['parameters', plan.parameterCount.toLocaleString('en-US')],
    ['shape', `${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, ${c.numAttentionHeads} heads, FFN ${c.intermediateSize}, ${c.hiddenAct}, ${c.maxPositionEmbeddings} positions`],
    ['pooler', plan.hasPooler ? 'yes (pooler.dense)' : 'no'],
    ['vocab', `${tokenizer.vocabSize} tokens (config vocab_size ${c.vocabSize}), model_max_length ${tokenizer.modelMaxLength}, from ${path.basename(tokenizer.source)}`],
    ['pooling', st.pooling ? `${st.pooling} (from 1_Pooling/config.json)` : 'mean (default)'],
  ];
}
