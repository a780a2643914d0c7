/**
 * Tensor names in dumps: our TransformerLens-style hook names, or (--names hf) Hugging Face's
 * views of them, as `transformers.BertModel(output_hidden_states=True, output_attentions=True)`
 * names its outputs:
 *
 *   hook_full_embed                         ↔ hidden_states.0
 *   blocks.{i}.hook_normalized_resid_post   ↔ hidden_states.{i+1}
 *   blocks.{i}.attn.hook_pattern            ↔ attentions.{i}
 *   (output) last hidden state              ↔ last_hidden_state
 *   (output) BERT pooler                    ↔ pooler_output
 *
 * Every other hook (hook_pooled, hook_embedding, attn.hook_q, ...) keeps its hook name.
 */
import { HookName, parseHookName } from '../index';

export type NameStyle = 'hook' | 'hf';
export type ModelOutput = 'last_hidden_state' | 'pooler_output';

/** What a tensor name refers to: a hook point or one of the model's outputs. */
export type Target = { hook: HookName } | { output: ModelOutput };

export function hfName(hook: HookName): string {
  if (hook === 'hook_full_embed') return 'hidden_states.0';
  const p = parseHookName(hook);
  if (p?.layer !== undefined && p.kind === 'hook_normalized_resid_post') return `hidden_states.${p.layer + 1}`;
  if (p?.layer !== undefined && p.kind === 'attn.hook_pattern') return `attentions.${p.layer}`;
  return hook;
}

/** Resolve a tensor name in either style for a model of `nLayers` layers; undefined if unknown. */
export function resolveName(name: string, nLayers: number): Target | undefined {
  if (name === 'last_hidden_state' || name === 'pooler_output') return { output: name };
  let m = /^hidden_states\.(0|[1-9]\d*)$/.exec(name);
  if (m) {
    const i = Number(m[1]);
    if (i > nLayers) return undefined;
    return { hook: i === 0 ? 'hook_full_embed' : `blocks.${i - 1}.hook_normalized_resid_post` };
  }
  m = /^attentions\.(0|[1-9]\d*)$/.exec(name);
  if (m) return Number(m[1]) < nLayers ? { hook: `blocks.${Number(m[1])}.attn.hook_pattern` } : undefined;
  return parseHookName(name, nLayers) ? { hook: name as HookName } : undefined;
}
