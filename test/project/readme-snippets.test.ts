/**
 * Every Python block in the project's Markdown runs here exactly as printed, on the reference Python
 * (test/support/python.ts: .cache/reference-env with transformers and sentence-transformers). The only
 * change allowed is the model name "intfloat/e5-large-unsupervised" swapped for a generated folder;
 * a block may get a prologue (inputs it names but does not define) and an epilogue (that prints what
 * the test checks). What a snippet writes is then checked by our side: `e5 parity` passes on the
 * references, the dumps hold what the comments say, the quoted e5 formatting equals ours.
 * A new Python block without a runner below fails the first test.
 */
import { strict as assert } from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { corpusInputs } from '../../eval/e5_format';
import { e5, REPO_ROOT, tempDir } from '../support/cli';
import { generateModel, hasSharedVocab, PRESETS } from '../../devtools/generate-model';
import { PYTHON, skipUnlessHuggingFace } from '../support/python';
import { batchIds } from '../parity/make-golden';

const HUB_NAME = '"intfloat/e5-large-unsupervised"';

interface Snippet { file: string; index: number; code: string }

/** The ```python blocks of every tracked Markdown file. */
function pythonSnippets(): Snippet[] {
  const files = execFileSync('git', ['ls-files', '*.md'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
  const out: Snippet[] = [];
  for (const file of files) {
    const text = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
    const blocks = [...text.matchAll(/^```python\n([\s\S]*?)^```$/gm)];
    blocks.forEach((m, index) => out.push({ file, index, code: m[1] }));
  }
  return out;
}

/** The snippet with the hub name replaced by `dir` (it must name the hub model, so the swap is all that changes). */
function withModel(code: string, dir: string): string {
  assert.ok(code.includes(HUB_NAME), `the snippet does not name ${HUB_NAME}`);
  return code.split(HUB_NAME).join(JSON.stringify(dir));
}

/** Run prologue + snippet + epilogue with the reference Python in `cwd`; returns stdout. */
function runPython(cwd: string, code: string, prologue = '', epilogue = ''): string {
  const file = path.join(cwd, 'snippet.py');
  fs.writeFileSync(file, [prologue, code, epilogue].join('\n'));
  const r = spawnSync(PYTHON, [file], { cwd, encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' }, timeout: 300_000 });
  assert.equal(r.status, 0, `snippet failed (${PYTHON}):\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

async function parityPasses(cwd: string, args: string[], tensors: number): Promise<void> {
  const r = await e5(['parity', ...args], { cwd, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `e5 parity ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout + r.stderr, new RegExp(`\\b${tensors} of ${tensors} tensors within`));
}

type Runner = (code: string, cwd: string, model: string) => Promise<void>;

const L = 4, H = 8; // the generated model: 4 layers and 8 heads, so the inspect README's head 3.5 exists

const RUNNERS: Record<string, Runner> = {
  // The 6-line reference with AutoModel/AutoTokenizer: hidden states, attentions, last_hidden_state.
  'cli/README.md#0': async (code, cwd, model) => {
    runPython(cwd, withModel(code, model));
    await parityPasses(cwd, ['--ref', 'ref.safetensors', '--model', model], 2 * L + 2);
  },
  // BertModel on ids.json (our padded batch: right and left padding, a sentence pair), HF names + pooler.
  'test/parity/README.md#0': async (code, cwd, model) => {
    fs.writeFileSync(path.join(cwd, 'ids.json'), JSON.stringify(batchIds()));
    runPython(cwd, withModel(code, model));
    await parityPasses(cwd, ['--ref', 'hf.safetensors', '--model', model, '--ids', 'ids.json'], 2 * L + 3);
  },
  // Reading an ablated dump and a .npy dump made by the commands printed above it.
  'inspect/README.md#0': async (code, cwd, model) => {
    const text = 'query: how much protein should a female eat';
    for (const args of [
      ['--ablate', '3.5,0.1', '--ablate-mode', 'mean', '--hooks', 'hook_embedding', '--output', 'ablated.safetensors', text],
      ['--hooks', 'blocks.3.attn.hook_z', '--output', 'acts/', text],
    ]) {
      const r = await e5(['inspect', '--model', model, ...args], { cwd, timeoutMs: 120_000 });
      assert.equal(r.code, 0, `e5 inspect ${args.join(' ')}: ${r.stderr}`);
    }
    const out = JSON.parse(runPython(cwd, code, '', 'print(json.dumps({"emb": list(acts["hook_embedding"].shape), "ablate": json.loads(meta["ablate"]), "z": list(z.shape)}))'));
    const D = PRESETS.small.hiddenSize;
    assert.deepEqual(out.emb, [1, D]);
    assert.deepEqual(out.ablate, ['3.5', '0.1']);
    assert.equal(out.z.length, 4);
    assert.deepEqual([out.z[0], out.z[2], out.z[3]], [1, H, D / H]);
  },
  // e5's own formatting of a BEIR corpus, quoted: it must give what eval/e5_format.ts gives.
  'eval/README.md#0': async (code, cwd) => {
    const corpus = [{ title: 'Summit', text: 'the highest point of a mountain' }, { text: '\u3000spaced\t' }, { title: '', text: 'no title ' }, { title: ' lead', text: '' }];
    const prologue = `queries = ["how much protein"]\ncorpus = ${JSON.stringify(corpus)}`;
    const got = JSON.parse(runPython(cwd, code, prologue, 'import json; print(json.dumps(input_texts))'));
    const ours = corpusInputs({ titles: corpus.map((d) => d.title ?? ''), texts: corpus.map((d) => d.text) });
    assert.deepEqual(got, ours.texts.map((t) => `${ours.prefix}: ${t}`));
  },
};

describe('README Python snippets, run as printed against transformers', function () {
  this.timeout(600_000);
  const snippets = pythonSnippets();
  let work = '';
  let model = '';

  before(function () {
    skipUnlessHuggingFace(this, 'transformers', 'safetensors');
    if (!hasSharedVocab()) {
      console.log('      (skipped: ../shared/data/bert-base-uncased is absent; AutoTokenizer needs its tokenizer.json)');
      this.skip();
    }
    work = tempDir('e5-snippets-');
    model = path.join(work, 'model');
    generateModel(model, { config: { ...PRESETS.small, numHiddenLayers: L, numAttentionHeads: H }, sentenceTransformersPooling: 'mean' });
  });
  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('every Python block in the Markdown has a runner here', () => {
    assert.ok(snippets.length >= 4, `found only ${snippets.length} blocks`);
    assert.deepEqual(snippets.map((s) => `${s.file}#${s.index}`).filter((k) => !RUNNERS[k]), []);
  });

  for (const s of snippets) {
    const key = `${s.file}#${s.index}`;
    if (!RUNNERS[key]) continue;
    it(key, async () => {
      const cwd = fs.mkdtempSync(path.join(work, 'run-'));
      await RUNNERS[key](s.code, cwd, model);
    });
  }
});
