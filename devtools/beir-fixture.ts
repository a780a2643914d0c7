/**
 * The generated BEIR data set of the eval tests (test/cli-eval.test.ts and others) and of
 * bench/accuracy.ts: 60 passages of 12 biomedical words, 14 queries, graded judgements, with the
 * corner cases the tests need. Seeded: the same files on every run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mulberry32 as rng } from './rng';

const WORDS = (
  'protein cell gene virus vaccine tumor diet sleep heart brain lung liver insulin bacteria enzyme ' +
  'membrane receptor signal dose trial mouse human blood immune therapy drug risk cancer muscle bone'
).split(' ');

function tokens(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

export interface TinyBeir {
  docIds: string[];
  queryIds: string[];
}

/**
 * Writes corpus.jsonl, queries.jsonl and qrels/test.tsv to `dir`. Each query q<i> is built from words
 * of its target document so retrieval is meaningful; judgements are graded (2 for the target, 1 for a
 * second document). Also present, on purpose:
 * - queries q-nojudge-* with no judgements (skipped and counted);
 * - query "doc-007", whose own id is a corpus document (excluded by ignoreIdenticalIds);
 * - a judgement of a document that is not in the corpus;
 * - documents with an empty title and with duplicated text (exact score ties).
 */
export function writeTinyBeir(dir: string, nDocs = 60, seed = 7): TinyBeir {
  const rand = rng(seed);
  const pick = () => WORDS[Math.floor(rand() * WORDS.length)];
  const docs: Array<{ _id: string; title: string; text: string }> = [];
  for (let i = 0; i < nDocs; i++) {
    const id = `doc-${String(i).padStart(3, '0')}`;
    const text = Array.from({ length: 12 }, pick).join(' ');
    docs.push({ _id: id, title: i % 5 === 0 ? '' : `${pick()} ${pick()}`, text });
  }
  docs[nDocs - 1] = { ...docs[nDocs - 2], _id: `doc-${String(nDocs - 1).padStart(3, '0')}` }; // exact duplicate text
  const queries: Array<{ _id: string; text: string }> = [];
  const qrels: string[] = ['query-id\tcorpus-id\tscore'];
  for (let q = 0; q < 12; q++) {
    // query "doc-007" is about document doc-007 itself, which ignoreIdenticalIds must hide
    const target = q === 3 ? 7 : Math.floor(rand() * nDocs);
    const second = (target + 1 + Math.floor(rand() * (nDocs - 1))) % nDocs;
    const words = tokens(docs[target].text);
    const text = q === 3 ? docs[target].text : [words[1], words[4], words[7], pick()].join(' ');
    const id = q === 3 ? 'doc-007' : `q${q}`;
    queries.push({ _id: id, text });
    qrels.push(`${id}\t${docs[target]._id}\t2`, `${id}\t${docs[second]._id}\t1`);
  }
  qrels.push('q5\tdoc-not-in-corpus\t1');
  qrels.push('q6\tdoc-002\t0'); // a judged non-relevant document
  queries.push({ _id: 'q-nojudge-1', text: 'protein cell' }, { _id: 'q-nojudge-2', text: 'sleep heart' });
  fs.mkdirSync(path.join(dir, 'qrels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'queries.jsonl'), queries.map((d) => JSON.stringify(d)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'qrels', 'test.tsv'), qrels.join('\n') + '\n');
  return { docIds: docs.map((d) => d._id), queryIds: queries.map((q) => q._id) };
}
