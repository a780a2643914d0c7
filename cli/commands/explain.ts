/**
 * `e5 explain`: why is this passage close to this query? Attributions of s = e_q·e_p to token
 * pairs (--mode pairs, the default), tokens (--mode tokens: one backward pass per step) or attention
 * heads (--mode heads: an L×H grid), by integrated gradients; the definitions are the library's
 * (e5/explain.ts). Output: a readable table (top token pairs, each text's tokens with bars), JSON,
 * and --html, a self-contained page (inspect/explain-html.ts); --attention-html writes the attention
 * viewer of the same two texts, and the two pages link to each other.
 */
import * as path from 'path';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  AttentionViewData, attentionViewData, describeBackendInfo, EmbeddingModel, ExplainError, ExplainResult,
  MAX_STEPS, renderAttentionHtml, renderExplainHtml,
} from '../../index';
import {
  addBackendOptions, addGeneralOptions, addModelOptions, BackendOptions, GeneralOptions, intArg, ModelOptions, modelLabel,
  openModel, Reporter, usageError,
} from '../common';
import { fmtNumber, renderTable, toolVersion, truncateLabel } from '../format';
import { checkWritableFolder, outputConflict, writeTextFile } from '../output';

interface ExplainCliOptions extends ModelOptions, BackendOptions, GeneralOptions {
  query: string;
  passage: string;
  mode: 'pairs' | 'tokens' | 'heads';
  layer?: number;
  steps: number;
  format: 'table' | 'json';
  prefix: 'auto' | 'none';
  maxLength?: number;
  jacobian: 'auto' | 'jvp' | 'vjp';
  batchTokens?: number;
  top: number;
  html?: string;
  attentionHtml?: string;
  force?: boolean;
}

export function register(program: Command): Command {
  const cmd = program.command('explain')
    .description('why this score: attributions of a query–passage similarity to token pairs, tokens or attention heads (integrated gradients)')
    .requiredOption('--query <text>', "the query ('query: ' is prepended unless --prefix none)")
    .requiredOption('--passage <text>', "the passage ('passage: ' is prepended unless --prefix none)")
    .addOption(new Option('--mode <mode>', 'pairs: token-pair matrix + token attributions; tokens: token attributions only (cheapest); heads: layers × heads grid')
      .choices(['pairs', 'tokens', 'heads']).default('pairs'))
    .addOption(new Option('--layer <n>', 'attribution layer ℓ: the hidden state HF calls hidden_states[ℓ] (0 = embeddings output; default 0; not used by --mode heads)').argParser(intArg(0)))
    .addOption(new Option('--steps <n>', `integration steps N (midpoint rule), 1-${MAX_STEPS}`).argParser(stepsArg).default(32))
    .addOption(new Option('-f, --format <fmt>', 'table (readable) or json').choices(['table', 'json']).default('table'))
    .addOption(new Option('--prefix <mode>', "auto: 'query: ' / 'passage: ' in front of the texts, as e5 similarity does; none: the texts as given").choices(['auto', 'none']).default('auto'))
    .addOption(new Option('--max-length <n>', "truncate each text to N tokens (default: the model's limit)").argParser(intArg(3)))
    .addOption(new Option('--jacobian <how>', 'pairs: C of the shorter text by per-token JVPs or by VJPs over the output dimensions (auto: fewer passes)').choices(['auto', 'jvp', 'vjp']).default('auto'))
    .addOption(new Option('--batch-tokens <n>', 'tokens per batched backward pass through all layers (default 512): bounds memory').argParser(intArg(1)))
    .addOption(new Option('--top <n>', 'table: how many token pairs to list').argParser(intArg(1)).default(12))
    .option('--html <file>', 'write a self-contained HTML view: the pair heatmap, each text coloured by attribution, the head grid')
    .option('--attention-html <file>', "also write the attention viewer (e5 inspect --html) of the two texts, linked with --html's page")
    .option('--force', 'replace existing --html / --attention-html files');
  addModelOptions(cmd);
  addBackendOptions(cmd);
  addGeneralOptions(cmd);
  cmd.addHelpText('after', `
JSON output: {"score", "layer", "steps", "mode", "query": {"text", "model_text", "tokens", "offsets", "special",
"attributions"}, "passage": {...}, "pairs" (rows = query tokens), "heads" (L×H), "completeness": {"sum", "target",
"error", ...}, "reference", "jacobian", "model", "backend", "settings", "seconds"}

Definitions (docs/EXPLAIN.md): X = hidden_states[ℓ] of each text; reference R = X at [CLS]/[SEP], 0
elsewhere; C_t = (1/N) Σ_k J(R + α_k(X − R))[:, t]·(X_t − R_t), α_k = (k − ½)/N; pairs A[i][j] = C^q_i·C^p_j, whose sum
tends to (e_q − e_q^R)·(e_p − e_p^R) (reported as completeness); tokens: C^q_t·e_p and C^p_t·e_q; heads: the integrated
gradient of s with respect to gates on each layer's heads, each row tending to s − s(that layer's heads zeroed).

Examples:
  $ e5 explain --query "how much protein should a female eat" \\
      --passage "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day."
  $ e5 explain --query "summit define" --passage "the highest point of a mountain" --mode tokens --layer 12 --format json
  $ e5 explain --query "summit define" --passage "the highest point of a mountain" --html why.html --attention-html attention.html
  $ e5 explain --query "summit define" --passage "the highest point of a mountain" --mode heads --steps 8`);
  return cmd.action((o: ExplainCliOptions, c: Command) => explainCommand(o, c));
}

