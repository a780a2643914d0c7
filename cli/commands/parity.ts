/**
 * `e5 parity`: compare our forward pass with a reference dump (e.g. PyTorch's, written by
 * test/parity/reference.py or the transformers snippet in the README), tensor by tensor.
 *
 * The inputs come from the reference's __metadata__ (`input_ids`, `attention_mask`,
 * `token_type_ids`, JSON-encoded) or from --ids. Every tensor whose name we know is compared —
 * hook names and HF names (hidden_states.{i}, attentions.{i}, last_hidden_state, pooler_output);
 * others are listed as skipped. Everything is compared, padding positions included: HF's
 * semantics are reproduced exactly there too. A tensor passes when every element has
 * |ours - ref| <= atol + rtol·|ref|; the defaults (atol 1e-4, rtol 0) are the fp32 tolerance
 * for hidden states (attention patterns and normalized embeddings are usually within 1e-5).
 * Exit 3 when anything fails or nothing could be compared.
 */
import * as fs from 'fs';
import { Command, Option } from 'commander';
import { allHookNames, compareArrays, SafetensorsFile } from '../../index';
import { ravel } from '../../util/ndindex';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, describeBackend, GeneralOptions, ModelOptions,
  modelNote, numberArg, openModel, Reporter, usageError,
} from '../common';
import { CheckFailed } from '../errors';
import { fmtNumber, renderTable, shapeString } from '../format';
import { runCaptured } from '../forward';
import { checkIdsForModel, IdsBatch, parseIds, readIdsFile, toPaddedBatch } from '../ids';
import { resolveName, Target } from '../names';

interface ParityOptions extends ModelOptions, BackendOptions, GeneralOptions {
  ref: string;
  ids?: string;
  atol: number;
  rtol: number;
  format: 'table' | 'json';
}

interface Row {
  name: string;
  shape: number[];
  maxAbs: number;
  meanAbs: number;
  cosine: number;
  where: number[];
  ours: number;
  ref: number;
  failures: number;
  pass: boolean;
  problem?: string;
}

