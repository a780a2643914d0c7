/**
 * Weights into TensorFlow with one copy: the read from the file. tfjs-node hands TensorFlow a
 * tensor's JavaScript array when an op first uses it, and TensorFlow keeps that array as the
 * tensor's memory when its address is 64-byte aligned, or copies it into memory of its own when
 * not. JavaScript cannot ask for aligned memory, so:
 *
 * - with `make native`'s addon (e5-tfjs-posix, scripts/posix-addon), weights are read straight
 *   into page-aligned arenas, each tensor at a 64-byte boundary, and TensorFlow uses them where
 *   they are: no second copy, no second set of fresh pages to fault in, and the addon faults the
 *   arena's pages in on another thread while the reads fill them;
 * - without it, each weight is read into one reused scratch array whose data starts 4 bytes into
 *   its buffer (never aligned: TensorFlow always copies) and the TensorFlow tensor is made at
 *   once, while the scratch still holds this weight. The weights then live once, in TensorFlow's
 *   memory, and fresh JavaScript pages are touched only for the largest tensor.
 *
 * With the addon, F32 tensors are also read on two threads, each checking its half for NaN/Inf
 * natively while it is in cache (posix.c readF32), instead of one read and a JavaScript pass.
 *
 * Precision 'bf16': each encoder Linear weight and the word table is read as float32 into its slot
 * and rounded there, in place (to nearest even), into bfloat16 pairs, an int32 tensor TensorFlow's
 * graph unpacks (weights/params.ts Linear.bf16); the slot keeps that half and the next weight is
 * read over the rest (with background reads the addon rounds each piece on its way instead). The
 * arena is sized for what is kept (e5-large: 1.34 GB → ~0.67 GB).
 *
 * Linear weights stay in PyTorch's [out, in] layout (the matmul takes Wᵀ), so nothing is
 * transposed either.
 *
 * With an addon that has readInBackground, the F32 tensors' bytes (bf16: rounded on the way) are
 * read after the load returns, by two native threads, behind a barrier on the backend
 * (./background.ts): the tensors are made over their slots at once, which TensorFlow keeps
 * without reading them — checked once a process (tensorflowKeepsSlots), since on a TensorFlow
 * that copied them the copy would hold zeros.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { plainWeightSink, WeightSink } from '../../runtime';
import { nodeBackend } from './node-backend';
import { PosixAddon, posixAddon } from './posix';
import type { BertConfig } from '../../../weights/config';
import { linearParameterCount, ParamsPlan } from '../../../weights/params';
import type { Precision } from '../../runtime';
import { f32ToBF16Bits } from '../../../weights/safetensors';
import { backgroundReads, guardBackend, unguardedMethods } from './background';

const ALIGN = 64;

/**
 * `aligned: false` takes the scratch route even where the addon is installed (for tests);
 * `background: false` reads into the arena before the load returns, as builds of the addon
 * without readInBackground do.
 */
export function tensorflowWeightSink(plan?: ParamsPlan, opts: { aligned?: boolean; precision?: Precision; config?: BertConfig; background?: boolean } = {}): WeightSink {
  const backend = nodeBackend();
  if (typeof backend.getInputTensorIds !== 'function') return plainWeightSink();
  const addon = opts.aligned === false ? undefined : posixAddon();
  const later = addon?.readInBackground && opts.background !== false;
  // A load makes weight tensors while another model's reads may be pending (and failed): past the
  // barrier, which reads nothing of the new tensors.
  if (later) guardBackend(backend);
  const adopt = (t: tf.Tensor) => void unguardedMethods(backend).getInputTensorIds!.call(backend, [t]);
  const bf16 = opts.precision === 'bf16';
  if (bf16) {
    const why = bf16Unsupported();
    if (why) throw new Error(`precision 'bf16' cannot run here: ${why} (use precision 'fp32')`);
  }
  // bf16: the encoder's Linear weights and the word table take 2 bytes an element (the pooler's stays float32).
  const halved = bf16 && opts.config ? linearParameterCount(opts.config, false, 'weights') + opts.config.vocabSize * opts.config.hiddenSize : 0;
  // (+ room to read the last packed weight as float32 before it is rounded in place: 2 bytes an element)
  const largestPacked = bf16 && opts.config ? opts.config.intermediateSize * opts.config.hiddenSize : 0;
  const slot = addon ? arenaSlots(addon, plan && 4 * plan.parameterCount - 2 * halved + 2 * largestPacked) : scratchSlot();
  const deferred = later && tensorflowKeepsSlots(addon!, backend, adopt) ? backgroundReads(addon!, slot, adopt) : undefined;
  const packLinear = ([out, inp]: [number, number], fill: (dst: Float32Array) => void): tf.Tensor2D => {
    if (inp % 2) throw new Error(`bf16 weights need an even input size, got [${out}, ${inp}]`);
    // Read as float32 into room for it, then rounded in place: element i's bf16 (bytes 2i, 2i+1)
    // lands where elements up to i, already read, were; the slot keeps the bf16 half and the next
    // weight is read over the rest. No float32 scratch (the word table's would be 125 MB).
    const values = slot(out * inp, (out * inp) / 2);
    fill(values);
    f32ToBF16Bits(values, new Uint16Array(values.buffer, values.byteOffset, out * inp)); // round to nearest even
    const t = tf.tensor2d(new Int32Array(values.buffer, values.byteOffset, (out * inp) / 2), [out, inp / 2], 'int32');
    adopt(t);
    return t;
  };
  return {
    ...(bf16 ? { packLinear } : {}),
    ...plainWeightSink(),
    linearLayout: 'out-in', // oneDNN multiplies by Wᵀ as fast: no transpose at load
    nativeRead: addon?.readF32 ? addon.readF32.bind(addon) : undefined,
    deferred,
    newTensor(shape, fill) {
      const dst = slot(shape.reduce((a, b) => a * b, 1));
      fill(dst);
      const t = tf.tensor(dst, shape, 'float32');
      adopt(t); // the TensorFlow tensor now, from this memory
      return t;
    },
  };
}