function stepsArg(value: string): number {
  const n = intArg(1)(value);
  if (n > MAX_STEPS) throw new InvalidArgumentError(`at most ${MAX_STEPS} (the midpoint rule's error is below float32's long before), got ${n}.`);
  return n;
}

async function explainCommand(o: ExplainCliOptions, cmd: Command): Promise<void> {
  const r = Reporter.from(o);
  if (o.query.trim() === '') usageError(cmd, '--query is empty: there is nothing to attribute the score to');
  if (o.passage.trim() === '') usageError(cmd, '--passage is empty: there is nothing to attribute the score to');
  if (o.mode === 'heads' && o.layer !== undefined) usageError(cmd, '--layer is the attribution layer of --mode pairs/tokens; --mode heads gates every layer');
  for (const [flag, file] of [['--html', o.html], ['--attention-html', o.attentionHtml]] as const) {
    if (file === undefined) continue;
    const conflict = outputConflict(file, !!o.force);
    if (conflict) usageError(cmd, conflict.replace(/^--output/, flag));
    checkWritableFolder(file);
  }
  if (o.html !== undefined && o.attentionHtml !== undefined && path.resolve(o.html) === path.resolve(o.attentionHtml)) {
    usageError(cmd, '--html and --attention-html name the same file');
  }
  const m = await openModel(o);
  let result: ExplainResult;
  const progress = r.progress('explain', undefined, undefined);
  try {
    result = await m.explain(o.query, o.passage, {
      mode: o.mode, layer: o.layer, steps: o.steps, prefix: o.prefix, maxLength: o.maxLength, jacobian: o.jacobian,
      maxBatchTokens: o.batchTokens, onWarning: (w) => r.warn(w), onProgress: (done, total) => progress.update(done, total),
    });
  } catch (e) {
    if (e instanceof ExplainError && e.code !== 'weights_released') usageError(cmd, asFlag(e, o));
    throw e;
  } finally {
    progress.stop();
  }
  const links = htmlLinks(o);
  if (o.html !== undefined) writeTextFile(o.html, renderExplainHtml(explainView(m, result, links.toAttention)));
  if (o.attentionHtml !== undefined) writeTextFile(o.attentionHtml, renderAttentionHtml(attentionView(m, result, o.maxLength, links.toExplain)));
  if (o.format === 'json') process.stdout.write(JSON.stringify(toJson(m, result, o)) + '\n');
  else process.stdout.write(renderReport(result, o.top));
}

