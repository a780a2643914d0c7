/** E5GeluErf and E5LayerNorm on tfjs-backend-cpu: ../elementwise.ts over the backend's arrays. */
import * as tf from '@tensorflow/tfjs-core';
import { geluErfInto, layerNormInto } from '../elementwise';
import { GELU_ERF_KERNEL, LAYER_NORM_KERNEL } from '../kernel-ops';

interface CpuBackendLike {
  readSync(dataId: unknown): Float32Array;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown };

function layerNormKernel({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const eps = (attrs as unknown as { eps: number }).eps;
  const b = backend as CpuBackendLike;
  const out = new Float32Array(tf.util.sizeFromShape(x.shape));
  layerNormInto(b.readSync(x.dataId), b.readSync(gamma.dataId), b.readSync(beta.dataId), eps, x.shape[x.shape.length - 1], out);
  return b.makeTensorInfo(x.shape, 'float32', out);
}

function geluKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  const b = backend as CpuBackendLike;
  const out = new Float32Array(tf.util.sizeFromShape(x.shape));
  geluErfInto(b.readSync(x.dataId), out);
  return b.makeTensorInfo(x.shape, 'float32', out);
}

/** Add E5GeluErf and E5LayerNorm to the cpu backend (idempotent). */
export function registerCpuKernels(): void {
  if (tf.getKernel(GELU_ERF_KERNEL, 'cpu')) return;
  tf.registerKernel({ kernelName: GELU_ERF_KERNEL, backendName: 'cpu', kernelFunc: geluKernel as unknown as tf.KernelFunc });
  tf.registerKernel({ kernelName: LAYER_NORM_KERNEL, backendName: 'cpu', kernelFunc: layerNormKernel as unknown as tf.KernelFunc });
}
