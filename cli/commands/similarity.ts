/**
 * `e5 similarity`: the model card's experiment. Queries get `query: `, passages `passage: `
 * (--prefix-mode auto), everything is embedded (mean pooled, L2-normalised) and the
 * query × passage matrix of cosine × scale is printed, like the card's
 * `(embeddings[:2] @ embeddings[2:].T) * 100`.
 */
import { Command, Option } from 'commander';
import { backendInfo } from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, describeBackend, GeneralOptions, intArg, ModelOptions,
  modelLabel, modelNote, numberArg, openModel, Reporter,
} from '../common';
import { fmtNumber, renderTable, truncateLabel } from '../format';
import { WarningTally } from '../warnings';

interface SimilarityOptions extends ModelOptions, BackendOptions, GeneralOptions {
  query: string[];
  passage: string[];
  scale: number;
  format: 'table' | 'json';
  prefixMode: 'auto' | 'none';
  maxLength?: number;
  labelWidth: number;
}

const CARD_EXAMPLE = `  $ e5 similarity \\
      --query "how much protein should a female eat" \\
      --query "summit define" \\
      --passage "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day. But, as you can see from this chart, you'll need to increase that if you're expecting or training for a marathon. Check out the chart below to see how much protein you should be eating each day." \\
      --passage "Definition of summit for English Language Learners. : 1 the highest point of a mountain : the top of a mountain. : 2 the highest level. : 3 a meeting or series of meetings between the leaders of two or more governments."`;

export function register(program: Command): Command {
  const cmd = program.command('similarity')
    .description("score queries against passages: the model card's example (cosine × 100)")
    .requiredOption('--query <text...>', "query texts (repeat the option or list several); 'query: ' is prepended")
    .requiredOption('--passage <text...>', "passage texts; 'passage: ' is prepended")
    .addOption(new Option('--scale <x>', 'multiply cosine similarities by X').argParser(numberArg()).default(100))
    .addOption(new Option('-f, --format <fmt>', 'table (aligned, labels cut to --label-width) or json').choices(['table', 'json']).default('table'))
    .addOption(new Option('--prefix-mode <mode>', "auto: prepend 'query: ' / 'passage: '; none: use the texts as given").choices(['auto', 'none']).default('auto'))
    .addOption(new Option('--max-length <n>', "truncate each text to N tokens (default: the model's limit)").argParser(intArg(2)))
    .addOption(new Option('--label-width <n>', 'table labels longer than N characters are cut').argParser(intArg(4)).default(32));
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
JSON output: {"scores": [[...]], "queries": [...], "passages": [...], "scale": 100, "model": ..., "precision": "fp32", "backend": {...}}

Example (the intfloat/e5-large-unsupervised model card):
${CARD_EXAMPLE}`);
  return cmd.action((o: SimilarityOptions) => similarity(o));
}

async function similarity(o: SimilarityOptions): Promise<void> {
  const r = Reporter.from(o);
  const t0 = performance.now();
  const m = await openModel(o, { embeddingOnly: true });
  const tally = new WarningTally();
  const { scores, queries, passages } = await m.similarity(o.query, o.passage, { scale: o.scale, prefix: o.prefixMode, maxLength: o.maxLength });
  for (const side of [queries, passages]) {
    side.warnings.forEach((w) => tally.add(w));
    tally.countInputs(side.embeddings.length);
  }
  tally.messages().forEach((w) => r.warn(w));
  const n = (k: number, one: string, many: string) => `${k} ${k === 1 ? one : many}`;
  r.note(`scored ${n(o.query.length, 'query', 'queries')} × ${n(o.passage.length, 'passage', 'passages')} with ${modelNote(m)} on ${describeBackend(backendInfo())} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  if (o.format === 'json') {
    process.stdout.write(JSON.stringify({
      scores, queries: o.query, passages: o.passage, scale: o.scale, prefix_mode: o.prefixMode,
      model: modelLabel(m), precision: m.info.precision, backend: backendInfo(),
    }) + '\n');
    return;
  }
  const header = ['', ...o.passage.map((t) => truncateLabel(t, o.labelWidth))];
  const rows = scores.map((row, i) => [truncateLabel(o.query[i], o.labelWidth), ...row.map((s) => fmtNumber(s, 2))]);
  const right = new Set(header.map((_, c) => c).filter((c) => c > 0));
  process.stdout.write(renderTable(header, rows, right));
}
