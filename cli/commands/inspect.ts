/**
 * `e5 inspect`: run the model once and dump (or summarise) named activations.
 *
 * Inputs: TEXT arguments or --input (tokenized and right-padded, HF semantics), or --ids FILE
 * (token ids as reference.py reads them). Hooks: the default set (HF's hidden_states and
 * attentions, hook_pooled, hook_embedding), or --hooks globs, restricted by --layers.
 * Outputs: FILE.safetensors (float32, batch first, named by hook or --names hf), a directory of
 * .npy files (+ metadata.json), or a summary table on stdout.
 *
 * Extension point: further outputs (--html, --bertviz) take the InspectRun in `writeOutputs`;
 * interventions (--ablate) pass hook functions to runCaptured in `runInspect`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  allHookNames, backendInfo, defaultHookNames, EmbeddingModel, hookMatcher, HookName, parseHookName, Prefix, writeSafetensorsStreaming,
} from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, GeneralOptions, intArg, ModelOptions, modelLabel,
  openModel, Reporter, usageError,
} from '../common';
import { InputDataError } from '../errors';
import { fmtNumber, renderTable, shapeString, toolVersion } from '../format';
import { CapturedRun, runCaptured } from '../forward';
import { checkIdsForModel, IdsBatch, readIdsFile, rowsOf, toPaddedBatch } from '../ids';
import { hfName, NameStyle } from '../names';
import { writeNpy } from '../npy';
import { checkWritableFolder, outputConflict } from '../output';
import { addInputOptions, inputSource, InputOptions } from '../sources';
import { summarize } from '../stats';

interface InspectOptions extends ModelOptions, BackendOptions, GeneralOptions, InputOptions {
  ids?: string;
  hooks?: string[];
  layers?: number[];
  output?: string;
  force?: boolean;
  names: NameStyle;
  prefix: Prefix;
  maxLength?: number;
}

/** A tensor to write: its name in the output and how to get its float32 data. */
export interface DumpTensor {
  name: string;
  shape: number[];
  data(): Float32Array;
}

/** Everything one inspection produced; output writers (safetensors, npy, summary, html, ...) read it. */
export interface InspectRun {
  model: EmbeddingModel;
  ids: IdsBatch;
  texts?: string[];
  /** Token strings per row, padding included. */
  tokens: string[][];
  hooks: HookName[];
  tensors: DumpTensor[];
  captured: CapturedRun;
  metadata: Record<string, string>;
}

