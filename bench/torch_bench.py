#!/usr/bin/python3
"""PyTorch side of the benchmark harness (bench/run.ts).

Two ways to run it:

  /usr/bin/python3 bench/torch_bench.py                 a persistent server: JSON lines on stdin/stdout
  /usr/bin/python3 bench/torch_bench.py --whole-run --model DIR [--threads N] TEXT
                                                        one whole process: import, load, tokenize,
                                                        one forward, print the embedding (JSON)

The model is loaded with test/parity/reference.py's loader: `transformers.BertModel` when it is
importable, else the plain-torch BERT of test/parity/bert_torch.py (HF modeling_bert semantics),
weights read from the memory-mapped safetensors file straight into the parameters.

Forward = HF-style padded batch -> last_hidden_state -> masked mean pool -> L2 normalise, under
torch.inference_mode(), timed with time.perf_counter() around exactly that.

Server requests (one JSON object per line; every reply has "ok"; on failure "error"):
  {"cmd": "load", "model": DIR, "threads": N, "impl": "auto"|"transformers"|"torch"}
  {"cmd": "prepare", "name": W, "input_ids": [[..]], "attention_mask": [[..]]}   a fixed padded batch
  {"cmd": "prepare_texts", "name": W, "texts": [..], "batch_size": 32, "max_length": 512}
  {"cmd": "run", "name": W}          -> seconds (inside), real_tokens, padded_tokens, probe (row 0)
  {"cmd": "export_onnx", "path": P}  -> the model + mean pool + normalise as ONNX (temp file, renamed)
  {"cmd": "stats"}                   -> maxrss_kib (resource.getrusage), threads
  {"cmd": "quit"}
Texts (prepare_texts) are tokenized inside the timed region, sorted by length (longest first, as
sentence-transformers' encode does), cut into batches of batch_size, each padded to its longest row.
"""
import json
import os
import resource
import sys
import time
import unicodedata

T_START = time.perf_counter()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T_IMPORTED = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "parity"))
import reference  # noqa: E402  (imports bert_torch)
from jsonl_serve import serve as serve_json_lines  # noqa: E402


# ---------------------------------------------------------------- tokenizer

class WordPiece:
    """BERT uncased tokenization (basic + greedy longest-match WordPiece) in plain Python.

    Used when `transformers` is not importable. Handles what the benchmark's texts contain
    (lower-casing, accents, punctuation, whitespace); no CJK spacing or control-char cleanup.
    """

    def __init__(self, vocab_file):
        with open(vocab_file, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]
        self.label = "python WordPiece (vocab.txt)"

    @staticmethod
    def words(text):
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        out = []
        for w in text.split():
            cur = ""
            for ch in w:
                if unicodedata.category(ch).startswith("P") or (ch.isascii() and not ch.isalnum()):
                    if cur:
                        out.append(cur)
                    out.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                out.append(cur)
        return out

    def piece_ids(self, word):
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    ids.append(self.vocab[sub])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text, max_length):
        ids = [i for w in self.words(text) for i in self.piece_ids(w)]
        return [self.cls] + ids[: max_length - 2] + [self.sep]


class HfTokenizer:
    def __init__(self, model_dir):
        import transformers
        self.tok = transformers.BertTokenizerFast.from_pretrained(model_dir)
        self.label = f"transformers BertTokenizerFast {transformers.__version__}"

    def encode(self, text, max_length):
        return self.tok(text, truncation=True, max_length=max_length)["input_ids"]


def make_tokenizer(model_dir):
    try:
        return HfTokenizer(model_dir)
    except Exception:  # transformers missing, or the folder has no fast tokenizer files
        return WordPiece(os.path.join(model_dir, "vocab.txt"))


# ---------------------------------------------------------------- model

def embed(model, impl, ids, mask):
    """Padded [B,T] int64 ids and mask -> L2-normalised masked-mean embeddings [B,D]."""
    tt = torch.zeros_like(ids)
    if impl == "transformers":
        last = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
    else:
        last, _ = model(ids, mask, tt)
    return F.normalize(reference.average_pool(last, mask), p=2, dim=1)


def pad(rows):
    """Token id lists -> (ids, mask) int64 [B, longest], right-padded with 0 (HF's pad id for BERT)."""
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.int64)
    mask = torch.zeros(len(rows), T, dtype=torch.int64)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r, dtype=torch.int64)
        mask[b, : len(r)] = 1
    return ids, mask


