// eval/beir.ts + eval/e5_format.ts: the BEIR loader on a hand-made fixture and on every kind of
// malformed file (error class, code, file:line and field in the message), and e5's passage text
// (unilm/e5 mteb_beir_eval.py) including a cross-check of str.strip() against Python when present.

import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBeir } from '../../eval/beir';
import { corpusInputs, e5PassageText, pyStrip } from '../../eval/e5_format';
import { BeirErrorCode, BeirFormatError } from '../../eval/errors';

const TINY = path.join(__dirname, '..', 'fixtures', 'eval', 'tiny');

let tmp: string;
before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-beir-'))));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
/** A BEIR folder with the given file contents (defaults: one valid doc, query and judgement). */
function beirDir(files: { corpus?: string; queries?: string; qrels?: string; split?: string }): string {
  const dir = path.join(tmp, String(counter++));
  fs.mkdirSync(path.join(dir, 'qrels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'corpus.jsonl'), files.corpus ?? '{"_id": "d1", "title": "", "text": "x"}\n');
  fs.writeFileSync(path.join(dir, 'queries.jsonl'), files.queries ?? '{"_id": "q1", "text": "x"}\n');
  fs.writeFileSync(path.join(dir, 'qrels', `${files.split ?? 'test'}.tsv`), files.qrels ?? 'query-id\tcorpus-id\tscore\nq1\td1\t1\n');
  return dir;
}

async function rejects(dir: string, code: BeirErrorCode, where: RegExp, split = 'test'): Promise<BeirFormatError> {
  try {
    await loadBeir(dir, { split });
  } catch (e) {
    assert.ok(e instanceof BeirFormatError, `expected BeirFormatError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, where);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('eval: BEIR loader', () => {
  it('reads the tiny fixture: documents, queries, graded judgements, split', async () => {
    const ds = await loadBeir(TINY);
    assert.equal(ds.name, 'tiny');
    assert.equal(ds.split, 'test');
    assert.deepEqual(ds.corpus.ids, ['d1', 'd2', 'd3', 'd4', 'q2']);
    assert.deepEqual(ds.corpus.titles, ['', 'Beta', 'gamma', '', '']); // empty, missing and null titles
    assert.deepEqual([...ds.queries.keys()], ['q1', 'q2', 'q3']);
    assert.deepEqual([...ds.qrels.keys()], ['q1', 'q2']);
    assert.deepEqual([...ds.qrels.get('q2')!], [['d2', 2], ['d3', 1], ['q2', 1]]);
    assert.deepEqual(ds.warnings, []);
    const dev = await loadBeir(TINY, { split: 'dev' });
    assert.deepEqual([...dev.qrels.keys()], ['q1', 'q3']);
  });

  it('names the available splits when the asked one is missing', async () => {
    await rejects(TINY, 'missing_file', /qrels\/train\.tsv: no qrels for split "train"; available: dev, test/, 'train');
  });

  it('reports a missing corpus', async () => {
    const dir = beirDir({});
    fs.rmSync(path.join(dir, 'corpus.jsonl'));
    await rejects(dir, 'missing_file', /corpus\.jsonl: not found/);
  });

  it('accepts CRLF line ends, a BOM, blank lines and integer ids', async () => {
    const dir = beirDir({
      corpus: '\ufeff{"_id": 17, "title": "T", "text": "x"}\r\n\r\n{"_id": "d2", "text": "y"}\r\n',
      queries: '{"_id": "q1", "text": "x"}\r\n',
      qrels: 'query-id\tcorpus-id\tscore\r\nq1\t17\t 2 \r\n\r\n',
    });
    const ds = await loadBeir(dir);
    assert.deepEqual(ds.corpus.ids, ['17', 'd2']);
    assert.deepEqual([...ds.qrels.get('q1')!], [['17', 2]]);
  });

  describe('malformed input names file:line and field', () => {
    it('a line that is not JSON', async () => {
      const dir = beirDir({ corpus: '{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": "y"\n' });
      await rejects(dir, 'bad_json', /corpus\.jsonl:2: not valid JSON/);
    });

    it('a JSON line that is not an object', async () => {
      await rejects(beirDir({ queries: '["q1", "x"]\n' }), 'bad_json', /queries\.jsonl:1: expected a JSON object/);
    });

    it('a missing _id', async () => {
      await rejects(beirDir({ corpus: '{"_id": "d1", "text": "x"}\n{"text": "y"}\n' }), 'bad_field', /corpus\.jsonl:2: _id: must be a non-empty string, got nothing/);
    });

    it('a text that is not a string', async () => {
      const e = await rejects(beirDir({ corpus: '{"_id": "d1", "text": 5}\n' }), 'bad_field', /corpus\.jsonl:1: text: must be a string, got 5/);
      assert.equal(e.line, 1);
      assert.equal(e.field, 'text');
    });

    it('a title that is not a string', async () => {
      await rejects(beirDir({ corpus: '{"_id": "d1", "title": ["a"], "text": "x"}\n' }), 'bad_field', /corpus\.jsonl:1: title: must be a string/);
    });

    it('a query without text', async () => {
      await rejects(beirDir({ queries: '{"_id": "q1"}\n' }), 'bad_field', /queries\.jsonl:1: text:/);
    });

    it('a duplicate document id, naming both lines', async () => {
      const dir = beirDir({ corpus: '{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": "y"}\n{"_id": "d1", "text": "z"}\n' });
      await rejects(dir, 'duplicate_id', /corpus\.jsonl:3: _id: "d1" already defined on line 1/);
    });

    it('a duplicate query id', async () => {
      await rejects(beirDir({ queries: '{"_id": "q1", "text": "x"}\n{"_id": "q1", "text": "y"}\n' }), 'duplicate_id', /queries\.jsonl:2/);
    });

    it('qrels without a header (BEIR would silently drop the first judgement)', async () => {
      await rejects(beirDir({ qrels: 'q1\td1\t1\n' }), 'bad_qrels_header', /test\.tsv:1: first line looks like a judgement/);
    });

    it('a qrels line with 2 fields', async () => {
      await rejects(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1 d1 1\n' }), 'bad_qrels_line', /test\.tsv:3: expected 3 tab-separated fields/);
    });

    it('a non-integer score', async () => {
      const e = await rejects(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nq1\td1\t0.5\n' }), 'bad_qrels_line', /test\.tsv:2: score: must be an integer/);
      assert.equal(e.field, 'score');
    });

    it('an empty corpus', async () => {
      await rejects(beirDir({ corpus: '\n' }), 'empty', /corpus\.jsonl: no documents/);
    });

    it('qrels that name no known query', async () => {
      await rejects(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nqX\td1\t1\n' }), 'empty', /no judgement names a query of queries\.jsonl/);
    });
  });

  describe('what BEIR tolerates is counted and reported', () => {
    it('judgements of documents not in the corpus are kept (pytrec_eval counts them as relevant)', async () => {
      const ds = await loadBeir(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tgone\t1\n' }));
      assert.equal(ds.stats.judgementsUnknownDoc, 1);
      assert.deepEqual([...ds.qrels.get('q1')!], [['d1', 1], ['gone', 1]]);
      assert.match(ds.warnings.join('\n'), /1 judgement\(s\) name documents absent from corpus\.jsonl.*line 3: "gone"/);
    });

    it('a repeated (query, doc) judgement: the later score wins, like BEIR', async () => {
      const ds = await loadBeir(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n' }));
      assert.equal(ds.stats.duplicateJudgements, 1);
      assert.equal(ds.qrels.get('q1')!.get('d1'), 2);
      assert.match(ds.warnings.join('\n'), /line 3 repeats line 2/);
    });

    it('judged queries missing from queries.jsonl are dropped (BEIR raises KeyError)', async () => {
      const ds = await loadBeir(beirDir({ qrels: 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n' }));
      assert.equal(ds.stats.qrelsQueriesWithoutText, 1);
      assert.deepEqual([...ds.qrels.keys()], ['q1']);
      assert.match(ds.warnings.join('\n'), /1 query has judgements but no text.*line 3: "q9"/);
    });
  });
});

describe('eval: e5 passage text (unilm/e5 mteb_beir_eval.py)', () => {
  it("joins title and text with one space, then strips: '{} {}'.format(title, text).strip()", () => {
    assert.equal(e5PassageText('', 'text'), 'text'); // empty title: no leading space
    assert.equal(e5PassageText('Title', 'text'), 'Title text');
    assert.equal(e5PassageText(' T ', ' x '), 'T   x'); // only the ends are stripped
    assert.equal(e5PassageText('Title', ''), 'Title');
  });

  it('docAsQuery (Quora): the text alone, with the query prefix', () => {
    const docs = { titles: ['T', ''], texts: ['a', 'b'] };
    assert.deepEqual(corpusInputs(docs), { texts: ['T a', 'b'], prefix: 'passage' });
    assert.deepEqual(corpusInputs(docs, true), { texts: ['a', 'b'], prefix: 'query' });
  });

  it("strips Python's whitespace set, not JavaScript's", () => {
    // Python: '\x1c' and '\x85' are whitespace, '\ufeff' is not; JavaScript's trim() says the opposite.
    assert.equal(pyStrip('\x1c\x85 a \u3000'), 'a');
    assert.equal(pyStrip('\ufeffa\ufeff'), '\ufeffa\ufeff');
  });

  it('matches CPython str.strip() on every BMP code point (when python3 is available)', function () {
    const python = ['/usr/bin/python3', 'python3'].find((p) => {
      try {
        execFileSync(p, ['-c', 'pass'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    if (!python) {
      console.log('      (skipped: no python3 to compare str.strip() with)');
      this.skip();
    }
    // Python lists the code points c for which ('x' + chr(c)).strip() == 'x'; we must strip exactly those.
    const out = execFileSync(python!, ['-c', "import json; print(json.dumps([c for c in range(0x10000) if not 0xd800 <= c <= 0xdfff and ('x' + chr(c)).strip() == 'x']))"]);
    const expected: number[] = JSON.parse(out.toString());
    const ours: number[] = [];
    for (let c = 0; c < 0x10000; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      if (pyStrip(`x${String.fromCharCode(c)}`) === 'x') ours.push(c);
    }
    assert.deepEqual(ours, expected);
  });
});
