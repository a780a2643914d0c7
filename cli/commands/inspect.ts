/**
 * `e5 inspect`: run the model once and dump (or summarise) named activations.
 *
 * Inputs: TEXT arguments or --input (tokenized; each text runs at its own length, packed, and the
 * dump has the right-padded batch's layout with 0 at padding positions), or --ids FILE (token ids
 * as reference.py reads them, run as the padded batch they are, HF semantics). Hooks: the default set (HF's hidden_states and
 * attentions, hook_pooled, hook_embedding), or --hooks globs, restricted by --layers.
 * Outputs: FILE.safetensors (float32, batch first, named by hook or --names hf), a directory of
 * .npy files (+ metadata.json), or a summary table on stdout; plus --html (the attention viewer
 * of inspect/html.ts) and --bertviz (bertviz's head_view/model_view JSON).
 * Interventions: --ablate L.H,... zero- or mean-ablates heads at attn.hook_z in the same pass (an
 * input of the forward: on tensorflow the run stays compiled).
 * --query/--passage run the queries and passages instead of TEXT and add the layer-wise
 * similarity (a table on stdout without --output, the chart in --html, `layerwise` in metadata).
 * All the analysis is the library's (inspect/analysis.ts); this file only wires options to it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  AblationMode, allHookNames, AttentionViewData, attentionViewFromPatterns, backendInfo, blockHook, defaultHookNames, describeBackendInfo,
  EmbeddingModel, HeadIntervention, HeadRef, headIntervention, hookMatcher, HookName, InspectError, layerwiseSimilarity, LayerwiseSimilarity,
  PackedInput, packPadded, packSequences, paddedLayout, parseHeadList, parseHookName, Prefix, renderAttentionHtml, toBertvizJson, writeSafetensorsStreamingTo,
} from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, GeneralOptions, intArg, ModelOptions, modelLabel,
  openModel, Reporter, usageError,
} from '../common';
import { InputDataError } from '../errors';
import { fmtNumber, renderTable, shapeString, toolVersion, truncateLabel } from '../format';
import { CapturedRun, runCaptured } from '../forward';
import { checkIdsForModel, IdsBatch, readIdsFile, rowsOf, toPaddedBatch } from '../ids';
import { hfName, NameStyle } from '../names';
import { writeNpy } from '../npy';
import { AtomicFile, checkWritableFolder, outputConflict, writeTextFile } from '../output';
import { formatBytes } from '../progress';
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
  ablate?: string;
  ablateMode: AblationMode;
  html?: string;
  bertviz?: string;
  row: number;
  query?: string[];
  passage?: string[];
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
  /** The input texts as given, and as the model saw them (prefixed). */
  texts?: string[];
  modelTexts?: string[];
  /** Token strings per row, padding included. */
  tokens: string[][];
  hooks: HookName[];
  tensors: DumpTensor[];
  captured: CapturedRun;
  metadata: Record<string, string>;
  /** The layers whose attention patterns were captured for --html / --bertviz. */
  viewLayers: number[];
  /** --query/--passage: similarity at every depth. */
  layerwise?: LayerwiseSimilarity;
}