class Pooled(torch.nn.Module):
    """The exported graph: ids, mask, token types -> normalised mean-pooled embedding."""

    def __init__(self, model, impl):
        super().__init__()
        self.model, self.impl = model, impl

    def forward(self, input_ids, attention_mask, token_type_ids):
        if self.impl == "transformers":
            last = self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        else:
            last, _ = self.model(input_ids, attention_mask, token_type_ids)
        return F.normalize(reference.average_pool(last, attention_mask), p=2, dim=1)


class Server:
    def __init__(self):
        self.model = None
        self.workloads = {}

    def load(self, req):
        threads = int(req.get("threads", 0))
        if threads > 0:
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.model, self.config, self.impl, label, _ = reference.load_model(req["model"], req.get("impl", "auto"))
        load_seconds = time.perf_counter() - t0
        self.tokenizer = make_tokenizer(req["model"])
        return {
            "load_seconds": load_seconds, "import_seconds": T_IMPORTED - T_START, "impl": label,
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "tokenizer": self.tokenizer.label,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "blas": blas_info(),
        }

    def prepare(self, req):
        ids = torch.tensor(req["input_ids"], dtype=torch.int64)
        mask = torch.tensor(req["attention_mask"], dtype=torch.int64)
        if ids.shape != mask.shape or ids.dim() != 2:
            raise ValueError(f"prepare {req['name']}: input_ids {list(ids.shape)} and attention_mask {list(mask.shape)} must be one [B,T] shape")
        self.workloads[req["name"]] = ("batch", ids, mask)
        return {}

    def prepare_texts(self, req):
        self.workloads[req["name"]] = ("texts", req["texts"], int(req.get("batch_size", 32)), int(req.get("max_length", 512)))
        return {}

    def run(self, req):
        w = self.workloads[req["name"]]
        with torch.inference_mode():
            if w[0] == "batch":
                _, ids, mask = w
                t0 = time.perf_counter()
                e = embed(self.model, self.impl, ids, mask)
                seconds = time.perf_counter() - t0
                return {"seconds": seconds, "real_tokens": int(mask.sum()), "padded_tokens": ids.numel(),
                        "probe": e[0].tolist()}
            return self.run_texts(*w[1:])

    def run_texts(self, texts, batch_size, max_length):
        t0 = time.perf_counter()
        rows = [self.tokenizer.encode(t, max_length) for t in texts]
        t_tok = time.perf_counter() - t0
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # stable: ties keep input order
        out = [None] * len(rows)
        padded = 0
        for s in range(0, len(order), batch_size):
            batch = order[s: s + batch_size]
            ids, mask = pad([rows[i] for i in batch])
            padded += ids.numel()
            e = embed(self.model, self.impl, ids, mask)
            for j, i in enumerate(batch):
                out[i] = e[j]
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "tokenize_seconds": t_tok, "real_tokens": sum(len(r) for r in rows),
                "padded_tokens": padded, "probe": out[0].tolist()}

    def export_onnx(self, req):
        path = req["path"]
        tmp = f"{path}.{os.getpid()}.tmp"
        ids = torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]], dtype=torch.int64)
        mask = (ids != 0).to(torch.int64)
        t0 = time.perf_counter()
        axes = {0: "batch", 1: "tokens"}
        torch.onnx.export(Pooled(self.model, self.impl).eval(), (ids, mask, torch.zeros_like(ids)), tmp,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "embedding": {0: "batch"}},
                          opset_version=int(req.get("opset", 14)), do_constant_folding=True)
        os.replace(tmp, path)
        return {"seconds": time.perf_counter() - t0, "bytes": os.path.getsize(path)}

    def stats(self, req):
        return {"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "threads": torch.get_num_threads()}


def blas_info():
    """The BLAS library really loaded (Debian's torch uses the system libblas alternative, e.g. OpenBLAS)."""
    torch.randn(64, 64) @ torch.randn(64, 64)  # make sure the BLAS is loaded
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            libs = {os.path.basename(line.split()[-1]) for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(libs)) or "none found"


def serve():
    serve_json_lines(Server(), ("load", "prepare", "prepare_texts", "run", "export_onnx", "stats"))


def whole_run(argv):
    """A user's whole run: interpreter start, import torch, load, tokenize, one forward, print."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--whole-run", action="store_true")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("text")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    model, _, impl, _, _ = reference.load_model(a.model, "auto")
    ids, mask = pad([make_tokenizer(a.model).encode(a.text, 512)])
    with torch.inference_mode():
        e = embed(model, impl, ids, mask)
    print(json.dumps({"n_tokens": ids.shape[1], "embedding": e[0].tolist()}))


if __name__ == "__main__":
    if "--whole-run" in sys.argv[1:]:
        whole_run(sys.argv[1:])
    else:
        serve()
