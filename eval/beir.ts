/**
 * BEIR data sets on disk (https://github.com/beir-cellar/beir/wiki/Load-your-custom-dataset):
 *
 *   DIR/corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."}   one object per line
 *   DIR/queries.jsonl       {"_id": "q1", "text": "..."}
 *   DIR/qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score           first line is a header
 *
 * What BEIR's GenericDataLoader (beir/datasets/data_loader.py) does, and where we differ:
 * - it skips the first qrels line unconditionally; we require it to be a header (its score column is
 *   not an integer) so a header-less file is not silently one judgement short;
 * - it keeps the last of two equal `_id`s; we refuse duplicate `_id`s (which text was meant?);
 * - it keeps the last of two equal (query, doc) judgements; so do we, with a warning;
 * - it keeps only queries that have qrels (`self.queries = {qid: ... for qid in self.qrels}`); so do
 *   we, and count the ones dropped. A qrels query missing from queries.jsonl makes BEIR raise
 *   KeyError; we drop it with a warning, since it cannot be retrieved;
 * - qrels naming documents that are not in the corpus are kept as they are: pytrec_eval counts them
 *   in the number of relevant documents (lowering recall, MAP and the ideal DCG), and we must too to
 *   give the same numbers. They are counted and reported in a warning.
 * - a missing or null `title` is the empty string (BEIR's loader would hand e5 a None).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { BeirFormatError } from './errors';

export interface BeirCorpus {
  ids: string[];
  titles: string[];
  texts: string[];
}

/** query id → (doc id → graded relevance), in file order. */
export type Qrels = Map<string, Map<string, number>>;

export interface BeirDataset {
  /** Folder it was read from (absent for data sets built in memory). */
  dir?: string;
  /** Name for reports, default the folder name. */
  name: string;
  split: string;
  corpus: BeirCorpus;
  /** Every query of queries.jsonl, in file order (also those without judgements in this split). */
  queries: Map<string, string>;
  /** Judgements of `split` whose query is in queries.jsonl. */
  qrels: Qrels;
  stats: BeirStats;
  warnings: string[];
}

export interface BeirStats {
  qrelsLines: number;
  /** Judgement lines repeating an earlier (query, doc) pair; the later score wins, like BEIR. */
  duplicateJudgements: number;
  /** Judgements naming a document absent from corpus.jsonl (kept: pytrec_eval counts them). */
  judgementsUnknownDoc: number;
  /** Queries in qrels but not in queries.jsonl (dropped). */
  qrelsQueriesWithoutText: number;
}

export interface LoadBeirOptions {
  split?: string;
  name?: string;
}

/** Reads a BEIR folder; throws BeirFormatError naming file:line for anything malformed. */
export async function loadBeir(dir: string, opts: LoadBeirOptions = {}): Promise<BeirDataset> {
  const split = opts.split ?? 'test';
  const files = beirFiles(dir, split);
  const corpus = await readCorpus(files.corpus);
  const allQueries = await readQueries(files.queries);
  const raw = await readQrels(files.qrels);
  return assembleDataset({ dir, name: opts.name ?? path.basename(path.resolve(dir)), split, corpus, queries: allQueries, raw });
}

export function beirFiles(dir: string, split: string): { corpus: string; queries: string; qrels: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(split)) {
    throw new BeirFormatError('missing_file', path.join(dir, 'qrels'), `split ${JSON.stringify(split)} is not a plain file name`);
  }
  const files = {
    corpus: path.join(dir, 'corpus.jsonl'),
    queries: path.join(dir, 'queries.jsonl'),
    qrels: path.join(dir, 'qrels', `${split}.tsv`),
  };
  for (const f of [files.corpus, files.queries]) {
    if (!isFile(f)) throw new BeirFormatError('missing_file', f, 'not found (expected a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv)');
  }
  if (!isFile(files.qrels)) {
    const qdir = path.join(dir, 'qrels');
    const have = fs.existsSync(qdir) ? fs.readdirSync(qdir).filter((f) => f.endsWith('.tsv')).map((f) => f.slice(0, -4)) : [];
    throw new BeirFormatError('missing_file', files.qrels, `no qrels for split ${JSON.stringify(split)}; available: ${have.length ? have.join(', ') : 'none'}`);
  }
  return files;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------------------ JSONL

