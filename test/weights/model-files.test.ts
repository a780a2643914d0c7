/**
 * A model folder's files as a hostile or careless folder holds them: FIFOs and links to
 * /dev/zero (must fail at once, not hang), JSON nested 100,000 deep in any field (must fail
 * with a message, not a stack overflow), invalid UTF-8 (must name the byte offset, not decode
 * to U+FFFD), non-boolean pooling flags, and limits that `verify` must refuse like a load does.
 */
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadModel } from '../../e5/model';
import { firstInvalidUtf8 as cliFirstInvalidUtf8 } from '../../cli/input';
import { firstInvalidUtf8, readModelText, tooDeepAt } from '../../util/model_file';
import { testBackend } from '../support/backend';
import { e5 } from '../support/cli';
import { cachedModel, Rng } from '../../devtools/generate-model';

const DEEP = '['.repeat(100_000) + ']'.repeat(100_000);

/** A copy of the tiny model in a fresh temp folder (the weights linked, the small files copied). */
export function modelCopy(root: string, name: string): string {
  const src = cachedModel({ preset: 'tiny' });
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(src)) {
    if (f === 'model.safetensors') fs.symlinkSync(path.join(src, f), path.join(dir, f));
    else fs.cpSync(path.join(src, f), path.join(dir, f), { recursive: true });
  }
  return dir;
}

/** Rewrite a JSON file with one field's value replaced by raw JSON text. */
function setRawField(file: string, pathInJson: string[], raw: string): void {
  const v = JSON.parse(fs.readFileSync(file, 'utf8'));
  let o = v;
  for (const k of pathInJson.slice(0, -1)) o = o[k];
  o[pathInJson[pathInJson.length - 1]] = '@@RAW@@';
  fs.writeFileSync(file, JSON.stringify(v).replace('"@@RAW@@"', raw));
}

