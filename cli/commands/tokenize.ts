/**
 * `e5 tokenize`: the tokenizer alone (no weights, no tfjs backend). Each input becomes one
 * object with HF's fields: tokens, input_ids, token_type_ids, attention_mask, offsets
 * ([start, end) in code points of the input, HF's offset_mapping), n_tokens, truncated.
 */
import * as fs from 'fs';
import { Command, Option } from 'commander';
import { BertTokenizer, Encoding, resolveModel } from '../../index';
import { addGeneralOptions, addModelOptions, downloadProgress, GeneralOptions, intArg, ModelOptions, Reporter, usageError } from '../common';
import { renderTable } from '../format';
import { chunked, InputRecord } from '../input';
import { checkWritableFolder, isStdout, outputConflict, removeStaleTempFiles, textSink } from '../output';
import { addInputOptions, inputSource, InputOptions } from '../sources';

interface TokenizeOptions extends ModelOptions, GeneralOptions, InputOptions {
  pairField: string;
  maxLength?: number;
  format: 'jsonl' | 'json' | 'table';
  output?: string;
  force?: boolean;
}

export function register(program: Command): Command {
  const cmd = program.command('tokenize')
    .description("tokenize texts (or text pairs) with the model's WordPiece tokenizer; loads no weights")
    .argument('[text...]', 'texts to tokenize (or --input)');
  addInputOptions(cmd);
  cmd
    .option('--pair-field <name>', 'JSONL field holding the optional second text of a pair', 'text_pair')
    .addOption(new Option('--max-length <n>', "truncate to N tokens incl. special tokens (pairs: HF's longest_first; default: the tokenizer's model_max_length)").argParser(intArg(2)))
    .addOption(new Option('-f, --format <fmt>', 'jsonl: one object per input; json: one array; table: for reading').choices(['jsonl', 'json', 'table']).default('jsonl'))
    .option('-o, --output <file>', 'write to FILE (via a temp file) instead of stdout')
    .option('--force', 'replace an existing --output file');
  addModelOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
Output (jsonl): {"index": 0, "tokens": ["[CLS]", "hello", "[SEP]"], "input_ids": [101, 7592, 102],
  "token_type_ids": [0, 0, 0], "attention_mask": [1, 1, 1], "offsets": [[0, 0], [0, 5], [0, 0]], "n_tokens": 3, "truncated": false}
  offsets are [start, end) in code points of the input (HF's offset_mapping).
JSONL input: {"text": "...", "text_pair": "..."} per line (text_pair optional).

Examples:
  $ e5 tokenize "query: how much protein should a female eat"
  $ e5 tokenize --format table "Hello, world!"
  $ e5 tokenize --input pairs.jsonl --max-length 128 --model ./my-e5-folder`);
  return cmd.action((texts: string[], o: TokenizeOptions, c: Command) => tokenize(texts, o, c));
}

/** The tokenizer of a model folder, or of a hub model (resolved through the cache). */
export async function openTokenizer(o: ModelOptions & GeneralOptions): Promise<BertTokenizer> {
  const stat = fs.statSync(o.model, { throwIfNoEntry: false });
  // A local folder only needs tokenizer files; resolveModel would also insist on weights.
  const dir = stat?.isDirectory() ? o.model : (await resolveModel(o.model, {
    revision: o.revision, offline: o.offline ? true : undefined, progress: downloadProgress(o),
  })).dir;
  return BertTokenizer.fromFolder(dir);
}

export function encodingJson(e: Encoding, r: Pick<InputRecord, 'index' | 'id'>): Record<string, unknown> {
  return {
    index: r.index,
    ...(r.id !== undefined ? { id: r.id } : {}),
    tokens: e.tokens,
    input_ids: Array.from(e.inputIds),
    token_type_ids: Array.from(e.tokenTypeIds),
    attention_mask: Array.from(e.attentionMask),
    offsets: e.offsets,
    n_tokens: e.nTokens,
    truncated: e.truncated,
  };
}

function encodingTable(e: Encoding, r: InputRecord): string {
  const title = `# ${r.index}${r.id !== undefined ? ` (id ${JSON.stringify(r.id)})` : ''}: ${e.nTokens} tokens${e.truncated ? ', truncated' : ''}\n`;
  const rows = e.tokens.map((t, i) => [String(i), t, String(e.inputIds[i]), String(e.tokenTypeIds[i]), String(e.attentionMask[i]), `${e.offsets[i][0]}-${e.offsets[i][1]}`]);
  return title + renderTable(['i', 'token', 'id', 'type', 'mask', 'offsets'], rows, new Set([0, 2, 3, 4])) + '\n';
}

async function tokenize(texts: string[], o: TokenizeOptions, cmd: Command): Promise<void> {
  const r = Reporter.from(o);
  if (o.output !== undefined && isStdout(o.output)) o.output = undefined; // '-', /dev/stdout: stdout
  if (o.output) {
    const conflict = outputConflict(o.output, !!o.force);
    if (conflict) usageError(cmd, conflict);
    checkWritableFolder(o.output);
    removeStaleTempFiles(o.output).forEach((f) => r.note(`removed ${f}, left by a run that was killed`));
  }
  const source = inputSource(cmd, texts, o, r, o.pairField);
  await source.ready();
  const tok = await openTokenizer(o);
  tok.warnings.forEach((w) => r.warn(w));
  const sink = textSink(o.output, { replace: !!o.force });
  let first = true, truncated = 0;
  try {
    if (o.format === 'json') await sink.write('[');
    for await (const chunk of chunked(source.records, 256)) {
      let s = '';
      for (const rec of chunk) {
        const e = tok.encode(rec.text, { pair: rec.pair, maxLength: o.maxLength });
        if (e.truncated) truncated++;
        if (o.format === 'table') s += encodingTable(e, rec);
        else if (o.format === 'jsonl') s += JSON.stringify(encodingJson(e, rec)) + '\n';
        else s += (first ? '\n' : ',\n') + JSON.stringify(encodingJson(e, rec));
        first = false;
      }
      await sink.write(s);
    }
    if (o.format === 'json') await sink.write(first ? ']\n' : '\n]\n');
    await sink.commit();
  } catch (e) {
    sink.abort();
    throw e;
  }
  if (truncated) r.warn(`${truncated} input${truncated === 1 ? ' was' : 's were'} truncated to ${o.maxLength ?? tok.modelMaxLength} tokens`);
  source.reportSkips();
}
