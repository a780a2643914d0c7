/**
 * Kernels we register with tfjs: replacements for tfjs-backend-wasm 4.22 where the stock kernel
 * does avoidable work, and one-kernel exact GELU and LayerNorm for wasm and cpu.
 *
 * Slice: the stock kernel calls `backend.readSync(x)`, which copies the WHOLE input out of the
 * wasm heap before copying the slice back in. Attention takes one [T, Dh] slice per row and
 * head from a [H, N, Dh] tensor, so every slice cost a full copy of that tensor (~700 ms per
 * e5-large layer in shared/TFJS-WASM-NOTES.md). This version reads the input through a view of
 * the heap and copies only the slice. Unpack (tf.unstack) is re-registered on top of it.
 *
 * Both are registered only for the 'wasm' backend; results are bit-identical (pure copies),
 * which test/engine/backend.test.ts checks against the cpu backend's kernels.
 *
 * GatherV2 along axis 0 (the embedding lookups): the stock kernel walks element by element with
 * stride arithmetic, ~150 ns per float — 300 ms of a 32×64 e5-large forward for three row
 * lookups. Here each index copies one contiguous row; other axes go to the stock kernel.
 *
 * E5LayerNorm: LayerNorm over the last axis of a [N, D] matrix in one kernel. Composed, it is
 * ~11 kernels per call (moments, subtract, rsqrt, scale, shift): 546 dispatches per e5-large
 * forward, ~10% of a single query's time with their JavaScript around them. Mean and variance
 * are accumulated in float64 (two passes, biased variance as torch) and each output rounded once.
 *
 * E5GeluErf: the exact (erf) GELU in one pass. Composed from tfjs ops it is five kernels, the
 * Erf one calling libm's erf per element: 7% of an e5-large forward (bench/ --profile). Here
 * erf(u) = u·P(u²)/Q(u²), a rational fit with max abs error 1.5e-9 in float64 (engine/backends/erf_fit.py
 * derives it), ±1 beyond |u| = 3.92 — below float32 resolution; in a 32×64 forward GELU went
 * from 1.86 s to 1.30 s (7% → 4%). Also registered on cpu, whose own Erf is a 1.5e-7 approximation (tfjs-node keeps the
 * composed ops: TensorFlow's erf is exact). test/engine/backend.test.ts checks it against math.erf
 * values and the composed ops.
 *
 * Both are split over worker threads on the shared heap for large inputs (engine/backends/wasm/threads.ts; the
 * arithmetic itself is engine/backends/elementwise.ts). On wasm with our SIMD module, both run their
 * float64×2 forms (engine/backends/wasm/simd.ts): the same operations, so the same bits; GELU ~1.7×, LayerNorm
 * ~4× as fast.
 *
 * E5RowHeads (wasm): each row's attention heads copied out of a packed [N, D] matrix in one
 * kernel, in the form the attention matmuls take (see rowHeadsKernel).
 *
 * E5Attention (wasm, given the SIMD module of engine/backends/wasm/simd.ts): a whole layer's attention — every
 * row, every head: q·kᵀ, scale, mask, softmax, ·v — from q, k, v [N, D] to z [N, D], a row's
 * heads shared over the worker threads. E5AttnScores, E5AttnSoftmax and E5AttnZ are its three
 * steps apart, for when a hook wants the scores or the pattern; they run the same functions, so
 * the numbers are the same either way.
 */
import * as tf from '@tensorflow/tfjs-core';
import { geluErfInto, layerNormInto } from '../elementwise';
import { GELU_ERF_KERNEL, LAYER_NORM_KERNEL } from '../kernel-ops';
import { MASK_VALUE } from '../../numerics';
import { attentionScratchFloats, instantiateSimd } from './simd';
import { HeapThreads, MIN_PARALLEL_ELEMENTS, MIN_PARALLEL_MACS, SimdKernels } from './threads';