describe('model folder files', function () {
  this.timeout(120_000);
  let root: string;
  before(async () => {
    await testBackend();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-model-files-'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  describe('files that are not regular files fail at once (the CLI would hang on them)', () => {
    const cases: Array<[string, string, (p: string) => void, RegExp]> = [
      ['tokenizer.json as a FIFO', 'tokenizer.json', (p) => execFileSync('mkfifo', [p]), /tokenizer\.json: not a regular file \(a FIFO\)/],
      ['tokenizer.json linked to /dev/zero', 'tokenizer.json', (p) => fs.symlinkSync('/dev/zero', p), /tokenizer\.json: not a regular file \(a character device\)/],
      ['vocab.txt linked to /dev/zero', 'vocab.txt', (p) => fs.symlinkSync('/dev/zero', p), /vocab\.txt: not a regular file \(a character device\)/],
      ['config.json as a FIFO', 'config.json', (p) => execFileSync('mkfifo', [p]), /config\.json: not a regular file \(a FIFO\)/],
      ['model.safetensors as a FIFO', 'model.safetensors', (p) => execFileSync('mkfifo', [p]), /model\.safetensors: not a regular file \(a FIFO\)/],
    ];
    for (const [what, file, make, message] of cases) {
      it(what, async () => {
        const dir = modelCopy(root, `special-${file}-${what.length}`);
        fs.rmSync(path.join(dir, file));
        make(path.join(dir, file));
        const r = await e5(['embed', '--model', dir, 'hello'], { timeoutMs: 30_000 });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, /missing/);
        const v = await e5(['verify', '--model', dir], { timeoutMs: 30_000 });
        assert.equal(v.code, 3, v.stderr);
        assert.match(v.stderr, message);
      });
    }
  });

  describe('a file that is there but cannot be read is an error naming it, never taken as absent', () => {
    const dangling = (p: string) => fs.symlinkSync(path.join(path.dirname(p), 'no-such-file'), p);
    const loop = (p: string) => {
      fs.symlinkSync(`${p}.b`, p);
      fs.symlinkSync(p, `${p}.b`);
    };
    const cases: Array<[string, string, (p: string) => void, RegExp]> = [
      ['optional 1_Pooling/config.json, a dangling link (pooling must not fall back to mean)', '1_Pooling/config.json', dangling, /1_Pooling\/config\.json: a symbolic link to a missing file \(.*no-such-file\)/],
      ['optional 1_Pooling/config.json, a link loop', '1_Pooling/config.json', loop, /1_Pooling\/config\.json: a symbolic link loop \(ELOOP\)/],
      ['optional tokenizer_config.json, a dangling link (model_max_length must not fall back to 512)', 'tokenizer_config.json', dangling, /tokenizer_config\.json: a symbolic link to a missing file/],
      ['required config.json, a link loop', 'config.json', loop, /config\.json: a symbolic link loop \(ELOOP\)/],
    ];
    for (const [what, file, make, message] of cases) {
      it(what, async () => {
        const dir = modelCopy(root, `unreadable-${what.replace(/\W+/g, '-')}`);
        fs.rmSync(path.join(dir, file), { force: true });
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        make(path.join(dir, file));
        await assert.rejects(loadModel(dir), message);
        const r = await e5(['embed', '--model', dir, 'hello'], { timeoutMs: 30_000 });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, message);
        const v = await e5(['verify', '--model', dir], { timeoutMs: 30_000 });
        assert.equal(v.code, 3, v.stderr);
        assert.match(v.stderr, message);
        assert.doesNotMatch(v.stderr, /ELOOP: too many/);
      });
    }
  });

  describe('JSON nested 100,000 deep in a field is refused with a message', () => {
    const cases: Array<[string, string[]]> = [
      ['config.json', ['hidden_act']],
      ['config.json', ['architectures']],
      ['tokenizer.json', ['normalizer', 'lowercase']],
      ['tokenizer.json', ['model', 'unk_token']],
      ['tokenizer_config.json', ['model_max_length']],
      ['1_Pooling/config.json', ['pooling_mode_mean_tokens']],
    ];
    for (const [file, field] of cases) {
      it(`${file} ${field.join('.')}`, async () => {
        const dir = modelCopy(root, `deep-${file.replace('/', '_')}-${field.join('.')}`);
        const target = path.join(dir, file);
        if (!fs.existsSync(target)) {
          fs.mkdirSync(path.dirname(target), { recursive: true });
          fs.writeFileSync(target, JSON.stringify({ pooling_mode_mean_tokens: true }));
        }
        setRawField(target, field, DEEP);
        await assert.rejects(loadModel(dir), (e: Error) => {
          assert.doesNotMatch(e.message, /call stack/);
          assert.match(e.message, new RegExp(`${file.replace(/[./]/g, '\\$&')}: .*nested deeper than 128 levels`));
          return true;
        });
      });
    }
  });

  describe('invalid UTF-8 names the byte offset', () => {
    const cases: Array<[string, string]> = [['vocab.txt', 'hello\n'], ['tokenizer.json', '"hello"'], ['config.json', '"bert"']];
    for (const [file, anchor] of cases) {
      it(file, async () => {
        const dir = modelCopy(root, `utf8-${file}`);
        const p = path.join(dir, file);
        const bytes = fs.readFileSync(p);
        assert.ok(bytes.indexOf(anchor) >= 0, `${anchor} not found in ${file}`);
        const at = bytes.indexOf(anchor) + 1; // inside the word
        bytes[at] = 0xff;
        fs.writeFileSync(p, bytes);
        await assert.rejects(loadModel(dir), new RegExp(`${file.replace('.', '\\.')}: not valid UTF-8 at byte offset ${at} \\(byte 0xff\\)`));
      });
    }
  });

  it('a pooling flag that is not a boolean is an error naming it', async () => {
    const dir = modelCopy(root, 'pooling-flag');
    fs.mkdirSync(path.join(dir, '1_Pooling'));
    fs.writeFileSync(path.join(dir, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_mean_tokens: true, pooling_mode_cls_token: 'false' }));
    await assert.rejects(loadModel(dir), /1_Pooling\/config\.json: 'pooling_mode_cls_token' must be true or false, got "false"/);
  });

  it('a tokenizer.json id outside config.json vocab_size is refused by load and verify (exit 3), not by the first embed', async () => {
    const dir = modelCopy(root, 'vocab-id-outside');
    fs.rmSync(path.join(dir, 'vocab.txt')); // tokenizer.json alone: nothing to cross-check it with
    const V = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).vocab_size as number;
    const tj = path.join(dir, 'tokenizer.json');
    const json = JSON.parse(fs.readFileSync(tj, 'utf8'));
    const [token] = Object.entries(json.model.vocab as Record<string, number>).find(([t, id]) => id >= 1000 && /^[a-z]+$/.test(t))!;
    json.model.vocab[token] = V + 9478;
    fs.writeFileSync(tj, JSON.stringify(json));
    const message = new RegExp(`tokenizer\\.json: token "${token}" has id ${V + 9478}, outside .*config\\.json vocab_size ${V} \\(ids 0-${V - 1}\\)`);
    await assert.rejects(loadModel(dir), message);
    const v = await e5(['verify', '--model', dir], { timeoutMs: 30_000 });
    assert.equal(v.code, 3, v.stderr);
    assert.match(v.stderr, message);
  });

  it('verify refuses model_max_length 1 as loading does (exit 3, naming the field)', async () => {
    const dir = modelCopy(root, 'max-length-1');
    const cfg = path.join(dir, 'tokenizer_config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), model_max_length: 1 }));
    const message = /tokenizer_config\.json: model_max_length 1 leaves no room for a text/;
    await assert.rejects(loadModel(dir), message);
    const v = await e5(['verify', '--model', dir], { timeoutMs: 30_000 });
    assert.equal(v.code, 3, v.stderr);
    assert.match(v.stderr, message);
  });

  describe('the readers themselves', () => {
    it('firstInvalidUtf8 agrees with the CLI input reader and a fatal TextDecoder on 3000 random byte strings', () => {
      const rng = new Rng(7);
      const alphabet = [0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xa0, 0xed, 0x9f, 0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff];
      for (let t = 0; t < 3000; t++) {
        const n = 1 + (rng.nextU32() % 12);
        const bytes = Uint8Array.from({ length: n }, () => alphabet[rng.nextU32() % alphabet.length]);
        const at = firstInvalidUtf8(bytes);
        assert.equal(at, cliFirstInvalidUtf8(bytes), `bytes ${Buffer.from(bytes).toString('hex')}`);
        let valid = true;
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          valid = false;
        }
        assert.equal(at === n, valid, `bytes ${Buffer.from(bytes).toString('hex')}`);
      }
    });

    it('tooDeepAt counts brackets outside strings only', () => {
      assert.equal(tooDeepAt('[[1]]', 2), undefined);
      assert.equal(tooDeepAt('[[[1]]]', 2), 2);
      assert.equal(tooDeepAt('["[[[[", {"a": "\\"[[["}]', 2), undefined);
      assert.equal(tooDeepAt('{"a": [{"b": 1}]}', 2), 7);
    });

    it('a file over the size limit is refused before it is read', () => {
      const p = path.join(root, 'big.txt');
      fs.writeFileSync(p, 'x'.repeat(100));
      assert.throws(() => readModelText(p, 99), /big\.txt: is 100 bytes, more than the 99 a model text file may have/);
      assert.equal(readModelText(p, 100).length, 100);
    });
  });
});
