#!/usr/bin/python3
"""Self-check of reference.py against an independent float64 numpy BERT.

    /usr/bin/python3 test/parity/selfcheck.py [--keep DIR]

Builds tiny random BERT folders (F32/F16/BF16, sharded, 'bert.' prefix, with and
without pooler), runs the reference CLI (plain torch) on right-padded, left-padded
and pair inputs, with and without head ablation, and compares every dumped tensor
with a numpy float64 implementation written from the equations (einsum, no torch,
no shared code with bert_torch.py). Exits non-zero on any mismatch.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_random_bert  # noqa: E402
from safetensors_io import SafetensorsError, SafetensorsFile, load_file  # noqa: E402

F32_MIN = float(np.finfo(np.float32).min)
ATOL, RTOL = 2e-5, 1e-5


# ---------------------------------------------------------------- float64 reference

def ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def numpy_bert(cfg, W, ids, mask, tt, ablate=()):
    """Every hook of our naming, computed in float64 from the equations."""
    W = {k: v.numpy().astype(np.float64) for k, v in W.items()}
    eps, H = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    B, T = ids.shape
    D = cfg["hidden_size"]
    Dh = D // H
    lin = lambda x, p: np.einsum("btd,od->bto", x, W[p + ".weight"]) + W[p + ".bias"]  # noqa: E731
    out = {
        "embed.hook_embed": W["embeddings.word_embeddings.weight"][ids],
        "embed.hook_pos_embed": np.broadcast_to(W["embeddings.position_embeddings.weight"][:T], (B, T, D)),
        "embed.hook_token_type_embed": W["embeddings.token_type_embeddings.weight"][tt],
    }
    x = ln(out["embed.hook_embed"] + out["embed.hook_pos_embed"] + out["embed.hook_token_type_embed"],
           W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    out["hook_full_embed"] = x
    additive = np.where(mask[:, None, None, :] == 1, 0.0, F32_MIN)  # [B,1,1,T]
    for i in range(cfg["num_hidden_layers"]):
        p, n = f"encoder.layer.{i}.", f"blocks.{i}."
        out[n + "hook_resid_pre"] = x
        q, k, v = (lin(x, p + "attention.self." + s).reshape(B, T, H, Dh) for s in ("query", "key", "value"))
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(Dh) + additive
        e = np.exp(scores - scores.max(-1, keepdims=True))
        pattern = e / e.sum(-1, keepdims=True)
        z = np.einsum("bhqk,bkhd->bqhd", pattern, v)
        for layer, head in ablate:
            if layer == i:
                z[:, :, head, :] = 0.0
        attn_out = lin(z.reshape(B, T, D), p + "attention.output.dense")
        resid_mid = attn_out + x
        ln1 = ln(resid_mid, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        pre = lin(ln1, p + "intermediate.dense")
        post = gelu(pre)
        mlp_out = lin(post, p + "output.dense")
        resid_post = mlp_out + ln1
        x = ln(resid_post, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
        out.update({n + "attn.hook_q": q, n + "attn.hook_k": k, n + "attn.hook_v": v,
                    n + "attn.hook_attn_scores": scores, n + "attn.hook_pattern": pattern,
                    n + "attn.hook_z": z, n + "hook_attn_out": attn_out, n + "hook_resid_mid": resid_mid,
                    n + "ln1.hook_normalized": ln1, n + "mlp.hook_pre": pre, n + "mlp.hook_post": post,
                    n + "hook_mlp_out": mlp_out, n + "hook_resid_post": resid_post,
                    n + "hook_normalized_resid_post": x})
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    out["hook_pooled"] = pooled
    out["hook_embedding"] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    if "pooler.dense.weight" in W:
        out["pooler_output"] = np.tanh(x[:, 0] @ W["pooler.dense.weight"].T + W["pooler.dense.bias"])
    return out


# ---------------------------------------------------------------- checks

class Failures(list):
    def check(self, cond, msg):
        if not cond:
            self.append(msg)
            print("  FAIL", msg)


def compare(got, want, label, fails):
    """Every tensor of `want` present in `got` within ATOL + RTOL*|want|; prints the worst."""
    worst = (0.0, "")
    for name, w in want.items():
        if name not in got:
            fails.check(False, f"{label}: {name} missing from the dump")
            continue
        g = got[name]
        if g.shape != w.shape:
            fails.check(False, f"{label}: {name} shape {g.shape}, expected {w.shape}")
            continue
        excess = np.abs(g - w) - (ATOL + RTOL * np.abs(w))
        if (excess > 0).any() or not np.isfinite(g).all():
            idx = np.unravel_index(np.argmax(excess), excess.shape)
            fails.check(False, f"{label}: {name} at {idx}: got {g[idx]!r}, expected {w[idx]!r}")
        finite = np.abs(w) < 1e30  # masked scores hold the float32 minimum; compare them relatively
        d = float(np.abs(g - w)[finite].max()) if finite.any() else 0.0
        if d > worst[0]:
            worst = (d, name)
    extra = set(got) - set(want)
    fails.check(not extra, f"{label}: unexpected tensors {sorted(extra)[:5]}")
    print(f"  {label}: {len(want)} tensors, max abs diff {worst[0]:.2e} ({worst[1]})")


def run_reference(model_dir, ids_json, out_path, *extra):
    cmd = [sys.executable, os.path.join(HERE, "reference.py"), "--model", model_dir, "--ids", ids_json,
           "--output", out_path, "--impl", "torch", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def write_ids(path, ids, mask, tt):
    with open(path, "w") as f:
        json.dump({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "token_type_ids": tt.tolist()}, f)


def batch(kind, T=9):
    """Three rows of lengths T, 6, 3; right or left padded; second half token type 1 ('pair')."""
    rng = np.random.default_rng(1)
    lens = [T, 6, 3]
    ids, mask, tt = (np.zeros((3, T), np.int64) for _ in range(3))
    for b, n in enumerate(lens):
        sl = slice(0, n) if kind != "left" else slice(T - n, T)
        ids[b, sl] = rng.integers(1, 100, n)
        mask[b, sl] = 1
        if kind == "pair":
            tt[b, sl] = (np.arange(n) >= n // 2)
    return ids, mask, tt


def case(tmp, fails, label, dtype="F32", kind="right", ablate=(), hooks="all", **model_kw):
    model_dir = os.path.join(tmp, label)
    cfg, W = make_random_bert.make(model_dir, dtype=dtype, **model_kw)
    ids, mask, tt = batch(kind)
    ids_json, out_path = os.path.join(tmp, label + ".json"), os.path.join(tmp, label + ".safetensors")
    write_ids(ids_json, ids, mask, tt)
    extra = ["--hooks", hooks] + (["--ablate", ",".join(f"{l}.{h}" for l, h in ablate)] if ablate else [])
    r = run_reference(model_dir, ids_json, out_path, *extra)
    if r.returncode:
        fails.check(False, f"{label}: reference.py failed:\n{r.stderr}")
        return None
    got, meta = load_file(out_path)
    want = numpy_bert(cfg, W, ids, mask, tt, ablate)
    if hooks == "default":
        keep = ("hook_full_embed", "hook_pooled", "hook_embedding", "pooler_output")
        want = {k: v for k, v in want.items()
                if k in keep or k.endswith(".attn.hook_pattern") or k.endswith(".hook_normalized_resid_post")}
    compare(got, want, label, fails)
    fails.check(meta.get("format") == "e5-tfjs-parity" and meta.get("format_version") == "1", f"{label}: format")
    fails.check(meta.get("impl") == "torch", f"{label}: impl {meta.get('impl')}")
    fails.check(json.loads(meta["input_ids"]) == ids.tolist(), f"{label}: metadata input_ids")
    fails.check(json.loads(meta["ablate"]) == [f"{l}.{h}" for l, h in ablate], f"{label}: metadata ablate")
    for name, g in got.items():
        if name.endswith("attn.hook_pattern"):  # padding columns get exactly zero probability
            fails.check((g[np.broadcast_to(mask[:, None, None, :] == 0, g.shape)] == 0).all(), f"{label}: {name} pad")
    return got, (model_dir, ids_json)


def check_ablation(tmp, fails, plain, ablate):
    """The ablated run differs from the clean one only from the ablated layer on."""
    got, clean = plain
    first = min(l for l, _ in ablate)
    for name, g in got.items():
        if name.startswith("blocks."):
            layer = int(name.split(".")[1])
            if layer < first or (layer == first and name.split(".", 2)[2] in (
                    "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v",
                    "attn.hook_attn_scores", "attn.hook_pattern")):
                fails.check(np.array_equal(g, clean[name]), f"ablation changed {name} upstream of layer {first}")
    for l, h in ablate:
        z = got[f"blocks.{l}.attn.hook_z"]
        fails.check((z[:, :, h] == 0).all() and not np.array_equal(z, clean[f"blocks.{l}.attn.hook_z"]),
                    f"ablation: blocks.{l}.attn.hook_z head {h} not zeroed")
    fails.check(np.abs(got["hook_embedding"] - clean["hook_embedding"]).max() > 1e-3,
                "ablation did not change hook_embedding")


def check_errors(tmp, fails, model_dir, good_ids):
    """Bad inputs fail with a message naming the field and position."""
    bad = {
        "ragged": ({"input_ids": [[1, 2, 3], [1, 2]]}, "row 1"),
        "id range": ({"input_ids": [[1, 2, 999]]}, "'input_ids'[0][2] = 999"),
        "zero row": ({"input_ids": [[1, 2], [3, 4]], "attention_mask": [[1, 1], [0, 0]]}, "row 1 is all zeros"),
        "mask shape": ({"input_ids": [[1, 2]], "attention_mask": [[1, 1, 1]]}, "'attention_mask' is [1, 3]"),
    }
    for label, (content, needle) in bad.items():
        p = os.path.join(tmp, "bad.json")
        with open(p, "w") as f:
            json.dump(content, f)
        r = run_reference(model_dir, p, os.path.join(tmp, "bad.safetensors"))
        fails.check(r.returncode != 0 and needle in r.stderr, f"error '{label}': rc {r.returncode}, {r.stderr[-300:]!r}")
        fails.check(not os.path.exists(os.path.join(tmp, "bad.safetensors")), f"error '{label}' left an output file")
    for spec in ("1.9", "2.0", "1-2"):
        r = run_reference(model_dir, good_ids, os.path.join(tmp, "bad.safetensors"), "--ablate", spec)
        fails.check(r.returncode != 0 and f"--ablate: '{spec}'" in r.stderr, f"bad --ablate {spec} accepted: {r.stderr}")
    # A truncated weights file is named in the error.
    broken = os.path.join(tmp, "broken")
    make_random_bert.make(broken)
    st = os.path.join(broken, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) - 4)
    try:
        SafetensorsFile(st)
        fails.check(False, "truncated safetensors accepted")
    except SafetensorsError as e:
        fails.check("model.safetensors" in str(e), f"truncated file error does not name the file: {e}")
    # A config that disagrees with the weights names the missing tensors.
    cfg_path = os.path.join(broken, "config.json")
    make_random_bert.make(broken)
    cfg = json.load(open(cfg_path))
    cfg["num_hidden_layers"] = 3
    json.dump(cfg, open(cfg_path, "w"))
    r = run_reference(broken, good_ids, os.path.join(tmp, "bad.safetensors"))
    fails.check(r.returncode != 0 and "encoder.layer.2.attention.self.query.weight" in r.stderr,
                f"config/weights mismatch not named: {r.stderr[-300:]!r}")
    print("  error cases checked")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="work in this directory and keep it")
    a = ap.parse_args()
    tmp = a.keep or tempfile.mkdtemp(prefix="parity-selfcheck-")
    os.makedirs(tmp, exist_ok=True)
    fails = Failures()
    plain = case(tmp, fails, "f32-right", kind="right")
    case(tmp, fails, "f32-pair", kind="pair")
    left = case(tmp, fails, "f32-left", kind="left")
    ablate = [(1, 2), (0, 0), (1, 3)]
    abl = case(tmp, fails, "f32-left-ablate", kind="left", ablate=ablate)
    if left and abl:
        check_ablation(tmp, fails, (abl[0], left[0]), ablate)
    case(tmp, fails, "f16-sharded-prefix-nopooler", dtype="F16", kind="left", shards=3, prefix="bert.", pooler=False)
    case(tmp, fails, "bf16-default-hooks", dtype="BF16", kind="pair", hooks="default", layers=3, heads=2)
    if plain:
        check_errors(tmp, fails, *plain[1])
    if fails:
        print(f"selfcheck: {len(fails)} failures (models and dumps kept in {tmp})")
        sys.exit(1)
    if not a.keep:
        shutil.rmtree(tmp)
    print("selfcheck: OK")


if __name__ == "__main__":
    main()
