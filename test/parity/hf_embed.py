"""Embeddings the way e5 users make them with the Hugging Face stack, for the tests and parity-large.

    python hf_embed.py --model DIR --texts TEXTS.json --via st|card [--queries N] --output OUT.json

--via st:   SentenceTransformer(DIR).encode(texts, normalize_embeddings=True) (the folder's
            modules.json, 1_Pooling and sentence_bert_config.json decide pooling and max length).
--via card: the e5 model card's code: AutoTokenizer + AutoModel, tokenizer(max_length=512,
            padding=True, truncation=True), average_pool, F.normalize; with --queries N also the
            card's scores = (embeddings[:N] @ embeddings[N:].T) * 100.
OUT.json: {"embeddings": [[...]], "scores": [[...]]?, "versions": {...}}; TEXTS.json is a list of strings.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def average_pool(last_hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
    """The model card's average_pool, verbatim."""
    last_hidden = last_hidden_states.masked_fill(~attention_mask[..., None].bool(), 0.0)
    return last_hidden.sum(dim=1) / attention_mask.sum(dim=1)[..., None]


def via_card(model_dir, texts):
    from transformers import AutoModel, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch_dict = tokenizer(texts, max_length=512, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**batch_dict)
    embeddings = average_pool(outputs.last_hidden_state, batch_dict["attention_mask"])
    return F.normalize(embeddings, p=2, dim=1)


def via_sentence_transformers(model_dir, texts):
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(model_dir, device="cpu")
    return torch.from_numpy(model.encode(texts, normalize_embeddings=True, batch_size=len(texts)))


def versions():
    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import sentence_transformers
        out["sentence-transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--via", choices=["st", "card"], required=True)
    ap.add_argument("--queries", type=int, default=0, help="card: the first N texts are queries; also write scores")
    ap.add_argument("--output", required=True)
    a = ap.parse_args()
    with open(a.texts, encoding="utf-8") as f:
        texts = json.load(f)
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        sys.exit(f"hf_embed.py: {a.texts}: expected a non-empty JSON list of strings")
    emb = via_card(a.model, texts) if a.via == "card" else via_sentence_transformers(a.model, texts)
    out = {"embeddings": emb.tolist(), "versions": versions()}
    if a.queries:
        out["scores"] = ((emb[:a.queries] @ emb[a.queries:].T) * 100).tolist()
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
