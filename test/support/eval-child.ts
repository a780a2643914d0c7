/**
 * Support for test/eval/e2e.test.ts:
 * - HashingEmbedder: a deterministic fake Embedder (hashed bag of words, L2-normalised), counting
 *   what it embeds, optionally slow (so a run can be killed half-way);
 * - writeTinyBeir: a small BEIR-format data set generated from a seed;
 * - readBeirFiles / bruteForceReference: the files read directly and every pair scored — the
 *   independent pipeline evaluate() is checked against (by eval-e2e with HashingEmbedder's vectors,
 *   by eval-engine with the engine's);
 * - run as a script, one evaluate() over a data set with a cache directory, printing the result as
 *   JSON — the process the interruption test kills with SIGKILL:
 *
 *     ts-node --transpile-only test/support/eval-child.ts '{"data":DIR,"cacheDir":DIR,"shardSize":N,"delayMs":N}'
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Embedder, EmbedCallOptions, EmbedCallResult } from '../../eval/embedder';
import { compareRanked, Hit, meanMetrics, queryMetrics } from '../../eval/metrics';

// ------------------------------------------------------------------------------------ fake embedder

export function tokens(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

/** FNV-1a, 32 bit. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class HashingEmbedder implements Embedder {
  readonly id: string;
  readonly pooling = 'mean';
  calls = 0;
  /** Every text embedded, with its prefix applied, in call order. */
  readonly seen: string[] = [];

  constructor(readonly dim = 100, readonly delayMs = 0) {
    this.id = `test/hashing-bow-${dim}@v1`;
  }

  async embed(texts: string[], opts: EmbedCallOptions): Promise<EmbedCallResult> {
    this.calls++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const prefix = opts.prefix === 'none' ? '' : `${opts.prefix}: `;
    const embeddings: Float32Array[] = [];
    const nTokens: number[] = [];
    const truncated: boolean[] = [];
    const batch = opts.batchSize ?? texts.length;
    for (let i = 0; i < texts.length; i++) {
      let toks = tokens(prefix + texts[i]);
      // [CLS] + tokens + [SEP] ≤ maxLength, like a BERT tokenizer
      const cut = opts.maxLength !== undefined && toks.length + 2 > opts.maxLength;
      if (cut) toks = toks.slice(0, opts.maxLength! - 2);
      this.seen.push(prefix + texts[i]);
      embeddings.push(this.vector(toks));
      nTokens.push(toks.length + 2);
      truncated.push(cut);
      if ((i + 1) % batch === 0 || i + 1 === texts.length) opts.onProgress?.(i + 1, texts.length);
    }
    return { embeddings, nTokens, truncated };
  }

  vector(toks: string[]): Float32Array {
    const v = new Float32Array(this.dim);
    for (const t of toks) {
      const h = fnv1a(t);
      v[h % this.dim] += (h >>> 31) === 1 ? -1 : 1;
    }
    let n = 0;
    for (const x of v) n += x * x;
    n = Math.sqrt(n);
    if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
    return v;
  }
}

// --------------------------------------------------------------------------------- tiny data set

export interface BeirFiles {
  docs: Array<{ _id: string; title?: string; text: string }>;
  queries: Array<{ _id: string; text: string }>;
  /** query id → doc id → grade, from qrels/test.tsv. */
  qrels: Map<string, Map<string, number>>;
}

/** corpus.jsonl, queries.jsonl and qrels/test.tsv read with nothing from eval/. */
export function readBeirFiles(dir: string): BeirFiles {
  const lines = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean);
  const qrels = new Map<string, Map<string, number>>();
  for (const l of lines('qrels/test.tsv').slice(1)) {
    const [q, d, s] = l.split('\t');
    if (!qrels.has(q)) qrels.set(q, new Map());
    qrels.get(q)!.set(d, Number(s));
  }
  return { docs: lines('corpus.jsonl').map((l) => JSON.parse(l)), queries: lines('queries.jsonl').map((l) => JSON.parse(l)), qrels };
}

/**
 * An independent retrieval run: e5's texts built by hand (unilm/e5 mteb_beir_eval.py: 'passage: ' +
 * '{} {}'.format(title, text).strip(), 'query: ' + text; the generated texts hold plain spaces only,
 * so String.trim() is Python's strip() here), `vectors` of them, every judged query scored against
 * every document (BEIR's ignore_identical_ids), all sorted, metrics per query and averaged.
 */
export async function bruteForceReference(
  dir: string, ks: number[], vectors: (texts: string[]) => Float32Array[] | Promise<Float32Array[]>,
): Promise<{ queryIds: string[]; rankings: Hit[][]; means: ReturnType<typeof meanMetrics> }> {
  const { docs, queries, qrels } = readBeirFiles(dir);
  const judged = queries.filter((q) => qrels.has(q._id));
  const pvecs = await vectors(docs.map((d) => `passage: ${`${d.title ?? ''} ${d.text}`.trim()}`));
  const qvecs = await vectors(judged.map((q) => `query: ${q.text}`));
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const rankings = judged.map((q, qi) => {
    const hits: Hit[] = [];
    docs.forEach((d, j) => {
      if (d._id === q._id) return;
      let dot = 0;
      for (let i = 0; i < qvecs[qi].length; i++) dot += qvecs[qi][i] * pvecs[j][i];
      hits.push({ id: d._id, score: Math.fround(dot / (norm(qvecs[qi]) * norm(pvecs[j]))) });
    });
    return hits.sort(compareRanked).slice(0, Math.max(...ks));
  });
  const per = judged.map((q, i) => queryMetrics(rankings[i].map((h) => h.id), qrels.get(q._id)!, ks));
  return { queryIds: judged.map((q) => q._id), rankings, means: meanMetrics(per, ks.length) };
}

export { TinyBeir, writeTinyBeir } from '../../devtools/beir-fixture';

// ------------------------------------------------------------------------------------ child main

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as { data: string; cacheDir: string; shardSize: number; delayMs: number };
  const { evaluate } = await import('../../eval/evaluate');
  const model = new HashingEmbedder(100, args.delayMs);
  const result = await evaluate(model, args.data, { cacheDir: args.cacheDir, shardSize: args.shardSize, k: [1, 5, 10], progress: false });
  process.stdout.write(JSON.stringify({ means: result.means, cache: result.cache }));
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
