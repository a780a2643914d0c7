"""sentence-transformers side of the benchmark harness (bench/run.ts): the engine an e5 user
would otherwise pick — SentenceTransformer(folder) on PyTorch 2.x, as the model card's
sentence-transformers snippet runs it.

  PY bench/st_bench.py                                  a persistent server (bench/torch_bench.py's protocol)
  PY bench/st_bench.py --whole-run --model DIR [--threads N] (TEXT | --input FILE)
                                                        one whole process: import, load, encode, print

PY is the reference venv's python (make reference-env). Fixed batches run the model's own
forward (Transformer -> Pooling) on the given ids and L2-normalise; texts run
`model.encode(texts, batch_size, normalize_embeddings=True)` — tokenization, its length sorting
and per-batch padding included — timed around exactly that.
"""
import json
import resource
import sys
import time

T_START = time.perf_counter()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
import sentence_transformers  # noqa: E402
import transformers  # noqa: E402
from jsonl_serve import serve as serve_json_lines  # noqa: E402

T_IMPORTED = time.perf_counter()


def load(model_dir, threads):
    if threads > 0:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    return model, time.perf_counter() - t0


def forward_ids(model, ids, mask):
    with torch.inference_mode():
        out = model({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)})
        return F.normalize(out["sentence_embedding"], dim=-1)


class Server:
    def __init__(self):
        self.model, self.work = None, {}

    def load(self, req):
        self.model, seconds = load(req["model"], req.get("threads", 0))
        return {"load_seconds": seconds, "import_seconds": T_IMPORTED - T_START, "threads": torch.get_num_threads(),
                "torch_version": torch.__version__, "st_version": sentence_transformers.__version__,
                "transformers_version": transformers.__version__}

    def prepare(self, req):
        ids, mask = torch.tensor(req["input_ids"]), torch.tensor(req["attention_mask"])
        self.work[req["name"]] = ("ids", ids, mask)
        return {}

    def prepare_texts(self, req):
        self.work[req["name"]] = ("texts", req["texts"], req.get("batch_size", 32))
        return {}

    def run(self, req):
        kind, a, b = self.work[req["name"]]
        t0 = time.perf_counter()
        if kind == "ids":
            e = forward_ids(self.model, a, b)
            seconds = time.perf_counter() - t0
            return {"seconds": seconds, "real_tokens": int(b.sum()), "padded_tokens": int(b.numel()), "probe": e[0].tolist()}
        e = self.model.encode(a, batch_size=b, normalize_embeddings=True, convert_to_numpy=True)
        seconds = time.perf_counter() - t0
        real, padded = self.token_counts(a, b)
        return {"seconds": seconds, "real_tokens": real, "padded_tokens": padded, "probe": e[0].tolist()}

    def token_counts(self, texts, batch_size):
        """Real tokens, and tokens as encode() pads them: sorted longest first (its own text-length
        rule), batches of batch_size, each padded to its longest row."""
        # encode()'s own length rule: _input_length in sentence-transformers 6, _text_length before.
        length = getattr(self.model, "_input_length", None) or self.model._text_length
        order = sorted(range(len(texts)), key=lambda i: -length(texts[i]))
        real = padded = 0
        for s in range(0, len(order), batch_size):
            mask = self.model.tokenize([texts[i] for i in order[s:s + batch_size]])["attention_mask"]
            real, padded = real + int(mask.sum()), padded + mask.numel()
        return real, padded

    def stats(self, req):
        return {"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "threads": torch.get_num_threads()}


def serve():
    serve_json_lines(Server(), ("load", "prepare", "prepare_texts", "run", "stats"))


def whole_run(argv):
    """A user's whole run: interpreter start, imports, load, encode one text, print."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--whole-run", action="store_true")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--input", help="embed every line of this file instead of TEXT")
    ap.add_argument("text", nargs="?")
    a = ap.parse_args(argv)
    texts = open(a.input, encoding="utf-8").read().splitlines() if a.input else [a.text]
    model, _ = load(a.model, a.threads)
    e = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    print(json.dumps({"embedding": e[0].tolist(), "rows": len(texts)}))


if __name__ == "__main__":
    if "--whole-run" in sys.argv[1:]:
        whole_run(sys.argv[1:])
    else:
        serve()
