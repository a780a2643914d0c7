"""The PyTorch reference for `e5 eval --ablate` / `--scan`: BEIR metrics with attention heads removed.

    python eval_ablate.py --model DIR --data BEIR_DIR [--split test] --k 1,5,10
        (--ablate L.H,... | --scan heads|layers) [--mode zero|mean] [--side query|passage|both]
        [--max-length N] --output OUT.json

Independent of e5-tfjs: transformers' BertModel and tokenizer from the folder, the e5 inputs
('query: ' + text; 'passage: ' + (title + ' ' + text).strip()), the model card's average pooling
and F.normalize, exact cosine scores rounded to float32, ties broken like trec_eval (doc id
descending), BEIR's ignore_identical_ids, and the metrics written out below from trec_eval's
definitions (ndcg_cut, map_cut, recall, P) and BEIR's MRR.

A removed head: a forward pre-hook on `encoder.layer[l].attention.output.dense` (whose input is the
heads' outputs side by side, attn.hook_z) replaces the head's Dh columns by zeros, or by the head's
mean output over the evaluated queries' real tokens (every judged query, 'query: ' + text, padding
excluded; summed in float64), which is e5 eval's reference set (eval/ablation.ts MEAN_REFERENCE).

OUT.json: {"baseline": RUN, "cells": [{"label": "0.1", "heads": ["0.1"], "run": RUN}], "versions": {...}}
with RUN = {"means": {"ndcg": [per k], ...}, "perQuery": [{"queryId", "metrics": {...}}]}.
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
import transformers

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
METRICS = ["ndcg", "map", "recall", "precision", "mrr"]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_beir(data, split):
    docs = read_jsonl(os.path.join(data, "corpus.jsonl"))
    queries = read_jsonl(os.path.join(data, "queries.jsonl"))
    qrels = {}
    with open(os.path.join(data, "qrels", f"{split}.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            if not line.strip():
                continue
            q, d, s = line.rstrip("\n").split("\t")
            qrels.setdefault(q, {})[d] = int(s)
    judged = [q for q in queries if q["_id"] in qrels]
    return docs, judged, qrels


class Encoder:
    """The model and tokenizer; embed() with an optional per-layer column mask and fill at hook_z."""

    def __init__(self, model_dir, max_length):
        self.tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        self.model = transformers.BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
        self.c = self.model.config
        self.max_length = max_length or min(512, self.c.max_position_embeddings)
        self.removed = {}  # layer -> bool [D] columns to replace
        self.fill = None  # [L, D] or None (zeros)
        for layer in range(self.c.num_hidden_layers):
            dense = self.model.encoder.layer[layer].attention.output.dense
            dense.register_forward_pre_hook(self._hook(layer))
        self.capture = None

    def _hook(self, layer):
        def pre_hook(module, args):
            z = args[0]  # [B, T, D]: the heads' outputs side by side
            if self.capture is not None:
                self.capture[layer] = z.detach()
            cols = self.removed.get(layer)
            if cols is None:
                return None
            fill = torch.zeros(z.shape[-1], dtype=z.dtype) if self.fill is None else self.fill[layer]
            return (torch.where(cols, fill, z),) + tuple(args[1:])
        return pre_hook

    def batches(self, texts, size=32):
        for i in range(0, len(texts), size):
            yield self.tok(texts[i:i + size], max_length=self.max_length, padding=True, truncation=True, return_tensors="pt")

    @torch.inference_mode()
    def embed(self, texts):
        out = []
        for b in self.batches(texts):
            h = self.model(**b).last_hidden_state
            m = b["attention_mask"][..., None].to(h.dtype)
            out.append(F.normalize((h * m).sum(1) / m.sum(1), p=2, dim=1))
        return torch.cat(out)

    @torch.inference_mode()
    def head_means(self, texts):
        """Each layer's hook_z averaged over the real tokens of `texts`, summed in float64: [L, D] float32."""
        L, D = self.c.num_hidden_layers, self.c.hidden_size
        total, count = torch.zeros(L, D, dtype=torch.float64), 0
        saved, self.removed = self.removed, {}
        try:
            for b in self.batches(texts):
                self.capture = {}
                self.model(**b)
                m = b["attention_mask"][..., None].to(torch.float64)
                for layer in range(L):
                    total[layer] += (self.capture[layer].to(torch.float64) * m).sum((0, 1))
                count += int(b["attention_mask"].sum())
        finally:
            self.capture, self.removed = None, saved
        return (total / count).to(torch.float32)

    def set_ablation(self, heads):
        dh = self.c.hidden_size // self.c.num_attention_heads
        self.removed = {}
        for layer, head in heads:
            cols = self.removed.setdefault(layer, torch.zeros(self.c.hidden_size, dtype=torch.bool))
            cols[head * dh:(head + 1) * dh] = True