/** The library's field names as the command line's flags: `--layer 3: 3 is out of range …`. */
function asFlag(e: ExplainError, o: ExplainCliOptions): string {
  const flags: Record<string, [string, unknown]> = {
    layer: ['--layer', o.layer], steps: ['--steps', o.steps], maxLength: ['--max-length', o.maxLength], maxBatchTokens: ['--batch-tokens', o.batchTokens],
    query: ['--query', undefined], passage: ['--passage', undefined],
  };
  const flag = flags[e.field];
  if (!flag) return e.message;
  const detail = e.message.slice(e.field.length + 2);
  return flag[1] === undefined ? `${flag[0]}: ${detail}` : `${flag[0]} ${flag[1]}: ${detail}`;
}

/** Relative links between the two pages (they are written side by side, or wherever the user says). */
function htmlLinks(o: ExplainCliOptions): { toAttention?: string; toExplain?: string } {
  if (o.html === undefined || o.attentionHtml === undefined) return {};
  const rel = (from: string, to: string) => path.relative(path.dirname(path.resolve(from)), path.resolve(to)).split(path.sep).map(encodeURIComponent).join('/');
  return { toAttention: rel(o.html, o.attentionHtml), toExplain: rel(o.attentionHtml, o.html) };
}

export function toJson(m: EmbeddingModel, res: ExplainResult, o: ExplainCliOptions): Record<string, unknown> {
  const text = (t: ExplainResult['query']) => ({
    text: t.text, model_text: t.modelText, tokens: t.tokens, offsets: t.offsets, special: t.special, attributions: t.attributions,
  });
  return {
    score: res.score, layer: res.layer, steps: res.steps, mode: res.mode,
    query: text(res.query), passage: text(res.passage),
    pairs: res.pairs, heads: res.heads, completeness: res.completeness, reference: res.reference, jacobian: res.jacobian,
    model: modelLabel(m), backend: res.backend, pooling: res.pooling,
    settings: { prefix: o.prefix, max_length: o.maxLength ?? m.maxLength, jacobian: o.jacobian, batch_tokens: o.batchTokens ?? 512 },
    seconds: res.seconds, warnings: res.warnings, tool: toolVersion(),
  };
}

// ---------------------------------------------------------------------------------------------
// The table view

const BAR_WIDTH = 20;

/** A signed bar: '+' cells for positive, '-' for negative, scaled to the largest |value|. */
function bar(v: number, scale: number): string {
  const n = scale > 0 ? Math.round((Math.abs(v) / scale) * BAR_WIDTH) : 0;
  return (v >= 0 ? '█' : '░').repeat(n);
}