/** The parts of tfjs-backend-wasm 4.22's backend object these kernels (and engine/backends/wasm/heap.ts) use. */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: unknown): void;
  dataIdMap: { get(dataId: unknown): { memoryOffset: number; refCount: number } | undefined };
  /** The Emscripten module: its allocator, heap view and (threaded build) shared WebAssembly.Memory. */
  wasm: {
    _malloc(bytes: number): number;
    _free(ptr: number): void;
    HEAPU8: Uint8Array;
    /** The threaded build's (shared) memory. */
    wasmMemory?: WebAssembly.Memory;
    /** The single-threaded build's exports, its memory among them. */
    asm?: { memory?: WebAssembly.Memory };
  };
}

/** The WebAssembly.Memory tfjs-wasm's tensors live in (either build), if reachable. */
export function wasmMemoryOf(b: Partial<WasmBackendLike>): WebAssembly.Memory | undefined {
  return b.wasm?.wasmMemory ?? b.wasm?.asm?.memory;
}

type Views = Float32Array | Int32Array | Uint8Array;

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown };

/** Copy the box begin..begin+size of x (shape, row-major) into out, innermost dimension as runs. */
function copyBox(x: Views, shape: number[], begin: number[], size: number[], out: Views): void {
  const rank = shape.length;
  const strides = tf.util.computeStrides(shape); // length rank-1
  const run = size[rank - 1];
  let o = 0;
  const walk = (dim: number, offset: number): void => {
    if (dim === rank - 1) {
      const from = offset + begin[dim];
      out.set(x.subarray(from, from + run), o);
      o += run;
      return;
    }
    for (let i = 0; i < size[dim]; i++) walk(dim + 1, offset + (begin[dim] + i) * strides[dim]);
  };
  if (rank === 0) out[0] = x[0];
  else walk(0, 0);
}

