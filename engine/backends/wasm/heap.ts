/**
 * Faulting in the wasm heap ahead of use, from worker threads.
 *
 * Why: on the VMs this project is measured on (and CI), the first write to a fresh 4 KiB page
 * costs ~13 µs — ~4 ms per MB, ~2.4 ms per MB with two threads (memory handed back to the host
 * is faulted back in). Loading e5-large writes 1.34 GB of weights into the wasm heap and
 * XNNPACK then writes its 1.2 GB packed copy: ~10 s of page faults on one thread, more than
 * every other part of the load together.
 *
 * How: the threaded wasm build's heap is a SharedArrayBuffer. We grow it once by `bytes`
 * (malloc + free: the allocator then carves later tensors out of that region), and workers
 * touch one word per page with `Atomics.add(heap, i, 0)` — an atomic read-modify-write that
 * leaves every value as it is, so it is harmless where the main thread is already writing
 * tensors or the allocator keeps its headers. The main thread meanwhile reads, transposes and
 * uploads; its writes then land on pages that are already there.
 *
 * `filledTensor` is the other half: weights are read (and transposed) straight into the heap.
 *
 * `releaseLinearWeight` is the third: once XNNPACK has its packed copy of a Linear weight, the
 * weight's own memory can go back to the allocator (the next weight is read into it).
 *
 * Best effort: without a shared heap (single-threaded wasm, other backends), or when the heap
 * cannot grow by `bytes`, nothing is done.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Worker } from 'worker_threads';
import { freshTensor, Linear, PACKED_WEIGHT } from '../../../weights/params';
import type { WasmBackendLike } from './kernels';
import { genericOps } from '../generic/ops';

const PAGE_WORDS = 1024; // 4 KiB in Int32 words

const TOUCH_PAGES = `
const { workerData, parentPort } = require('worker_threads');
const heap = new Int32Array(workerData.buffer);
for (let i = workerData.from; i < workerData.to; i += ${PAGE_WORDS}) Atomics.add(heap, i, 0);
parentPort.postMessage('done');
`;

/**
 * A float32 tensor of `shape` whose values `fill` writes in place. On wasm `fill` writes
 * straight into the tensor's heap memory (no host array, no upload copy); elsewhere into a
 * fresh array that becomes the tensor (tfjs-cpu keeps it without copying).
 */
export function filledTensor(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor {
  if (tf.getBackend() === 'wasm') {
    const backend = tf.backend() as unknown as WasmBackendLike;
    const info = backend.makeOutput(shape, 'float32');
    try {
      fill(backend.typedArrayFromHeap(info) as Float32Array); // the view is taken after the allocation (a growing heap replaces the buffer)
    } catch (e) {
      backend.disposeData(info.dataId);
      throw e;
    }
    return tf.engine().makeTensorFromTensorInfo(info);
  }
  return freshTensor(shape, fill);
}

export interface Prefault {
  /** Bytes of the region being faulted in. */
  bytes: number;
  /** Resolves when every worker is done (never rejects: a failed worker only costs speed). */
  done: Promise<void>;
}

function wasmModule(): WasmBackendLike['wasm'] | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const wasm = (tf.backend() as unknown as Partial<WasmBackendLike>).wasm;
  return wasm && typeof wasm._malloc === 'function' ? wasm : undefined;
}

/** Grow the wasm heap by `bytes` and fault those pages in from `workers` threads. */
export function prefaultWasmHeap(bytes: number, workers: number): Prefault | undefined {
  const wasm = wasmModule();
  if (!wasm || !(wasm.HEAPU8.buffer instanceof SharedArrayBuffer) || bytes <= 0 || workers < 1) return undefined;
  const start = wasm._malloc(bytes) >>> 0;
  if (start === 0) return undefined; // the heap cannot grow that far (4 GB wasm32 cap): no prefault
  wasm._free(start);
  const buffer = wasm.HEAPU8.buffer; // read after the malloc: growing the heap replaces the buffer
  const from = Math.ceil(start / 4), to = Math.floor((start + bytes) / 4);
  const share = Math.ceil((to - from) / workers / PAGE_WORDS) * PAGE_WORDS;
  const jobs: Array<Promise<void>> = [];
  for (let k = 0; k < workers && from + k * share < to; k++) {
    jobs.push(new Promise<void>((resolve) => {
      const worker = new Worker(TOUCH_PAGES, { eval: true, workerData: { buffer, from: from + k * share, to: Math.min(to, from + (k + 1) * share) } });
      worker.unref(); // never keeps the process alive
      worker.once('message', () => resolve());
      worker.once('error', () => resolve());
      worker.once('exit', () => resolve());
    }));
  }
  return { bytes, done: Promise.all(jobs).then(() => undefined) };
}

/**
 * Have the backend prepare a Linear now: on wasm, XNNPACK packs its weight and bias on the
 * first matmul that names them (the forward's exact call; the result is dropped) — ~1.2 GB and
 * ~1–2 s for e5-large, which would otherwise land on the first forward. loadModel calls this as
 * each Linear is read. Other backends cache nothing per weight: a no-op there.
 */
export function prepackLinear(lin: Linear): void {
  if (tf.getBackend() !== 'wasm') return;
  tf.tidy(() => {
    genericOps.linear(tf.zeros([1, (lin[PACKED_WEIGHT] ?? lin.weight).shape[0]]) as tf.Tensor2D, lin);
  });
}

/**
 * Pack a Linear for XNNPACK and give its weight's heap memory back: XNNPACK computes from its
 * own packed copy, keyed by the weight and bias tensors, and reads the weight only when it
 * packs. The weight tensor stays alive as the key (`lin[PACKED_WEIGHT]`, freed on dispose like
 * any tensor; its data is gone and must never be read) and `lin.weight` throws instead of
 * handing out a tensor that would read back garbage. Saves the weight's bytes (1.15 GB on
 * e5-large). Returns false (weight kept) off wasm, or when the weight's memory is shared.
 */
export function releaseLinearWeight(lin: Linear, name: string): boolean {
  const wasm = wasmModule();
  if (!wasm || lin[PACKED_WEIGHT]) return false;
  const weight = lin.weight;
  const data = (tf.backend() as unknown as WasmBackendLike).dataIdMap.get(weight.dataId);
  if (!data || data.refCount !== 1 || data.memoryOffset === 0) return false; // a view or clone shares it: keep
  prepackLinear(lin); // packed from the weight's data, once (cached from here on)
  wasm._free(data.memoryOffset);
  data.memoryOffset = 0; // tfjs frees it again on dispose: free(NULL) does nothing
  lin[PACKED_WEIGHT] = weight;
  Object.defineProperty(lin, 'weight', {
    enumerable: true,
    configurable: true,
    get(): never {
      throw new Error(`${name}.weight was handed to XNNPACK and its memory released (loadModel keepLinearWeights: false, which \`e5 embed\`, \`similarity\` and \`eval\` use); load with keepLinearWeights: true (the default) to read Linear weights`);
    },
  });
  return true;
}