export function register(program: Command): Command {
  const cmd = program.command('inspect')
    .description('run the model once and dump or summarise named activations (TransformerLens hook names)')
    .argument('[text...]', 'texts to run (or --input, or --ids)');
  addInputOptions(cmd, { ids: false, onError: false });
  cmd
    .option('--ids <file>', 'token ids instead of texts: JSON {"input_ids": [[...]], "attention_mask": [[...]], "token_type_ids": [[...]]}')
    .option('--hooks <patterns>', "hook names or globs, comma-separated or the option repeated, e.g. 'blocks.*.attn.hook_pattern,hook_pooled' ('*' = all; default: hidden states, attention patterns, hook_pooled, hook_embedding)", hookListArg)
    .addOption(new Option('--layers <list>', 'only these layers for blocks.* hooks: 0,5,23 or ranges 0-3').argParser(parseLayers))
    .option('-o, --output <path>', 'FILE.safetensors, or a directory for one .npy per tensor (default: a summary table on stdout)')
    .option('--force', 'replace existing output files')
    .addOption(new Option('--names <style>', 'tensor names in the output: hook (TransformerLens) or hf (hidden_states.{i}, attentions.{i}, last_hidden_state, pooler_output)')
      .choices(['hook', 'hf']).default('hook'))
    .addOption(new Option('--prefix <prefix>', "prepend 'query: ' or 'passage: ' to TEXT inputs").choices(['query', 'passage', 'none']).default('none'))
    .addOption(new Option('--max-length <n>', 'truncate texts to N tokens').argParser(intArg(2)))
    .addOption(new Option('--ablate <heads>', 'ablate attention heads LAYER.HEAD,... (e.g. 3.5,0.1) at attn.hook_z in the same pass').argParser(parseAblate))
    .addOption(new Option('--ablate-mode <mode>', "zero: the head's output is 0; mean: its mean over the batch's real tokens").choices(['zero', 'mean']).default('zero'))
    .option('--html <file>', 'write a self-contained HTML attention viewer (head view, layers × heads, layer-wise similarity with --query/--passage)')
    .option('--bertviz <file>', "write one row's attention as the JSON bertviz's head_view/model_view take ({attention: [L][1][H][T][T], tokens})")
    .addOption(new Option('--row <n>', 'the row (text) --bertviz exports').argParser(intArg(0)).default(0))
    .option('--query <text...>', "queries ('query: ' is prepended): with --passage, instead of TEXT; adds the layer-wise similarity")
    .option('--passage <text...>', "passages ('passage: ' is prepended), with --query");
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
The safetensors output opens in Python with safetensors.numpy.load_file(PATH); its __metadata__ holds
the model, backend, tool version, input ids, texts and token strings (JSON-encoded).

Examples:
  $ e5 inspect "query: how much protein should a female eat"
  $ e5 inspect --ids ids.json --output acts.safetensors --names hf
  $ e5 inspect --hooks 'blocks.*.attn.hook_pattern' --layers 0-3,23 --output acts/ "passage: the summit"
  $ e5 inspect --ablate 3.5,0.1 --ablate-mode mean --output ablated.safetensors "query: summit define"
  $ e5 inspect --query "summit define" --passage "the highest point of a mountain" --passage "a meeting of leaders" --html view.html
  $ e5 inspect --bertviz attn.json --row 1 "query: summit define" "passage: the top of a mountain"

--query/--passage without --output print the similarity of each query and passage at every depth
(0 = embeddings output, then each layer; the last depth is the cosine of the embeddings).`);
  return cmd.action((texts: string[], o: InspectOptions, c: Command) => inspect(texts, o, c));
}

/** --ablate syntax (ranges are checked against the model once it is loaded). */
export function parseAblate(value: string): string {
  try {
    parseHeadList(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return value;
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
  const pairs = o.query !== undefined || o.passage !== undefined;
  if (pairs) {
    if (!o.query || !o.passage) usageError(cmd, '--query and --passage go together (the layer-wise similarity needs both)');
    if (texts.length || o.input !== undefined || o.ids !== undefined) usageError(cmd, 'give --query/--passage or inputs (TEXT, --input, --ids), not both');
    if (o.prefix !== 'none') usageError(cmd, "--prefix is for TEXT inputs; --query/--passage get 'query: '/'passage: ' anyway");
  }
  const out = outputKind(cmd, o.output);
  checkOutputFiles(cmd, o, out);
  const source = o.ids === undefined && !pairs ? inputSource(cmd, texts, { ...o, onError: 'abort' }, r) : undefined;
  const ids = o.ids !== undefined ? readIdsFile(o.ids) : undefined;
  await source?.ready();

  const m = await openModel(o);
  const L = m.config.numHiddenLayers;
  const hooks = selectHooks(cmd, L, o.hooks, o.layers);
  let heads: HeadRef[] | undefined;
  try {
    heads = o.ablate === undefined ? undefined : parseHeadList(o.ablate, m.config);
  } catch (e) {
    if (e instanceof InspectError) usageError(cmd, `--ablate ${o.ablate}: ${e.message}`);
    throw e;
  }
  if (out.kind === 'npy') checkNpyDir(cmd, out.dir, plannedNames(m, hooks, o.names), !!o.force);
  let inputs: Inputs;
  if (ids) {
    checkIdsForModel(ids, m.config, o.ids!);
    inputs = { ids, run: packPadded(toPaddedBatch(ids)), tokens: ids.inputIds.map((row) => row.map((id) => tokenString(m, id))) };
  } else if (pairs) {
    // Prefixed here, as e5 similarity does; the dump and the viewer show the texts the model saw.
    const prepared = [...m.prepare(o.query!, 'query', (w) => r.warn(w)), ...m.prepare(o.passage!, 'passage', (w) => r.warn(w))];
    inputs = tokenizeInputs(m, [...o.query!, ...o.passage!], prepared, o, r);
  } else {
    const texts: string[] = [];
    for await (const rec of source!.records) texts.push(rec.text);
    if (!texts.length) throw new InputDataError(`${o.input}: no inputs`);
    inputs = tokenizeInputs(m, texts, m.prepare(texts, o.prefix, (w) => r.warn(w)), o, r);
  }
  const B = inputs.ids.inputIds.length;
  if (o.bertviz !== undefined && o.row >= B) usageError(cmd, `--row ${o.row}: there ${B === 1 ? 'is 1 text' : `are ${B} texts`} (rows 0-${B - 1})`);

  const ablation = heads ? headIntervention(m.bert, inputs.run, heads, o.ablateMode) : undefined;
  try {
    const run = runInspect(m, inputs, hooks, o, ablation);
    try {
      if (pairs) {
        run.layerwise = layerwiseSimilarity(m, o.query!, o.passage!, { prefix: 'auto', maxLength: o.maxLength, heads: ablation });
        run.metadata.layerwise = JSON.stringify(run.layerwise);
      }
      if (o.html !== undefined) writeHtml(o.html, run, o, r);
      if (o.bertviz !== undefined) writeBertviz(o.bertviz, run, o, r);
      if (out.kind !== 'summary') writeOutputs(run, out);
      else if (run.layerwise) process.stdout.write(layerwiseTable(run.layerwise));
      else if (o.html === undefined && o.bertviz === undefined) writeOutputs(run, out);
    } finally {
      run.captured.dispose();
    }
  } finally {
    ablation?.dispose();
  }
}

/** Output files (--output FILE.safetensors, --html, --bertviz): exist only with --force, in a writable folder. */
function checkOutputFiles(cmd: Command, o: InspectOptions, out: OutputKind): void {
  const files: Array<[string, string | undefined]> = [['--output', out.kind === 'safetensors' ? out.file : undefined], ['--html', o.html], ['--bertviz', o.bertviz]];
  for (const [flag, file] of files) {
    if (file === undefined) continue;
    const conflict = outputConflict(file, !!o.force);
    if (conflict) usageError(cmd, conflict.replace(/^--output/, flag));
    checkWritableFolder(file);
  }
  if (o.row !== 0 && o.bertviz === undefined) usageError(cmd, '--row selects the text --bertviz exports; give --bertviz FILE.json');
}

/** The batch a run sees: ids (right-padded when tokenized here), token strings, and the texts if any. */
interface Inputs {
  ids: IdsBatch;
  /** What runs: texts tokenized here packed (no padding to compute), --ids as the padded batch it is. */
  run: PackedInput;
  tokens: string[][];
  /** As given, and as the model saw them (prefixed). */
  texts?: string[];
  modelTexts?: string[];
}

function tokenizeInputs(m: EmbeddingModel, texts: string[], prepared: string[], o: InspectOptions, r: Reporter): Inputs {
  const maxLength = o.maxLength ?? m.maxLength;
  const enc = m.tokenizer.encodeBatch(prepared, { maxLength });
  const nTrunc = enc.encodings.filter((e) => e.truncated).length;
  if (nTrunc) r.warn(`${nTrunc} input${nTrunc === 1 ? ' was' : 's were'} truncated to ${maxLength} tokens`);
  const { batchSize: B, seqLen: T } = enc;
  const ids = { inputIds: rowsOf(enc.inputIds, B, T), attentionMask: rowsOf(enc.attentionMask, B, T), tokenTypeIds: rowsOf(enc.tokenTypeIds, B, T) };
  return { ids, run: packSequences(enc.encodings), tokens: ids.inputIds.map((row) => row.map((id) => tokenString(m, id))), texts, modelTexts: prepared };
}

/** The similarity at each depth: one row per depth, one column per (query, passage), then a legend. */
function layerwiseTable(lw: LayerwiseSimilarity): string {
  const pairs = lw.queries.flatMap((_, q) => lw.passages.map((_, p) => [q, p] as const));
  const header = ['depth', 'hidden state', ...pairs.map(([q, p]) => `q${q}·p${p}`)];
  const rows = lw.depths.map((name, d) => [String(d), name, ...pairs.map(([q, p]) => fmtNumber(lw.scores[q][p][d]))]);
  const right = new Set(header.map((_, c) => c).filter((c) => c !== 1));
  const legend = [...lw.queries.map((t, q) => `q${q} = ${truncateLabel(t, 70)}`), ...lw.passages.map((t, p) => `p${p} = ${truncateLabel(t, 70)}`)];
  return renderTable(header, rows, right) + '\n' + legend.join('\n') + '\n';
}

/** --hooks: comma-separated, and repeatable (a variadic option would swallow the TEXT after it). */
function hookListArg(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** The hooks to capture: --hooks globs (each must match something) or the default set, then --layers. */
function selectHooks(cmd: Command, L: number, patterns: string[] | undefined, layers: number[] | undefined): HookName[] {
  const all = allHookNames(L);
  let names: HookName[];
  if (patterns) {
    for (const p of patterns) {
      if (all.some(hookMatcher(p))) continue;
      const hint = all.some(hookMatcher(`*.${p}`)) ? `did you mean '*.${p}'?` : 'e.g. hook_full_embed, blocks.0.attn.hook_pattern, blocks.*.hook_resid_post';
      usageError(cmd, `--hooks '${p}' matches no hook point of this ${L}-layer model (${hint})`);
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

function runInspect(m: EmbeddingModel, inputs: Inputs, hooks: HookName[], o: InspectOptions, heads: HeadIntervention | undefined): InspectRun {
  const { ids, tokens, texts } = inputs;
  // The viewer and bertviz need the attention of every layer shown (--layers, default all), dumped or not.
  const L = m.config.numHiddenLayers;
  const viewLayers = o.html !== undefined || o.bertviz !== undefined ? (o.layers ?? Array.from({ length: L }, (_, l) => l)) : [];
  const extra = viewLayers.map((l) => blockHook(l, 'attn.hook_pattern')).filter((n) => !hooks.includes(n));
  const captured = runCaptured(m, inputs.run, [...hooks, ...extra], { heads });
  const { cache, output } = captured;
  const f32 = (t: { dataSync(): unknown }) => () => t.dataSync() as Float32Array;
  const rows = inputs.run.rows;
  const tensors: DumpTensor[] = hooks.map((h) => ({ name: o.names === 'hf' ? hfName(h) : h, ...paddedLayout(h, cache.get(h), rows) }));
  if (o.names === 'hf') {
    tensors.push({ name: 'last_hidden_state', ...paddedLayout('last_hidden_state', output.lastHiddenState, rows) });
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
    precision: m.info.precision,
    names: o.names,
    hooks: JSON.stringify(hooks),
    input_ids: JSON.stringify(ids.inputIds),
    attention_mask: JSON.stringify(ids.attentionMask),
    token_type_ids: JSON.stringify(ids.tokenTypeIds),
    tokens: JSON.stringify(tokens),
    ...(texts ? { texts: JSON.stringify(texts), prefix: o.query ? 'auto' : o.prefix } : {}),
    pooling: m.bert.defaultPooling,
    ...(rows.uniformLength === undefined ? { padding: 'zero: each text ran at its own length (packed), nothing was computed at padding positions' } : {}),
    ...(o.ablate !== undefined ? { ablate: JSON.stringify(parseHeadList(o.ablate).map((h) => `${h.layer}.${h.head}`)), ablate_mode: o.ablateMode } : {}),
  };
  return { model: m, ids, texts, modelTexts: inputs.modelTexts, tokens, hooks, tensors, captured, metadata, viewLayers };
}

/** What the viewer and bertviz read: the captured patterns, cut to each row's real tokens. */
function viewData(run: InspectRun, o: InspectOptions): AttentionViewData {
  const L = run.model.config.numHiddenLayers;
  const notes = [
    run.viewLayers.length < L ? `layers ${run.viewLayers.join(', ')} of ${L}` : '',
    o.ablate !== undefined ? `heads ${o.ablate} ${o.ablateMode}-ablated` : '',
  ].filter(Boolean);
  // --ids has no texts: show the real tokens instead.
  const texts = run.modelTexts ?? run.tokens.map((row, r) => row.filter((_, t) => run.ids.attentionMask[r][t] === 1).join(' '));
  return attentionViewFromPatterns({
    model: modelLabel(run.model),
    backend: describeBackendInfo(),
    title: `e5 inspect: ${modelLabel(run.model)}${notes.length ? ` (${notes.join('; ')})` : ''}`,
    texts,
    tokens: run.tokens,
    attentionMask: run.ids.attentionMask,
    patterns: run.viewLayers.map((l) => run.captured.cache.get(blockHook(l, 'attn.hook_pattern'))),
    layerIndices: run.viewLayers,
    numHeads: run.model.config.numAttentionHeads,
    layerwise: run.layerwise && run.viewLayers.length === L ? run.layerwise : undefined,
  });
}

/** Bytes per value of each format: base64 of uint8 in the page, up to ~10 JSON characters in bertviz. */
const BYTES_PER_VALUE = { html: 4 / 3, bertviz: 10 } as const;
const LARGE_OUTPUT_BYTES = 50e6;

/** Warn before writing a big file: L·H·T² values per text (T real tokens of that text). */
function warnIfLarge(r: Reporter, flag: '--html' | '--bertviz', run: InspectRun, rows: number[]): void {
  const L = run.viewLayers.length, H = run.model.config.numAttentionHeads;
  const values = rows.reduce((s, row) => s + L * H * run.ids.attentionMask[row].reduce((a, b) => a + b, 0) ** 2, 0);
  const bytes = values * BYTES_PER_VALUE[flag === '--html' ? 'html' : 'bertviz'];
  if (bytes > LARGE_OUTPUT_BYTES) {
    r.warn(`${flag}: the file will be about ${Math.round(bytes / 1e6)} MB (${flag === '--html' ? '~1.33' : 'up to ~10'} bytes × layers × heads × tokens² per text); --layers or shorter texts make it smaller`);
  }
}


function writeHtml(file: string, run: InspectRun, o: InspectOptions, r: Reporter): void {
  warnIfLarge(r, '--html', run, run.ids.inputIds.map((_, i) => i));
  if (run.layerwise && run.viewLayers.length < run.model.config.numHiddenLayers) {
    r.warn('--html: the layer-wise similarity chart needs every layer; it is left out with --layers (the table and metadata keep it)');
  }
  writeTextFile(file, renderAttentionHtml(viewData(run, o)));
  const texts = run.ids.inputIds.length;
  r.note(`wrote ${file} (${formatBytes(fs.statSync(file).size)}): the attention viewer of ${texts} text${texts === 1 ? '' : 's'}, ${run.viewLayers.length} layer${run.viewLayers.length === 1 ? '' : 's'} × ${run.model.config.numAttentionHeads} heads; open it in a browser`);
}

function writeBertviz(file: string, run: InspectRun, o: InspectOptions, r: Reporter): void {
  warnIfLarge(r, '--bertviz', run, [o.row]);
  writeTextFile(file, JSON.stringify(toBertvizJson(viewData(run, o), o.row)) + '\n');
  r.note(`wrote ${file} (${formatBytes(fs.statSync(file).size)}): bertviz head_view/model_view data of text ${o.row}`);
}

function writeOutputs(run: InspectRun, out: OutputKind): void {
  switch (out.kind) {
    case 'safetensors': {
      const byName = new Map(run.tensors.map((t) => [t.name, t]));
      const file = new AtomicFile(out.file); // a device or FIFO is written in place, never renamed over
      try {
        writeSafetensorsStreamingTo(out.file, run.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape })), (name) => byName.get(name)!.data(), run.metadata, (bytes) => file.write(bytes));
        file.commit();
      } catch (e) {
        file.abort();
        throw e;
      }
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