# ---------------------------------------------------------------- ranking and metrics (trec_eval)

def rank(qv, pv, doc_ids, query_ids, kmax):
    """Per query: doc ids by float32 cosine descending, ties by doc id descending; own id excluded."""
    scores = (qv.double() @ pv.double().T) / (qv.double().norm(dim=1)[:, None] * pv.double().norm(dim=1)[None, :])
    scores = scores.float().tolist()
    runs = []
    for qi, qid in enumerate(query_ids):
        pairs = [(scores[qi][j], d) for j, d in enumerate(doc_ids) if d != qid]
        pairs.sort(key=lambda p: p[1].encode("utf-8"), reverse=True)  # stable: id descending among equal scores
        pairs.sort(key=lambda p: p[0], reverse=True)
        runs.append([d for _, d in pairs[:kmax]])
    return runs


def metrics_at(ranked, rels, ks):
    gains = [rels.get(d, 0) for d in ranked]
    n_rel = sum(1 for r in rels.values() if r >= 1)
    ideal = sorted((r for r in rels.values() if r >= 1), reverse=True)
    dcg = lambda g, k: sum(x / math.log2(i + 2) for i, x in enumerate(g[:k]) if x > 0)
    out = {m: [] for m in METRICS}
    for k in ks:
        idcg = dcg(ideal, k)
        out["ndcg"].append(dcg(gains, k) / idcg if idcg > 0 else dcg(gains, k))
        hits, ap = 0, 0.0
        for i, g in enumerate(gains[:k]):
            if g >= 1:
                hits += 1
                ap += hits / (i + 1)
        out["map"].append(ap / n_rel if n_rel else 0.0)
        out["recall"].append(hits / n_rel if n_rel else 0.0)
        out["precision"].append(hits / k)
        out["mrr"].append(next((1 / (i + 1) for i, g in enumerate(gains[:k]) if g > 0), 0.0))
    return out


def evaluate(qv, pv, docs, judged, qrels, ks):
    doc_ids, query_ids = [d["_id"] for d in docs], [q["_id"] for q in judged]
    runs = rank(qv, pv, doc_ids, query_ids, max(ks))
    per = [{"queryId": q, "metrics": metrics_at(r, qrels[q], ks)} for q, r in zip(query_ids, runs)]
    means = {m: [sum(p["metrics"][m][i] for p in per) / len(per) for i in range(len(ks))] for m in METRICS}
    return {"means": means, "perQuery": per}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", default="1,3,5,10,100,1000")
    ap.add_argument("--ablate", default="")
    ap.add_argument("--scan", choices=["heads", "layers"])
    ap.add_argument("--mode", choices=["zero", "mean"], default="zero")
    ap.add_argument("--side", choices=["query", "passage", "both"], default="query")
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("E5_TEST_THREADS", "2")))
    ks = sorted(int(k) for k in args.k.split(","))

    enc = Encoder(args.model, args.max_length)
    L, H = enc.c.num_hidden_layers, enc.c.num_attention_heads
    docs, judged, qrels = read_beir(args.data, args.split)
    q_texts = ["query: " + q["text"] for q in judged]
    p_texts = ["passage: " + ((d.get("title") or "") + " " + d["text"]).strip() for d in docs]

    qv, pv = enc.embed(q_texts), enc.embed(p_texts)
    baseline = evaluate(qv, pv, docs, judged, qrels, ks)
    enc.fill = enc.head_means(q_texts) if args.mode == "mean" else None
    if args.scan == "heads":
        cells = [[(l, h)] for l in range(L) for h in range(H)]
    elif args.scan == "layers":
        cells = [[(l, h) for h in range(H)] for l in range(L)]
    else:
        cells = [[tuple(int(x) for x in item.split(".")) for item in args.ablate.split(",")]]
    out_cells = []
    for heads in cells:
        enc.set_ablation(heads)
        aq = enc.embed(q_texts) if args.side in ("query", "both") else qv
        ap_ = enc.embed(p_texts) if args.side in ("passage", "both") else pv
        enc.removed = {}
        label = (str(heads[0][0]) if args.scan == "layers" else ",".join(f"{l}.{h}" for l, h in heads))
        out_cells.append({"label": label, "heads": [f"{l}.{h}" for l, h in heads], "run": evaluate(aq, ap_, docs, judged, qrels, ks)})
    with open(args.output, "w") as f:
        json.dump({"baseline": baseline, "cells": out_cells, "k": ks,
                   "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}, f)


if __name__ == "__main__":
    main()
