/**
 * The engine's numerics revision: bumped by any change that moves outputs (a kernel, an order of
 * operations), so stores of computed outputs — the eval corpus cache — can tell them apart.
 *   1: composed tfjs ops throughout (to the commit "Review mends: one CLI test environment ...").
 *   2: one-kernel GELU (rational erf) and LayerNorm (float64 statistics), batched attention under
 *      32 tokens on wasm.
 *   3: attention in our wasm SIMD module (its softmax's exp is Cephes' expf), LayerNorm sums as
 *      four interleaved partial sums.
 */
export const NUMERICS_REVISION = 3;

/** HF's additive mask value: torch.finfo(float32).min. */
export const MASK_VALUE = -3.4028234663852886e38;
