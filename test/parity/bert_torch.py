"""BERT in plain torch.nn, mirroring Hugging Face `modeling_bert.py` (eager attention, eval mode).

Used by reference.py when `transformers` is not importable. Written from the HF
module structure, not from our TypeScript: module paths equal checkpoint keys
(`encoder.layer.{i}.attention.self.query`), so `load_state_dict(strict=True)` takes
an HF BertModel state dict as is, and the hooks in hooks.py attach to the same
module names in this model and in `transformers.BertModel`.

Semantics copied from HF (transformers 4.x, BertModel):
- embeddings = LayerNorm(word[ids] + token_type[tt] + position[0..T-1]); position ids
  are always 0..T-1, also for left-padded rows (HF's default `position_ids` buffer);
- extended mask = (1 - mask[:, None, None, :]) * finfo(float32).min, added to the scores;
- scores = (q @ k^T) / sqrt(head_dim); pattern = softmax(scores, -1); no dropout (eval);
- post-LN: LayerNorm(dense(z) + x), LayerNorm(dense(gelu(dense(h))) + h), gelu = erf form;
- pooler = tanh(dense(last_hidden[:, 0])).
Dimension letters: B batch, T tokens, D hidden, H heads, Dh = D / H, F intermediate.
"""
import contextlib
import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int  # D
    num_hidden_layers: int  # L
    num_attention_heads: int  # H; head_dim = D / H
    intermediate_size: int  # F
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float  # HF default 1e-12
    hidden_act: str  # only "gelu" (the erf form, HF ACT2FN["gelu"])

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @staticmethod
    def from_json(path):
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        ints = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings"]
        for k in ints:
            if not isinstance(raw.get(k), int) or raw[k] <= 0:
                raise ConfigError(f"{path}: field '{k}' must be a positive integer, got {raw.get(k)!r}")
        act = raw.get("hidden_act", "gelu")
        if act != "gelu":
            raise ConfigError(f"{path}: field 'hidden_act' is {act!r}; only 'gelu' (erf form) is supported")
        pet = raw.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ConfigError(f"{path}: field 'position_embedding_type' is {pet!r}; only 'absolute' is supported")
        if raw["hidden_size"] % raw["num_attention_heads"]:
            raise ConfigError(f"{path}: hidden_size {raw['hidden_size']} is not a multiple of "
                              f"num_attention_heads {raw['num_attention_heads']}")
        return BertConfig(
            **{k: raw[k] for k in ints},
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            hidden_act=act,
        )


@contextlib.contextmanager
def skip_init():
    """Construct nn modules without their random init (5 s for e5-large; every value is loaded after)."""
    classes = (nn.Linear, nn.Embedding, nn.LayerNorm)
    saved = [c.reset_parameters for c in classes]
    try:
        for c in classes:
            c.reset_parameters = lambda self: None
        yield
    finally:
        for c, f in zip(classes, saved):
            c.reset_parameters = f


def extended_attention_mask(attention_mask):
    """[B,T] of 0/1 -> additive [B,1,1,T]: 0 where attended, float32 minimum where masked (HF)."""
    m = attention_mask[:, None, None, :].to(torch.float32)
    return (1.0 - m) * torch.finfo(torch.float32).min


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids, token_type_ids):
        T = input_ids.shape[1]
        position_ids = torch.arange(T, device=input_ids.device)[None, :]  # [1,T], as HF's buffer
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # [B,T,D]
        x = x + self.position_embeddings(position_ids)  # [1,T,D] broadcast
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.head_dim = c.num_attention_heads, c.head_dim
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        # Identity hook points (TransformerLens style) for what HF computes inline.
        self.hook_attn_scores = nn.Identity()
        self.hook_pattern = nn.Identity()

    def heads(self, x):  # [B,T,D] -> [B,H,T,Dh]
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.head_dim).transpose(1, 2)

    def forward(self, x, ext_mask):
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B,H,T,T]
        scores = self.hook_attn_scores(scores + ext_mask)
        pattern = self.hook_pattern(F.softmax(scores, dim=-1))  # [B,H,T,T]
        z = pattern @ v  # [B,H,T,Dh]
        B, H, T, Dh = z.shape
        return z.transpose(1, 2).reshape(B, T, H * Dh), pattern  # [B,T,D]


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, z, x):
        return self.LayerNorm(self.dense(z) + x)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, ext_mask):
        z, pattern = self.self(x, ext_mask)
        return self.output(z, x), pattern


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf GELU, HF ACT2FN["gelu"]


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, ext_mask):
        a, pattern = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a), pattern


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, last_hidden):
        return torch.tanh(self.dense(last_hidden[:, 0]))  # [CLS] position, even when it is padding


class BertModel(nn.Module):
    """forward(...) -> (last_hidden_state, pooler_output | None); per-layer outputs go to hooks.

    Unlike HF it does not return hidden_states/attentions tuples: holding every
    attention tensor of e5-large at 8x512 would take 3 GB. reference.py reads
    them from module hooks and streams them to disk instead.
    """

    def __init__(self, c, add_pooling_layer):
        super().__init__()
        self.config = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask, token_type_ids):
        ext_mask = extended_attention_mask(attention_mask)  # [B,1,1,T]
        x = self.embeddings(input_ids, token_type_ids)  # [B,T,D] = hidden_states[0]
        for layer in self.encoder.layer:
            x, _ = layer(x, ext_mask)  # hidden_states[i+1]
        return x, (self.pooler(x) if self.pooler is not None else None)
