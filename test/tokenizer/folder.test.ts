// Loading from a model folder: tokenizer.json vs vocab.txt + tokenizer_config.json, their
// cross-check, and the typed errors. Temp folders only; the bert-base-uncased files are copied from
// ../shared at test time (never committed) and those tests skip when it is absent.

import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BertTokenizer, TokenizerError } from '../../tokenizer';
import { randomCases } from '../../devtools/random-text';
import { fromOurs, loadCorpus, tinyTokenizerJson } from '../fixtures/tokenizer/support';

const sharedModel = path.resolve(__dirname, '..', '..', '..', 'shared', 'data', 'bert-base-uncased');

function tempFolder(files: Record<string, string | object>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-tokenizer-'));
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

function tinyVocabTxt(): string {
  const vocab = (tinyTokenizerJson().model as { vocab: Record<string, number> }).vocab;
  return Object.keys(vocab).join('\n') + '\n';
}

/** Asserts fn throws a TokenizerError with this code whose message matches every pattern. */
function throwsTokenizerError(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TokenizerError, `not a TokenizerError: ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

describe('tokenizer/config: loading from a model folder', function () {
  const made: string[] = [];
  const folder = (files: Record<string, string | object>) => {
    const d = tempFolder(files);
    made.push(d);
    return d;
  };
  after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('vocab.txt + tokenizer_config.json alone gives the same tokenizer as tokenizer.json', function () {
    const fromJson = BertTokenizer.fromFolder(folder({ 'tokenizer.json': tinyTokenizerJson() }));
    const fromVocab = BertTokenizer.fromFolder(folder({ 'vocab.txt': tinyVocabTxt(), 'tokenizer_config.json': { do_lower_case: true, model_max_length: 128 } }));
    assert.strictEqual(fromVocab.modelMaxLength, 128);
    for (const k of ['vocabSize', 'padId', 'clsId', 'sepId', 'unkId', 'maskId'] as const) assert.strictEqual(fromVocab[k], fromJson[k], k);
    for (const text of ['Unwanted, running! [MASK] héllo 中', '', 'x[CLS]y']) {
      assert.deepStrictEqual(fromOurs(fromVocab.encode(text, { pair: 'x y' })), fromOurs(fromJson.encode(text, { pair: 'x y' })));
    }
  });

  it('tokenizer_config.json options reach the normalizer (do_lower_case, strip_accents)', function () {
    const cased = BertTokenizer.fromFolder(folder({ 'vocab.txt': tinyVocabTxt(), 'tokenizer_config.json': { do_lower_case: false } }));
    assert.deepStrictEqual(cased.tokenize('Hello hello'), ['[UNK]', 'hello']);
    const keepAccents = BertTokenizer.fromFolder(folder({ 'vocab.txt': tinyVocabTxt(), 'tokenizer_config.json': { strip_accents: false } }));
    assert.deepStrictEqual(keepAccents.tokenize('HÉLLO'), ['héllo']);
  });

  it('a truncation/padding block in tokenizer.json is reported, not applied', function () {
    const json = tinyTokenizerJson({ truncation: { max_length: 3, strategy: 'LongestFirst', stride: 0, direction: 'Right' }, padding: { strategy: { Fixed: 16 } } });
    const t = BertTokenizer.fromTokenizerJson(json);
    assert.deepStrictEqual(t.ignoredTruncation, json.truncation);
    assert.deepStrictEqual(t.ignoredPadding, json.padding);
    assert.strictEqual(t.warnings.length, 2);
    assert.match(t.warnings[0], /truncation.*ignored/);
    assert.strictEqual(t.encode('x y x y x y').nTokens, 8);
  });

  it('tokenizer.json and tokenizer_config.json disagreeing on lower-casing is an error naming both', function () {
    const dir = folder({ 'tokenizer.json': tinyTokenizerJson(), 'tokenizer_config.json': { do_lower_case: false } });
    throwsTokenizerError(() => BertTokenizer.fromFolder(dir), 'mismatch', /tokenizer_config\.json/, /do_lower_case/, /normalizer\.lowercase/);
  });

  it('vocab.txt disagreeing with tokenizer.json ids is an error naming the line', function () {
    const lines = tinyVocabTxt().split('\n');
    [lines[5], lines[6]] = [lines[6], lines[5]];
    const dir = folder({ 'tokenizer.json': tinyTokenizerJson(), 'vocab.txt': lines.join('\n') });
    throwsTokenizerError(() => BertTokenizer.fromFolder(dir), 'mismatch', /vocab\.txt: line 6/, /"##want" has id 5 here but id 6/);
    const short = folder({ 'tokenizer.json': tinyTokenizerJson(), 'vocab.txt': tinyVocabTxt().split('\n').slice(0, 10).join('\n') });
    throwsTokenizerError(() => BertTokenizer.fromFolder(short), 'mismatch', /10 tokens here but 29/);
  });

  it('special tokens disagreeing with tokenizer.json are an error naming the token', function () {
    const dir = folder({ 'tokenizer.json': tinyTokenizerJson(), 'special_tokens_map.json': { cls_token: 'want' } });
    throwsTokenizerError(() => BertTokenizer.fromFolder(dir), 'mismatch', /special_tokens_map\.json/, /cls_token/, /"want"/);
    const unk = folder({ 'tokenizer.json': tinyTokenizerJson(), 'tokenizer_config.json': { unk_token: { content: '[MASK]' } } });
    throwsTokenizerError(() => BertTokenizer.fromFolder(unk), 'mismatch', /unk_token/, /model\.unk_token/);
  });

  it('bad folders and files are typed errors naming the file and field', function () {
    throwsTokenizerError(() => BertTokenizer.fromFolder('/nonexistent/model'), 'not_found', /nonexistent/);
    throwsTokenizerError(() => BertTokenizer.fromFolder(folder({ 'config.json': {} })), 'not_found', /neither tokenizer\.json nor vocab\.txt/);
    throwsTokenizerError(() => BertTokenizer.fromFolder(folder({ 'tokenizer.json': '{"model": ' })), 'bad_json', /tokenizer\.json/);
    throwsTokenizerError(() => BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ model: { type: 'BPE', vocab: {}, merges: [] } })), 'unsupported', /model\.type/, /BPE/);
    throwsTokenizerError(() => BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ normalizer: { type: 'Sequence', normalizers: [] } })), 'unsupported', /normalizer\.type/);
    throwsTokenizerError(() => BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ model: { vocab: { a: 0 }, unk_token: '[UNK]' } })), 'bad_field', /model\.unk_token/);
    throwsTokenizerError(() => BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ model: { vocab: { a: -1 } } })), 'bad_field', /model\.vocab\["a"\]/);
    throwsTokenizerError(() => BertTokenizer.fromTokenizerJson(tinyTokenizerJson({ added_tokens: [{ id: 0 }] })), 'bad_field', /added_tokens\[0\]\.content/);
    throwsTokenizerError(() => BertTokenizer.fromFolder(folder({ 'vocab.txt': tinyVocabTxt(), 'tokenizer_config.json': { do_lower_case: 'yes' } })), 'bad_field', /tokenizer_config\.json: do_lower_case/);
  });

  describe('bert-base-uncased from ../shared', function () {
    before(function () {
      if (!fs.existsSync(path.join(sharedModel, 'vocab.txt'))) {
        console.log(`    skipping: ${sharedModel} not found (../shared is absent)`);
        this.skip();
      }
    });

    it('the shared folder loads with tokenizer.json, vocab.txt and tokenizer_config.json agreeing', function () {
      const t = BertTokenizer.fromFolder(sharedModel);
      assert.deepStrictEqual([t.vocabSize, t.modelMaxLength, t.padId, t.unkId, t.clsId, t.sepId, t.maskId], [30522, 512, 0, 100, 101, 102, 103]);
      assert.deepStrictEqual(t.warnings, []);
    });

    it('vocab.txt + tokenizer_config.json only (copied to a temp folder) equals the tokenizer.json path', function () {
      const dir = folder({});
      for (const f of ['vocab.txt', 'tokenizer_config.json']) fs.copyFileSync(path.join(sharedModel, f), path.join(dir, f));
      const slow = BertTokenizer.fromFolder(dir);
      const fast = BertTokenizer.fromTokenizerJson(JSON.parse(fs.readFileSync(path.join(sharedModel, 'tokenizer.json'), 'utf8')));
      for (const k of ['vocabSize', 'modelMaxLength', 'padId', 'clsId', 'sepId', 'unkId', 'maskId'] as const) assert.strictEqual(slow[k], fast[k], k);
      const cases = [...loadCorpus(), ...randomCases(99, 5000)];
      for (const c of cases) {
        const opts = { pair: c.pair, maxLength: c.maxLength, addSpecialTokens: c.addSpecialTokens };
        assert.deepStrictEqual(fromOurs(slow.encode(c.text, opts)), fromOurs(fast.encode(c.text, opts)), JSON.stringify(c));
      }
    });
  });
});