export function register(program: Command): Command {
  const cmd = program.command('inspect')
    .description('run the model once and dump or summarise named activations (TransformerLens hook names)')
    .argument('[text...]', 'texts to run (or --input, or --ids)');
  addInputOptions(cmd, { ids: false, onError: false });
  cmd
    .option('--ids <file>', 'token ids instead of texts: JSON {"input_ids": [[...]], "attention_mask": [[...]], "token_type_ids": [[...]]}')
    .option('--hooks <pattern...>', "hook names or globs, e.g. 'blocks.*.attn.hook_pattern' ('*' = all; default: hidden states, attention patterns, hook_pooled, hook_embedding)")
    .addOption(new Option('--layers <list>', 'only these layers for blocks.* hooks: 0,5,23 or ranges 0-3').argParser(parseLayers))
    .option('-o, --output <path>', 'FILE.safetensors, or a directory for one .npy per tensor (default: a summary table on stdout)')
    .option('--force', 'replace existing output files')
    .addOption(new Option('--names <style>', 'tensor names in the output: hook (TransformerLens) or hf (hidden_states.{i}, attentions.{i}, last_hidden_state, pooler_output)')
      .choices(['hook', 'hf']).default('hook'))
    .addOption(new Option('--prefix <prefix>', "prepend 'query: ' or 'passage: ' to TEXT inputs").choices(['query', 'passage', 'none']).default('none'))
    .addOption(new Option('--max-length <n>', 'truncate texts to N tokens').argParser(intArg(2)));
  // Reserved for the inspection issue: --ablate L.H,...  --html FILE  --bertviz FILE.json
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
The safetensors output opens in Python with safetensors.numpy.load_file(PATH); its __metadata__ holds
the model, backend, tool version, input ids, texts and token strings (JSON-encoded).

Examples:
  $ e5 inspect "query: how much protein should a female eat"
  $ e5 inspect --ids ids.json --output acts.safetensors --names hf
  $ e5 inspect --hooks 'blocks.*.attn.hook_pattern' --layers 0-3,23 --output acts/ "passage: the summit"`);
  return cmd.action((texts: string[], o: InspectOptions, c: Command) => inspect(texts, o, c));
}

export function parseLayers(value: string): number[] {
  const out = new Set<number>();
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new InvalidArgumentError(`'${part}' is not a layer or a range like 0-3.`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InvalidArgumentError(`range '${part}' runs backwards.`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

type OutputKind = { kind: 'safetensors'; file: string } | { kind: 'npy'; dir: string } | { kind: 'summary' };

function outputKind(cmd: Command, output: string | undefined): OutputKind {
  if (output === undefined) return { kind: 'summary' };
  if (output.endsWith('.safetensors')) return { kind: 'safetensors', file: output };
  const stat = fs.statSync(output, { throwIfNoEntry: false });
  if (output.endsWith('/') || stat?.isDirectory() || (!stat && path.extname(output) === '')) return { kind: 'npy', dir: output };
  usageError(cmd, `--output ${output}: expected FILE.safetensors or a directory (for .npy files)`);
}

async function inspect(texts: string[], o: InspectOptions, cmd: Command): Promise<void> {
  const r = Reporter.from(o);
  if (o.ids !== undefined && (texts.length || o.input !== undefined)) usageError(cmd, 'give --ids FILE or texts (TEXT / --input), not both');
  const out = outputKind(cmd, o.output);
  if (out.kind === 'safetensors') {
    const conflict = outputConflict(out.file, !!o.force);
    if (conflict) usageError(cmd, conflict);
    checkWritableFolder(out.file);
  }
  const source = o.ids === undefined ? inputSource(cmd, texts, { ...o, onError: 'abort' }, r) : undefined;
  const ids = o.ids !== undefined ? readIdsFile(o.ids) : undefined;

  const m = await openModel(o);
  const L = m.config.numHiddenLayers;
  const hooks = selectHooks(cmd, L, o.hooks, o.layers);
  if (out.kind === 'npy') checkNpyDir(cmd, out.dir, plannedNames(m, hooks, o.names), !!o.force);
  let batchIds: IdsBatch, tokens: string[][], inputTexts: string[] | undefined;
  if (ids) {
    checkIdsForModel(ids, m.config, o.ids!);
    batchIds = ids;
    tokens = ids.inputIds.map((row) => row.map((id) => tokenString(m, id)));
  } else {
    inputTexts = [];
    for await (const rec of source!.records) inputTexts.push(rec.text);
    if (!inputTexts.length) throw new InputDataError(`${o.input}: no inputs`);
    const prepared = m.prepare(inputTexts, o.prefix, (w) => r.warn(w));
    const enc = m.tokenizer.encodeBatch(prepared, { maxLength: o.maxLength ?? m.maxLength });
    const nTrunc = enc.encodings.filter((e) => e.truncated).length;
    if (nTrunc) r.warn(`${nTrunc} input${nTrunc === 1 ? ' was' : 's were'} truncated to ${o.maxLength ?? m.maxLength} tokens`);
    const { batchSize: B, seqLen: T } = enc;
    batchIds = { inputIds: rowsOf(enc.inputIds, B, T), attentionMask: rowsOf(enc.attentionMask, B, T), tokenTypeIds: rowsOf(enc.tokenTypeIds, B, T) };
    tokens = batchIds.inputIds.map((row) => row.map((id) => tokenString(m, id)));
  }

  const run = runInspect(m, batchIds, hooks, o, tokens, inputTexts);
  try {
    writeOutputs(run, out);
  } finally {
    run.captured.dispose();
  }
}

/** The hooks to capture: --hooks globs (each must match something) or the default set, then --layers. */
function selectHooks(cmd: Command, L: number, patterns: string[] | undefined, layers: number[] | undefined): HookName[] {
  const all = allHookNames(L);
  let names: HookName[];
  if (patterns) {
    for (const p of patterns) {
      if (!all.some(hookMatcher(p))) usageError(cmd, `--hooks '${p}' matches no hook point of this ${L}-layer model (e.g. hook_full_embed, blocks.0.attn.hook_pattern, blocks.*.hook_resid_post)`);
    }
    names = all.filter(hookMatcher(patterns));
  } else {
    names = defaultHookNames(L);
  }
  if (layers) {
    const bad = layers.filter((l) => l >= L);
    if (bad.length) usageError(cmd, `--layers ${bad.join(',')}: the model has layers 0-${L - 1}`);
    const keep = new Set(layers);
    names = names.filter((n) => {
      const layer = parseHookName(n)?.layer;
      return layer === undefined || keep.has(layer);
    });
  }
  return names;
}

function tokenString(m: EmbeddingModel, id: number): string {
  try {
    return m.tokenizer.idToToken(id);
  } catch {
    return `[id ${id}]`;
  }
}

function runInspect(m: EmbeddingModel, ids: IdsBatch, hooks: HookName[], o: InspectOptions, tokens: string[][], texts?: string[]): InspectRun {
  const captured = runCaptured(m, toPaddedBatch(ids), hooks);
  const { cache, output } = captured;
  const f32 = (t: { dataSync(): unknown }) => () => t.dataSync() as Float32Array;
  const tensors: DumpTensor[] = hooks.map((h) => {
    const t = cache.get(h);
    return { name: o.names === 'hf' ? hfName(h) : h, shape: t.shape, data: f32(t) };
  });
  if (o.names === 'hf') {
    tensors.push({ name: 'last_hidden_state', shape: output.lastHiddenState.shape, data: f32(output.lastHiddenState) });
    if (output.poolerOutput) tensors.push({ name: 'pooler_output', shape: output.poolerOutput.shape, data: f32(output.poolerOutput) });
  }
  const info = m.info;
  const metadata: Record<string, string> = {
    format: 'e5-tfjs-inspect',
    format_version: '1',
    tool: toolVersion(),
    model: modelLabel(m),
    model_dir: info.dir,
    ...(info.revision ? { revision: info.revision } : {}),
    ...(info.commit ? { commit: info.commit } : {}),
    backend: JSON.stringify(backendInfo()),
    names: o.names,
    hooks: JSON.stringify(hooks),
    input_ids: JSON.stringify(ids.inputIds),
    attention_mask: JSON.stringify(ids.attentionMask),
    token_type_ids: JSON.stringify(ids.tokenTypeIds),
    tokens: JSON.stringify(tokens),
    ...(texts ? { texts: JSON.stringify(texts), prefix: o.prefix } : {}),
    pooling: m.bert.defaultPooling,
  };
  return { model: m, ids, texts, tokens, hooks, tensors, captured, metadata };
}

function writeOutputs(run: InspectRun, out: OutputKind): void {
  switch (out.kind) {
    case 'safetensors': {
      const byName = new Map(run.tensors.map((t) => [t.name, t]));
      writeSafetensorsStreaming(out.file, run.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape })), (name) => byName.get(name)!.data(), run.metadata);
      break;
    }
    case 'npy':
      writeNpyDir(out.dir, run);
      break;
    case 'summary': {
      const rows = run.tensors.map((t) => {
        const s = summarize(t.data());
        return [t.name, shapeString(t.shape), fmtNumber(s.mean), fmtNumber(s.std), fmtNumber(s.min), fmtNumber(s.max)];
      });
      process.stdout.write(renderTable(['name', 'shape', 'mean', 'std', 'min', 'max'], rows, new Set([2, 3, 4, 5])));
      break;
    }
  }
}

/** The tensor names runInspect will produce (to check for existing files before running). */
function plannedNames(m: EmbeddingModel, hooks: HookName[], style: NameStyle): string[] {
  if (style === 'hook') return [...hooks];
  return [...hooks.map(hfName), 'last_hidden_state', ...(m.info.plan.hasPooler ? ['pooler_output'] : [])];
}

/** Existing NAME.npy / metadata.json files in the output folder need --force. */
function checkNpyDir(cmd: Command, dir: string, names: string[], force: boolean): void {
  if (force) return;
  const existing = [...names.map((n) => `${n}.npy`), 'metadata.json'].filter((f) => fs.existsSync(path.join(dir, f)));
  if (existing.length) usageError(cmd, `--output ${dir} already holds ${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}; pass --force to replace`);
}

/** One NAME.npy per tensor plus metadata.json, each written to a temp name and renamed. */
function writeNpyDir(dir: string, run: InspectRun): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(`${dir}: cannot create folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  for (const t of run.tensors) writeNpy(path.join(dir, `${t.name}.npy`), t.data(), t.shape);
  const meta = path.join(dir, 'metadata.json');
  const tmp = `${meta}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...run.metadata, tensors: run.tensors.map((t) => ({ name: t.name, shape: t.shape, file: `${t.name}.npy` })) }, null, 2) + '\n');
  fs.renameSync(tmp, meta);
}
