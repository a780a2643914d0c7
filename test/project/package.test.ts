/**
 * The published package as a user gets it. `npm pack` runs in a copy of the checkout (prepack
 * builds dist/ there, so this checkout's dist/ is left alone); the tarball is installed into an
 * empty project with `npm install ./e5-tfjs-*.tgz`, and there `npx e5 embed`, a CommonJS script
 * and an ES module script embed the model card's texts, and `tsc --strict` checks a TypeScript
 * consumer against the shipped types. The expected embeddings are PyTorch's, from the committed
 * golden test/golden/small-F32-model-card.safetensors.
 *
 * The dependencies come from the npm registry (npm's cache first, --prefer-offline); when npm
 * cannot reach a registry the suite is skipped with a message. The optional
 * @tensorflow/tfjs-node fails to install without its native download; npm skips it, as it would
 * for a user without it.
 */
import { strict as assert } from 'assert';
import { spawn, SpawnOptions } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { compareArrays, describeMismatch } from '../../engine/compare';
import { hasSharedVocab, REPO_ROOT } from '../../devtools/generate-model';
import { loadGolden } from '../support/golden';
import { TOLERANCE } from '../support/tolerance';

const ATOL = TOLERANCE.embedding;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion; a timeout kills it and says so in stderr (code null). */
function run(cmd: string, args: string[], opts: SpawnOptions & { timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b) => (stdout += b));
    child.stderr!.on('data', (b) => (stderr += b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? null : code, stdout, stderr: timedOut ? `${stderr}\n(killed: still running after ${opts.timeoutMs} ms)` : stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stderr.slice(-3000)}`);
  return r;
}

/** The checkout without its installs, builds, caches and history, for `npm pack` to build in. */
function copyCheckout(to: string): void {
  const skip = new Set(['node_modules', '.git', '.cache', 'dist', '.scratch']);
  fs.cpSync(REPO_ROOT, to, { recursive: true, filter: (src) => !(path.dirname(src) === REPO_ROOT && skip.has(path.basename(src))) });
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(to, 'node_modules'), 'dir');
}

/** What both consumer scripts do once they have the package: embed argv[3]'s texts, print them as JSON. */
const EMBED = `
// The default backend (threaded wasm where tfjs-node did not install): the script must still exit by itself.
await initBackend();
const model = await loadModel(process.argv[2]);
const r = await model.embed(JSON.parse(process.argv[3]));
model.dispose();
process.stdout.write(JSON.stringify(r.embeddings.map((e) => Array.from(e))));
`;
const CJS_SCRIPT = `const { initBackend, loadModel } = require('e5-tfjs');\n(async () => {${EMBED}})();\n`;
const ESM_SCRIPT = `import { initBackend, loadModel } from 'e5-tfjs';\n${EMBED}`;

/** A strict TypeScript consumer: the shipped types must be real (a misspelt backend must not compile). */
const TS_CONSUMER = `
import { initBackend, loadModel, type BackendName, type EmbedResult } from 'e5-tfjs';

export async function embedOne(dir: string, text: string): Promise<Float32Array> {
  const backend: BackendName = 'wasm';
  await initBackend({ backend, threads: 1 });
  const model = await loadModel(dir);
  try {
    const r: EmbedResult = await model.embed([text], { prefix: 'query' });
    return r.embeddings[0];
  } finally {
    model.dispose();
  }
}

// @ts-expect-error 'wasn' is not a backend name
void initBackend({ backend: 'wasn' });
`;

describe('the npm package (npm pack, then npm install into an empty project)', function () {
  this.timeout(300_000);
  let tmp = '';
  let project = '';
  let files: string[] = [];
  let texts: string[] = [];
  let modelDir = '';
  let expected: { shape: number[]; data: Float32Array };

  before(async function () {
    if (!hasSharedVocab()) {
      console.log('      (skipped: ../shared/data/bert-base-uncased is absent; the model-card golden needs its vocabulary)');
      this.skip();
    }
    const ping = await run(NPM, ['ping'], { timeoutMs: 30_000 });
    if (ping.code !== 0) {
      console.log(`      (skipped: npm cannot reach a registry for the package's dependencies: ${ping.stderr.trim().split('\n').pop()})`);
      this.skip();
    }
    const golden = loadGolden('small-F32-model-card');
    expected = golden.tensors.get('hook_embedding')!;
    modelDir = golden.modelDir;
    texts = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'golden', 'manifest.json'), 'utf8')).model_card_texts;

    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e5-package-test-'));
    const checkout = path.join(tmp, 'checkout');
    copyCheckout(checkout);
    const packed = ok(await run(NPM, ['pack', '--json', '--pack-destination', tmp], { cwd: checkout, timeoutMs: 180_000 }), 'npm pack');
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')))[0] as { filename: string; files: { path: string }[] };
    files = info.files.map((f) => f.path);

    project = path.join(tmp, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'e5-consumer', version: '1.0.0', private: true }));
    ok(await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, info.filename)], { cwd: project, timeoutMs: 180_000 }), 'npm install');
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Each embedding within ATOL of PyTorch's for the same text. */
  function assertMatchesGolden(embeddings: number[][], who: string): void {
    assert.equal(embeddings.length, texts.length, `${who}: one embedding per text`);
    const flat = Float32Array.from(embeddings.flat());
    const r = compareArrays(flat, expected.data, expected.shape, { atol: ATOL });
    assert.ok(r.pass, describeMismatch(`${who} vs PyTorch`, r, { atol: ATOL }));
  }

  it('ships the library and the CLI only: compiled JavaScript, its types, the wasm SIMD module, bin/e5', () => {
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/cli/main.js') && files.includes('bin/e5'), files.join('\n'));
    for (const kind of ['shared', 'unshared']) assert.ok(files.includes(`dist/engine/backends/wasm/simd-${kind}.wasm`), `the assembled SIMD module (${kind} memory) ships`);
    const stray = files.filter((f) => !/^(dist\/.*\.(js|d\.ts)|dist\/engine\/backends\/wasm\/simd-(un)?shared\.wasm|bin\/(e5|entry\.js)|package\.json|README\.md|LICENSE|docs\/[A-Z-]+\.md|scripts\/(native\.sh|native-check\.js|posix-addon\/(binding\.gyp|posix\.c)))$/.test(f));
    assert.deepEqual(stray, [], 'files outside dist/*.js, dist/*.d.ts, the SIMD module, bin/, the native build (e5 native), docs/ and the licence');
    for (const f of ['LICENSE', 'scripts/native.sh', 'scripts/native-check.js', 'scripts/posix-addon/posix.c']) assert.ok(files.includes(f), `${f} ships`);
    assert.deepEqual(files.filter((f) => /^dist\/(test|bench|devtools)\//.test(f)), []);
  });

  it('npx e5 embed prints the PyTorch embeddings', async () => {
    const r = ok(await run(NPX, ['--no-install', 'e5', 'embed', '--model', modelDir, '-q', ...texts], { cwd: project, timeoutMs: 90_000 }), 'npx e5 embed');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; embedding: number[] });
    assert.deepEqual(lines.map((l) => l.index), texts.map((_, i) => i));
    assertMatchesGolden(lines.map((l) => l.embedding), 'npx e5 embed');
  });

  it('runs the installed bin/e5 from dist/, never from sources, even ones newer than the build', async () => {
    const installed = path.join(project, 'node_modules', 'e5-tfjs');
    fs.mkdirSync(path.join(installed, 'cli'));
    fs.writeFileSync(path.join(installed, 'cli', 'main.ts'), 'this is not TypeScript that compiles');
    const r = ok(await run(NPX, ['--no-install', 'e5', '--version'], { cwd: project, timeoutMs: 30_000 }), 'npx e5 --version');
    assert.match(r.stdout, /^e5-tfjs \d+\.\d+\.\d+/);
  });

  for (const [kind, file, source] of [['a CommonJS', 'embed.cjs', CJS_SCRIPT], ['an ES module', 'embed.mjs', ESM_SCRIPT]] as const) {
    it(`${kind} script imports the package, embeds, and exits on its own`, async () => {
      fs.writeFileSync(path.join(project, file), source);
      const r = ok(await run(process.execPath, [file, modelDir, JSON.stringify(texts)], { cwd: project, timeoutMs: 60_000 }), `node ${file}`);
      assertMatchesGolden(JSON.parse(r.stdout) as number[][], `node ${file}`);
    });
  }

  it("the Dockerfile's steps after its npm install work in the installed project (e5 on PATH)", async () => {
    const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8');
    const steps = [...dockerfile.matchAll(/^RUN (.*)$/gm)].map((m) => m[1]).filter((c) => !c.includes('npm install'));
    assert.ok(steps.length > 0);
    const env = { ...process.env, PATH: `${path.join(project, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}` };
    for (const step of steps) {
      const r = ok(await run('sh', ['-c', step], { cwd: project, env, timeoutMs: 60_000 }), step);
      if (step.includes('installedBackends')) assert.match(r.stdout, /^backends installed: (tensorflow, )?wasm, cpu$/m);
    }
  });

  it('type-checks a strict TypeScript consumer against the shipped types (exports map, node16 resolution)', async () => {
    fs.writeFileSync(path.join(project, 'consumer.mts'), TS_CONSUMER);
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        // skipLibCheck as tfjs users need it: @tensorflow/tfjs-core's own .d.ts names an undeclared `Long`.
        strict: true, noEmit: true, skipLibCheck: true, target: 'ES2022', module: 'node16', moduleResolution: 'node16',
        types: ['node'], typeRoots: [path.join(REPO_ROOT, 'node_modules', '@types')],
      },
      files: ['consumer.mts'],
    }));
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `tsc --strict:\n${r.stdout}${r.stderr}`);
  });

  // Last: it may give the project the tensorflow backend. Offline, npm left tfjs-node out (its
  // download fails); `npx e5 native` builds it from the tensorflow-cpu wheel `make native` fetched
  // into this checkout, as a user would with TF_WHEEL, without a checkout or make.
  it('npx e5 native: the native backend from a tensorflow-cpu wheel, into the project', async function () {
    this.timeout(900_000);
    const hadIt = fs.existsSync(path.join(project, 'node_modules', '@tensorflow', 'tfjs-node'));
    const check = await run(NPX, ['--no-install', 'e5', 'native', '--check'], { cwd: project, timeoutMs: 60_000 });
    if (!hadIt) {
      assert.equal(check.code, 1, check.stderr);
      assert.match(check.stderr, /e5 native: @tensorflow\/tfjs-node is not installed here/);
    }
    const cache = path.join(REPO_ROOT, '.cache', 'native');
    const wheel = fs.existsSync(cache) ? fs.readdirSync(cache).find((f) => /^tensorflow_cpu-.*\.whl$/.test(f)) : undefined;
    if (!wheel) {
      console.log("      (skipped the build: no tensorflow-cpu wheel in .cache/native; 'make native' fetches one)");
      return this.skip();
    }
    const env = { ...process.env, TF_WHEEL: path.join(cache, wheel), NATIVE_TRY_DOWNLOAD: '0' };
    ok(await run(NPX, ['--no-install', 'e5', 'native'], { cwd: project, env, timeoutMs: 600_000 }), 'npx e5 native');
    ok(await run(NPX, ['--no-install', 'e5', 'native', '--check'], { cwd: project, timeoutMs: 60_000 }), 'npx e5 native --check');
    const r = ok(await run(NPX, ['--no-install', 'e5', 'embed', '--model', modelDir, ...texts], { cwd: project, timeoutMs: 90_000 }), 'npx e5 embed on tensorflow');
    assert.match(r.stderr, /on tensorflow \(TensorFlow \d/);
    assertMatchesGolden(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { embedding: number[] }).embedding), 'npx e5 embed on tensorflow');
  });
});
