#!/usr/bin/python3
"""Write a random-weight BERT folder in Hugging Face layout (config.json + model.safetensors).

    /usr/bin/python3 test/parity/make_random_bert.py --output DIR [--layers 2 --hidden 32 --heads 4
        --intermediate 64 --vocab 100 --max-pos 64 --dtype F32|F16|BF16 --shards 1 --prefix bert.
        --no-pooler --seed 0]

For self-checks of the reference (selfcheck.py). The project's real test models come
from the TypeScript generator; this is the small Python twin used before those exist.
Weights are drawn so attention is far from uniform (std ~ scale / sqrt(fan_in)), then
rounded to the storage dtype; `make()` returns the float32 values the file holds.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402


def config_dict(layers, hidden, heads, intermediate, vocab, max_pos, type_vocab=2, eps=1e-12):
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": eps,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }


def random_state(cfg, pooler, seed, scale=1.5):
    """HF BertModel names -> float32 tensors."""
    g = torch.Generator().manual_seed(seed)
    D, Fd = cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def linear(prefix, n_out, n_in):
        sd[prefix + ".weight"] = normal(n_out, n_in, std=scale / n_in ** 0.5)  # [out, in], as nn.Linear
        sd[prefix + ".bias"] = normal(n_out, std=0.1)

    def layer_norm(prefix):
        sd[prefix + ".weight"] = 1.0 + normal(D, std=0.1)
        sd[prefix + ".bias"] = normal(D, std=0.1)

    sd = {
        "embeddings.word_embeddings.weight": normal(cfg["vocab_size"], D, std=1.0),
        "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], D, std=0.5),
        "embeddings.token_type_embeddings.weight": normal(cfg["type_vocab_size"], D, std=0.5),
    }
    layer_norm("embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            linear(p + "attention.self." + name, D, D)
        linear(p + "attention.output.dense", D, D)
        layer_norm(p + "attention.output.LayerNorm")
        linear(p + "intermediate.dense", Fd, D)
        linear(p + "output.dense", D, Fd)
        layer_norm(p + "output.LayerNorm")
    if pooler:
        linear("pooler.dense", D, D)
    return sd


def round_to(t, dtype):
    """float32 tensor -> (stored ndarray, the float32 values it represents)."""
    if dtype == "F32":
        return t.numpy(), t
    if dtype == "F16":
        h = t.to(torch.float16)
        return h.numpy(), h.to(torch.float32)
    if dtype == "BF16":
        b = t.to(torch.bfloat16)
        return b.view(torch.int16).numpy().view(np.uint16), b.to(torch.float32)
    raise ValueError(f"unknown dtype {dtype!r}")


def write_folder(out_dir, cfg, state, dtype="F32", shards=1, prefix="", position_ids=True):
    """Write config.json and the weights; returns the float32 values actually stored."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    stored, exact = {}, {}
    for k, v in state.items():
        stored[prefix + k], exact[k] = round_to(v, dtype)
    dtypes = {k: dtype for k in stored}
    if position_ids:  # what older HF checkpoints carry; readers must skip it
        stored[prefix + "embeddings.position_ids"] = np.arange(cfg["max_position_embeddings"], dtype=np.int64)[None]
        dtypes[prefix + "embeddings.position_ids"] = "I64"
    names = list(stored)
    if shards == 1:
        save_file(stored, os.path.join(out_dir, "model.safetensors"), {"format": "pt"}, dtypes)
        return exact
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: stored[k] for k in names[s::shards]}
        save_file(part, os.path.join(out_dir, fname), {"format": "pt"}, dtypes)
        weight_map.update({k: fname for k in part})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
    return exact


def make(out_dir, layers=2, hidden=32, heads=4, intermediate=64, vocab=100, max_pos=64, dtype="F32",
         shards=1, prefix="", pooler=True, seed=0):
    """Build and write a random BERT; -> (config dict, float32 state dict as stored)."""
    cfg = config_dict(layers, hidden, heads, intermediate, vocab, max_pos)
    state = random_state(cfg, pooler, seed)
    return cfg, write_folder(out_dir, cfg, state, dtype, shards, prefix)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=100)
    ap.add_argument("--max-pos", type=int, default=64)
    ap.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--prefix", default="", help="key prefix, e.g. 'bert.'")
    ap.add_argument("--no-pooler", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    make(a.output, a.layers, a.hidden, a.heads, a.intermediate, a.vocab, a.max_pos, a.dtype,
         a.shards, a.prefix, not a.no_pooler, a.seed)


if __name__ == "__main__":
    main()
