"""onnxruntime side of the benchmark harness (bench/run.ts): what an e5 user picks for the fastest
CPU inference outside PyTorch — the model exported to ONNX, fused by onnxruntime's transformer
optimizer, and (optionally) its weights dynamically quantized to int8.

  PY bench/ort_bench.py --export --model DIR --out CACHE_DIR [--threads N]
        export transformers' BertModel (+ masked mean pool + L2 normalise) once with torch.onnx,
        fuse it with onnxruntime.transformers.optimizer (fp32.onnx), quantize that with
        onnxruntime.quantization.quantize_dynamic, QInt8 weights (int8.onnx); prints JSON
  PY bench/ort_bench.py                       a persistent server (bench/torch_bench.py's protocol)
  PY bench/ort_bench.py --whole-run --onnx FILE --model DIR [--threads N] (TEXT | --input FILE)
        one whole process: import, session, tokenize, encode, print

PY is the bench venv's python (make bench-env: the reference pins plus onnx and onnxruntime). Texts
are tokenized by transformers' tokenizer from the model folder, sorted by length (longest first)
and padded per batch, as sentence-transformers' encode does, inside the timed region.

Server requests: {"cmd": "load", "onnx": FILE, "model": DIR, "threads": N}, then prepare,
prepare_texts, run, stats as in bench/st_bench.py, and {"cmd": "embed", "texts": [..]} -> embeddings.
"""
import json
import os
import resource
import sys
import time

T_START = time.perf_counter()
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

T_IMPORTED = time.perf_counter()


# ---------------------------------------------------------------- export (once per model)

def export(model_dir, out_dir, threads):
    """model.onnx (torch.onnx) -> fp32.onnx (fused) -> int8.onnx (dynamic QInt8). Each file is
    written beside its final name and renamed, so an interrupted export leaves nothing that looks
    complete; files already there are kept. When all are there (every bench run after the first,
    and bench/run.ts asks twice when both --compare and --whole-run want onnxruntime), torch,
    transformers and the optimizer are not even imported."""
    os.makedirs(out_dir, exist_ok=True)
    raw, fused, int8 = (os.path.join(out_dir, f) for f in ("model.onnx", "fp32.onnx", "int8.onnx"))
    report = {} if all(os.path.exists(f) for f in (raw, fused, int8)) else make(model_dir, raw, fused, int8, threads)
    report.update({"fp32": fused, "int8": int8, "bytes": {k: os.path.getsize(v) for k, v in (("fp32", fused), ("int8", int8))}})
    return report


def make(model_dir, raw, fused, int8, threads):
    """export()'s missing files, made in order; returns what it did (seconds per step, fused op counts)."""
    import torch
    import onnx
    import torch.nn.functional as F
    from transformers import AutoConfig, BertModel
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    if threads > 0:
        torch.set_num_threads(threads)
    cfg = AutoConfig.from_pretrained(model_dir)
    report = {}

    class Pooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            last = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(last.dtype)
            return F.normalize((last * m).sum(1) / m.sum(1), p=2, dim=1)

    def atomically(path, write):
        tmp = f"{path}.{os.getpid()}.tmp"
        t0 = time.perf_counter()
        write(tmp)
        os.replace(tmp, path)
        return time.perf_counter() - t0

    if not os.path.exists(raw):
        bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").eval()
        ids = torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]], dtype=torch.int64)
        mask = (ids != 0).to(torch.int64)
        axes = {0: "batch", 1: "tokens"}

        def write_raw(tmp):
            with torch.inference_mode():
                # The TorchScript exporter: its BERT graphs are what the optimizer's fusions match.
                torch.onnx.export(Pooled(bert), (ids, mask, torch.zeros_like(ids)), tmp, dynamo=False,
                                  input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
                                  dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "embedding": {0: "batch"}},
                                  opset_version=17, do_constant_folding=True)
        report["export_seconds"] = atomically(raw, write_raw)
        del bert
    if not os.path.exists(fused):
        def write_fused(tmp):
            m = optimizer.optimize_model(raw, model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, opt_level=1)
            report["fused_ops"] = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
            m.save_model_to_file(tmp)
        report["fuse_seconds"] = atomically(fused, write_fused)
    if not os.path.exists(int8):
        # The fused ops (com.microsoft domain) defeat ONNX shape inference: their outputs are float.
        report["quantize_seconds"] = atomically(int8, lambda tmp: quantize_dynamic(
            fused, tmp, weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}))
    return report


