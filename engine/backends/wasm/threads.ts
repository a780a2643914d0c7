/**
 * GELU and LayerNorm on every core. The threaded wasm build's heap is a shared
 * WebAssembly.Memory, so worker threads can compute a share of a kernel's output in place while
 * the main thread computes its own: the functions of ../elementwise.ts, run from their
 * source in each worker, on disjoint ranges of the same input and output.
 *
 * Why: tfjs-wasm runs only its matmuls on its thread pool; our one-pass kernels ran on the main
 * thread alone, ~6-12 ns per GELU element: GELU + LayerNorm were 8% of an 8×128 e5-large
 * forward (bench/ --profile) with the second core idle. Split over two threads they take about
 * half (bench/README.md).
 *
 * How: one worker per extra thread, started on first use and unref'd (never keeps the process
 * alive). Each has a small shared control block; the main thread writes a job (operation, heap
 * offsets, length), bumps a sequence number and notifies; the worker computes and stores the
 * sequence number back. The main thread, after its own share, blocks in Atomics.wait until every
 * worker is done — the kernel is synchronous, as tfjs requires. A worker that fails reports it
 * and the main thread computes that share itself.
 *
 * With the SIMD module (./simd.ts) GELU and LayerNorm run its wasm forms, the same bits as
 * the JavaScript ones. Attention runs the same way: each thread computes a share of a row's heads,
 * with its own instance of the SIMD module on the same memory and its own scratch.
 *
 * Used only on the wasm backend with a shared heap and more than one thread, and only for
 * inputs of at least MIN_PARALLEL_ELEMENTS elements (attention: MIN_PARALLEL_MACS).
 */
import { Worker } from 'worker_threads';
import { elementwiseSource, geluErfInto, layerNormInto } from '../elementwise';
import type { SimdExports } from './simd';

/**
 * Below this many elements a kernel runs on the main thread alone: waking a worker costs tens of
 * µs, and a single query's 16×4096 GELU measured slower split (11.9 vs 9.6 ms per forward).
 */
export const MIN_PARALLEL_ELEMENTS = 131072;
/** Below this many multiply-adds a row's attention runs on the main thread alone (T = 16: 0.5 M, ~0.3 ms). */
export const MIN_PARALLEL_MACS = 1 << 21;
/** A worker that has not answered in this long is taken as gone (a share takes well under a second). */
const WORKER_TIMEOUT_MS = 30_000;

// Control block: Int32 slots (SEQ, DONE, STATUS, OP) for Atomics, Uint32 heap offsets and
// counts (the wasm32 heap reaches 4 GB: offsets do not fit an Int32), eps (attention: the
// scale) as a float64. Attention uses D and the slots from Q on.
const SEQ = 0, DONE = 1, STATUS = 2, OP = 3, X = 4, OUT = 5, N = 6, GAMMA = 7, BETA = 8, D = 9;
const Q = 10, K = 11, V = 12, Z = 13, DH = 14, T = 15, MASK = 16, SCRATCH = 17, H0 = 18, H1 = 19;
const EPS_BYTE = 80, CONTROL_BYTES = 88;
const OP_GELU = 1, OP_LAYER_NORM = 2, OP_ATTENTION = 3;

const WORKER_SOURCE = `
const { workerData } = require('worker_threads');
const ctrl = new Int32Array(workerData.control), u32 = new Uint32Array(workerData.control);
const eps = new Float64Array(workerData.control, ${EPS_BYTE}, 1);
const memory = workerData.memory;
${elementwiseSource()}
const simd = workerData.simd && new WebAssembly.Instance(workerData.simd, { env: { memory } }).exports;
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, ${SEQ}, seen);
  seen = Atomics.load(ctrl, ${SEQ});
  try {
    const heap = memory.buffer, n = u32[${N}];
    const f32 = (offset, length) => new Float32Array(heap, offset, length);
    if (ctrl[${OP}] === ${OP_ATTENTION}) simd.attention(u32[${Q}], u32[${K}], u32[${V}], u32[${Z}], u32[${D}], u32[${DH}], u32[${T}], u32[${H0}], u32[${H1}], u32[${MASK}], eps[0], u32[${SCRATCH}]);
    else if (ctrl[${OP}] === ${OP_GELU}) simd ? simd.gelu(u32[${X}], u32[${OUT}], n) : geluErfInto(f32(u32[${X}], n), f32(u32[${OUT}], n));
    else if (simd) simd.layerNorm(u32[${X}], u32[${GAMMA}], u32[${BETA}], eps[0], u32[${D}], u32[${OUT}], n);
    else layerNormInto(f32(u32[${X}], n), f32(u32[${GAMMA}], u32[${D}]), f32(u32[${BETA}], u32[${D}]), eps[0], u32[${D}], f32(u32[${OUT}], n));
    ctrl[${STATUS}] = 0;
  } catch (e) {
    ctrl[${STATUS}] = 1;
  }
  Atomics.store(ctrl, ${DONE}, seen);
  Atomics.notify(ctrl, ${DONE});
}
`;

interface Helper {
  ctrl: Int32Array;
  u32: Uint32Array;
  eps: Float64Array;
  seq: number;
}

/** A job: the operation and its operands' byte offsets in the heap (run() cuts it in shares). */
interface Job {
  op: typeof OP_GELU | typeof OP_LAYER_NORM | typeof OP_ATTENTION;
  x: number;
  out: number;
  gamma?: number;
  beta?: number;
  D?: number;
  eps?: number;
  /** Attention: one row's q, k, v and z (at its first token), key mask, scale and scratch (scratchBytes per thread). */
  attention?: { q: number; k: number; v: number; z: number; Dh: number; T: number; mask: number; scale: number; scratch: number; scratchBytes: number };
}

