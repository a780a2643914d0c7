/**
 * Accuracy of the low-precision engines (our precision 'bf16', onnxruntime int8) against our fp32 engine (issue 25's accuracy report):
 * embedding cosine on the benchmark's generated passages and the model card's texts, and BEIR
 * metrics on the generated eval fixture (devtools/beir-fixture.ts writeTinyBeir: 60 passages,
 * 14 queries, graded judgements), each engine evaluated by eval/evaluate.ts.
 *
 *   npx ts-node --transpile-only bench/accuracy.ts --model DIR [--texts 64] [--engines bf16,ort-fp32,ort-int8]
 *       [--ort-python .cache/bench-env/bin/python] [--onnx-dir .cache/bench-onnx] [--json FILE]
 *
 * ort-fp32 is there as the control: the same weights in float32 must agree with ours to ~1e-7.
 * Markdown goes to stdout, progress to stderr.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import { initBackend } from '../engine/backend';
import { loadModel, EmbeddingModel } from '../e5/model';
import { EngineEmbedder } from '../eval/embedder-adapter';
import type { EmbedCallOptions, EmbedCallResult, Embedder } from '../eval/embedder';
import { evaluate } from '../eval/evaluate';
import { writeTinyBeir } from '../devtools/beir-fixture';
import { exportOrtModels, OrtPyEngine, OrtPyVariant, repoRoot } from './engines';
import { table } from './report';
import { modelCacheDir, ORT_CACHE_TAG } from './run';
import { makeWorkload, parseWorkload } from './workloads';

export interface AccuracyRow {
  engine: string;
  /** Cosine to our fp32 embedding: min and mean over the generated passages, and over the model card's texts. */
  passages: { min: number; mean: number };
  card: { min: number; mean: number };
  /** BEIR metrics on the generated fixture, and their difference to ours (this − ours). */
  beir: Record<string, number>;
  beirDelta: Record<string, number>;
}

/** An eval Embedder on an onnxruntime child: texts prefixed as e5 wants them. */
class OrtEmbedder implements Embedder {
  readonly id: string;
  readonly engine: string;
  constructor(private readonly ort: OrtPyEngine, name: string) {
    this.id = name;
    this.engine = name;
  }
  async embed(texts: string[], o: EmbedCallOptions): Promise<EmbedCallResult> {
    const prefixed = o.prefix === 'none' ? texts : texts.map((t) => `${o.prefix}: ${t}`);
    return this.ort.embed(prefixed, o.batchSize ?? 32, o.maxLength ?? 512);
  }
}

function cosines(a: Float32Array[], b: Float32Array[]): { min: number; mean: number } {
  const cs = a.map((x, i) => x.reduce((s, v, d) => s + v * b[i][d], 0));
  return { min: Math.min(...cs), mean: cs.reduce((s, c) => s + c, 0) / cs.length };
}

/** The engines this measures: our precision 'bf16', or an onnxruntime peer. */
export type AccuracyEngine = 'bf16' | `ort-${OrtPyVariant}`;

