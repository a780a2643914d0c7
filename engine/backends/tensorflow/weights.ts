/**
 * Weights into TensorFlow with one copy and no second resident set. tfjs-node hands TensorFlow a
 * tensor's JavaScript array when an op first uses it, and TensorFlow keeps that array as the
 * tensor's memory when its address is 64-byte aligned, or copies it into memory of its own when
 * not — JavaScript cannot choose which. So each weight is read into one reused scratch array whose
 * data starts 4 bytes into its buffer (never 64-byte aligned: TensorFlow always copies), and the
 * TensorFlow tensor is made at once, while the scratch still holds this weight. The weights then
 * live once, in TensorFlow's memory, and fresh JavaScript pages (a page fault per 4 KiB) are
 * touched only for the largest tensor. Linear weights stay in PyTorch's [out, in] layout (the
 * matmul takes Wᵀ), so nothing is transposed either.
 */
import * as tf from '@tensorflow/tfjs-core';
import { plainWeightSink, WeightSink } from '../../backend';

/** The parts of tfjs-node 4.22's backend used here: it makes the TensorFlow tensor of each input. */
interface NodeBackendLike {
  getInputTensorIds(tensors: tf.Tensor[]): number[];
}

export function tensorflowWeightSink(): WeightSink {
  const backend = tf.backend() as unknown as Partial<NodeBackendLike>;
  if (typeof backend.getInputTensorIds !== 'function') return plainWeightSink();
  let buffer = new ArrayBuffer(0);
  return {
    ...plainWeightSink(),
    linearLayout: 'out-in', // oneDNN multiplies by Wᵀ as fast: no transpose at load
    newTensor(shape, fill) {
      const n = shape.reduce((a, b) => a * b, 1);
      if (buffer.byteLength < 4 + 4 * n) buffer = new ArrayBuffer(4 + 4 * n);
      const scratch = new Float32Array(buffer, 4, n); // 4 bytes in: TensorFlow copies it
      fill(scratch);
      const t = tf.tensor(scratch, shape, 'float32');
      backend.getInputTensorIds!([t]); // the TensorFlow tensor now, from this scratch
      return t;
    },
  };
}
