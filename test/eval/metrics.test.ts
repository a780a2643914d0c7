// eval/metrics.ts: every metric against values computed by hand from trec_eval's definitions
// (m_ndcg_cut.c, m_map_cut.c, m_recall.c, m_P.c, form_res_rels.c) and BEIR's custom_metrics.mrr.
// Each expected number is derived in the comment above it; decimals were evaluated with Python.

import { strict as assert } from 'node:assert';
import {
  compareCodePoints, meanMetrics, queryMetrics, rankRun,
} from '../../eval/metrics';

const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-12, `${what}: got ${actual}, expected ${expected}`);

const closeAll = (actual: number[], expected: number[], what: string) => {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => close(a, expected[i], `${what}[${i}]`));
};

describe('eval metrics (trec_eval / BEIR definitions)', () => {
  describe('graded relevance, one query', () => {
    // Judgements: d1=2, d2=1, d3=0 (judged non-relevant), d4=1 (not retrieved), d9=2 (not retrieved).
    // Ranking (5 retrieved): d3, d1, d5, d2, d6  →  gains 0, 2, 0, 1, 0.
    // R (judgements ≥ 1) = {d1, d2, d4, d9} = 4. Ideal gains, descending: 2, 2, 1, 1.
    const rels = new Map([['d1', 2], ['d2', 1], ['d3', 0], ['d4', 1], ['d9', 2]]);
    const m = queryMetrics(['d3', 'd1', 'd5', 'd2', 'd6'], rels, [1, 3, 5, 10]);

    it('counts relevant judgements, including unretrieved ones', () => assert.equal(m.numRelevant, 4));

    it('nDCG@k: gain = relevance, discount log2(rank+1), ideal from the judgements', () => {
      // @1:  DCG = 0 (rank 1 is d3, gain 0)                                   → 0
      // @3:  DCG = 2/log2(3) = 1.261859507142915
      //      IDCG = 2/log2(2) + 2/log2(3) + 1/log2(4) = 2 + 1.2618595 + 0.5 = 3.761859507142915
      //      → 1.261859507142915 / 3.761859507142915 = 0.3354350434265105
      // @5:  DCG = 2/log2(3) + 1/log2(5) = 1.261859507 + 0.430676558 = 1.6925360652163082
      //      IDCG = 3.761859507 + 1/log2(5) = 4.192536065216308 → 0.40370220765864395
      // @10: nothing more retrieved, ideal has only 4 gains → same as @5
      closeAll(m.ndcg, [0, 0.3354350434265105, 0.40370220765864395, 0.40370220765864395], 'ndcg');
    });

    it('MAP@k: sum of precision at relevant ranks ≤ k, divided by R (not min(R, k))', () => {
      // relevant at rank 2 (P=1/2) and rank 4 (P=2/4)
      // @1: 0; @3: (1/2)/4 = 0.125; @5: (1/2 + 2/4)/4 = 0.25; @10: 0.25
      closeAll(m.map, [0, 0.125, 0.25, 0.25], 'map');
    });

    it('Recall@k = relevant in top k / R', () => {
      // @1: 0/4; @3: 1/4; @5: 2/4; @10: 2/4
      closeAll(m.recall, [0, 0.25, 0.5, 0.5], 'recall');
    });

    it('P@k = relevant in top k / k, also when fewer than k were retrieved', () => {
      // @1: 0/1; @3: 1/3; @5: 2/5; @10: 2/10 (trec_eval fills the ranking with non-relevant docs)
      closeAll(m.precision, [0, 1 / 3, 0.4, 0.2], 'precision');
    });

    it('MRR@k = 1/rank of the first relevant document within the top k', () => {
      // first relevant (d1) at rank 2: @1 → 0, otherwise 1/2
      closeAll(m.mrr, [0, 0.5, 0.5, 0.5], 'mrr');
    });
  });

  describe('ties: score descending, then doc id descending (trec_eval comp_sim_docno)', () => {
    it('orders equal scores by larger id first', () => {
      // b, c, d tie at 0.5 → d, c, b between a (0.9) and e (0.1)
      const ranked = rankRun([['b', 0.5], ['a', 0.9], ['d', 0.5], ['e', 0.1], ['c', 0.5]]).map((h) => h.id);
      assert.deepEqual(ranked, ['a', 'd', 'c', 'b', 'e']);
    });

    it('the tie order decides the metrics', () => {
      // Only b is relevant (rel 1). In trec_eval order it is rank 4 (a, d, c, b, e):
      //   MRR@10 = 1/4; P@3 = 0; Recall@3 = 0; Recall@5 = 1;
      //   nDCG@10 = (1/log2(5)) / (1/log2(2)) = 0.43067655807339306
      // (with ascending ids b would be rank 2 and MRR 0.5)
      const ranked = rankRun([['b', 0.5], ['a', 0.9], ['d', 0.5], ['e', 0.1], ['c', 0.5]]).map((h) => h.id);
      const m = queryMetrics(ranked, new Map([['b', 1]]), [3, 5, 10]);
      closeAll(m.mrr, [0, 0.25, 0.25], 'mrr');
      closeAll(m.precision, [0, 0.2, 0.1], 'precision');
      closeAll(m.recall, [0, 1, 1], 'recall');
      close(m.ndcg[2], 0.43067655807339306, 'ndcg@10');
    });

    it('compares ids as byte strings (strcmp), not numbers', () => {
      // "9" > "10" byte-wise, so in a tie "9" ranks first
      assert.deepEqual(rankRun([['10', 1], ['9', 1], ['100', 1]]).map((h) => h.id), ['9', '100', '10']);
    });

    it('compares past U+FFFF by code point, as UTF-8 strcmp does', () => {
      // U+1F600 is UTF-16 D83D DE00 < FFFD, but its code point (and UTF-8 bytes F0…) are larger
      assert.ok(compareCodePoints('\u{1F600}', '\uFFFD') > 0);
      assert.ok(compareCodePoints('a', 'ab') < 0);
      assert.equal(compareCodePoints('x\u{1F600}', 'x\u{1F600}'), 0);
      assert.deepEqual(rankRun([['\uFFFD', 1], ['\u{1F600}', 1]]).map((h) => h.id), ['\u{1F600}', '\uFFFD']);
    });
  });

  describe('edge cases', () => {
    it('no relevant document retrieved: every metric is 0', () => {
      const m = queryMetrics(['x', 'y', 'z'], new Map([['r', 1], ['x', 0]]), [1, 10]);
      for (const name of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const) closeAll(m[name], [0, 0], name);
      assert.equal(m.numRelevant, 1);
    });

    it('judgements all 0 (or negative): R = 0, every metric 0, as pytrec_eval returns', () => {
      const m = queryMetrics(['a', 'b'], new Map([['a', 0], ['b', -1]]), [1, 5]);
      assert.equal(m.numRelevant, 0);
      for (const name of ['ndcg', 'map', 'recall', 'precision', 'mrr'] as const) closeAll(m[name], [0, 0], name);
    });

    it('k larger than the corpus: the missing ranks count as non-relevant', () => {
      // corpus of 2, both relevant (rel 1 and 3), k = 5:
      //   P@5 = 2/5; Recall@5 = 1; MAP@5 = (1/1 + 2/2)/2 = 1; MRR@5 = 1
      //   ranking b(3), a(1): DCG = 3/log2(2) + 1/log2(3) = 3.6309297535714578 = IDCG → nDCG = 1
      const m = queryMetrics(['b', 'a'], new Map([['a', 1], ['b', 3]]), [5]);
      closeAll(m.precision, [0.4], 'precision');
      closeAll(m.recall, [1], 'recall');
      closeAll(m.map, [1], 'map');
      closeAll(m.mrr, [1], 'mrr');
      closeAll(m.ndcg, [1], 'ndcg');
    });

    it('a worse order of the same documents lowers nDCG (graded gains matter)', () => {
      // ranking a(1), b(3): DCG = 1 + 3/log2(3) = 1 + 1.8927892607143724 = 2.8927892607143724
      //   IDCG = 3 + 1/log2(3) = 3.6309297535714578 → 0.7967075809905066
      const m = queryMetrics(['a', 'b'], new Map([['a', 1], ['b', 3]]), [2]);
      close(m.ndcg[0], 0.7967075809905066, 'ndcg@2');
      closeAll(m.map, [1], 'map'); // binary metrics do not see grades
    });

    it('relevance 2 counts once for recall/MAP/P (binary at relevance_level 1)', () => {
      // one judgement of grade 2 retrieved at rank 1: Recall@1 = 1, P@1 = 1, MAP@1 = 1
      const m = queryMetrics(['a'], new Map([['a', 2]]), [1]);
      closeAll([m.recall[0], m.precision[0], m.map[0], m.ndcg[0]], [1, 1, 1, 1], 'binary');
    });

    it('empty ranking', () => {
      const m = queryMetrics([], new Map([['a', 1]]), [1, 3]);
      closeAll(m.ndcg, [0, 0], 'ndcg');
      closeAll(m.precision, [0, 0], 'precision');
    });
  });

  describe('means', () => {
    it('average every evaluated query, zeros included (BEIR: sum / len(scores))', () => {
      // q1: rel doc at rank 1 → nDCG@1 = 1, MRR@1 = 1; q2: rel doc at rank 2 → nDCG@1 = 0, MRR@1 = 0
      //   but MRR@2 = 1/2; q3: no relevant judgement → all 0.
      // mean MRR@1 = (1 + 0 + 0)/3 = 0.3333…; mean MRR@2 = (1 + 0.5 + 0)/3 = 0.5
      const ks = [1, 2];
      const q1 = queryMetrics(['a', 'b'], new Map([['a', 1]]), ks);
      const q2 = queryMetrics(['a', 'b'], new Map([['b', 1]]), ks);
      const q3 = queryMetrics(['a', 'b'], new Map([['a', 0]]), ks);
      const mean = meanMetrics([q1, q2, q3], ks.length);
      closeAll(mean.mrr, [1 / 3, 0.5], 'mrr');
      // Recall@2: (1 + 1 + 0)/3
      closeAll(mean.recall, [1 / 3, 2 / 3], 'recall');
    });
  });
});
