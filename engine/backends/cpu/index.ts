/**
 * The cpu backend (tfjs-backend-cpu, plain JavaScript, one thread): a correctness fallback.
 * The generic tfjs-ops set, with GELU and LayerNorm as one kernel each (its own Erf is a 1.5e-7
 * approximation; ours is exact to float32).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendPlugin, genericRuntime, setTfBackend } from '../../runtime';
import { genericOps } from '../generic/ops';
import { geluErf, layerNorm } from '../kernel-ops';
import { registerCpuKernels } from './kernels';

export const plugin: BackendPlugin = {
  name: 'cpu',
  async init() {
    require('@tensorflow/tfjs-backend-cpu');
    await setTfBackend('cpu');
    registerCpuKernels();
    return genericRuntime({ name: 'cpu', threads: 1, tfjsVersion: tf.version_core }, { ...genericOps, gelu: geluErf, layerNorm });
  },
};