export async function accuracy(o: { model: string; texts: number; engines: AccuracyEngine[]; ortPython: string; onnxDir: string; log: (s: string) => void }): Promise<{ rows: AccuracyRow[]; ours: Record<string, number>; markdown: string }> {
  await initBackend({ backend: 'tensorflow' });
  const m: EmbeddingModel = await loadModel(o.model);
  const dir = m.info.dir;
  const beirDir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-accuracy-beir-'));
  const started: Array<{ close(): unknown }> = [];
  try {
    writeTinyBeir(beirDir, 60, 7);
    const w = makeWorkload(parseWorkload('corpus', o.texts), m.tokenizer, 7);
    const passages = (w as { texts: string[] }).texts;
    const card = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'test', 'fixtures', 'model-card.json'), 'utf8'));
    const cardTexts: string[] = [...card.queries.map((q: string) => `query: ${q}`), ...card.passages.map((p: string) => `passage: ${p}`)];
    const ref = async (texts: string[]) => (await m.embed(texts, { normalize: true })).embeddings;
    const refPassages = await ref(passages), refCard = await ref(cardTexts);
    const ours = (await evaluate(new EngineEmbedder(m), beirDir, { k: [10] })).scores;
    o.log(`ours (fp32): ${JSON.stringify(ours)}`);
    const made = o.engines.some((e) => e.startsWith('ort-')) ? await exportOrtModels(o.ortPython, dir, modelCacheDir(dir, o.onnxDir, ORT_CACHE_TAG), 0) : undefined;
    const rows: AccuracyRow[] = [];
    for (const name of o.engines) {
      // Each engine as an eval Embedder, and its plain embeddings of texts (prefixes already in them).
      let embedder: Embedder, embed: (texts: string[]) => Promise<Float32Array[]>;
      if (name === 'bf16') {
        const low = await loadModel(o.model, { precision: 'bf16' });
        started.push({ close: () => low.dispose() });
        embedder = new EngineEmbedder(low);
        embed = async (texts) => (await low.embed(texts, { normalize: true })).embeddings;
      } else {
        const v = name.slice(4) as OrtPyVariant;
        const e = await OrtPyEngine.start(v, made![v], dir, { python: o.ortPython, threads: 0 });
        started.push(e);
        embedder = new OrtEmbedder(e, name);
        embed = async (texts) => (await e.embed(texts)).embeddings;
      }
      const beir = (await evaluate(embedder, beirDir, { k: [10] })).scores;
      const row: AccuracyRow = {
        engine: name,
        passages: cosines(await embed(passages), refPassages),
        card: cosines(await embed(cardTexts), refCard),
        beir, beirDelta: Object.fromEntries(Object.entries(beir).map(([k, x]) => [k, x - ours[k]])),
      };
      o.log(`${row.engine}: ${JSON.stringify(row)}`);
      rows.push(row);
    }
    const f = (x: number) => x.toFixed(6);
    const metric = 'NDCG@10';
    const markdown = [
      `Cosine to our fp32 embeddings (${passages.length} generated passages of 16–256 tokens, seed 7; the model card's ${cardTexts.length} texts) and the generated BEIR fixture's ${metric} (ours: ${ours[metric]?.toFixed(4)}).`,
      '',
      table(['engine', 'passages min', 'passages mean', 'card min', 'card mean', metric, `Δ ${metric}`],
        rows.map((r) => [r.engine, f(r.passages.min), f(r.passages.mean), f(r.card.min), f(r.card.mean), r.beir[metric]?.toFixed(4) ?? '—', r.beirDelta[metric]?.toFixed(4) ?? '—']),
        new Set([1, 2, 3, 4, 5, 6])),
    ].join('\n');
    return { rows, ours, markdown };
  } finally {
    for (const e of started) await e.close();
    fs.rmSync(beirDir, { recursive: true, force: true });
    m.dispose();
  }
}

if (require.main === module) {
  const program = new Command('accuracy')
    .requiredOption('--model <dir>', 'model folder')
    .option('--texts <n>', 'generated passages', '64')
    .option('--engines <list>', 'bf16 (ours at that precision, tensorflow), ort-fp32, ort-int8', 'bf16,ort-fp32,ort-int8')
    .option('--ort-python <path>', 'the bench venv python (make bench-env)', path.join(repoRoot(), '.cache', 'bench-env', 'bin', 'python'))
    .option('--onnx-dir <dir>', 'cache of ONNX exports', path.join(repoRoot(), '.cache', 'bench-onnx'))
    .option('--json <file>', 'also write the rows as JSON');
  program.parse();
  const opts = program.opts();
  const engines = String(opts.engines).split(',').map((s) => s.trim()) as AccuracyEngine[];
  for (const e of engines) if (!['bf16', 'ort-fp32', 'ort-int8'].includes(e)) program.error(`error: --engines: unknown engine '${e}' (bf16, ort-fp32, ort-int8)`);
  accuracy({ model: opts.model, texts: Number(opts.texts), engines, ortPython: opts.ortPython, onnxDir: opts.onnxDir, log: (s) => process.stderr.write(s + '\n') }).then(
    (r) => {
      process.stdout.write(r.markdown + '\n');
      if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(r, null, 2) + '\n');
      process.exit(0);
    },
    (e) => {
      process.stderr.write(`accuracy: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