export function renderReport(res: ExplainResult, top: number): string {
  const lines: string[] = [];
  const c = res.completeness;
  const where = res.mode === 'heads' ? `heads of every layer` : `layer ${res.layer}`;
  lines.push(`score ${fmtNumber(res.score, 4)}  (cosine of the embeddings; ${res.mode}, ${where}, ${res.steps} steps)`);
  lines.push(`completeness: sum ${fmtNumber(c.sum, 4)}, target ${fmtNumber(c.target, 4)}, error ${fmtNumber(c.error, 4)}${completenessNote(res)}`);
  if (res.reference) {
    const ref = res.reference;
    lines.push(`the rest of the score (reference terms): e_q^R·Δe_p ${fmtNumber(ref.queryRef, 4)}, Δe_q·e_p^R ${fmtNumber(ref.passageRef, 4)}, e_q^R·e_p^R ${fmtNumber(ref.refRef, 4)}`);
  }
  if (res.pairs) {
    lines.push('', `Top ${Math.min(top, res.query.tokens.length * res.passage.tokens.length)} token pairs (|attribution|)`);
    const cells = res.pairs.flatMap((row, i) => row.map((v, j) => ({ i, j, v }))).sort((a, b) => Math.abs(b.v) - Math.abs(a.v)).slice(0, top);
    const rows = cells.map(({ i, j, v }) => [`${i} ${label(res.query.tokens[i])}`, `${j} ${label(res.passage.tokens[j])}`, fmtNumber(v, 5)]);
    lines.push(renderTable(['query token', 'passage token', 'attribution'], rows, new Set([2])).trimEnd());
  }
  for (const side of [res.query, res.passage]) {
    if (!side.attributions) continue;
    const name = side === res.query ? 'Query' : 'Passage';
    const scale = Math.max(...side.attributions.map(Math.abs));
    const rows = side.tokens.map((t, k) => [String(k), label(t), fmtNumber(side.attributions![k], 5), bar(side.attributions![k], scale)]);
    lines.push('', `${name} tokens (C_t·e_${side === res.query ? 'p' : 'q'}; █ positive, ░ negative): ${truncateLabel(side.modelText, 60)}`);
    lines.push(renderTable(['#', 'token', 'attribution', ''], rows, new Set([0, 2])).trimEnd());
  }
  if (res.heads) {
    const H = res.heads[0].length;
    lines.push('', 'Heads (rows = layers, columns = heads; ∂s/∂gate integrated along the gates 0 → 1)');
    const rows = res.heads.map((row, l) => [String(l), ...row.map((v) => fmtNumber(v, 4)), fmtNumber(row.reduce((a, b) => a + b, 0), 4), fmtNumber(c.layers![l].target, 4)]);
    lines.push(renderTable(['layer', ...Array.from({ length: H }, (_, h) => `h${h}`), 'sum', 's − s_l'], rows, new Set(Array.from({ length: H + 3 }, (_, k) => k))).trimEnd());
    const flat = res.heads.flatMap((row, l) => row.map((v, h) => ({ l, h, v }))).sort((a, b) => Math.abs(b.v) - Math.abs(a.v)).slice(0, Math.min(top, 8));
    lines.push(`largest: ${flat.map(({ l, h, v }) => `${l}.${h} ${fmtNumber(v, 4)}`).join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

function completenessNote(res: ExplainResult): string {
  if (res.mode === 'pairs') return '  (ΣA → (e_q − e_q^R)·(e_p − e_p^R))';
  if (res.mode === 'tokens') return '  (Σ query + Σ passage → (e_q − e_q^R)·e_p + (e_p − e_p^R)·e_q)';
  return '  (Σ grid → Σ_l s − s_l, s_l: layer l\'s heads zeroed)';
}

/** A token for a table cell: whitespace shown, long ones cut (widths by string-width in renderTable). */
function label(token: string): string {
  return truncateLabel(token, 24);
}

// ---------------------------------------------------------------------------------------------
// HTML

function explainView(m: EmbeddingModel, res: ExplainResult, attentionHref: string | undefined) {
  return {
    title: `e5 explain: ${modelLabel(m)}`,
    model: modelLabel(m),
    backend: describeBackendInfo(res.backend),
    result: res,
    links: attentionHref ? [{ href: attentionHref, label: 'attention of these two texts' }] : [],
  };
}

/**
 * The attention viewer of the two texts as the model saw them (prefixed, truncated as explain() cut
 * them), as e5 inspect --query --passage --html shows them.
 */
function attentionView(m: EmbeddingModel, res: ExplainResult, maxLength: number | undefined, explainHref: string | undefined): AttentionViewData {
  const view = attentionViewData(m, [res.query.modelText, res.passage.modelText], { maxLength, title: `e5 inspect: ${modelLabel(m)}` });
  return explainHref ? { ...view, links: [{ href: explainHref, label: 'why this score (attributions)' }] } : view;
}
