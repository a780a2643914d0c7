/**
 * The tensorflow backend (tfjs-node; `make native`): its batched attention against attention by
 * hand in float64, the hooked three steps against the one-step form bit for bit, weights that
 * reach TensorFlow through the aligned arena or the reused scratch against the portable path bit for
 * bit (the arena without a copy), the thread
 * count, and TensorFlow's load-time log lines kept off the CLI's stderr. Skips, saying how to get
 * the backend, where tfjs-node does not load.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { plainWeightSink, Runtime } from '../../engine/backend';
import type { AttentionInput } from '../../engine/ops';
import { loadModel } from '../../e5/model';
import { linearLayers, paramTensors } from '../../weights/params';
import { SafetensorsError, SafetensorsFile, writeSafetensors } from '../../weights/safetensors';
import { posixAddon } from '../../engine/backends/tensorflow/posix';
import { tensorflowWeightSink } from '../../engine/backends/tensorflow/weights';
import { attentionByHand } from '../support/attention';
import { tensorflowOrSkip } from '../support/backend';
import { BIN, cliEnv, e5, tempDir } from '../support/cli';
import { cachedModel } from '../../devtools/generate-model';
import { mulberry32 } from '../../devtools/rng';

function randoms(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * rand() - 1);
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));

describe('tensorflow backend (tfjs-node)', () => {
  let runtime: Runtime;
  before(async function () {
    runtime = await tensorflowOrSkip(this);
  });

  // Packed rows of different lengths (padded to the longest for attention only), padding keys
  // masked inside rows, and a padded batch whose rows all have T tokens.
  const cases = [
    { H: 4, Dh: 8, lengths: [1, 5, 13, 40], pad: [0, 2, 0, 7] },
    { H: 2, Dh: 16, lengths: [37, 3], pad: [0, 1] },
    { H: 16, Dh: 64, lengths: [20, 20], pad: [0, 6] },
  ];
  const input = ({ H, Dh, lengths, pad }: (typeof cases)[number]) => {
    const starts = lengths.map((_, r) => lengths.slice(0, r).reduce((a, b) => a + b, 0));
    const N = lengths.reduce((a, b) => a + b);
    const keyMask = lengths.flatMap((T, r) => Array.from({ length: T }, (_, t) => (t < T - pad[r] ? 1 : 0)));
    const uniform = lengths.every((T) => T === lengths[0]) ? lengths[0] : undefined;
    const a: AttentionInput = {
      rows: { count: lengths.length, starts, lengths, total: N, uniformLength: uniform }, heads: H, headSize: Dh, keyMask: Int32Array.from(keyMask), scale: Math.sqrt(Dh),
    };
    return { a, N, D: H * Dh, starts, keyMask };
  };

  it('batched attention = softmax(q·kᵀ/√Dh + mask)·v by hand in float64, every row and head', () => {
    cases.forEach((c, i) => {
      const { a, N, D, starts, keyMask } = input(c);
      const [qv, kv, vv] = [1, 2, 3].map((s) => randoms(N * D, 10 * i + s));
      const got = tf.tidy(() => runtime.ops.attention(tf.tensor2d(qv, [N, D]), tf.tensor2d(kv, [N, D]), tf.tensor2d(vv, [N, D]), a).dataSync());
      const want = attentionByHand(qv, kv, vv, D, c.H, starts, c.lengths, keyMask);
      let max = 0;
      want.forEach((w, j) => (max = Math.max(max, Math.abs(w - got[j]))));
      assert.ok(max < 2e-6, `case ${i}: max |Δ| ${max}`);
    });
  });

  it('the three steps the hooks see give the one-step bits', () => {
    const c = cases[2], { a, N, D } = input(c);
    const [qv, kv, vv] = [4, 5, 6].map((s) => randoms(N * D, s));
    const [once, steps] = tf.tidy(() => {
      const q = tf.tensor2d(qv, [N, D]), k = tf.tensor2d(kv, [N, D]), v = tf.tensor2d(vv, [N, D]);
      const ops = runtime.ops;
      return [ops.attention(q, k, v, a).dataSync() as Float32Array, ops.attentionZ(ops.attentionSoftmax(ops.attentionScores(q, k, a), a), v, a).dataSync() as Float32Array];
    });
    assert.deepEqual(bits(steps), bits(once));
  });

  it('loads weights into TensorFlow exactly as the portable path does, and leaks nothing', async () => {
    const dir = cachedModel({ preset: 'small' });
    const before = tf.memory().numTensors;
    const viaScratch = await loadModel(dir);
    const portable = await loadModel(dir, { runtime: { ...runtime, weightSink: () => ({ ...plainWeightSink(), linearLayout: 'out-in' }) } });
    const [a, b] = [viaScratch, portable].map((m) => paramTensors(m.bert.params));
    assert.equal(a.length, b.length);
    a.forEach((t, i) => assert.deepEqual(bits(t.dataSync() as Float32Array), bits(b[i].dataSync() as Float32Array), `tensor ${i}`));
    // Every Linear is its own tensor (a scratch shared by mistake would make them equal).
    const lins = linearLayers(viaScratch.bert.params);
    assert.notDeepEqual(Array.from(lins[0].weight.dataSync().slice(0, 8)), Array.from(lins[1].weight.dataSync().slice(0, 8)));
    viaScratch.dispose();
    portable.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('with make native\'s addon, TensorFlow keeps each weight where it was read (no copy); through the scratch it copies', function () {
    if (!posixAddon()) {
      console.log("      (skipped: e5-tfjs-posix is not installed: 'make native' builds it)");
      return this.skip();
    }
    for (const [sink, shares] of [[tensorflowWeightSink(), true], [tensorflowWeightSink(undefined, { aligned: false }), false]] as const) {
      let slot: Float32Array = new Float32Array(0);
      const values = randoms(1000, 7);
      const t = sink.newTensor([10, 100], (dst) => {
        dst.set(values);
        slot = dst;
      });
      assert.deepEqual(bits(t.dataSync() as Float32Array), bits(values));
      if (shares) assert.equal(slot.byteOffset % 64, 0, 'a 64-byte-aligned slot');
      slot[0] = 12345; // after TensorFlow made its tensor: seen only where it kept this memory
      assert.equal((t.dataSync() as Float32Array)[0] === 12345, shares, shares ? 'the tensor is the slot' : 'the tensor is a copy');
      t.dispose();
    }
  });

  it("with the addon's readF32, reads F32 tensors on two threads bit for bit and names the first NaN/Inf in either half", function () {
    const read = posixAddon()?.readF32;
    if (!read) {
      console.log("      (skipped: this e5-tfjs-posix has no readF32: 'make native' rebuilds it from scripts/posix-addon)");
      return this.skip();
    }
    const nativeRead = read.bind(posixAddon());
    const dir = tempDir('e5-native-read-');
    const file = path.join(dir, 'w.safetensors');
    const n = 3 * (1 << 20) + 5; // above the two-thread threshold, halves of unequal length
    const values = randoms(n, 11);
    try {
      writeSafetensors(file, { a: { dtype: 'F32', shape: [n], data: values }, b: { dtype: 'F32', shape: [3, 4], data: randoms(12, 3) } });
      const f = SafetensorsFile.open(file);
      for (const name of ['a', 'b']) assert.deepEqual(bits(f.readF32(name, { nativeRead })), bits(f.readF32(name)), name);
      f.close();
      // first half, second half, the last element; each with a later non-finite value that must not be the one named
      for (const [at, bad, what] of [[1000, Infinity, '\\+Inf'], [2_000_000, -Infinity, '-Inf'], [n - 2, NaN, 'NaN']] as const) {
        const x = values.slice();
        x[at] = bad;
        x[n - 1] = NaN;
        writeSafetensors(file, { a: { dtype: 'F32', shape: [n], data: x } });
        const g = SafetensorsFile.open(file);
        try {
          assert.throws(() => g.readF32('a', { nativeRead }), (e: SafetensorsError) =>
            e.code === 'non_finite' && new RegExp(`element ${at} \\(index \\[${at}\\]\\) is ${what}`).test(e.message) && e.message.includes(file));
          assert.deepEqual(bits(g.readF32('a', { nativeRead, allowNonFinite: true })), bits(x));
        } finally {
          g.close();
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("readF32 reports a file that shrank after it was opened as 'truncated', naming the tensor", function () {
    const read = posixAddon()?.readF32;
    if (!read) return this.skip();
    const dir = tempDir('e5-native-read-');
    const file = path.join(dir, 'w.safetensors');
    const n = 2 * (1 << 20);
    try {
      writeSafetensors(file, { a: { dtype: 'F32', shape: [n], data: randoms(n, 5) } });
      const f = SafetensorsFile.open(file);
      fs.truncateSync(file, fs.statSync(file).size - 4096);
      assert.throws(() => f.readF32('a', { nativeRead: read.bind(posixAddon()) }), (e: SafetensorsError) =>
        e instanceof SafetensorsError && e.code === 'truncated' && e.tensor === 'a' && /file ended/.test(e.message));
      f.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs on the threads it was given (TensorFlow intra-op threads)', () => {
    assert.equal(runtime.threads, Number(process.env.E5_TEST_THREADS ?? 2));
    assert.equal(process.env.TF_NUM_INTRAOP_THREADS, String(runtime.threads));
    assert.equal(process.env.TF_NUM_INTEROP_THREADS, '1', 'one op at a time (a graph run would oversubscribe the cores)');
    assert.match(runtime.nativeVersion ?? '', /^\d+\.\d+/);
  });

  // stderr as a file here, and as a socket (Node's 'pipe' stdio) below: both need the dup() addon
  // `make native` builds (engine/backends/tensorflow/quiet.ts); without it a file or socket keeps
  // the lines (re-opening it would give it a file offset of its own: test/cli/stderr.test.ts).
  it("keeps TensorFlow's load-time log lines off the CLI's stderr unless --debug", async function () {
    if (!posixAddon()) {
      console.log("      (skipped: e5-tfjs-posix is not installed: 'make native' builds it; without it the lines show on a file or socket)");
      return this.skip();
    }
    const model = cachedModel({ preset: 'tiny' });
    const run = (extra: string[]) => {
      const file = path.join(tempDir(), 'stderr.txt'), fd = fs.openSync(file, 'w');
      const r = spawnSync(process.execPath, [BIN, 'embed', '--backend', 'tensorflow', ...extra, '--model', model, 'query: hello'], { env: cliEnv(), stdio: ['ignore', 'pipe', fd] });
      fs.closeSync(fd);
      return { code: r.status, stderr: fs.readFileSync(file, 'utf8') };
    };
    const quiet = run([]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /oneDNN|absl|I0000|cpu_feature_guard/);
    assert.match(quiet.stderr, /on tensorflow \(TensorFlow \d/);
    const debug = run(['--debug']);
    assert.equal(debug.code, 0, debug.stderr);
    assert.match(debug.stderr, /oneDNN|absl|I0000/);
    const overSocket = await e5(['embed', '--backend', 'tensorflow', '--model', model, 'query: hello']);
    assert.equal(overSocket.code, 0, overSocket.stderr);
    assert.doesNotMatch(overSocket.stderr, /oneDNN|absl|I0000|cpu_feature_guard/, 'stderr as a socket (is make native\'s e5-tfjs-posix there?)');
  });
});
