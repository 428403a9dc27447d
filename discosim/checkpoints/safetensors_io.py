"""Reading single tensors out of ``.safetensors`` files without loading the rest (THEORY §9).

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [start, end]}``, then the data; a tensor's bytes
lie at ``8 + n + start .. 8 + n + end``. Parsing the header ourselves lets us seek to exactly the
router and norm tensors of a 100 GB checkpoint and read nothing else.

Widening to float64 is exact for every stored float format: bfloat16 is the top half of a float32
(shift the 16 bits into the high half of a uint32 and reinterpret), float16 and float32 are subsets
of float64.
"""

import json
import os
import struct
from dataclasses import dataclass

import numpy as np

from discosim._core.errors import InputError

__all__ = ["TensorInfo", "read_header", "read_tensor", "widen", "DTYPE_NAMES"]

# safetensors dtype code -> (numpy dtype of the raw little-endian words, readable name)
_FLOAT_DTYPES = {
    "BF16": ("<u2", "bfloat16"),
    "F16": ("<f2", "float16"),
    "F32": ("<f4", "float32"),
    "F64": ("<f8", "float64"),
}
DTYPE_NAMES = {code: name for code, (_, name) in _FLOAT_DTYPES.items()}
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
             "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
# A header is a few MB even for the largest shards; anything bigger is a corrupt length word.
_MAX_HEADER = 1 << 28


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: ``file``, safetensors ``dtype`` code, ``shape`` and absolute byte
    range ``[start, end)`` in the file."""

    name: str
    file: str
    dtype: str
    shape: tuple
    start: int
    end: int

    @property
    def dtype_name(self):
        return DTYPE_NAMES.get(self.dtype, self.dtype)


def read_header(path):
    """Return ``{name: TensorInfo}`` for the tensors of one safetensors file (header only).

    Raises
    ------
    InputError
        When the file is missing or its header is not a valid safetensors header.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise InputError(f"{path} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise InputError(f"{path} is not a safetensors file (header length {n} > file "
                                 f"size)")
            raw = fh.read(n)
    except FileNotFoundError:
        raise InputError(f"safetensors file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path} has a corrupt safetensors header: {exc}".splitlines()[0]
        raise InputError(msg) from None
    if not isinstance(header, dict):
        raise InputError(f"{path} has a corrupt safetensors header (not a JSON object)")
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(meta["dtype"])
            shape = tuple(int(s) for s in meta["shape"])
            start, end = (int(v) for v in meta["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: corrupt header entry for tensor {name!r}") from None
        itemsize = _ITEMSIZE.get(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if (itemsize is not None and end - start != count * itemsize) or not 0 <= start <= end \
                or base + end > size:
            raise InputError(f"{path}: tensor {name!r} has byte range [{start}, {end}) that does "
                             f"not fit its shape {list(shape)} and dtype {dtype} in a {size}-byte "
                             f"file")
        out[name] = TensorInfo(name, path, dtype, shape, base + start, base + end)
    return out


def widen(raw, dtype):
    """Convert raw little-endian words of safetensors ``dtype`` to float64, exactly."""
    if dtype == "BF16":
        # bf16 is the high half of an IEEE float32: put the 16 bits on top and reinterpret.
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return raw.astype(np.float64)


def read_tensor(info):
    """Read exactly one tensor's bytes and return it as a float64 array of its stored shape.

    Only ``info.end - info.start`` bytes are read (a seek and one read), so the memory used is the
    tensor's own size, whatever else the file holds.
    """
    if info.dtype not in _FLOAT_DTYPES:
        raise InputError(f"tensor {info.name!r} in {info.file} is stored as {info.dtype}; "
                         f"only {', '.join(_FLOAT_DTYPES)} can be read exactly")
    word, _ = _FLOAT_DTYPES[info.dtype]
    nbytes = info.end - info.start
    try:
        with open(info.file, "rb") as fh:
            fh.seek(info.start)
            buf = fh.read(nbytes)
    except OSError as exc:
        raise InputError(f"cannot read tensor {info.name!r} from {info.file}: "
                         f"{exc.strerror or exc}") from None
    if len(buf) != nbytes:
        raise InputError(f"{info.file} is truncated: tensor {info.name!r} needs {nbytes} bytes, "
                         f"found {len(buf)}")
    raw = np.frombuffer(buf, dtype=word)
    return widen(raw, info.dtype).reshape(info.shape)
