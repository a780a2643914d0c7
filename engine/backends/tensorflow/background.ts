/**
 * Weights read in the background, and the barrier that keeps anything from reading them early.
 *
 * sentence-transformers maps the safetensors file and pays for its pages during the first forward;
 * TensorFlow cannot use a mapped Hugging Face file as it is (it copies any tensor memory that is not
 * 64-byte aligned, and safetensors aligns tensor data to 8 bytes), so ./weights.ts reads the file
 * into aligned arenas. With make native's addon (readInBackground, scripts/posix-addon/posix.c)
 * that read no longer holds up the load: loadModel validates everything it can without the bytes
 * (header, names, shapes, dtypes, sizes against the file size), makes every weight tensor over its
 * arena slot at once — TensorFlow keeps the slot as the tensor's memory, so nothing reads it — and
 * hands the list of reads to two native threads, which pread each tensor into its slot (bf16: round
 * it there), checking for NaN/Inf as they go, while JavaScript goes on: the caller's own work and,
 * on the first large forward, the ~1 s of building the compiled graph. e5-large: loadModel 0.81-0.83
 * -> 0.09-0.11 s (medians), the weights all in ~0.70 s from its start (bench/load.ts).
 *
 * The barrier: every method of tfjs-node's backend through which a tensor's data reaches TensorFlow
 * or JavaScript (GUARDED) first waits for every pending batch — a native join, or one comparison
 * once nothing is pending. So an op, a graph run or a dataSync()/data() on any tensor, a weight or
 * not, cannot see a slot before its bytes are in. What the reads found (a NaN/Inf, an I/O error,
 * a file that shrank) is thrown there, as the SafetensorsError a synchronous load throws (same
 * code and wording), and again by the model's own forwards (engine/model.ts) and waits.
 *
 * The memory: each arena is an ArrayBuffer over mmap()ed memory that its finalizer unmaps. A
 * pending batch keeps its arenas referenced (its jobs, in the Set below) until it is joined, so a model
 * disposed (or dropped) before its reads end cannot have the memory unmapped under a writing
 * thread; BertModel.dispose also cancels and joins. The batch reads through its own dup() of the
 * file descriptors, closed natively when it is joined, so the checkpoint closes as before. The
 * addon joins at the environment's end (a cleanup hook) and when a handle is collected unjoined.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DeferredReads, PendingWeights } from '../../runtime';
import { F32Source, nativeReadError, nonFiniteError } from '../../../weights/safetensors';
import type { BackgroundFailure, BackgroundHandle, PosixAddon } from './posix';

/** The backend methods through which tensor data reaches TensorFlow or JavaScript (tfjs-node 4.22). */
export const GUARDED = [
  'getInputTensorIds', // every op (executeSingleOutput/executeMultipleOutputs) and graph run (getMappedInputTensorIds) goes through it
  'getMappedInputTensorIds',
  'executeSingleOutput',
  'executeMultipleOutputs',
  'runSavedModel',
  'readSync', // dataSync(), arraySync(), bufferSync()
  'read', // data(), array()
] as const;

type Method = (...args: unknown[]) => unknown;
type Guardable = Partial<Record<(typeof GUARDED)[number], Method>>;

/** Batches started and not yet joined: this keeps their arenas alive. */
const pending = new Set<BackgroundReads>();
/** Each guarded backend's own methods, for the load, which makes weight tensors while reads are pending. */
const unguarded = new WeakMap<object, Guardable>();

