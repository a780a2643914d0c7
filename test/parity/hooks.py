"""TransformerLens-style hook names on Hugging Face BERT modules, captured with torch module hooks.

The same registration works for `transformers.BertModel` and for bert_torch.BertModel,
because both have HF's module paths (`encoder.layer.{i}.attention.output.dense`).
Where a hook point has no module boundary in HF (scores and pattern are computed inline
in BertSelfAttention), bert_torch has identity modules; for transformers the pattern
comes from `outputs.attentions` and the scores are recomputed from the captured q and k
(see reference.py).

Capture order follows the data flow: a pre-hook that replaces its input (head ablation)
is registered before the capturing pre-hook, so `attn.hook_z` records the value that
flows on, as a TransformerLens cache does when a hook returns a replacement.
"""
import math

import torch

DEFAULT_HOOKS = "default"
ALL_HOOKS = "all"

EMBED_HOOKS = ["embed.hook_embed", "embed.hook_pos_embed", "embed.hook_token_type_embed"]
# Per-layer hooks in forward order; shape kind: D = [B,T,D], F = [B,T,F], HD = [B,T,H,Dh], TT = [B,H,T,T].
LAYER_HOOKS = [
    ("hook_resid_pre", "D"),
    ("attn.hook_q", "HD"),
    ("attn.hook_k", "HD"),
    ("attn.hook_v", "HD"),
    ("attn.hook_attn_scores", "TT"),
    ("attn.hook_pattern", "TT"),
    ("attn.hook_z", "HD"),
    ("hook_attn_out", "D"),
    ("hook_resid_mid", "D"),
    ("ln1.hook_normalized", "D"),
    ("mlp.hook_pre", "F"),
    ("mlp.hook_post", "F"),
    ("hook_mlp_out", "D"),
    ("hook_resid_post", "D"),
    ("hook_normalized_resid_post", "D"),
]
DEFAULT_LAYER_HOOKS = {"attn.hook_pattern", "hook_normalized_resid_post"}


def hook_specs(c, B, T, hooks, has_pooler):
    """[(name, shape)] of every tensor the output file will hold, in forward order."""
    D, H, Dh, Fd = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
    shapes = {"D": [B, T, D], "F": [B, T, Fd], "HD": [B, T, H, Dh], "TT": [B, H, T, T]}
    specs = [(n, [B, T, D]) for n in EMBED_HOOKS] if hooks == ALL_HOOKS else []
    specs.append(("hook_full_embed", [B, T, D]))
    for i in range(c.num_hidden_layers):
        for name, kind in LAYER_HOOKS:
            if hooks == ALL_HOOKS or name in DEFAULT_LAYER_HOOKS:
                specs.append((f"blocks.{i}.{name}", shapes[kind]))
    specs += [("hook_pooled", [B, D]), ("hook_embedding", [B, D])]
    if has_pooler:
        specs.append(("pooler_output", [B, D]))
    return specs


def parse_ablate(text, c):
    """'3.5,0.1' -> [(3, 5), (0, 1)], checked against the config."""
    if not text:
        return []
    heads = []
    for item in text.split(","):
        try:
            layer, head = (int(p) for p in item.strip().split("."))
        except ValueError:
            raise ValueError(f"--ablate: {item!r} is not LAYER.HEAD (e.g. 3.5)") from None
        if not (0 <= layer < c.num_hidden_layers and 0 <= head < c.num_attention_heads):
            raise ValueError(f"--ablate: {item!r} out of range (layers 0..{c.num_hidden_layers - 1}, "
                             f"heads 0..{c.num_attention_heads - 1})")
        heads.append((layer, head))
    return heads


