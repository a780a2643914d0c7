"""transformers.AutoTokenizer (the fast tokenizer e5 users get) on a batch of cases, for the differential tests.

    python hf_tokenize.py --model DIR --cases CASES.json --output OUT.json

CASES.json: [{"text": str, "pair"?: str, "maxLength"?: int (default 512), "addSpecialTokens"?: bool}].
OUT.json: {"tokenizer": class name, "versions": {...}, "outcomes": [{ids, typeIds, tokens, offsets, mask,
truncated}]} in case order; offsets are (start, end) in code points; `truncated` is whether the
untruncated encoding is longer (truncation strategy longest_first, as for the Rust tokenizer).
"""
import argparse
import json
import os

import transformers
from transformers import AutoTokenizer


def encode_group(tok, cases, max_length, add_special):
    """One batched call per (max_length, add_special, single|pair) group -> outcome dicts."""
    texts = [c["text"] for c in cases]
    pairs = [c["pair"] for c in cases] if "pair" in cases[0] else None
    kw = dict(add_special_tokens=add_special, return_token_type_ids=True, return_attention_mask=True)
    enc = tok(texts, pairs, truncation="longest_first", max_length=max_length, return_offsets_mapping=True, **kw)
    full = tok(texts, pairs, truncation=False, **kw)
    return [{
        "ids": enc["input_ids"][i],
        "typeIds": enc["token_type_ids"][i],
        "tokens": enc.tokens(i),
        "offsets": [list(o) for o in enc["offset_mapping"][i]],
        "mask": enc["attention_mask"][i],
        "truncated": len(full["input_ids"][i]) > len(enc["input_ids"][i]),
    } for i in range(len(cases))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()  # "sequence longer than model_max_length" is the point here
    tok = AutoTokenizer.from_pretrained(a.model)
    with open(a.cases, encoding="utf-8") as f:
        cases = json.load(f)
    groups = {}
    for i, c in enumerate(cases):
        key = (c.get("maxLength", 512), c.get("addSpecialTokens", True), "pair" in c)
        groups.setdefault(key, []).append(i)
    outcomes = [None] * len(cases)
    for (max_length, add_special, _), idx in groups.items():
        for i, o in zip(idx, encode_group(tok, [cases[i] for i in idx], max_length, add_special)):
            outcomes[i] = o
    out = {"tokenizer": type(tok).__name__, "is_fast": tok.is_fast, "versions": {"transformers": transformers.__version__}, "outcomes": outcomes}
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
