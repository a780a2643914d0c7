#!/usr/bin/python3
"""PyTorch reference for parity: run a Hugging Face BERT folder on given token ids and dump activations.

    /usr/bin/python3 test/parity/reference.py --model DIR --ids IDS.json --output OUT.safetensors \
        [--ablate L.H,...] [--impl auto|transformers|torch] [--hooks default|all] [--threads N]

IDS.json: {"input_ids": [[...]], "attention_mask": [[...]], "token_type_ids": [[...]]}
(attention_mask defaults to ones, token_type_ids to zeros). The output holds float32
tensors, batch first, named by our TransformerLens-style hook names (see README.md),
streamed to disk one by one, with `__metadata__` describing how they were made.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_torch  # noqa: E402
import hooks as H  # noqa: E402
from safetensors_io import SafetensorsFile, StreamWriter  # noqa: E402

FORMAT = "e5-tfjs-parity"
FORMAT_VERSION = "1"
# Buffers some checkpoints carry; not parameters (HF re-creates them).
SKIPPED_KEYS = {"embeddings.position_ids", "embeddings.token_type_ids"}


class InputError(ValueError):
    pass


# ---------------------------------------------------------------- inputs

def read_ids(path, c):
    """IDS.json -> (input_ids, attention_mask, token_type_ids) as int64 [B,T] tensors, validated."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, dict) or "input_ids" not in raw:
        raise InputError(f"{path}: expected an object with 'input_ids'")
    unknown = set(raw) - {"input_ids", "attention_mask", "token_type_ids"}
    if unknown:
        raise InputError(f"{path}: unknown fields {sorted(unknown)}")

    def matrix(field):
        rows = raw[field]
        if not (isinstance(rows, list) and rows and all(isinstance(r, list) for r in rows)):
            raise InputError(f"{path}: '{field}' must be a non-empty list of lists")
        T = len(rows[0])
        for b, r in enumerate(rows):
            if len(r) != T:
                raise InputError(f"{path}: '{field}' row {b} has {len(r)} entries, row 0 has {T}")
            for t, v in enumerate(r):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise InputError(f"{path}: '{field}'[{b}][{t}] = {v!r} is not an integer")
        return torch.tensor(rows, dtype=torch.int64)

    ids = matrix("input_ids")
    B, T = ids.shape
    mask = matrix("attention_mask") if "attention_mask" in raw else torch.ones(B, T, dtype=torch.int64)
    tt = matrix("token_type_ids") if "token_type_ids" in raw else torch.zeros(B, T, dtype=torch.int64)
    for field, m in (("attention_mask", mask), ("token_type_ids", tt)):
        if m.shape != ids.shape:
            raise InputError(f"{path}: '{field}' is {list(m.shape)}, input_ids is {[B, T]}")

    def check_range(field, m, hi):
        bad = ((m < 0) | (m >= hi)).nonzero()
        if len(bad):
            b, t = bad[0].tolist()
            raise InputError(f"{path}: '{field}'[{b}][{t}] = {m[b, t].item()} outside [0, {hi})")

    check_range("input_ids", ids, c.vocab_size)
    check_range("attention_mask", mask, 2)
    check_range("token_type_ids", tt, c.type_vocab_size)
    if T > c.max_position_embeddings:
        raise InputError(f"{path}: {T} tokens exceed max_position_embeddings {c.max_position_embeddings}")
    empty = (mask.sum(1) == 0).nonzero()
    if len(empty):
        raise InputError(f"{path}: 'attention_mask' row {empty[0].item()} is all zeros (mean pool undefined)")
    return ids, mask, tt


# ---------------------------------------------------------------- weights