export function register(program: Command): Command {
  const cmd = program.command('parity')
    .description('compare our activations with a reference dump (e.g. PyTorch/transformers), tensor by tensor')
    .requiredOption('--ref <file>', 'reference .safetensors: tensors named by hook or HF names, inputs in __metadata__')
    .option('--ids <file>', "inputs instead of the reference's __metadata__: JSON {\"input_ids\": [[...]], \"attention_mask\": [[...]], \"token_type_ids\": [[...]]}")
    .addOption(new Option('--atol <x>', 'absolute tolerance').argParser(numberArg(true)).default(1e-4))
    .addOption(new Option('--rtol <x>', 'relative tolerance (× |ref|)').argParser(numberArg(true)).default(0))
    .addOption(new Option('-f, --format <fmt>', 'table or json').choices(['table', 'json']).default('table'));
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
A tensor passes when every element has |ours - ref| <= atol + rtol * |ref| (padding positions included).
Without --model, the model folder recorded in the reference's __metadata__ ("model") is used if it exists.
Exit 3 when a tensor fails or no tensor could be compared.

Examples:
  $ /usr/bin/python3 test/parity/reference.py --model ./tiny --ids ids.json --output ref.safetensors
  $ e5 parity --ref ref.safetensors --model ./tiny
  $ e5 parity --ref hf.safetensors --model ./my-e5-folder --atol 1e-5 --rtol 1e-4`);
  return cmd.action((o: ParityOptions, c: Command) => parity(o, c));
}

async function parity(o: ParityOptions, cmd: Command): Promise<void> {
  const r = Reporter.from(o);
  const ref = SafetensorsFile.open(o.ref);
  try {
    const meta = ref.metadata;
    if (meta.ablate && meta.ablate !== '[]') usageError(cmd, `${o.ref} was made with heads ablated (${meta.ablate}); e5 parity compares plain forward passes`);
    let ids: IdsBatch;
    if (o.ids !== undefined) {
      ids = readIdsFile(o.ids);
    } else if (meta.input_ids !== undefined) {
      ids = idsFromMetadata(meta, o.ref);
    } else {
      usageError(cmd, `${o.ref} has no "input_ids" in its __metadata__; give the inputs with --ids FILE`);
    }
    if (cmd.getOptionValueSource('model') === 'default' && meta.model && fs.statSync(meta.model, { throwIfNoEntry: false })?.isDirectory()) {
      o.model = meta.model;
      r.note(`model: ${meta.model} (from ${o.ref}'s metadata)`);
    }
    const m = await openModel(o);
    checkIdsForModel(ids, m.config, o.ids ?? `${o.ref} __metadata__`);
    const L = m.config.numHiddenLayers;

    const targets = new Map<string, Target>();
    const skipped: string[] = [];
    for (const [name, info] of ref.tensors) {
      const t = resolveName(name, L);
      if (t && ['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) targets.set(name, t);
      else skipped.push(name);
    }
    // Rows in forward order: embeddings, layer by layer, outputs.
    const order = allHookNames(L);
    const rank = (t: Target) => ('hook' in t ? order.indexOf(t.hook) : order.length + (t.output === 'last_hidden_state' ? 0 : 1));
    const sorted = [...targets].sort(([a, ta], [b, tb]) => rank(ta) - rank(tb) || (a < b ? -1 : 1));
    const hooks = [...new Set(sorted.flatMap(([, t]) => ('hook' in t ? [t.hook] : [])))];
    // hook_pooled in a reference is the masked mean (the model card's average_pool).
    const run = runCaptured(m, toPaddedBatch(ids), hooks, { pooling: 'mean' });
    const rows: Row[] = [];
    try {
      for (const [name, target] of sorted) {
        const t = 'hook' in target ? run.cache.get(target.hook)
          : target.output === 'last_hidden_state' ? run.output.lastHiddenState : run.output.poolerOutput;
        const refShape = [...ref.info(name).shape];
        if (!t) {
          rows.push(failedRow(name, refShape, 'the model has no pooler'));
          continue;
        }
        if (t.shape.join() !== refShape.join()) {
          rows.push(failedRow(name, refShape, `shape: ours ${shapeString(t.shape)}, reference ${shapeString(refShape)}`));
          continue;
        }
        const a = t.dataSync() as Float32Array;
        const b = ref.readF32(name, { allowNonFinite: true });
        const c = compareArrays(a, b, refShape, { atol: o.atol, rtol: o.rtol, maxReported: 0 });
        const at = ravel(c.where, refShape);
        rows.push({
          name, shape: refShape, maxAbs: c.maxAbs, meanAbs: c.meanAbs, cosine: c.cosine, where: c.where,
          ours: a[at], ref: b[at], failures: c.mismatches, pass: c.pass,
        });
      }
    } finally {
      run.dispose();
    }
    report(rows, skipped, o, modelNote(m), describeBackend(run.output.backend));
    const failed = rows.filter((x) => !x.pass);
    if (failed.length) throw new CheckFailed(`${failed.length} of ${rows.length} tensors differ beyond atol ${o.atol} + rtol ${o.rtol}·|ref| (first: ${failed[0].name}${failed[0].problem ? `, ${failed[0].problem}` : `, max |diff| ${failed[0].maxAbs.toExponential(2)}`})`);
    if (!rows.length) throw new CheckFailed(`${o.ref}: no tensor has a name e5 knows (skipped: ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', …' : ''})`);
  } finally {
    ref.close();
  }
}

function idsFromMetadata(meta: Readonly<Record<string, string>>, file: string): IdsBatch {
  const where = `${file} __metadata__`;
  const field = (k: string) => {
    if (meta[k] === undefined) return undefined;
    try {
      return JSON.parse(meta[k]);
    } catch (e) {
      throw new Error(`${where}: "${k}" is not JSON (${(e as Error).message})`);
    }
  };
  const raw: Record<string, unknown> = { input_ids: field('input_ids') };
  for (const k of ['attention_mask', 'token_type_ids']) if (meta[k] !== undefined) raw[k] = field(k);
  return parseIds(raw, where);
}

function failedRow(name: string, shape: number[], problem: string): Row {
  return { name, shape, maxAbs: NaN, meanAbs: NaN, cosine: NaN, where: [], ours: NaN, ref: NaN, failures: NaN, pass: false, problem };
}

function report(rows: Row[], skipped: string[], o: ParityOptions, model: string, backend: string): void {
  if (o.format === 'json') {
    const num = (x: number) => (Number.isFinite(x) ? x : null);
    process.stdout.write(JSON.stringify({
      ref: o.ref, model, backend, atol: o.atol, rtol: o.rtol, pass: rows.length > 0 && rows.every((x) => x.pass),
      tensors: rows.map((x) => ({
        name: x.name, shape: x.shape, max_abs: num(x.maxAbs), mean_abs: num(x.meanAbs), cosine: num(x.cosine), where: x.where,
        ours: num(x.ours), ref: num(x.ref), failures: num(x.failures), pass: x.pass, ...(x.problem ? { problem: x.problem } : {}),
      })),
      skipped,
    }) + '\n');
    return;
  }
  const table = rows.map((x) => [
    x.name, shapeString(x.shape),
    x.problem ? '-' : fmtNumber(x.maxAbs, 6), x.problem ? '-' : fmtNumber(x.meanAbs, 6), x.problem ? '-' : x.cosine.toFixed(7),
    x.problem ? x.problem : `${shapeString(x.where)} ${fmtNumber(x.ours, 6)} vs ${fmtNumber(x.ref, 6)}`,
    x.pass ? 'ok' : x.problem ? 'FAIL' : `FAIL (${x.failures})`,
  ]);
  let s = renderTable(['name', 'shape', 'max_abs', 'mean_abs', 'cosine', 'max at: ours vs ref', 'result'], table, new Set([2, 3, 4]));
  const failed = rows.filter((x) => !x.pass).length;
  s += `\n${rows.length - failed} of ${rows.length} tensors within atol ${o.atol} + rtol ${o.rtol}·|ref| (${model} on ${backend})\n`;
  if (skipped.length) s += `skipped (name not recognised): ${skipped.join(', ')}\n`;
  process.stdout.write(s);
}