/** Waits for every pending batch; throws the first error found (after joining them all). */
export function waitForPendingReads(): void {
  let first: unknown;
  for (const batch of [...pending]) {
    try {
      batch.wait();
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}

/** Batches not yet joined (for tests). */
export function pendingBatches(): number {
  return pending.size;
}

/**
 * Puts the barrier on `backend` (once; a process-wide patch of the backend object, listed in
 * docs/ARCHITECTURE.md). Returns its unguarded methods.
 */
export function guardBackend(backend: object): Guardable {
  const known = unguarded.get(backend);
  if (known) return known;
  const target = backend as Guardable;
  const originals: Guardable = {};
  for (const name of GUARDED) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    originals[name] = original;
    target[name] = name === 'read'
      ? function (this: unknown, ...args: unknown[]) {
        if (pending.size !== 0) {
          try {
            waitForPendingReads();
          } catch (e) {
            return Promise.reject(e);
          }
        }
        return original.apply(this, args);
      }
      : function (this: unknown, ...args: unknown[]) {
        if (pending.size !== 0) waitForPendingReads();
        return original.apply(this, args);
      };
  }
  unguarded.set(backend, originals);
  return originals;
}

/** `backend`'s own methods: the unguarded ones where the barrier is on, else the backend itself. */
export function unguardedMethods(backend: object): Guardable {
  return unguarded.get(backend) ?? (backend as Guardable);
}

interface Job {
  source: F32Source;
  buffer: ArrayBuffer;
  byteOffset: number;
  bf16: boolean;
}

/**
 * DeferredReads over arena slots: `slot(n)` gives n float32s of 64-byte-aligned arena memory,
 * `adopt(t)` makes the TensorFlow tensor of `t` now, from that memory, without the barrier.
 */
export function backgroundReads(addon: PosixAddon, slot: (n: number) => Float32Array, adopt: (t: tf.Tensor) => void): DeferredReads {
  const jobs: Job[] = [];
  return {
    tensor(shape, source, as) {
      const n = shape.reduce((a, b) => a * b, 1);
      if (source.byteLength !== 4 * n) throw new Error(`${source.file}: tensor ${source.info.name} holds ${source.byteLength} bytes, not the ${4 * n} of [${shape}]`);
      let t: tf.Tensor, dst: Float32Array;
      if (as === 'bf16') {
        const [out, inp] = shape;
        if (shape.length !== 2 || inp % 2) throw new Error(`bf16 weights need an even input size, got [${shape}]`);
        dst = slot(n / 2); // two bf16 values in each int32
        t = tf.tensor2d(new Int32Array(dst.buffer, dst.byteOffset, dst.length), [out, inp / 2], 'int32');
      } else {
        dst = slot(n);
        t = tf.tensor(dst, shape, 'float32');
      }
      adopt(t);
      jobs.push({ source, buffer: dst.buffer as ArrayBuffer, byteOffset: dst.byteOffset, bf16: as === 'bf16' });
      return t;
    },
    start() {
      const buffers: ArrayBuffer[] = [];
      const spec = new Float64Array(6 * jobs.length);
      jobs.forEach((j, i) => {
        let b = buffers.indexOf(j.buffer);
        if (b < 0) b = buffers.push(j.buffer) - 1;
        spec.set([j.source.fd, j.source.position, j.source.byteLength, b, j.byteOffset, (j.source.checkFinite ? 1 : 0) | (j.bf16 ? 2 : 0)], 6 * i);
      });
      const handle = addon.readInBackground!(spec, buffers);
      return new BackgroundReads(addon, handle, jobs.splice(0));
    },
  };
}

/** One started batch (PendingWeights). */
class BackgroundReads implements PendingWeights {
  private handle: BackgroundHandle | undefined;
  private seconds: number | undefined;
  private error: Error | undefined;

  /** `jobs` (and so the arenas the threads write into) are referenced until the batch is joined. */
  constructor(private readonly addon: PosixAddon, handle: BackgroundHandle, private jobs: Job[]) {
    this.handle = handle;
    pending.add(this);
  }

  done(): boolean {
    return this.handle === undefined || this.addon.backgroundDone!(this.handle) >= 0;
  }

  readSeconds(): number | undefined {
    if (this.handle === undefined) return this.seconds;
    const s = this.addon.backgroundDone!(this.handle);
    return s >= 0 ? s : undefined;
  }

  wait(): void {
    this.join(false);
    if (this.error) throw this.error;
  }

  throwIfFailed(): void {
    if (this.handle === undefined && this.error) throw this.error;
  }

  cancel(): void {
    this.join(true);
  }

  private join(cancel: boolean): void {
    const handle = this.handle;
    if (handle === undefined) return;
    const failure = this.addon.backgroundJoin!(handle, cancel);
    this.seconds = this.addon.backgroundDone!(handle);
    this.handle = undefined;
    pending.delete(this);
    if (failure) this.error = this.describe(failure);
    this.jobs = []; // the tensors keep the memory that is still used
  }

  /** The failure as a synchronous load reports it (weights/safetensors/reader.ts). */
  private describe(f: BackgroundFailure): Error {
    const { source, buffer, byteOffset, bf16 } = this.jobs[f.job];
    const { file, info, byteLength, position } = source;
    if (f.code === 'non_finite') {
      const i = f.element!;
      // bf16 rounding keeps NaN a NaN and ±Inf ±Inf: the slot tells which it was.
      const value = bf16 ? new Float32Array(new Uint32Array([new Uint16Array(buffer, byteOffset, byteLength / 2)[i] << 16]).buffer)[0]
        : new Float32Array(buffer, byteOffset, byteLength / 4)[i];
      return nonFiniteError(file, info, i, value);
    }
    const message = f.code === 'truncated' ? `file ended while reading ${byteLength} bytes at ${position}`
      : `reading ${byteLength} bytes at ${position} failed: ${f.reason}`;
    return nativeReadError(file, info, f.code, message);
  }
}
