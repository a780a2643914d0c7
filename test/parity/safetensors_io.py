"""Minimal safetensors reader and streaming writer (numpy only).

Hand-written so the parity reference needs nothing beyond Debian's python3-torch
(which brings numpy). Format: 8-byte little-endian header length N, N bytes of
JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
{str: str}}, then the data buffer; offsets are relative to the buffer start and
must tile it without holes or overlaps.

The writer is streaming: every tensor's name and shape are declared up front,
the header is written first, and each tensor is written at its offset as soon as
it exists. An e5-large forward on 8x512 tokens with every hook is >10 GB, so
nothing is ever held in memory as a whole.
"""
import json
import mmap
import os
import struct

import numpy as np

# safetensors dtype name -> (numpy dtype, bytes per element). BF16 has no numpy
# dtype: it is read as uint16 and widened by hand (bf16 is the top half of f32).
DTYPES = {
    "F64": (np.float64, 8),
    "F32": (np.float32, 4),
    "F16": (np.float16, 2),
    "BF16": (np.uint16, 2),
    "I64": (np.int64, 8),
    "I32": (np.int32, 4),
    "I16": (np.int16, 2),
    "I8": (np.int8, 1),
    "U8": (np.uint8, 1),
    "BOOL": (np.bool_, 1),
}

MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A malformed safetensors file; the message names the file and the field."""


def bf16_to_f32(raw_u16):
    """Widen raw bfloat16 bits (uint16 array) to float32 exactly."""
    return (raw_u16.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile:
    """Read-only view of one .safetensors file (memory-mapped)."""

    def __init__(self, path):
        self.path = path
        self._fh = open(path, "rb")
        size = os.fstat(self._fh.fileno()).st_size
        if size < 8:
            raise SafetensorsError(f"{path}: file is {size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", self._fh.read(8))
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise SafetensorsError(f"{path}: header length {n} does not fit in a {size}-byte file")
        try:
            header = json.loads(self._fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON: {e}") from None
        if not isinstance(header, dict):
            raise SafetensorsError(f"{path}: header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        self.data_start = 8 + n
        self.data_len = size - self.data_start
        self.entries = {}
        spans = []
        for name, e in header.items():
            self.entries[name] = self._check_entry(name, e)
            spans.append((*e["data_offsets"], name))
        # Offsets must tile the buffer exactly (what the Rust reference enforces).
        pos = 0
        for begin, end, name in sorted(spans):
            if begin != pos:
                raise SafetensorsError(f"{self.path}: tensor '{name}' starts at {begin}, expected {pos} (hole or overlap)")
            pos = end
        if pos != self.data_len:
            raise SafetensorsError(f"{self.path}: tensors cover {pos} bytes, data buffer is {self.data_len}")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size > 0 else None

    def _check_entry(self, name, e):
        where = f"{self.path}: tensor '{name}'"
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{where}: entry must have exactly dtype, shape, data_offsets")
        if e["dtype"] not in DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {e['dtype']!r}")
        shape, offs = e["shape"], e["data_offsets"]
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise SafetensorsError(f"{where}: shape {shape!r} is not a list of non-negative ints")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            raise SafetensorsError(f"{where}: data_offsets {offs!r} is not [begin, end]")
        nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPES[e["dtype"]][1]
        if offs[1] - offs[0] != nbytes or offs[0] < 0 or offs[1] > self.data_len:
            raise SafetensorsError(
                f"{where}: data_offsets {offs} hold {offs[1] - offs[0]} bytes, "
                f"dtype {e['dtype']} shape {shape} needs {nbytes} (buffer is {self.data_len} bytes)"
            )
        return e

    def keys(self):
        return list(self.entries)

    def raw(self, name):
        """The tensor as stored (BF16 as uint16 bits), a read-only numpy view."""
        e = self.entries[name]
        np_dtype, size = DTYPES[e["dtype"]]
        begin = self.data_start + e["data_offsets"][0]
        count = (e["data_offsets"][1] - e["data_offsets"][0]) // size
        arr = np.frombuffer(self._mm, dtype=np.dtype(np_dtype).newbyteorder("<"), count=count, offset=begin) \
            if count else np.zeros(0, np_dtype)
        return arr.reshape(e["shape"])

    def float32(self, name):
        """The tensor upcast to a fresh float32 array (F32/F16/BF16 only)."""
        e = self.entries[name]
        if e["dtype"] not in ("F32", "F16", "BF16", "F64"):
            raise SafetensorsError(f"{self.path}: tensor '{name}' is {e['dtype']}, expected a float dtype")
        raw = self.raw(name)
        return bf16_to_f32(raw) if e["dtype"] == "BF16" else raw.astype(np.float32)  # astype copies

    def read_into(self, name, out):
        """Upcast a float tensor straight into `out` (a float32 array of the same shape): one pass, no temp."""
        e = self.entries[name]
        if e["dtype"] not in ("F32", "F16", "BF16", "F64"):
            raise SafetensorsError(f"{self.path}: tensor '{name}' is {e['dtype']}, expected a float dtype")
        if list(out.shape) != e["shape"]:
            raise SafetensorsError(f"{self.path}: tensor '{name}' has shape {e['shape']}, expected {list(out.shape)}")
        raw = self.raw(name)
        if e["dtype"] == "BF16":
            out[...] = bf16_to_f32(raw)
        else:
            np.copyto(out, raw, casting="same_kind")

    def close(self):
        if self._mm is not None:
            self._mm.close()
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_file(path):
    """All tensors of a file as arrays in their stored dtype (BF16 widened to F32), plus metadata."""
    with SafetensorsFile(path) as f:
        tensors = {}
        for k, e in f.entries.items():
            tensors[k] = f.float32(k) if e["dtype"] == "BF16" else f.raw(k).copy()
        return tensors, dict(f.metadata)


class StreamWriter:
    """Write a safetensors file whose tensor names and shapes are known before their data.

    specs: list of (name, shape) or (name, shape, dtype), dtype "F32" by default. Tensors
    are laid out by element size, largest first (stable), so every offset is aligned to
    its element size: a reader may view the buffer as a typed array without copying.
    Data goes to `path + '.tmp'` and is renamed to `path` by close(), which fails if any
    tensor was never written.
    """

    def __init__(self, path, specs, metadata):
        self.path = path
        self.tmp = path + ".tmp"
        specs = [(s[0], [int(d) for d in s[1]], s[2] if len(s) > 2 else "F32") for s in specs]
        names = [s[0] for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tensor names in {names}")
        self.entries = {}
        offset = 0
        for name, shape, dtype in sorted(specs, key=lambda s: -DTYPES[s[2]][1]):
            nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype][1]
            self.entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        header = {n: self.entries[n] for n in names}  # header keeps the caller's order
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
        hb += b" " * (-len(hb) % 8)  # pad so the data buffer is 8-byte aligned
        self.data_start = 8 + len(hb)
        self.written = set()
        self._fh = open(self.tmp, "wb")
        self._fh.write(struct.pack("<Q", len(hb)))
        self._fh.write(hb)
        self._fh.truncate(self.data_start + offset)

    def write(self, name, array):
        e = self.entries.get(name)
        if e is None:
            raise KeyError(f"{name!r} was not declared")
        if name in self.written:
            raise ValueError(f"{name!r} written twice")
        np_dtype = np.dtype(DTYPES[e["dtype"]][0]).newbyteorder("<")
        if e["dtype"] != "F32" and np.asarray(array).dtype != np_dtype:
            # Only float32 is converted; anything else must arrive in its stored form
            # (BF16 as uint16 bits) so no rounding happens behind the caller's back.
            raise TypeError(f"{name!r}: got {np.asarray(array).dtype}, declared {e['dtype']} needs {np_dtype}")
        a = np.ascontiguousarray(array, dtype=np_dtype)
        if list(a.shape) != e["shape"]:
            raise ValueError(f"{name!r}: shape {list(a.shape)}, declared {e['shape']}")
        self._fh.seek(self.data_start + e["data_offsets"][0])
        self._fh.write(memoryview(a).cast("B"))
        self.written.add(name)

    def close(self):
        missing = [n for n in self.entries if n not in self.written]
        self._fh.close()
        if missing:
            os.unlink(self.tmp)
            raise RuntimeError(f"{self.path}: {len(missing)} tensors never written, e.g. {missing[:5]}")
        os.replace(self.tmp, self.path)

    def abort(self):
        self._fh.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def save_file(tensors, path, metadata=None, dtypes=None):
    """Write a dict of arrays (small files: tests and make_random_bert).

    dtypes maps a name to its safetensors dtype (default F32); F32 inputs are converted,
    others must already be stored-form arrays (BF16 as uint16 bits).
    """
    dtypes = dtypes or {}
    w = StreamWriter(path, [(k, np.shape(v), dtypes.get(k, "F32")) for k, v in tensors.items()], metadata or {})
    for k, v in tensors.items():
        w.write(k, v)
    w.close()
