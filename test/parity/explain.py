"""The reference for `e5 explain` / EmbeddingModel.explain (e5/explain.ts): the same definitions,
written again from the issue's text on transformers.BertModel in float64, with torch.func's
forward-mode JVPs (every C_t in full, A = C^q C^pᵀ — not the TypeScript side's mixed VJP scheme).

    python explain.py --input IN.json --output OUT.json

IN.json: {"model": DIR, "layer": l, "steps": N, "modes": ["pairs", "tokens", "heads"],
          "query": {"input_ids": [...], "token_type_ids": [...], "special": [0/1 ...]}, "passage": {...}}
  ("special": 1 where the post-processor added the token: the reference R keeps X there).
OUT.json: {"score", "e_q", "e_p", "e_qR", "e_pR", "pairs" [n_q][n_p], "query" [n_q], "passage" [n_p],
           "heads" [L][H], "heads_targets" [L] (s − s with layer l's heads zeroed), "pooling", "versions"}

Definitions: e(X) = L2(pool(blocks ℓ..L−1 (X))), X = hidden_states[ℓ] of the text alone (no padding,
mask all ones); R = X at the special tokens, 0 elsewhere; α_k = (k − ½)/N;
C_t = (1/N) Σ_k J(X(α_k))[:, t, :]·(X_t − R_t); pairs A[i][j] = C^q_i·C^p_j; tokens query[t] = C^q_t·e_p,
passage[t] = C^p_t·e_q; heads: gates g on attention.output.dense's input (= attn.hook_z) of layer l on
both texts, attribution_{l,h} = (1/N) Σ_k ∂(e_q·e_p)/∂g_h at g = α_k·1.
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
import transformers
from transformers import BertModel

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def pooling_mode(model_dir):
    """1_Pooling/config.json as sentence-transformers reads it; mean without one (as e5-tfjs)."""
    cfg = os.path.join(model_dir, "1_Pooling", "config.json")
    if not os.path.exists(cfg):
        return "mean"
    c = json.load(open(cfg))
    for mode in ("cls", "mean", "max"):
        if c.get(f"pooling_mode_{mode}_token" if mode == "cls" else f"pooling_mode_{mode}_tokens"):
            return mode
    raise SystemExit(f"{cfg}: no pooling mode this reference knows")


class Encoder:
    """e(X) from depth ℓ, optionally with gates on one layer's heads."""

    def __init__(self, model, pooling):
        self.m, self.pooling = model, pooling
        cfg = model.config
        self.L, self.H, self.D = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.gate_layer, self.gate = None, None
        for i, layer in enumerate(model.encoder.layer):
            layer.attention.output.dense.register_forward_pre_hook(self._gate_hook(i))

    def _gate_hook(self, i):
        def hook(_module, args):
            if self.gate_layer != i:
                return None
            z = args[0]  # [B,T,D]: the heads' outputs side by side (attn.hook_z)
            B, T, D = z.shape
            g = self.gate.reshape(-1, 1, self.H, 1)  # [B or 1,1,H,1]
            return ((z.reshape(B, T, self.H, D // self.H) * g).reshape(B, T, D),)
        return hook

    def __call__(self, x, layer):
        """x [B,T,D] at depth `layer` → normalized embeddings [B,D]."""
        h = x
        for block in self.m.encoder.layer[layer:]:
            h = block(h)
            h = h[0] if isinstance(h, tuple) else h
        if self.pooling == "mean":
            pooled = h.mean(dim=1)
        elif self.pooling == "cls":
            pooled = h[:, 0]
        else:
            pooled = h.max(dim=1).values
        return F.normalize(pooled, p=2, dim=-1)


def hidden_states(model, text):
    ids = torch.tensor([text["input_ids"]])
    types = torch.tensor([text.get("token_type_ids", [0] * len(text["input_ids"]))])
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, output_hidden_states=True)
    return [h[0] for h in out.hidden_states]  # L+1 × [T,D]


def contributions(enc, x, special, layer, steps):
    """C [T, Dout]: per-token JVPs along the path, midpoint rule."""
    keep = torch.tensor(special, dtype=x.dtype)[:, None]
    r = x * keep
    delta = x - r
    T = x.shape[0]
    f = lambda xx: enc(xx[None], layer)[0]  # noqa: E731
    C = torch.zeros(T, enc.D, dtype=x.dtype)
    tangents = torch.zeros(T, T, x.shape[1], dtype=x.dtype)
    for t in range(T):
        tangents[t, t] = delta[t]
    for k in range(steps):
        xk = r + (k + 0.5) / steps * delta
        jvp = lambda v: torch.func.jvp(f, (xk,), (v,))[1]  # noqa: E731
        try:
            C += torch.func.vmap(jvp)(tangents) / steps
        except Exception:  # a module vmap cannot batch: one token at a time
            C += torch.stack([jvp(v) for v in tangents]) / steps
    with torch.no_grad():
        e, eR = enc(x[None], layer)[0], enc(r[None], layer)[0]
    return C, e, eR


def heads(enc, hq, hp, steps, score):
    grid, targets = [], []
    for l in range(enc.L):
        enc.gate_layer = l
        row = torch.zeros(enc.H, dtype=hq[0].dtype)
        for k in range(steps):
            g = torch.full((enc.H,), (k + 0.5) / steps, dtype=hq[0].dtype, requires_grad=True)
            enc.gate = g
            s = (enc(hq[l][None], l)[0] * enc(hp[l][None], l)[0]).sum()
            (grad,) = torch.autograd.grad(s, g)
            row += grad / steps
        with torch.no_grad():
            enc.gate = torch.zeros(enc.H, dtype=hq[0].dtype)
            targets.append(float(score - (enc(hq[l][None], l)[0] * enc(hp[l][None], l)[0]).sum()))
        enc.gate_layer, enc.gate = None, None
        grid.append(row.tolist())
    return grid, targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("PARITY_THREADS", "0")) or None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    job = json.load(open(a.input))
    model = BertModel.from_pretrained(job["model"], attn_implementation="eager", dtype=torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pooling = pooling_mode(job["model"])
    enc = Encoder(model, pooling)
    layer, steps, modes = job["layer"], job["steps"], job["modes"]
    hq, hp = hidden_states(model, job["query"]), hidden_states(model, job["passage"])
    with torch.no_grad():
        e_q, e_p = enc(hq[layer][None], layer)[0], enc(hp[layer][None], layer)[0]
    score = float(e_q @ e_p)
    out = {"score": score, "layer": layer, "steps": steps, "pooling": pooling,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    if "pairs" in modes or "tokens" in modes:
        Cq, e_q, e_qR = contributions(enc, hq[layer], job["query"]["special"], layer, steps)
        Cp, e_p, e_pR = contributions(enc, hp[layer], job["passage"]["special"], layer, steps)
        out.update({"e_q": e_q.tolist(), "e_p": e_p.tolist(), "e_qR": e_qR.tolist(), "e_pR": e_pR.tolist(),
                    "query": (Cq @ e_p).tolist(), "passage": (Cp @ e_q).tolist(), "pairs": (Cq @ Cp.T).tolist()})
    if "heads" in modes:
        out["heads"], out["heads_targets"] = heads(enc, hq, hp, steps, score)
    tmp = a.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
