/**
 * Precision 'bf16' op by op, for the forwards the compiled graph cannot run (a hook function that
 * reads or replaces an activation, `compiled: false`). tfjs has no bfloat16 dtype, and a TensorFlow
 * op whose output is bfloat16 cannot come back to tfjs, so bf16 is carried in float32 tensors that
 * hold bf16 values exactly: the packed weights are unpacked to their float32 values, and each value
 * the graph (./graph/ops.ts) holds in bf16 is rounded to bf16 where the graph rounds it. A float32
 * GEMM of two such operands accumulates their exact products in float32, as oneDNN's bf16 GEMM
 * does, so op by op and the graph differ by summation order, not by method.
 *
 * Both kernels are TensorFlow's integer ops called by name (Bitcast, shifts, masks); the rounding is
 * Cast's: to nearest, ties to even, NaN kept.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Bf16Kernels } from '../../ops';
import { NodeBackend, nodeBackend, OpAttr } from './node-backend';

/** The kernels on tfjs-node's backend, or undefined on any other. */
export function bf16Kernels(): Bf16Kernels | undefined {
  const b = nodeBackend();
  if (typeof b.executeSingleOutput !== 'function' || !b.binding) return undefined;
  const node = b as NodeBackend;
  const { TF_ATTR_TYPE, TF_FLOAT, TF_INT32 } = node.binding;
  const T = (t: number): OpAttr => ({ name: 'T', type: TF_ATTR_TYPE, value: t });
  const run = (op: string, attrs: OpAttr[], inputs: tf.Tensor[]) => node.executeSingleOutput(op, attrs, inputs);
  const int = (op: string, a: tf.Tensor, b: number) => run(op, [T(TF_INT32)], [a, tf.scalar(b, 'int32')]);
  const bitcast = (x: tf.Tensor, from: number, to: number) => run('Bitcast', [T(from), { name: 'type', type: TF_ATTR_TYPE, value: to }], [x]);
  const HIGH = -65536; // 0xffff0000: a float32's bf16 bits
  return {
    round: <R extends tf.Tensor>(x: R): R =>
      tf.tidy(() => {
        const bits = bitcast(x, TF_FLOAT, TF_INT32);
        const odd = int('BitwiseAnd', int('RightShift', bits, 16), 1); // ties go to the even neighbour
        const rounded = int('BitwiseAnd', run('AddV2', [T(TF_INT32)], [int('AddV2', bits, 0x7fff), odd]), HIGH);
        // A NaN's payload can carry into the exponent (→ Inf): NaN stays NaN, as in Cast.
        return tf.where(tf.isNaN(x), x, bitcast(rounded, TF_INT32, TF_FLOAT)) as R;
      }),
    unpack: (packed) =>
      tf.tidy(() => {
        const [rows, half] = packed.shape;
        const even = bitcast(int('LeftShift', packed, 16), TF_INT32, TF_FLOAT); // elements 2i
        const odd = bitcast(int('BitwiseAnd', packed, HIGH), TF_INT32, TF_FLOAT); // elements 2i + 1
        return tf.reshape(tf.stack([even, odd], 2), [rows, 2 * half]) as tf.Tensor2D;
      }),
  };
}
