/**
 * The documented tolerances (README, "Parity"), the only ones a numerical test may assert: what
 * every machine of our kind is promised, not what one CPU happened to give. oneDNN picks its
 * kernels per CPU (and per ISA: `make test` runs the tensorflow suites again with
 * ONEDNN_MAX_CPU_ISA=AVX2), so the last bits of a float32 result move between machines of the
 * same kind; these bounds hold on all of them.
 *
 * Where a test asserts bit-identity instead, it compares two runs of the same operations on the
 * same inputs in one process (same kernels, same shapes, same threads), and says so.
 */
import { parseHookName } from '../../engine/hooks';

export const TOLERANCE = {
  /** Hidden states and every other activation inside the encoder (abs). */
  hidden: 1e-4,
  /** Attention patterns (post-softmax probabilities, abs). */
  attention: 1e-5,
  /** Normalised embeddings (abs, per component). */
  embedding: 1e-5,
  /** Similarity scores ×100 (the model card's scale, abs). */
  scoreX100: 1e-3,
  /** precision 'bf16': cosine of a bf16 embedding to the same model's fp32 one (at least). */
  bf16Cosine: 0.9995,
} as const;

/** The tolerance of a dumped tensor, by its hook name (or HF output name). */
export function toleranceFor(name: string): number {
  if (name === 'hook_embedding') return TOLERANCE.embedding;
  if (parseHookName(name)?.kind === 'attn.hook_pattern') return TOLERANCE.attention;
  return TOLERANCE.hidden;
}
