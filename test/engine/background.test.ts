/**
 * Weights read in the background (tensorflow with make native's addon: readInBackground,
 * engine/backends/tensorflow/background.ts). Checked against what does not read in the background:
 * the synchronous load (backgroundRead: false) and the portable path give the same bits, weights and
 * embeddings; bf16 slots are f32ToBF16Bits of the file's values (NaN payloads included); a NaN/Inf
 * planted in a weight is the synchronous load's own error, now at the first forward and at
 * waitForWeights (and the CLI's exit code stays 1); a file that shrank is 'truncated' as readF32
 * says it; a model disposed, or a process ended, before its reads are done is safe; nothing leaks.
 * Skips where tfjs-node or this addon function is missing.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { plainWeightSink, Runtime } from '../../engine/backend';
import { loadModel } from '../../e5/model';
import { paramTensors } from '../../weights/params';
import { f32ToBF16Bits, SafetensorsError, SafetensorsFile, writeSafetensors } from '../../weights/safetensors';
import { posixAddon } from '../../engine/backends/tensorflow/posix';
import { bf16Unsupported, tensorflowWeightSink } from '../../engine/backends/tensorflow/weights';
import { pendingBatches } from '../../engine/backends/tensorflow/background';
import { cachedModel, REPO_ROOT } from '../../devtools/generate-model';
import { mulberry32 } from '../../devtools/rng';
import { tensorflowOrSkip } from '../support/backend';
import { e5, tempDir } from '../support/cli';

const bits = (a: ArrayBufferView) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
const TEXTS = ['query: how much protein should a female eat', 'passage: a short passage', 'query: x'];

/** A copy of a model folder whose weights file holds `value` at element `element` of each named tensor. */
function withPlanted(dir: string, plants: Array<{ tensor: string; element: number; value: number }>): string {
  const out = tempDir('e5-planted-');
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const from = path.join(dir, f);
    if (fs.statSync(from).isDirectory()) fs.mkdirSync(path.join(out, f), { recursive: true });
    else fs.copyFileSync(from, path.join(out, f));
  }
  const file = path.join(out, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const fd = fs.openSync(file, 'r+');
  try {
    for (const p of plants) fs.writeSync(fd, new Uint8Array(Float32Array.of(p.value).buffer), 0, 4, st.dataStart + st.info(p.tensor).dataOffsets[0] + 4 * p.element);
  } finally {
    fs.closeSync(fd);
    st.close();
  }
  return out;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected a rejection');
}

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected an exception');
}

