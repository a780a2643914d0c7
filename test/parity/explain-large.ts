/**
 * `make explain-large`: EmbeddingModel.explain on the full e5-large shape (random weights) against
 * the float64 PyTorch reference (test/parity/explain.py) at N = 4: pairs and tokens at ℓ = 0 and
 * ℓ = L−1, and the heads grid, each within 1e-3 × max|value| (the issue's bound for this shape).
 * Short texts keep the float64 reference to a few minutes on two cores.
 *
 *   npx ts-node --transpile-only test/parity/explain-large.ts --model .cache/models/e5-large-random
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, loadModel } from '../../index';
import type { ExplainResult } from '../../e5/explain';
import type { EmbeddingModel } from '../../e5/model';
import { PYTHON, pythonStack } from '../support/python';

const QUERY = 'summit define';
const PASSAGE = 'Definition of summit: the highest point of a mountain, the top of a mountain.';
const STEPS = 4;
const REL = 1e-3;

function reference(model: string, m: EmbeddingModel, r: ExplainResult, layer: number, modes: string[], work: string): Record<string, number[] | number[][]> {
  const text = (t: ExplainResult['query']) => {
    const enc = m.tokenizer.encode(t.modelText);
    return { input_ids: Array.from(enc.inputIds), token_type_ids: Array.from(enc.tokenTypeIds), special: t.special.map(Number) };
  };
  const input = path.join(work, 'job.json'), output = path.join(work, 'out.json');
  fs.writeFileSync(input, JSON.stringify({ model, layer, steps: STEPS, modes, query: text(r.query), passage: text(r.passage) }));
  execFileSync(PYTHON, [path.join(__dirname, 'explain.py'), '--input', input, '--output', output], { stdio: ['ignore', 'inherit', 'inherit'] });
  return JSON.parse(fs.readFileSync(output, 'utf8'));
}

/** max|ours − ref| / max|ref|. */
function relError(ours: number[] | number[][], ref: number[] | number[][]): number {
  const a = (ours as number[]).flat(), b = (ref as number[]).flat();
  if (a.length !== b.length) throw new Error(`${a.length} values vs the reference's ${b.length}`);
  const scale = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--model');
  if (i < 0) throw new Error('--model DIR is required');
  const model = process.argv[i + 1];
  const runtime = await initBackend({});
  const m = await loadModel(model, { runtime });
  const L = m.config.numHiddenLayers;
  const stack = pythonStack();
  console.log(`explain-large: ${model} (${L} layers) on ${runtime.name}, ${runtime.threads} threads; reference ${PYTHON}: ${Object.entries(stack).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-explain-large-'));
  const rows: Array<[string, number]> = [];
  try {
    for (const layer of [0, L - 1]) {
      const pairs = await m.explain(QUERY, PASSAGE, { mode: 'pairs', layer, steps: STEPS });
      const tokens = await m.explain(QUERY, PASSAGE, { mode: 'tokens', layer, steps: STEPS });
      const ref = reference(model, m, pairs, layer, ['pairs'], work);
      rows.push([`pairs, ℓ = ${layer}`, relError(pairs.pairs!, ref.pairs)]);
      rows.push([`pairs mode token attributions, ℓ = ${layer}`, Math.max(relError(pairs.query.attributions!, ref.query), relError(pairs.passage.attributions!, ref.passage))]);
      rows.push([`tokens, ℓ = ${layer}`, Math.max(relError(tokens.query.attributions!, ref.query), relError(tokens.passage.attributions!, ref.passage))]);
    }
    const heads = await m.explain(QUERY, PASSAGE, { mode: 'heads', steps: STEPS });
    const ref = reference(model, m, heads, 0, ['heads'], work);
    rows.push(['heads', relError(heads.heads!, ref.heads)]);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    m.dispose();
  }
  let failed = 0;
  for (const [what, err] of rows) {
    const ok = err <= REL;
    if (!ok) failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what.padEnd(44)} max |Δ| / max |ref| = ${err.toExponential(2)} (≤ ${REL})`);
  }
  if (failed) {
    console.log(`explain-large: ${failed} of ${rows.length} outside 1e-3 × max`);
    process.exit(3);
  }
  console.log(`explain-large: all ${rows.length} within ${REL} × max|value| at N = ${STEPS}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