/** Calls `onLine(text, lineNumber)` for each non-blank line, streaming (corpora can be gigabytes). */
async function forEachLine(file: string, onLine: (line: string, lineNo: number) => void): Promise<void> {
  const stream = fs.createReadStream(file, { encoding: 'utf8' });
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const raw of rl) {
      lineNo++;
      const line = lineNo === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw; // tolerate a BOM
      if (line.trim() === '') continue;
      onLine(line, lineNo);
    }
  } finally {
    rl.close();
    stream.destroy();
  }
}

function parseJsonObject(file: string, line: string, lineNo: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new BeirFormatError('bad_json', file, `not valid JSON (${(e as Error).message})`, lineNo);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new BeirFormatError('bad_json', file, `expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`, lineNo);
  }
  return v as Record<string, unknown>;
}

/** `_id` as a string; integer ids (some converted data sets have them) become their decimal form. */
function idField(file: string, obj: Record<string, unknown>, lineNo: number): string {
  const v = obj._id;
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  throw new BeirFormatError('bad_field', file, `must be a non-empty string, got ${describe(v)}`, lineNo, '_id');
}

function stringField(file: string, obj: Record<string, unknown>, field: string, lineNo: number, optional: boolean): string {
  const v = obj[field];
  if (typeof v === 'string') return v;
  if (optional && (v === undefined || v === null)) return '';
  throw new BeirFormatError('bad_field', file, `must be a string, got ${describe(v)}`, lineNo, field);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** The line's `_id`, which no earlier line of the file may have used (`seen`: id → line). */
function uniqueId(file: string, obj: Record<string, unknown>, lineNo: number, seen: Map<string, number>): string {
  const id = idField(file, obj, lineNo);
  const first = seen.get(id);
  if (first !== undefined) throw new BeirFormatError('duplicate_id', file, `${JSON.stringify(id)} already defined on line ${first}`, lineNo, '_id');
  seen.set(id, lineNo);
  return id;
}

export async function readCorpus(file: string): Promise<BeirCorpus> {
  const corpus: BeirCorpus = { ids: [], titles: [], texts: [] };
  const seen = new Map<string, number>();
  await forEachLine(file, (line, lineNo) => {
    const obj = parseJsonObject(file, line, lineNo);
    const id = uniqueId(file, obj, lineNo, seen);
    corpus.ids.push(id);
    corpus.titles.push(stringField(file, obj, 'title', lineNo, true));
    corpus.texts.push(stringField(file, obj, 'text', lineNo, false));
  });
  if (corpus.ids.length === 0) throw new BeirFormatError('empty', file, 'no documents');
  return corpus;
}

export async function readQueries(file: string): Promise<Map<string, string>> {
  const queries = new Map<string, string>();
  const seen = new Map<string, number>();
  await forEachLine(file, (line, lineNo) => {
    const obj = parseJsonObject(file, line, lineNo);
    const id = uniqueId(file, obj, lineNo, seen);
    queries.set(id, stringField(file, obj, 'text', lineNo, false));
  });
  if (queries.size === 0) throw new BeirFormatError('empty', file, 'no queries');
  return queries;
}

// ------------------------------------------------------------------------------------------ qrels

export interface RawJudgement {
  queryId: string;
  docId: string;
  score: number;
  line: number;
}

export interface RawQrels {
  file: string;
  judgements: RawJudgement[];
}

const INTEGER = /^[+-]?[0-9]+$/; // what Python's int() accepts once surrounding whitespace is stripped

export async function readQrels(file: string): Promise<RawQrels> {
  const judgements: RawJudgement[] = [];
  let sawHeader = false;
  await forEachLine(file, (line, lineNo) => {
    const fields = line.split('\t');
    if (!sawHeader) {
      // BEIR does next(reader) without looking; a data row there would be lost, so insist on a header.
      if (fields.length >= 3 && INTEGER.test(fields[2].trim())) {
        throw new BeirFormatError('bad_qrels_header', file,
          `first line looks like a judgement (${JSON.stringify(line)}); BEIR qrels start with a header 'query-id\\tcorpus-id\\tscore' and BEIR skips that line unread`, lineNo);
      }
      sawHeader = true;
      return;
    }
    if (fields.length !== 3) {
      throw new BeirFormatError('bad_qrels_line', file, `expected 3 tab-separated fields (query-id, corpus-id, score), got ${fields.length}`, lineNo);
    }
    const [queryId, docId, scoreText] = fields;
    if (queryId === '') throw new BeirFormatError('bad_qrels_line', file, 'empty', lineNo, 'query-id');
    if (docId === '') throw new BeirFormatError('bad_qrels_line', file, 'empty', lineNo, 'corpus-id');
    const t = scoreText.trim();
    const score = Number(t);
    if (!INTEGER.test(t) || !Number.isSafeInteger(score)) {
      throw new BeirFormatError('bad_qrels_line', file, `must be an integer (BEIR reads it with int()), got ${JSON.stringify(scoreText)}`, lineNo, 'score');
    }
    judgements.push({ queryId, docId, score, line: lineNo });
  });
  if (!sawHeader) throw new BeirFormatError('empty', file, 'empty file (expected a header line and judgements)');
  return { file, judgements };
}

// --------------------------------------------------------------------------------------- assembly

export interface AssembleInput {
  dir?: string;
  name: string;
  split: string;
  corpus: BeirCorpus;
  queries: Map<string, string>;
  raw: RawQrels;
}

/** Builds the qrels of one split against the corpus and queries, counting what BEIR would ignore. */
export function assembleDataset(input: AssembleInput): BeirDataset {
  const { corpus, queries, raw } = input;
  const docIds = new Set(corpus.ids);
  const warnings: string[] = [];
  const qrels: Qrels = new Map();
  const stats: BeirStats = { qrelsLines: raw.judgements.length, duplicateJudgements: 0, judgementsUnknownDoc: 0, qrelsQueriesWithoutText: 0 };
  const firstLine = new Map<string, number>(); // "qid\tdid" → line
  const duplicates: string[] = [];
  const unknownDocs: string[] = [];
  const queriesWithoutText = new Map<string, number>();

  for (const j of raw.judgements) {
    if (!queries.has(j.queryId)) {
      if (!queriesWithoutText.has(j.queryId)) queriesWithoutText.set(j.queryId, j.line);
      continue;
    }
    const key = `${j.queryId}\t${j.docId}`;
    const prev = firstLine.get(key);
    if (prev !== undefined) {
      stats.duplicateJudgements++;
      if (duplicates.length < 3) duplicates.push(`line ${j.line} repeats line ${prev} (${JSON.stringify(j.queryId)}, ${JSON.stringify(j.docId)})`);
    } else {
      firstLine.set(key, j.line);
    }
    if (!docIds.has(j.docId)) {
      stats.judgementsUnknownDoc++;
      if (unknownDocs.length < 3) unknownDocs.push(`line ${j.line}: ${JSON.stringify(j.docId)}`);
    }
    let rels = qrels.get(j.queryId);
    if (!rels) qrels.set(j.queryId, (rels = new Map()));
    rels.set(j.docId, j.score); // later line wins, like BEIR's dict assignment
  }
  stats.qrelsQueriesWithoutText = queriesWithoutText.size;

  if (stats.duplicateJudgements) {
    warnings.push(`${raw.file}: ${stats.duplicateJudgements} judgement(s) repeat an earlier (query, doc) pair; the later score is used, like BEIR (${duplicates.join('; ')})`);
  }
  if (stats.judgementsUnknownDoc) {
    warnings.push(`${raw.file}: ${stats.judgementsUnknownDoc} judgement(s) name documents absent from corpus.jsonl; they still count as relevant documents, like pytrec_eval (${unknownDocs.join('; ')})`);
  }
  if (queriesWithoutText.size) {
    const ex = [...queriesWithoutText].slice(0, 3).map(([q, l]) => `line ${l}: ${JSON.stringify(q)}`).join('; ');
    warnings.push(`${raw.file}: ${queriesWithoutText.size} quer${queriesWithoutText.size === 1 ? 'y has' : 'ies have'} judgements but no text in queries.jsonl and cannot be evaluated (BEIR would raise KeyError) (${ex})`);
  }
  if (qrels.size === 0) throw new BeirFormatError('empty', raw.file, 'no judgement names a query of queries.jsonl');
  return { dir: input.dir, name: input.name, split: input.split, corpus, queries, qrels, stats, warnings };
}