describe('weights read in the background (tensorflow)', function () {
  this.timeout(120_000);
  let runtime: Runtime;
  const dir = cachedModel({ preset: 'small' });
  before(async function () {
    runtime = await tensorflowOrSkip(this);
    if (!posixAddon()?.readInBackground) {
      console.log("      (skipped: this e5-tfjs-posix has no readInBackground: 'make native' rebuilds it from scripts/posix-addon)");
      this.skip();
    }
  });
  afterEach(() => assert.equal(pendingBatches(), 0, 'a batch was left unjoined'));

  it('gives the weights and embeddings of the synchronous load and of the portable path, bit for bit', async () => {
    const before = tf.memory().numTensors;
    const background = await loadModel(dir);
    assert.ok(background.bert.pendingWeights, 'loadModel left the reads to the background');
    const sync = await loadModel(dir, { backgroundRead: false });
    assert.equal(sync.bert.pendingWeights, undefined);
    const portable = await loadModel(dir, { runtime: { ...runtime, weightSink: () => ({ ...plainWeightSink(), linearLayout: 'out-in' }) } });
    try {
      // The background model's embeddings first: its first op meets the barrier.
      const got: Float32Array[] = [];
      for (const m of [background, sync, portable]) got.push((await m.embed(TEXTS)).matrix);
      assert.deepEqual(bits(got[0]), bits(got[1]), 'embeddings: background vs synchronous');
      assert.deepEqual(bits(got[0]), bits(got[2]), 'embeddings: background vs portable');
      const [a, b, c] = [background, sync, portable].map((m) => paramTensors(m.bert.params));
      a.forEach((t, i) => {
        assert.deepEqual(bits(t.dataSync()), bits(b[i].dataSync()), `tensor ${i} vs synchronous`);
        assert.deepEqual(bits(t.dataSync()), bits(c[i].dataSync()), `tensor ${i} vs portable`);
      });
      const s = background.info.weightsReadSeconds;
      assert.ok(s !== undefined && s > 0, `weightsReadSeconds ${s} once the reads are done`);
      assert.equal(sync.info.weightsReadSeconds, sync.info.loadSeconds);
    } finally {
      [background, sync, portable].forEach((m) => m.dispose());
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it("precision 'bf16': the weights and embeddings of the synchronous bf16 load, bit for bit", async function () {
    const why = bf16Unsupported();
    if (why) {
      console.log(`      (skipped: ${why})`);
      return this.skip();
    }
    const background = await loadModel(dir, { precision: 'bf16' });
    const sync = await loadModel(dir, { precision: 'bf16', backgroundRead: false });
    try {
      assert.ok(background.bert.pendingWeights);
      const [ea, eb] = [(await background.embed(TEXTS)).matrix, (await sync.embed(TEXTS)).matrix];
      assert.deepEqual(bits(ea), bits(eb));
      const [a, b] = [background, sync].map((m) => paramTensors(m.bert.params));
      a.forEach((t, i) => assert.deepEqual(bits(t.dataSync()), bits(b[i].dataSync()), `tensor ${i} (${t.dtype})`));
    } finally {
      background.dispose();
      sync.dispose();
    }
  });

  it('a weight read directly (dataSync, data) right after the load is the file\'s, for two models loaded back to back', async () => {
    const a = await loadModel(dir);
    const b = await loadModel(dir);
    const file = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    try {
      const want = file.readF32('embeddings.word_embeddings.weight');
      assert.deepEqual(bits(await a.bert.params.embeddings.wordEmbeddings.data()), bits(want));
      assert.deepEqual(bits(b.bert.params.embeddings.wordEmbeddings.dataSync()), bits(want));
      const last = file.readF32('encoder.layer.3.output.dense.weight');
      assert.deepEqual(bits(b.bert.params.layers[3].output.weight.dataSync()), bits(last));
    } finally {
      file.close();
      a.dispose();
      b.dispose();
    }
  });

  it('keeps the tensor count stable over repeated loads and forwards', async () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const m = await loadModel(dir);
      await m.embed(TEXTS);
      await m.embed(TEXTS[0]);
      m.dispose();
      assert.equal(tf.memory().numTensors, before, `round ${i}`);
    }
  });

  it('F32 slots hold the file\'s bits and bf16 slots f32ToBF16Bits of them, NaN payloads, ties and overflow included', () => {
    const out = 1024, inp = 600; // 2.4 MB: pieces of 1 MiB split it, mid-row
    const rand = mulberry32(5);
    const u = Uint32Array.from({ length: out * inp }, () => (rand() * 2 ** 32) >>> 0); // every bit pattern, NaNs included
    const specials = [0x7fc00001, 0xffa00000, 0x7f800001, 0x7fbfffff, 0x7f800000, 0xff800000, 0x3f808000, 0x3f818000, 0xbf808000,
      0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x00008000, 0x80000000, 0];
    specials.forEach((v, i) => {
      u[i] = v;
      u[262_144 + i - 8] = v; // across the first piece boundary (1 MiB = 262144 floats)
      u[out * inp - 1 - i] = v;
    });
    const values = new Float32Array(u.buffer);
    const tmp = tempDir('e5-background-');
    const file = path.join(tmp, 'w.safetensors');
    try {
      writeSafetensors(file, { w: { dtype: 'F32', shape: [out, inp], data: values } });
      const f = SafetensorsFile.open(file);
      const sink = tensorflowWeightSink();
      assert.ok(sink.deferred, 'the sink reads in the background');
      const src = f.f32Source('w', { allowNonFinite: true })!;
      const asF32 = sink.deferred.tensor([out, inp], src, 'f32');
      const asBf16 = sink.deferred.tensor([out, inp], src, 'bf16');
      const pending = sink.deferred.start();
      f.close(); // as loadModel does: the batch reads through its own descriptor
      pending.wait();
      assert.deepEqual(bits(asF32.dataSync()), Array.from(u));
      assert.equal(asBf16.dtype, 'int32');
      assert.deepEqual(asBf16.shape, [out, inp / 2]);
      const got = new Uint16Array((asBf16.dataSync() as Int32Array).slice().buffer);
      assert.deepEqual(Array.from(got), Array.from(f32ToBF16Bits(values)));
      asF32.dispose();
      asBf16.dispose();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reports a planted NaN/Inf as the synchronous load does — at the first forward, at waitForWeights and at every forward after', async () => {
    // Two: the first in load order is the one named, as the synchronous load names it.
    const planted = withPlanted(dir, [
      { tensor: 'encoder.layer.2.intermediate.dense.weight', element: 70_000, value: -Infinity },
      { tensor: 'encoder.layer.1.attention.self.value.weight', element: 12_345, value: NaN },
    ]);
    try {
      const want = await rejection(loadModel(planted, { backgroundRead: false }));
      assert.ok(want instanceof SafetensorsError && want.code === 'non_finite', String(want));
      assert.match(want.message, /encoder\.layer\.1\.attention\.self\.value\.weight.*element 12345 \(index \[96, 57\]\) is NaN/);
      const before = tf.memory().numTensors;
      const m = await loadModel(planted); // returns: the bytes are not read yet
      // Another model loaded meanwhile (its tensors made past the barrier) is not charged with m's error.
      (await loadModel(dir, { backgroundRead: false })).dispose();
      const first = await rejection(m.embed(TEXTS));
      assert.ok(first instanceof SafetensorsError);
      assert.equal(first.code, want.code);
      assert.equal(first.message, want.message);
      assert.equal(thrown(() => m.waitForWeights()).message, want.message);
      assert.equal((await rejection(m.ready())).message, want.message);
      assert.equal((await rejection(m.embed(TEXTS[0]))).message, want.message, 'and at every forward after');
      m.dispose();
      assert.equal(tf.memory().numTensors, before, 'the failed forward leaked nothing');

      // A model loaded with allowNonFinite reads it and runs.
      const allowed = await loadModel(planted, { allowNonFinite: true });
      allowed.waitForWeights();
      assert.ok(Number.isNaN(allowed.bert.params.layers[1].value.weight.dataSync()[12_345]));
      allowed.dispose();

      // The barrier is the backend's: an op on any tensor meets it (here a weight's own read).
      const raw = await loadModel(planted);
      const atBarrier = thrown(() => tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()));
      assert.equal(atBarrier.message, want.message);
      raw.dispose();
    } finally {
      fs.rmSync(planted, { recursive: true, force: true });
    }
  });

  it('the CLI exits 1 on a planted Inf, naming the tensor and element, as before', async () => {
    const planted = withPlanted(dir, [{ tensor: 'encoder.layer.0.output.dense.weight', element: 3, value: Infinity }]);
    try {
      const r = await e5(['embed', '--backend', 'tensorflow', '--model', planted, 'query: hello']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /encoder\.layer\.0\.output\.dense\.weight.*element 3 \(index \[0, 3\]\) is \+Inf.*\[non_finite\]/);
      assert.equal(r.stdout, '', 'nothing written');
    } finally {
      fs.rmSync(planted, { recursive: true, force: true });
    }
  });

  it("reports a file that shrank before the reads as 'truncated', in readF32's words", () => {
    const tmp = tempDir('e5-background-');
    const file = path.join(tmp, 'w.safetensors');
    const n = 3 << 20;
    try {
      writeSafetensors(file, { a: { dtype: 'F32', shape: [16], data: new Float32Array(16) }, b: { dtype: 'F32', shape: [n], data: new Float32Array(n).fill(0.5) } });
      const f = SafetensorsFile.open(file);
      const sink = tensorflowWeightSink();
      const ta = sink.deferred!.tensor([16], f.f32Source('a')!, 'f32');
      const tb = sink.deferred!.tensor([n], f.f32Source('b')!, 'f32');
      fs.truncateSync(file, fs.statSync(file).size - 4096);
      const want = thrown(() => f.readF32('b', { nativeRead: posixAddon()!.readF32!.bind(posixAddon()) }));
      const pending = sink.deferred!.start();
      f.close();
      const got = thrown(() => pending.wait());
      assert.ok(got instanceof SafetensorsError && got.code === 'truncated' && got.tensor === 'b', String(got));
      assert.equal(got.message, want.message);
      assert.equal(thrown(() => pending.wait()).message, want.message, 'again on every wait');
      ta.dispose();
      tb.dispose();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a model disposed before its reads end, and a batch cancelled at once, leave nothing running or leaked', async () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) (await loadModel(dir)).dispose(); // dispose cancels and joins
    assert.equal(tf.memory().numTensors, before);
    const tmp = tempDir('e5-background-');
    const file = path.join(tmp, 'w.safetensors');
    const n = 16 << 20; // 64 MB: many pieces still to read when cancelled
    try {
      writeSafetensors(file, { big: { dtype: 'F32', shape: [n], data: new Float32Array(n) } });
      const f = SafetensorsFile.open(file);
      const sink = tensorflowWeightSink();
      const t = sink.deferred!.tensor([n], f.f32Source('big')!, 'f32');
      const pending = sink.deferred!.start();
      f.close();
      t.dispose();
      pending.cancel();
      assert.ok(pending.done());
      pending.throwIfFailed(); // a cancelled batch reports nothing
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const how of ['exit', 'drop']) {
    it(`a process that ${how === 'exit' ? 'calls process.exit' : 'ends'} right after the load ends cleanly`, () => {
      const child = path.join(REPO_ROOT, 'test', 'support', 'background-exit-child.ts');
      const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', child, dir, how], {
        cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL',
      });
      assert.equal(r.signal, null, `ended by ${r.signal}: ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { pending: true });
    });
  }

  it('backgroundRead: false, and the scratch route, read everything before loadModel returns', async () => {
    const m = await loadModel(dir, { backgroundRead: false });
    assert.equal(m.bert.pendingWeights, undefined);
    m.dispose();
    assert.equal(tensorflowWeightSink(undefined, { aligned: false }).deferred, undefined);
    assert.equal(tensorflowWeightSink(undefined, { background: false }).deferred, undefined);
  });
});

