/**
 * TensorFlow ops called by name through tfjs-node 4.22's backend (`executeSingleOutput`), where
 * tfjs's composite costs several: tf.fused.matMul on tfjs-node is a reshape of each operand to
 * 3-D, a BatchMatMul, a reshape back and an Add for the bias — five TensorFlow ops, each a round
 * trip through tfjs's engine and TensorFlow's eager runtime. BatchMatMulV2 on the 2-D operands
 * and BiasAdd are two.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NodeBackend, nodeBackend, OpAttr } from './node-backend';

export interface TfOps {
  /** x·W + b, or x·Wᵀ + b with `transposeB`. [N,in] → [N,out] */
  matMulBias(x: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D, transposeB: boolean): tf.Tensor2D;
}

/** TensorFlow's ops on the current backend, or undefined when it is not tfjs-node's. */
export function tfOps(): TfOps | undefined {
  const b = nodeBackend();
  if (typeof b.executeSingleOutput !== 'function' || !b.binding) return undefined;
  const node = b as NodeBackend;
  const T: OpAttr = { name: 'T', type: node.binding.TF_ATTR_TYPE, value: node.binding.TF_FLOAT };
  const flag = (name: string, value: boolean): OpAttr => ({ name, type: node.binding.TF_ATTR_BOOL, value });
  const plain = [T, flag('adj_x', false), flag('adj_y', false)];
  const transposed = [T, flag('adj_x', false), flag('adj_y', true)];
  const nhwc: OpAttr[] = [T, { name: 'data_format', type: node.binding.TF_ATTR_STRING, value: 'NHWC' }];
  return {
    matMulBias(x, w, bias, transposeB) {
      // BatchMatMulV2 on 2-D operands: MatMul with transpose_b takes a slower oneDNN path for a
      // few rows (16×1024·(4096×1024)ᵀ: 2.6 vs 1.7 ms, memory-bound at ~10 GB/s).
      const product = node.executeSingleOutput('BatchMatMulV2', transposeB ? transposed : plain, [x, w]);
      try {
        return node.executeSingleOutput('BiasAdd', nhwc, [product, bias]) as tf.Tensor2D;
      } finally {
        product.dispose();
      }
    },
  };
}