/** The SIMD module (./simd.ts) and its instance on the main thread. */
export interface SimdKernels {
  module: WebAssembly.Module;
  main: SimdExports;
}

export class HeapThreads {
  private readonly helpers: Helper[] = [];
  private readonly workers: Worker[] = [];

  /**
   * `extra` workers beside the main thread, on `memory` (a shared WebAssembly.Memory: its
   * `buffer` is replaced when the heap grows); with `simd`, each worker instantiates it too.
   */
  constructor(private readonly memory: WebAssembly.Memory, extra: number, private readonly simd?: SimdKernels) {
    for (let k = 0; k < extra; k++) {
      const control = new SharedArrayBuffer(CONTROL_BYTES);
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { control, memory, simd: simd?.module } });
      worker.unref();
      this.workers.push(worker);
      this.helpers.push({ ctrl: new Int32Array(control), u32: new Uint32Array(control), eps: new Float64Array(control, EPS_BYTE, 1), seq: 0 });
    }
  }

  get threads(): number {
    return this.helpers.length + 1;
  }

  /** Stop the workers; later kernels run on the main thread alone. */
  async terminate(): Promise<void> {
    this.helpers.length = 0;
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }

  /** out = GELU(x) for `n` floats at byte offsets `x`, `out` of the heap. */
  gelu(x: number, out: number, n: number): void {
    this.run({ op: OP_GELU, x, out }, n, 1);
  }

  /** LayerNorm of the `n / D` rows of x (gamma, beta: D floats) into out. */
  layerNorm(x: number, gamma: number, beta: number, eps: number, D: number, out: number, n: number): void {
    this.run({ op: OP_LAYER_NORM, x, out, gamma, beta, D, eps }, n, D);
  }

  /** One row's attention (./simd.ts `attention`), its H heads shared out; thread i uses scratch + i·scratchBytes. Needs the constructor's `simd`. */
  attention(a: NonNullable<Job['attention']>, D: number, H: number): void {
    if (!this.simd) throw new Error('HeapThreads.attention: constructed without the SIMD module');
    this.run({ op: OP_ATTENTION, x: 0, out: 0, D, attention: a }, H, 1);
  }

  /** Split n elements (attention: heads) in shares of whole `unit`s; share 0 runs here, the others on the workers. */
  private run(job: Job, n: number, unit: number): void {
    const units = n / unit, shares = this.threads;
    const bounds = Array.from({ length: shares + 1 }, (_, k) => Math.round((units * k) / shares) * unit);
    const posted: Array<[Helper, number, number]> = [];
    this.helpers.forEach((h, k) => {
      const from = bounds[k + 1], to = bounds[k + 2];
      if (to <= from) return;
      post(h, job, from, to, k + 1);
      h.seq = (h.seq + 1) | 0;
      Atomics.store(h.ctrl, SEQ, h.seq);
      Atomics.notify(h.ctrl, SEQ);
      posted.push([h, from, to]);
    });
    this.compute(job, bounds[0], bounds[1]);
    for (const [h, from, to] of posted) {
      const deadline = performance.now() + WORKER_TIMEOUT_MS;
      while (Atomics.load(h.ctrl, DONE) !== h.seq && performance.now() < deadline) Atomics.wait(h.ctrl, DONE, Atomics.load(h.ctrl, DONE), 100);
      if (Atomics.load(h.ctrl, DONE) !== h.seq) this.helpers.splice(this.helpers.indexOf(h), 1); // gone: not asked again
      if (Atomics.load(h.ctrl, DONE) !== h.seq || h.ctrl[STATUS] !== 0) this.compute(job, from, to); // its share here (its scratch is ours now)
    }
  }

  private compute(job: Job, from: number, to: number): void {
    const heap = this.memory.buffer, n = to - from;
    const f32 = (offset: number, length: number) => new Float32Array(heap, offset, length);
    if (n <= 0) return;
    const a = job.attention;
    if (a) this.simd!.main.attention(a.q, a.k, a.v, a.z, job.D!, a.Dh, a.T, from, to, a.mask, a.scale, a.scratch);
    else if (job.op === OP_GELU && this.simd) this.simd.main.gelu(job.x + 4 * from, job.out + 4 * from, n); // the same bits as geluErfInto
    else if (job.op === OP_GELU) geluErfInto(f32(job.x + 4 * from, n), f32(job.out + 4 * from, n));
    else if (this.simd) this.simd.main.layerNorm(job.x + 4 * from, job.gamma!, job.beta!, job.eps!, job.D!, job.out + 4 * from, n); // the same bits as layerNormInto
    else layerNormInto(f32(job.x + 4 * from, n), f32(job.gamma!, job.D!), f32(job.beta!, job.D!), job.eps!, job.D!, f32(job.out + 4 * from, n));
  }
}

/** Thread `thread`'s share into its control block: elements from..to (attention: heads). */
function post(h: Helper, job: Job, from: number, to: number, thread: number): void {
  h.u32[OP] = job.op;
  h.u32[D] = job.D ?? 0;
  const a = job.attention;
  if (a) {
    h.u32.set([a.q, a.k, a.v, a.z, a.Dh, a.T, a.mask, a.scratch + thread * a.scratchBytes, from, to], Q); // Q, K, V, Z, DH, T, MASK, SCRATCH, H0, H1
    h.eps[0] = a.scale;
    return;
  }
  h.u32[X] = job.x + 4 * from;
  h.u32[OUT] = job.out + 4 * from;
  h.u32[N] = to - from;
  h.u32[GAMMA] = job.gamma ?? 0;
  h.u32[BETA] = job.beta ?? 0;
  h.eps[0] = job.eps ?? 0;
}