def register_ablation(model, c, heads):
    """Zero-ablate heads at hook_z: zero their slice of the output dense's input [B,T,H*Dh]."""
    by_layer = {}
    for layer, head in heads:
        by_layer.setdefault(layer, set()).add(head)
    handles = []
    for layer, hs in sorted(by_layer.items()):
        cols = torch.zeros(c.hidden_size, dtype=torch.bool)
        for h in hs:
            cols[h * c.head_dim:(h + 1) * c.head_dim] = True

        def pre_hook(module, args, cols=cols):
            z = args[0].masked_fill(cols, 0.0)  # new tensor; the context itself is left untouched
            return (z,) + tuple(args[1:])

        dense = model.encoder.layer[layer].attention.output.dense
        handles.append(dense.register_forward_pre_hook(pre_hook))
    return handles


def attn_scores_from_qk(q, k, ext_mask):
    """HF eager scores for transformers' BertSelfAttention, which has no module boundary there.

    q, k: [B,T,H,Dh] as captured; ext_mask: [B,1,1,T] additive. Same expression as HF.
    """
    q, k = q.transpose(1, 2), k.transpose(1, 2)  # [B,H,T,Dh]
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + ext_mask


def register_capture(model, c, hooks, emit, inline_modules):
    """Register hooks that call emit(name, tensor) as activations appear; return the handles.

    inline_modules: True for bert_torch (has hook_attn_scores/hook_pattern identity modules);
    False for transformers, where the caller emits pattern and scores itself; the q and k
    captured here are then passed through `emit` too (the caller keeps what it needs).
    """
    H, Dh = c.num_attention_heads, c.head_dim
    everything = hooks == ALL_HOOKS
    handles = []

    def out(module, name, fn=lambda t: t):
        def hook(mod, args, output):
            emit(name, fn(output[0] if isinstance(output, tuple) else output))
        handles.append(module.register_forward_hook(hook))

    def inp(module, name, fn=lambda t: t):
        def hook(mod, args):
            emit(name, fn(args[0]))
        handles.append(module.register_forward_pre_hook(hook))

    def heads(t):  # [B,T,D] -> [B,T,H,Dh]
        return t.view(t.shape[0], t.shape[1], H, Dh)

    emb = model.embeddings
    if everything:
        out(emb.word_embeddings, "embed.hook_embed")
        # HF looks positions up as [1,T]; our dump is batch first like every other hook.
        B_of = {}
        handles.append(emb.word_embeddings.register_forward_hook(lambda m, a, o: B_of.update(B=o.shape[0])))
        out(emb.position_embeddings, "embed.hook_pos_embed", lambda t: t.expand(B_of["B"], -1, -1))
        out(emb.token_type_embeddings, "embed.hook_token_type_embed")
    out(emb, "hook_full_embed")
    for i, layer in enumerate(model.encoder.layer):
        p = f"blocks.{i}."
        out(layer, p + "hook_normalized_resid_post")  # layer output[0] = output.LayerNorm output
        if everything:
            # resid_pre of layer i is the previous output (the input of BertLayer)
            out(emb if i == 0 else model.encoder.layer[i - 1], p + "hook_resid_pre")
            att = layer.attention
            out(att.self.query, p + "attn.hook_q", heads)
            out(att.self.key, p + "attn.hook_k", heads)
            out(att.self.value, p + "attn.hook_v", heads)
            inp(att.output.dense, p + "attn.hook_z", heads)
            out(att.output.dense, p + "hook_attn_out")
            inp(att.output.LayerNorm, p + "hook_resid_mid")
            out(att.output.LayerNorm, p + "ln1.hook_normalized")
            out(layer.intermediate.dense, p + "mlp.hook_pre")
            out(layer.intermediate, p + "mlp.hook_post")
            out(layer.output.dense, p + "hook_mlp_out")
            inp(layer.output.LayerNorm, p + "hook_resid_post")
        if inline_modules:
            out(layer.attention.self.hook_pattern, p + "attn.hook_pattern")
            if everything:
                out(layer.attention.self.hook_attn_scores, p + "attn.hook_attn_scores")
    return handles