/**
 * Float32 slots at 64-byte boundaries in page-aligned arenas: the first sized for every parameter
 * of the plan (plus alignment slack), more only if a model needs them. A slot of n floats of which
 * the caller keeps the first `keep` leaves the rest to the next slot.
 */
function arenaSlots(addon: PosixAddon, plannedBytes: number | undefined): (n: number, keep?: number) => Float32Array {
  let arena = new ArrayBuffer(0);
  let used = 0;
  let first = true;
  return (n, keep = n) => {
    const bytes = Math.ceil((4 * n) / ALIGN) * ALIGN;
    if (used + bytes > arena.byteLength) {
      const planned = first && plannedBytes ? plannedBytes + ALIGN * 1024 : 0;
      arena = addon.pageAlignedBuffer(Math.max(bytes, planned, 64 << 20));
      used = 0;
      first = false;
    }
    const slot = new Float32Array(arena, used, n);
    used += Math.ceil((4 * keep) / ALIGN) * ALIGN;
    return slot;
  };
}

let keepsSlots: boolean | undefined;

/**
 * Whether TensorFlow keeps a slot as the tensor's memory rather than copying it when the tensor is
 * made (the background reads rely on it: a copy made before the bytes arrive would hold zeros).
 * One 64-byte-aligned slot, the weakest alignment the arena gives, written after its TensorFlow
 * tensor was made and read back through TensorFlow; once a process.
 */
function tensorflowKeepsSlots(addon: PosixAddon, backend: ReturnType<typeof nodeBackend>, adopt: (t: tf.Tensor) => void): boolean {
  if (keepsSlots !== undefined) return keepsSlots;
  const slot = new Float32Array(addon.pageAlignedBuffer(4096), ALIGN, 4);
  const t = tf.tensor(slot, [4], 'float32');
  try {
    adopt(t);
    slot[0] = 1;
    const readSync = unguardedMethods(backend).readSync!;
    keepsSlots = (readSync.call(backend, t.dataId) as Float32Array)[0] === 1;
  } finally {
    t.dispose();
  }
  return keepsSlots;
}

/** One reused array, 4 bytes into its buffer: TensorFlow copies it. */
function scratchSlot(): (n: number, keep?: number) => Float32Array {
  let buffer = new ArrayBuffer(0);
  return (n) => {
    if (buffer.byteLength < 4 + 4 * n) buffer = new ArrayBuffer(4 + 4 * n);
    return new Float32Array(buffer, 4, n);
  };
}


/**
 * Why this machine cannot run TensorFlow's bf16 matmuls, or undefined when it can. oneDNN has no bf16
 * matmul below AVX512_CORE_BF16: asked for one it aborts the whole process (dnnl::error, measured with
 * ONEDNN_MAX_CPU_ISA=AVX2), so the load refuses first. Linux only (the CPU flags of /proc/cpuinfo).
 */
export function bf16Unsupported(cpuinfo: string | null = readCpuinfo(), maxIsa = process.env.ONEDNN_MAX_CPU_ISA): string | undefined {
  if (cpuinfo === null) return 'the CPU flags cannot be read (/proc/cpuinfo), and oneDNN aborts the process on a CPU without bf16 instructions';
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  if (!flags.has('avx512_bf16') && !flags.has('amx_bf16')) return 'this CPU has no AVX512_BF16 or AMX-BF16 instructions';
  // ONEDNN_MAX_CPU_ISA caps oneDNN below what the CPU has: the ISAs without bf16 matmuls.
  if (maxIsa && /^(SSE41|AVX|AVX2|AVX2_VNNI|AVX2_VNNI_2|AVX512_CORE|AVX512_CORE_VNNI)$/i.test(maxIsa.trim())) {
    return `ONEDNN_MAX_CPU_ISA=${maxIsa} keeps oneDNN below AVX512_CORE_BF16`;
  }
  return undefined;
}

function readCpuinfo(): string | null {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
}
