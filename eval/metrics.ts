/**
 * Retrieval metrics exactly as BEIR reports them: nDCG@k, MAP@k, Recall@k and P@k from pytrec_eval
 * (`ndcg_cut.k`, `map_cut.k`, `recall.k`, `P.k`, i.e. trec_eval 9.0.x compiled in), and MRR@k from
 * BEIR's own beir/retrieval/custom_metrics.py. BEIR averages each over the queries pytrec_eval returns
 * (every query that has judgements and a ranking) — beir/retrieval/evaluation.py, EvaluateRetrieval.evaluate.
 *
 * Conventions taken from trec_eval (usnistgov/trec_eval):
 * - relevant ⇔ judged relevance ≥ relevance_level = 1 (pytrec_eval's default); unjudged docs are not relevant;
 * - the number of relevant documents R counts every judgement ≥ 1 of the query, including documents
 *   that were not retrieved or are not in the corpus (form_res_rels.c: rel_levels);
 * - a cutoff larger than the ranking is "filled with non-relevant documents" (m_P.c, m_recall.c), so
 *   P@k always divides by k;
 * - ranking order: score descending, ties by document id descending (form_res_rels.c: comp_sim_docno,
 *   `strcmp(p2->docno, p1->docno)`), byte order of UTF-8 = code-point order. `compareRanked` below.
 */
import { compareCodePoints } from '../weights/safetensors';

/** One retrieved document: its id and cosine score. */
export interface Hit {
  id: string;
  score: number;
}

/** trec_eval's order (comp_sim_docno): higher score first; equal scores → larger doc id first. */
export function compareRanked(a: Hit, b: Hit): number {
  if (a.score !== b.score) return a.score > b.score ? -1 : 1;
  return -compareCodePoints(a.id, b.id);
}

/** strcmp on UTF-8 bytes, which orders like Unicode code points: the writer's ordering (weights/safetensors/header.ts). */
export { compareCodePoints };

/** Sorts a run (doc id → score) into trec_eval's ranking. */
export function rankRun(run: Iterable<[string, number]>): Hit[] {
  return [...run].map(([id, score]) => ({ id, score })).sort(compareRanked);
}

export type MetricName = 'ndcg' | 'map' | 'recall' | 'precision' | 'mrr';
export const METRIC_NAMES: readonly MetricName[] = ['ndcg', 'map', 'recall', 'precision', 'mrr'];
/** The labels BEIR prints (NDCG@k, MAP@k, Recall@k, P@k, MRR@k). */
export const METRIC_LABELS: Readonly<Record<MetricName, string>> = { ndcg: 'NDCG', map: 'MAP', recall: 'Recall', precision: 'P', mrr: 'MRR' };

/** One value per cutoff, aligned with the `ks` the metrics were computed for. */
export type QueryMetrics = Record<MetricName, number[]> & { numRelevant: number };

/**
 * All metrics of one query at every cutoff in `ks`.
 * @param ranked the retrieved doc ids in rank order (rank 1 first); at least max(ks) long unless the
 *   corpus is smaller — missing ranks count as non-relevant.
 * @param rels the query's judgements: doc id → integer relevance (≤ 0: judged non-relevant).
 */
export function queryMetrics(ranked: readonly string[], rels: ReadonlyMap<string, number>, ks: readonly number[]): QueryMetrics {
  const gains = ranked.map((id) => rels.get(id) ?? 0);
  const judged = [...rels.values()];
  const numRelevant = judged.filter((r) => r >= 1).length;
  // Ideal ranking: every judged gain ≥ 1, largest first (m_ndcg_cut.c walks rel_levels downward).
  const idealGains = judged.filter((r) => r >= 1).sort((a, b) => b - a);
  return {
    ndcg: ks.map((k) => ndcgAt(gains, idealGains, k)),
    map: ks.map((k) => averagePrecisionAt(gains, numRelevant, k)),
    recall: ks.map((k) => recallAt(gains, numRelevant, k)),
    precision: ks.map((k) => precisionAt(gains, k)),
    mrr: ks.map((k) => reciprocalRankAt(gains, k)),
    numRelevant,
  };
}

/**
 * trec_eval m_ndcg_cut.c (Järvelin & Kekäläinen): DCG@k = Σ_{i≤k, g_i>0} g_i / log2(i+1) with the gain
 * g_i the judged relevance at rank i ("Note: i+2 since doc i has rank i+1"); IDCG@k the same sum over
 * the judged gains sorted descending; nDCG = DCG/IDCG, and DCG itself (= 0) when IDCG = 0.
 * (The 2008 9.0alpha code discounted rank 1 by 1 and rank r ≥ 2 by log2(r); current trec_eval, which
 * we follow, uses log2(r+1) throughout.)
 */
export function ndcgAt(gains: readonly number[], idealGains: readonly number[], k: number): number {
  const dcg = discountedGain(gains, k);
  const idcg = discountedGain(idealGains, k);
  return idcg > 0 ? dcg / idcg : dcg;
}

function discountedGain(gains: readonly number[], k: number): number {
  let sum = 0;
  for (let i = 0; i < Math.min(k, gains.length); i++) {
    if (gains[i] > 0) sum += gains[i] / Math.log2(i + 2); // 0-based i → rank i+1 → log2(rank+1)
  }
  return sum;
}

/**
 * trec_eval m_map_cut.c: AP@k = (Σ_{relevant rank r ≤ k} (#relevant in top r)/r) / R, with R the
 * number of relevant judgements of the query (not min(R, k)); 0 when R = 0.
 */
export function averagePrecisionAt(gains: readonly number[], numRelevant: number, k: number): number {
  if (numRelevant === 0) return 0;
  let relSoFar = 0;
  let sum = 0;
  for (let i = 0; i < Math.min(k, gains.length); i++) {
    if (gains[i] >= 1) {
      relSoFar++;
      sum += relSoFar / (i + 1);
    }
  }
  return sum / numRelevant;
}

/** trec_eval m_recall.c: (#relevant in top k) / R; 0 when R = 0. */
export function recallAt(gains: readonly number[], numRelevant: number, k: number): number {
  return numRelevant === 0 ? 0 : relevantInTop(gains, k) / numRelevant;
}

/** trec_eval m_P.c: (#relevant in top k) / k, also when fewer than k documents were retrieved. */
export function precisionAt(gains: readonly number[], k: number): number {
  return relevantInTop(gains, k) / k;
}

/**
 * BEIR custom_metrics.py `mrr`: 1/rank of the first document with relevance > 0 among the top k, else 0.
 * (BEIR sorts its hits with Python's stable sort on score alone; we use the trec_eval order above, which
 * only differs between documents with exactly equal scores.)
 */
export function reciprocalRankAt(gains: readonly number[], k: number): number {
  for (let i = 0; i < Math.min(k, gains.length); i++) if (gains[i] > 0) return 1 / (i + 1);
  return 0;
}

function relevantInTop(gains: readonly number[], k: number): number {
  let n = 0;
  for (let i = 0; i < Math.min(k, gains.length); i++) if (gains[i] >= 1) n++;
  return n;
}

/** Arithmetic mean of each metric over queries, per cutoff (BEIR: sum / len(scores)). */
export function meanMetrics(perQuery: readonly QueryMetrics[], nk: number): Record<MetricName, number[]> {
  const out = {} as Record<MetricName, number[]>;
  for (const m of METRIC_NAMES) {
    const sums = new Array<number>(nk).fill(0);
    for (const q of perQuery) for (let i = 0; i < nk; i++) sums[i] += q[m][i];
    out[m] = sums.map((s) => (perQuery.length ? s / perQuery.length : 0));
  }
  return out;
}
