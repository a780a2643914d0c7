/**
 * What a query-side head scan costs against embedding its queries plainly once per cell.
 *
 *   npx ts-node --transpile-only bench/ablation-scan.ts --model DIR [--backend tensorflow] [--threads 2]
 *       [--queries 300] [--cells 384] [--repeats 1] [--batch-size 32] [--json FILE]
 *
 * Target (issue 24): on the e5-large shape, tensorflow, 2 threads, a 384-cell head scan over 300 queries
 * costs ≤ 1.5× embedding those 300 queries 384 times plainly. Timed, alternating per repeat:
 *   plain: EngineEmbedder.embed(queries, 'query') — e5 embed's path, compiled, no intervention;
 *   scan:  EngineEmbedder.embedMasked(queries, masks of the first `cells` head cells) — eval/scan.ts's
 *          query-side pass (rows = cells × queries of a batch, a per-row head mask, one forward).
 * ratio = scan / (cells × plain), each the best of the repeats. Both are linear in the cells, so `--cells` below the model's L×H
 * (e.g. 24 of e5-large's 384) measures the same ratio in less time; the report says which was run.
 * Only the embedding is timed: the corpus is read from the cache and the search is the same plain
 * dot products either way.
 */
import { performance } from 'node:perf_hooks';
import * as fs from 'node:fs';
import { initBackend, BackendName } from '../engine/backend';
import { loadModel } from '../e5/model';
import { EngineEmbedder } from '../eval/embedder-adapter';
import { headMask } from '../eval/ablation';
import { scanCells } from '../eval/scan';

interface Args { model: string; backend: BackendName; threads: number; queries: number; cells?: number; repeats: number; batchSize: number; json?: string }

function parseArgs(argv: string[]): Args {
  const a: Args = { model: '', backend: 'tensorflow', threads: 2, queries: 300, repeats: 1, batchSize: 32 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k}: a value is missing`);
    if (k === '--model') a.model = v;
    else if (k === '--backend') a.backend = v as BackendName;
    else if (k === '--json') a.json = v;
    else if (['--threads', '--queries', '--cells', '--repeats', '--batch-size'].includes(k)) {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${k} ${v}: expected a positive integer`);
      a[k === '--batch-size' ? 'batchSize' : (k.slice(2) as 'threads' | 'queries' | 'cells' | 'repeats')] = n;
    } else throw new Error(`unknown option ${k}`);
  }
  if (!a.model) throw new Error('--model DIR is required');
  return a;
}

/** Short search queries like BEIR's (3–9 words), from a fixed seed. */
function makeQueries(n: number): string[] {
  const words = 'what is the effect of protein binding on cell growth in mice how does climate change affect coastal cities which drugs reduce blood pressure in adults'.split(' ');
  let s = 12345;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: n }, () => Array.from({ length: 3 + Math.floor(next() * 7) }, () => words[Math.floor(next() * words.length)]).join(' '));
}

/** Best of the repeats: on a shared machine the slower runs measure the neighbours (and the first may build kernels for new shapes). */
const best = (xs: number[]) => Math.min(...xs);

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const backend = await initBackend({ backend: a.backend, threads: a.threads });
  const model = await loadModel(a.model);
  try {
    const embedder = new EngineEmbedder(model);
    const { numHiddenLayers: L, numAttentionHeads: H } = model.config;
    const all = scanCells('heads', L, H);
    const cells = all.slice(0, a.cells ?? all.length);
    const masks = cells.map((c) => headMask(embedder, c.heads));
    const queries = makeQueries(a.queries);
    const opts = { prefix: 'query' as const, batchSize: a.batchSize };
    // Warm-up: the compiled encoder and its heads variant are built on first use.
    await embedder.embed(queries.slice(0, 4), opts);
    await embedder.embedMasked(queries.slice(0, 4), masks.slice(0, 2), undefined, opts);
    const plain: number[] = [], scan: number[] = [];
    for (let r = 0; r < a.repeats; r++) {
      let t = performance.now();
      await embedder.embed(queries, opts);
      plain.push((performance.now() - t) / 1000);
      t = performance.now();
      await embedder.embedMasked(queries, masks, undefined, opts);
      scan.push((performance.now() - t) / 1000);
    }
    const plainS = best(plain), scanS = best(scan);
    const ratio = scanS / (cells.length * plainS);
    const report = {
      model: a.model, shape: `${L} layers × ${H} heads, hidden ${model.config.hiddenSize}`, backend: `${backend.name} (${backend.threads} threads)`,
      queries: a.queries, cells: cells.length, of: all.length, repeats: a.repeats,
      plainSeconds: plain, scanSeconds: scan, ratio,
    };
    process.stdout.write([
      `model ${report.model} (${report.shape}) on ${report.backend}; ${a.queries} queries, ${cells.length} of ${all.length} head cells, ${a.repeats} repeat(s), best of them (all: plain ${plain.map((x) => x.toFixed(2)).join(', ')} s; scan ${scan.map((x) => x.toFixed(1)).join(', ')} s)`,
      `plain embed of the queries: ${plainS.toFixed(2)} s  (× ${cells.length} cells = ${(plainS * cells.length).toFixed(1)} s)`,
      `scan, all cells' queries with per-row head masks: ${scanS.toFixed(1)} s`,
      `ratio scan / (cells × plain) = ${ratio.toFixed(3)} (target ≤ 1.5)`,
    ].join('\n') + '\n');
    if (a.json) fs.writeFileSync(a.json, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    model.dispose();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
