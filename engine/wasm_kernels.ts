/**
 * Kernel replacements for tfjs-backend-wasm 4.22 where the stock kernel does avoidable work.
 *
 * Slice: the stock kernel calls `backend.readSync(x)`, which copies the WHOLE input out of the
 * wasm heap before copying the slice back in. Attention takes one [T, Dh] slice per row and
 * head from a [H, N, Dh] tensor, so every slice cost a full copy of that tensor (~700 ms per
 * e5-large layer in shared/TFJS-WASM-NOTES.md). This version reads the input through a view of
 * the heap and copies only the slice. Unpack (tf.unstack) is re-registered on top of it.
 *
 * Both are registered only for the 'wasm' backend; results are bit-identical (pure copies),
 * which test/backend.test.ts checks against the cpu backend's kernels.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

type Views = Float32Array | Int32Array | Uint8Array;

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

function sliceKernel({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
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

function unpackKernel({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo[] {
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

let registered = false;

/** Replace the wasm Slice and Unpack kernels (idempotent). */
export function registerWasmKernels(): void {
  if (registered) return;
  for (const kernelName of ['Slice', 'Unpack']) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
  }
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', kernelFunc: sliceKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: 'Unpack', backendName: 'wasm', kernelFunc: unpackKernel as unknown as tf.KernelFunc });
  registered = true;
}