# ---------------------------------------------------------------- inference

def session(onnx_file, threads):
    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t0 = time.perf_counter()
    s = ort.InferenceSession(onnx_file, so, providers=["CPUExecutionProvider"])
    return s, time.perf_counter() - t0


def tokenizer(model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(model_dir)


def forward(sess, ids, mask):
    """int64 [B, T] ids and mask -> [B, D] normalised embeddings."""
    return sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]


def encode(sess, tok, texts, batch_size, max_length=512):
    """sentence-transformers' encode loop: longest first, batches padded to their longest row."""
    enc = tok(texts, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    out = [None] * len(enc)
    real = padded = 0
    for s in range(0, len(order), batch_size):
        batch = order[s: s + batch_size]
        T = max(len(enc[i]) for i in batch)
        ids = np.zeros((len(batch), T), dtype=np.int64)
        mask = np.zeros((len(batch), T), dtype=np.int64)
        for j, i in enumerate(batch):
            ids[j, : len(enc[i])] = enc[i]
            mask[j, : len(enc[i])] = 1
        e = forward(sess, ids, mask)
        real, padded = real + int(mask.sum()), padded + ids.size
        for j, i in enumerate(batch):
            out[i] = e[j]
    return out, real, padded


class Server:
    def __init__(self):
        self.sess, self.tok, self.work = None, None, {}

    def load(self, req):
        threads = int(req.get("threads", 0))
        self.sess, seconds = session(req["onnx"], threads)
        self.tok = tokenizer(req["model"])
        return {"load_seconds": seconds, "import_seconds": T_IMPORTED - T_START, "threads": threads,
                "ort_version": ort.__version__, "providers": self.sess.get_providers()}

    def prepare(self, req):
        ids = np.asarray(req["input_ids"], dtype=np.int64)
        mask = np.asarray(req["attention_mask"], dtype=np.int64)
        if ids.shape != mask.shape or ids.ndim != 2:
            raise ValueError(f"prepare {req['name']}: input_ids {list(ids.shape)} and attention_mask {list(mask.shape)} must be one [B,T] shape")
        self.work[req["name"]] = ("ids", ids, mask)
        return {}

    def prepare_texts(self, req):
        self.work[req["name"]] = ("texts", req["texts"], int(req.get("batch_size", 32)))
        return {}

    def run(self, req):
        kind, a, b = self.work[req["name"]]
        t0 = time.perf_counter()
        if kind == "ids":
            e = forward(self.sess, a, b)
            return {"seconds": time.perf_counter() - t0, "real_tokens": int(b.sum()), "padded_tokens": int(b.size), "probe": e[0].tolist()}
        out, real, padded = encode(self.sess, self.tok, a, b)
        return {"seconds": time.perf_counter() - t0, "real_tokens": real, "padded_tokens": padded, "probe": out[0].tolist()}

    def embed(self, req):
        """Texts -> their normalised embeddings, in input order (bench/accuracy.ts)."""
        texts, max_length = req["texts"], int(req.get("max_length", 512))
        out, _, _ = encode(self.sess, self.tok, texts, int(req.get("batch_size", 32)), max_length)
        full = [len(ids) for ids in self.tok(texts)["input_ids"]]
        return {"embeddings": [e.tolist() for e in out], "n_tokens": [min(n, max_length) for n in full], "truncated": [n > max_length for n in full]}

    def stats(self, req):
        return {"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--whole-run", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--out")
    ap.add_argument("--onnx")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--input", help="embed every line of this file instead of TEXT")
    ap.add_argument("text", nargs="?")
    a = ap.parse_args(argv)
    if a.export:
        print(json.dumps(export(a.model, a.out, a.threads)))
        return
    texts = open(a.input, encoding="utf-8").read().splitlines() if a.input else [a.text]
    sess, _ = session(a.onnx, a.threads)
    out, _, _ = encode(sess, tokenizer(a.model), texts, 32)
    print(json.dumps({"embedding": out[0].tolist(), "rows": len(texts)}))


if __name__ == "__main__":
    if sys.argv[1:]:
        main(sys.argv[1:])
    else:
        from jsonl_serve import serve
        serve(Server(), ("load", "prepare", "prepare_texts", "run", "embed", "stats"))
