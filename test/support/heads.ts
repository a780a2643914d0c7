/** Test helpers for head interventions. */
import * as tf from '@tensorflow/tfjs-core';
import type { HookName } from '../../engine/hooks';

/** zero-ablate heads "L.H,…" at attn.hook_z [B,T,H,Dh], the same place reference.py --ablate does. */
export function zeroHeads(spec: string): Array<[HookName, (z: tf.Tensor) => tf.Tensor]> {
  return spec.split(',').map((lh) => {
    const [layer, head] = lh.split('.').map(Number);
    return [`blocks.${layer}.attn.hook_z` as HookName, (z: tf.Tensor) => {
      const H = z.shape[2]!;
      const keep = tf.reshape(tf.tensor1d(Array.from({ length: H }, (_, h) => (h === head ? 0 : 1))), [1, 1, H, 1]);
      return tf.mul(z, keep);
    }];
  });
}