def open_weights(model_dir):
    """HF BertModel tensor name (no 'bert.' prefix) -> (open SafetensorsFile, stored key), over all shards."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    sources = {}
    for fname in files:
        st = SafetensorsFile(os.path.join(model_dir, fname))
        for key in st.keys():
            name = key[len("bert."):] if key.startswith("bert.") else key
            if name in SKIPPED_KEYS:
                continue
            if name in sources:
                raise InputError(f"{model_dir}/{fname}: tensor '{key}' appears twice")
            sources[name] = (st, key)
    return sources


def load_weights(model, sources, model_dir):
    """Strict load (like load_state_dict(strict=True), listing every problem at once), one copy per tensor.

    Each tensor goes from the memory-mapped file straight into the parameter, upcast to
    float32 on the way: half the time and memory of building a state dict first.
    """
    params = {k: v for k, v in model.state_dict().items() if k not in SKIPPED_KEYS}
    missing = sorted(set(params) - set(sources))
    unexpected = sorted(set(sources) - set(params))
    misshaped = [f"{k}: file {s.entries[key]['shape']}, model {list(params[k].shape)}"
                 for k, (s, key) in sources.items() if k in params and s.entries[key]["shape"] != list(params[k].shape)]
    if missing or unexpected or misshaped:
        raise InputError(f"{model_dir}: weights do not match the config: missing {missing}, "
                         f"unexpected {unexpected}, mis-shaped {misshaped}")
    with torch.no_grad():
        for k, p in params.items():
            st, key = sources[k]
            st.read_into(key, p.numpy())  # state_dict tensors share storage with the parameters


def resolve_impl(impl):
    """auto -> transformers when importable (the stack researchers check against), else torch."""
    if impl != "auto":
        return impl
    try:
        import transformers  # noqa: F401
        return "transformers"
    except ImportError:
        return "torch"


def load_transformers(model_dir, has_pooler):
    """transformers.BertModel.from_pretrained, as a user loads it: eager attention, float32, strict."""
    try:
        import transformers
    except ImportError as e:
        raise InputError(f"--impl transformers: {e}; use --impl torch") from None
    transformers.logging.set_verbosity_error()  # no load report; problems are raised below
    transformers.logging.disable_progress_bar()
    model, info = transformers.BertModel.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32,
        add_pooling_layer=has_pooler, output_loading_info=True)
    problems = {k: sorted(v) for k, v in info.items() if v and k != "error_msgs"}
    problems = {k: [n for n in v if n not in SKIPPED_KEYS] for k, v in problems.items()}
    problems = {k: v for k, v in problems.items() if v}
    if problems or info.get("error_msgs"):
        raise InputError(f"{model_dir}: transformers could not load every weight: {problems} {info.get('error_msgs') or ''}")
    return model


def load_model(model_dir, impl):
    """-> (model, config, impl, impl_label, has_pooler); impl auto resolves to transformers|torch."""
    impl = resolve_impl(impl)
    c = bert_torch.BertConfig.from_json(os.path.join(model_dir, "config.json"))
    sources = open_weights(model_dir)
    has_pooler = "pooler.dense.weight" in sources
    try:
        if impl == "transformers":
            model = load_transformers(model_dir, has_pooler)
        else:
            with bert_torch.skip_init():  # load_weights overwrites every parameter
                model = bert_torch.BertModel(c, add_pooling_layer=has_pooler)
            load_weights(model, sources, model_dir)
    finally:
        for st in {id(s): s for s, _ in sources.values()}.values():
            st.close()
    return model.eval(), c, impl, impl_label(impl), has_pooler


def impl_label(impl):
    """'transformers X.Y.Z' or 'torch': the dump's `impl` metadata."""
    if impl != "transformers":
        return "torch"
    import transformers
    return f"transformers {transformers.__version__}"


def stack_versions(impl):
    """The libraries that made a dump, for its metadata: {torch_version, numpy_version, transformers_version}."""
    v = {"torch_version": torch.__version__, "numpy_version": np.__version__, "transformers_version": ""}
    if impl == "transformers":
        import transformers
        v["transformers_version"] = transformers.__version__
    return v


# ---------------------------------------------------------------- run

