/**
 * weights/params.ts: the load-time transpose of nn.Linear weights ([out, in] → [in, out]).
 * Expectation: the definition dst[c][r] = src[r][c], element by element, on shapes that do and
 * do not fill whole blocks, and tfjs's own transpose of the same matrix.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { transposeF32 } from '../../weights/params';
import { testBackend } from '../support/backend';
import { mulberry32 } from '../../devtools/rng';

describe('transposeF32', () => {
  before(async () => {
    await testBackend();
  });

  const shapes: Array<[number, number]> = [[1, 1], [1, 7], [7, 1], [31, 33], [32, 32], [33, 65], [64, 96], [100, 37]];
  for (const [rows, cols] of shapes) {
    it(`[${rows}, ${cols}] matches dst[c][r] = src[r][c] and tf.transpose`, () => {
      const rand = mulberry32(rows * 1000 + cols);
      const src = Float32Array.from({ length: rows * cols }, () => rand() * 2 - 1);
      const dst = transposeF32(src, rows, cols);
      assert.equal(dst.length, src.length);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          if (dst[c * rows + r] !== src[r * cols + c]) assert.fail(`element [${r}, ${c}] landed wrong`);
        }
      }
      const viaTf = tf.tidy(() => tf.transpose(tf.tensor2d(src, [rows, cols])).dataSync());
      assert.deepEqual(Array.from(dst), Array.from(viaTf));
    });
  }

  it('refuses a length that is not rows x cols', () => {
    assert.throws(() => transposeF32(new Float32Array(6), 4, 2), /6 elements is not 4 x 2/);
  });
});