function sliceKernel({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  const b = backend as WasmBackendLike;
  const { begin, size } = attrs as unknown as { begin: number | number[]; size: number | number[] };
  const [begin_, size_] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
  const out = b.makeOutput(size_, x.dtype);
  if (tf.util.sizeFromShape(size_) === 0) return out;
  // Views are taken after makeOutput: allocating may grow (and so replace) the heap buffer.
  const xVals = b.typedArrayFromHeap(x), outVals = b.typedArrayFromHeap(out);
  if (tf.slice_util.isSliceContinous(x.shape, begin_, size_)) {
    const flat = tf.slice_util.computeFlatOffset(begin_, tf.util.computeStrides(x.shape));
    outVals.set(xVals.subarray(flat, flat + tf.util.sizeFromShape(size_)));
  } else {
    copyBox(xVals, x.shape, begin_, size_, outVals);
  }
  return out;
}

function unpackKernel({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo[] {
  const x = inputs.value as tf.TensorInfo;
  const axis = (attrs as unknown as { axis: number }).axis;
  const rank = x.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  const n = x.shape[ax];
  const outShape = x.shape.filter((_, i) => i !== ax);
  const begin = new Array(rank).fill(0), size = [...x.shape];
  size[ax] = 1;
  return Array.from({ length: n }, (_, i) => {
    begin[ax] = i;
    const piece = sliceKernel({ inputs: { x }, attrs: { begin: [...begin], size: [...size] }, backend });
    return { ...piece, shape: outShape };
  });
}

function gatherKernel(stockGather: tf.KernelFunc, args: KernelArgs): tf.TensorInfo {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
  const rowAxis = tf.util.parseAxisParam(axis, x.shape)[0] === 0 && (batchDims ?? 0) === 0 && x.shape.length >= 1;
  if (!rowAxis || indices.dtype !== 'int32') return stockGather(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const b = args.backend as WasmBackendLike;
  const rows = x.shape[0], rowSize = tf.util.sizeFromShape(x.shape.slice(1));
  const out = b.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  const xv = b.typedArrayFromHeap(x), iv = b.typedArrayFromHeap(indices), ov = b.typedArrayFromHeap(out); // views after makeOutput
  for (let i = 0; i < iv.length; i++) {
    const r = iv[i];
    if (!(r >= 0 && r < rows)) {
      b.disposeData(out.dataId);
      throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`); // the stock kernel's message
    }
    ov.set(xv.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize);
  }
  return out;
}

export { GELU_ERF_KERNEL, LAYER_NORM_KERNEL };
export const ROW_HEADS_KERNEL = 'E5RowHeads';
export const ATTENTION_KERNEL = 'E5Attention';
export const ATTN_SCORES_KERNEL = 'E5AttnScores';
export const ATTN_SOFTMAX_KERNEL = 'E5AttnSoftmax';
export const ATTN_Z_KERNEL = 'E5AttnZ';

/** Attributes of E5Attention. */
export interface AttentionAttrs {
  /** First token and token count of each row in the packed [N, D] inputs. */
  starts: number[];
  lengths: number[];
  heads: number;
  /** The attention mask, 1 for a real key, 0 for padding, one per token of the N. */
  keyMask: ArrayLike<number>;
  /** Scores are divided by this (√Dh). */
  scale: number;
}

/** Attributes of E5AttnScores (one row) and E5AttnZ (one row: start and heads only). */
export interface RowAttentionAttrs {
  start: number;
  length: number;
  heads: number;
  keyMask: ArrayLike<number>;
  scale: number;
}

/** Attributes of E5RowHeads. */
export interface RowHeadsAttrs {
  /** First token and token count of each row in the packed [N, D] input. */
  starts: number[];
  lengths: number[];
  heads: number;
  /** Each head as [Dh, T] (keys, for q·kᵀ) instead of [T, Dh]. */
  transposed: boolean;
  /** Per row: one output per head instead of one [H, *, *] (outputs in row order, a row's heads in order). */
  perHead: boolean[];
}

/** T runs of Dh floats, `stride` apart from `from` in x, into out[at..] as [T, Dh]. */
function copyHead(x: Float32Array, from: number, stride: number, T: number, Dh: number, out: Float32Array, at: number): void {
  for (let t = 0; t < T; t++, from += stride, at += Dh) out.set(x.subarray(from, from + Dh), at); // measured faster than a loop here
}

/** The same runs into out[at..] as [Dh, T]. */
function copyHeadTransposed(x: Float32Array, from: number, stride: number, T: number, Dh: number, out: Float32Array, at: number): void {
  for (let t = 0; t < T; t++, from += stride) {
    for (let d = 0, o = at + t; d < Dh; d++, o += T) out[o] = x[from + d];
  }
}

/**
 * Cut a packed [N, D] activation into attention's operands in one pass: for each row, its heads
 * as [H, T, Dh] (or [H, Dh, T] transposed), or each head apart. Replaces reshape + transpose to
 * [H, N, Dh] + a slice per row (+ a transpose for keys) + an unstack per row: 8% of an 8×128
 * forward's kernels were such copies. Pure copies, so bit-identical to those ops.
 */
function rowHeadsKernel({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo[] {
  const x = inputs.x as tf.TensorInfo;
  const { starts, lengths, heads: H, transposed, perHead } = attrs as unknown as RowHeadsAttrs;
  const b = backend as WasmBackendLike;
  const D = x.shape[1], Dh = D / H;
  const outs: tf.TensorInfo[] = [];
  starts.forEach((_, r) => {
    const T = lengths[r];
    const shape = transposed ? [Dh, T] : [T, Dh];
    if (perHead[r]) for (let h = 0; h < H; h++) outs.push(b.makeOutput(shape, 'float32'));
    else outs.push(b.makeOutput([H, ...shape], 'float32'));
  });
  const xv = b.typedArrayFromHeap(x) as Float32Array; // views after every makeOutput (the heap may grow)
  const copy = transposed ? copyHeadTransposed : copyHead;
  let k = 0;
  starts.forEach((start, r) => {
    const T = lengths[r];
    const whole = perHead[r] ? undefined : (b.typedArrayFromHeap(outs[k++]) as Float32Array);
    for (let h = 0; h < H; h++) {
      if (whole) copy(xv, start * D + h * Dh, D, T, Dh, whole, h * T * Dh);
      else copy(xv, start * D + h * Dh, D, T, Dh, b.typedArrayFromHeap(outs[k++]) as Float32Array, 0);
    }
  });
  return outs;
}

/**
 * What the kernels share: the thread count, the SIMD module (and its instance on the main
 * thread), the worker threads for large inputs. One per process, made by the wasm plug-in.
 */
export class WasmKernelState {
  private heapThreads: HeapThreads | null | undefined; // undefined: not tried yet; null: not available
  private simdOnMain: SimdKernels | undefined;

  constructor(readonly threads: number, readonly simdModule?: WebAssembly.Module) {}

  /** The SIMD module with its instance on the main thread, instantiated on first use. */
  simdKernels(b: WasmBackendLike): SimdKernels | undefined {
    const memory = wasmMemoryOf(b);
    if (!this.simdModule || !memory) return undefined;
    this.simdOnMain ??= { module: this.simdModule, main: instantiateSimd(this.simdModule, memory) };
    return this.simdOnMain;
  }

  /** The workers for large GELU/LayerNorm inputs and attention rows (./threads.ts), started on first use. */
  threadsFor(b: WasmBackendLike, big: boolean): HeapThreads | null {
    if (!big || this.threads < 2 || this.heapThreads === null) return null;
    if (this.heapThreads === undefined) {
      const memory = b.wasm.wasmMemory;
      this.heapThreads = memory && memory.buffer instanceof SharedArrayBuffer ? new HeapThreads(memory, this.threads - 1, this.simdKernels(b)) : null;
    }
    return this.heapThreads;
  }

  /** Threads the GELU/LayerNorm kernels have used for large inputs so far (1 until one ran split). */
  elementwiseThreads(): number {
    return this.heapThreads?.threads ?? 1;
  }

  /** Whether the E5Attention kernels run here for heads of Dh floats: the SIMD module assembled, Dh a multiple of 8. */
  simdAttention(Dh: number): boolean {
    return Dh % 8 === 0 && this.simdKernels(tf.backend() as unknown as WasmBackendLike) !== undefined;
  }

  /** Stop the worker threads (they never hold the process; this frees them early). */
  async shutdown(): Promise<void> {
    await this.heapThreads?.terminate();
    this.heapThreads = null;
  }
}

/** Float32 scratch on the heap for `fn`, freed after it (attention's per-thread work areas). */
function withScratch<R>(b: WasmBackendLike, floats: number, fn: (at: number) => R): R {
  const at = b.wasm._malloc(4 * floats) >>> 0;
  if (at === 0) throw new Error(`E5Attention: no room for ${floats} floats of scratch on the wasm heap (4 GB wasm32 cap)`);
  try {
    return fn(at);
  } finally {
    b.wasm._free(at);
  }
}

/** The additive key mask of row start..start+T (0 or the float32 minimum) at `at`; 0 (no mask) when every key is real. */
function writeKeyMask(b: WasmBackendLike, keyMask: ArrayLike<number>, start: number, T: number, at: number): number {
  const keys = Array.from({ length: T }, (_, t) => keyMask[start + t]);
  if (keys.every((m) => m === 1)) return 0;
  new Float32Array(b.wasm.HEAPU8.buffer, at, T).set(keys.map((m) => (m === 1 ? 0 : MASK_VALUE)));
  return at;
}

function attentionKernel(state: WasmKernelState, { inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { q, k, v } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const { starts, lengths, heads: H, keyMask, scale } = attrs as unknown as AttentionAttrs;
  const b = backend as WasmBackendLike;
  const [N, D] = q.shape, Dh = D / H;
  const out = b.makeOutput([N, D], 'float32');
  if (N === 0) return out;
  const simd = state.simdKernels(b)!.main;
  const maxT = Math.max(...lengths), perThread = attentionScratchFloats(maxT, Dh);
  const threads = state.threadsFor(b, 2 * maxT * maxT * D >= MIN_PARALLEL_MACS);
  withScratch(b, maxT + perThread * (threads?.threads ?? 1), (at) => {
    const scratch = at + 4 * maxT;
    starts.forEach((start, r) => {
      const T = lengths[r], row = 4 * start * D;
      const mask = writeKeyMask(b, keyMask, start, T, at);
      const [qr, kr, vr, zr] = [q, k, v, out].map((t) => offsetOf(b, t) + row);
      if (threads && 2 * T * T * D >= MIN_PARALLEL_MACS) {
        threads.attention({ q: qr, k: kr, v: vr, z: zr, Dh, T, mask, scale, scratch, scratchBytes: 4 * perThread }, D, H);
      } else {
        simd.attention(qr, kr, vr, zr, D, Dh, T, 0, H, mask, scale, scratch);
      }
    });
  });
  return out;
}

/** One row's scores [H, T, T] = q_h·k_hᵀ / scale + mask: E5Attention's first step, for the hooks. */
function attnScoresKernel(state: WasmKernelState, { inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { q, k } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo };
  const { start, length: T, heads: H, keyMask, scale } = attrs as unknown as RowAttentionAttrs;
  const b = backend as WasmBackendLike;
  const D = q.shape[1], Dh = D / H, Tp = (T + 7) & ~7;
  const out = b.makeOutput([H, T, T], 'float32');
  const simd = state.simdKernels(b)!.main;
  withScratch(b, T + T * Tp + attentionScratchFloats(T, Dh), (at) => {
    const S = at + 4 * T, scratch = S + 4 * T * Tp;
    const mask = writeKeyMask(b, keyMask, start, T, at);
    for (let h = 0; h < H; h++) {
      const head = 4 * (start * D + h * Dh);
      simd.scores(offsetOf(b, q) + head, offsetOf(b, k) + head, D, Dh, T, mask, scale, scratch, S);
      const heap = b.wasm.HEAPU8.buffer, o = new Float32Array(heap, offsetOf(b, out) + 4 * h * T * T, T * T);
      for (let t = 0; t < T; t++) o.set(new Float32Array(heap, S + 4 * t * Tp, T), t * T);
    }
  });
  return out;
}

/** Softmax over the last axis: E5Attention's second step, for the hooks. */
function attnSoftmaxKernel(state: WasmKernelState, { inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  const b = backend as WasmBackendLike;
  const out = b.makeOutput(x.shape, 'float32');
  const n = x.shape[x.shape.length - 1], size = tf.util.sizeFromShape(x.shape);
  if (size === 0) return out;
  (b.typedArrayFromHeap(out) as Float32Array).set(b.typedArrayFromHeap(x) as Float32Array); // views after makeOutput
  state.simdKernels(b)!.main.softmax(offsetOf(b, out), size / n, n, 4 * n);
  return out;
}

/** One row's z [T, D] = pattern [H, T, T] · v_h, heads side by side: E5Attention's last step, for the hooks. */
function attnZKernel(state: WasmKernelState, { inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { pattern, v } = inputs as { pattern: tf.TensorInfo; v: tf.TensorInfo };
  const { start, heads: H } = attrs as unknown as RowAttentionAttrs;
  const b = backend as WasmBackendLike;
  const T = pattern.shape[1], D = v.shape[1], Dh = D / H;
  const out = b.makeOutput([T, D], 'float32');
  const simd = state.simdKernels(b)!.main;
  withScratch(b, attentionScratchFloats(T, Dh), (scratch) => {
    for (let h = 0; h < H; h++) {
      simd.headZ(offsetOf(b, pattern) + 4 * h * T * T, 4 * T, offsetOf(b, v) + 4 * (start * D + h * Dh), D, Dh, T, scratch, offsetOf(b, out) + 4 * h * Dh);
    }
  });
  return out;
}

const offsetOf = (b: WasmBackendLike, t: tf.TensorInfo) => b.dataIdMap.get(t.dataId)!.memoryOffset;

function layerNormKernel(state: WasmKernelState, { inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const eps = (attrs as unknown as { eps: number }).eps;
  const D = x.shape[x.shape.length - 1];
  const b = backend as WasmBackendLike;
  const out = b.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  const threads = state.threadsFor(b, n >= MIN_PARALLEL_ELEMENTS);
  if (threads) {
    threads.layerNorm(offsetOf(b, x), offsetOf(b, gamma), offsetOf(b, beta), eps, D, offsetOf(b, out), n);
    return out;
  }
  const simd = state.simdKernels(b)?.main;
  if (simd) {
    simd.layerNorm(offsetOf(b, x), offsetOf(b, gamma), offsetOf(b, beta), eps, D, offsetOf(b, out), n); // the same bits as layerNormInto, ~4× as fast
    return out;
  }
  const view = (t: tf.TensorInfo) => b.typedArrayFromHeap(t) as Float32Array; // views after makeOutput
  layerNormInto(view(x), view(gamma), view(beta), eps, D, view(out));
  return out;
}

function geluKernel(state: WasmKernelState, { inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  const b = backend as WasmBackendLike;
  const out = b.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  const threads = state.threadsFor(b, n >= MIN_PARALLEL_ELEMENTS);
  const simd = state.simdKernels(b)?.main;
  if (threads) threads.gelu(offsetOf(b, x), offsetOf(b, out), n);
  else if (simd) simd.gelu(offsetOf(b, x), offsetOf(b, out), n); // the same bits as geluErfInto, ~1.7× as fast
  else geluErfInto(b.typedArrayFromHeap(x) as Float32Array, b.typedArrayFromHeap(out) as Float32Array); // views after makeOutput
  return out;
}

/**
 * Replace the wasm Slice, Unpack and GatherV2 kernels and add E5GeluErf, E5LayerNorm,
 * E5RowHeads and, given the assembled SIMD module (./simd.ts), the attention kernels. Large
 * GELU and LayerNorm inputs and attention rows are split over `state.threads` threads
 * (./threads.ts) when the heap is shared. Once per process (tfjs's kernel registry is global).
 */
export function registerWasmKernels(state: WasmKernelState): void {
  const register = (kernelName: string, fn: (args: KernelArgs) => unknown) => {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: fn as unknown as tf.KernelFunc });
  };
  if (state.simdModule) {
    register(ATTENTION_KERNEL, (a) => attentionKernel(state, a));
    register(ATTN_SCORES_KERNEL, (a) => attnScoresKernel(state, a));
    register(ATTN_SOFTMAX_KERNEL, (a) => attnSoftmaxKernel(state, a));
    register(ATTN_Z_KERNEL, (a) => attnZKernel(state, a));
  }
  const stock = tf.getKernel('GatherV2', 'wasm') as tf.KernelConfig | undefined; // its setupFunc ran when the backend started
  if (stock) {
    const stockGather = stock.kernelFunc;
    register('GatherV2', (a) => gatherKernel(stockGather, a));
  }
  register(GELU_ERF_KERNEL, (a) => geluKernel(state, a));
  register(LAYER_NORM_KERNEL, (a) => layerNormKernel(state, a));
  register(ROW_HEADS_KERNEL, rowHeadsKernel);
  register('Slice', sliceKernel);
  register('Unpack', unpackKernel);
}