def average_pool(last_hidden, mask):
    """The e5 model card's average_pool, verbatim."""
    last_hidden = last_hidden.masked_fill(~mask[..., None].bool(), 0.0)
    return last_hidden.sum(dim=1) / mask.sum(dim=1)[..., None]


def run(model, c, impl, has_pooler, ids, mask, tt, hooks, ablate, writer):
    """One forward; every activation goes to writer.write(name, ndarray) as soon as it exists."""
    emit = lambda name, t: writer.write(name, t.detach().numpy())  # noqa: E731
    handles = H.register_ablation(model, c, ablate)  # before the capture, so hook_z is post-ablation
    if impl == "transformers":
        ext_mask = bert_torch.extended_attention_mask(mask)
        qk = {}

        def emit_hf(name, t):
            # transformers computes scores inline: rebuild them from this layer's q and k
            emit(name, t)
            if name.endswith("attn.hook_q") or name.endswith("attn.hook_k"):
                qk[name[-1]] = t
                if name.endswith("attn.hook_k"):
                    scores = H.attn_scores_from_qk(qk.pop("q"), qk.pop("k"), ext_mask)
                    emit(name[: -len("hook_k")] + "hook_attn_scores", scores)

        handles += H.register_capture(model, c, hooks, emit_hf, inline_modules=False)
    else:
        handles += H.register_capture(model, c, hooks, emit, inline_modules=True)
    try:
        if impl == "transformers":
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=tt,
                        output_hidden_states=True, output_attentions=True, return_dict=True)
            for i, a in enumerate(out.attentions):
                emit(f"blocks.{i}.attn.hook_pattern", a)
            last, pooler = out.last_hidden_state, out.pooler_output
        else:
            last, pooler = model(ids, mask, tt)
    finally:
        for h in handles:
            h.remove()
    pooled = average_pool(last, mask)
    emit("hook_pooled", pooled)
    emit("hook_embedding", F.normalize(pooled, p=2, dim=1))
    if has_pooler:
        emit("pooler_output", pooler)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="HF BERT folder: config.json + model.safetensors[.index.json]")
    ap.add_argument("--ids", required=True, help="JSON {input_ids, attention_mask?, token_type_ids?}")
    ap.add_argument("--output", required=True, help="output .safetensors")
    ap.add_argument("--ablate", default="", help="zero-ablate heads at hook_z, e.g. 3.5,0.1")
    ap.add_argument("--impl", choices=["auto", "transformers", "torch"], default="auto")
    ap.add_argument("--hooks", choices=[H.DEFAULT_HOOKS, H.ALL_HOOKS], default=H.DEFAULT_HOOKS)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("PARITY_THREADS", "0")),
                    help="torch threads (default: $PARITY_THREADS, else torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if resolve_impl(args.impl) == "torch" and args.impl == "auto":
        print("reference.py: transformers not importable, using the plain torch implementation", file=sys.stderr)
    try:
        model, c, impl, label, has_pooler = load_model(args.model, args.impl)
        ids, mask, tt = read_ids(args.ids, c)
        ablate = H.parse_ablate(args.ablate, c)
    except (InputError, bert_torch.ConfigError, ValueError, OSError) as e:
        sys.exit(f"reference.py: {e}")
    versions = stack_versions(impl)

    B, T = ids.shape
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **versions,
        "impl": label,
        "model": args.model,
        "hooks": args.hooks,
        "ablate": json.dumps([f"{l}.{h}" for l, h in ablate]),
        "input_ids": json.dumps(ids.tolist()),
        "attention_mask": json.dumps(mask.tolist()),
        "token_type_ids": json.dumps(tt.tolist()),
        "config": json.dumps(c.__dict__),
    }
    writer = StreamWriter(args.output, H.hook_specs(c, B, T, args.hooks, has_pooler), metadata)
    try:
        with torch.inference_mode():
            run(model, c, impl, has_pooler, ids, mask, tt, args.hooks, ablate, writer)
        writer.close()
    except BaseException:
        writer.abort()
        raise


if __name__ == "__main__":
    main()
