"""Reading single tensors out of ``.safetensors`` files without loading the rest (THEORY §9).

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [start, end]}``, then the data; a tensor's bytes
lie at ``8 + n + start .. 8 + n + end``. Parsing the header ourselves lets us seek to exactly the
router and norm tensors of a 100 GB checkpoint and read nothing else. This is the one reader of
the format in discosim: gate weights (:mod:`discosim.model.weights`) and checkpoints
(:mod:`discosim.checkpoints`) both read through it.

Every header value is checked here, once, before anything is read: the header is JSON of bounded
size and nesting with no NaN/Infinity, each shape is a list of non-negative integers, each byte
range a pair of integers, and the byte size of a shape (a Python integer, so ``[2**32, 2**33]``
cannot wrap around) equals its byte range, which lies inside the file.

Widening to float64 is exact for every stored float format: bfloat16 is the top half of a float32
(shift the 16 bits into the high half of a uint32 and reinterpret), float16 and float32 are subsets
of float64.
"""

import json
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from discosim._core.errors import InputError

__all__ = ["TensorInfo", "read_header", "read_tensor", "widen", "parse_json", "DTYPE_NAMES",
           "MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "MAX_DIMS"]

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
# The largest real headers are a few MB (a single-file checkpoint of 100k tensors: ~12 MB).
# Parsing costs about 10 bytes of Python objects per header byte, so 64 MiB stays near 0.7 GB.
MAX_HEADER_BYTES = 64 << 20
# Real headers, indexes and configs nest 2-4 levels; deeper input is refused, not recursed into.
MAX_JSON_DEPTH = 32
# Real tensors have at most 5 dimensions.
MAX_DIMS = 16


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _depth(obj, limit):
    """True when ``obj`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if d > limit:
            return False
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return True


def parse_json(raw, what, *, strict=True, max_depth=MAX_JSON_DEPTH):
    """Parse JSON ``raw`` (bytes or str) from a file, with one-line errors.

    Parameters
    ----------
    raw : bytes or str
    what : str
        Names the source at the start of error messages (e.g. ``"config /m/config.json"``).
    strict : bool
        Refuse ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, but Python's parser accepts them).
    max_depth : int
        Deepest nesting of objects and arrays accepted.

    Raises
    ------
    InputError
        Invalid UTF-8 or JSON, a refused constant, or nesting deeper than ``max_depth``.
    """
    try:
        obj = json.loads(raw, parse_constant=_no_constant if strict else None)
    except RecursionError:
        raise InputError(f"{what}: nests deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{what}: not valid JSON ({exc})".splitlines()[0]) from None
    if isinstance(obj, (dict, list)) and not _depth(obj, max_depth):
        raise InputError(f"{what}: nests deeper than {max_depth} levels")
    return obj


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

    @property
    def size(self):
        """Number of entries (a Python int: no overflow)."""
        return math.prod(self.shape)


def _int(value):
    """``value`` if it is a JSON integer (not a bool, not a float such as 1e999), else None."""
    return value if type(value) is int else None


def _entry(path, name, meta, base, size):
    """Check one header entry; return its TensorInfo."""
    bad = InputError(f"{path}: corrupt header entry for tensor {name!r}: needs dtype (a string), "
                     f"shape (a list of integers >= 0) and data_offsets (two integers)")
    if not isinstance(meta, dict):
        raise bad
    dtype, shape, offsets = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list) \
            or len(offsets) != 2 or len(shape) > MAX_DIMS:
        raise bad
    shape = tuple(_int(s) for s in shape)
    start, end = (_int(v) for v in offsets)
    if any(s is None or s < 0 for s in shape) or start is None or end is None:
        raise bad
    itemsize = _ITEMSIZE.get(dtype)
    nbytes = math.prod(shape) * itemsize if itemsize is not None else None
    if (nbytes is not None and end - start != nbytes) or not 0 <= start <= end \
            or base + end > size:
        raise InputError(f"{path}: tensor {name!r} has byte range [{start}, {end}) that does not "
                         f"fit its shape {list(shape)} and dtype {dtype!r} in a {size}-byte file")
    return TensorInfo(name, path, dtype, shape, base + start, base + end)


def read_header(path):
    """Return ``{name: TensorInfo}`` for the tensors of one safetensors file (header only).

    Raises
    ------
    InputError
        When the file is missing or its header is not a valid safetensors header (see the module
        docstring for what is checked).
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise InputError(f"{path} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise InputError(f"{path} is not a safetensors file (header length {n} > file "
                                 f"size)")
            if n > MAX_HEADER_BYTES:
                raise InputError(f"{path}: safetensors header of {n} bytes; at most "
                                 f"{MAX_HEADER_BYTES} are read (real headers are a few MB)")
            raw = fh.read(n)
    except FileNotFoundError:
        raise InputError(f"safetensors file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a safetensors file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    header = parse_json(raw, f"{path} has a corrupt safetensors header")
    if not isinstance(header, dict):
        raise InputError(f"{path} has a corrupt safetensors header (not a JSON object)")
    base = 8 + n
    return {name: _entry(path, name, meta, base, size) for name, meta in header.items()
            if name != "__metadata__"}


def widen(raw, dtype):
    """Convert raw little-endian words of safetensors ``dtype`` to float64, exactly."""
    if dtype == "BF16":
        # bf16 is the high half of an IEEE float32: put the 16 bits on top and reinterpret.
        words = raw.astype(np.uint32)
        words <<= 16
        return words.view(np.float32).astype(np.float64)
    return raw.astype(np.float64)


def read_tensor(info, max_entries=None):
    """Read exactly one tensor's bytes and return it as a float64 array of its stored shape.

    Only ``info.end - info.start`` bytes are read (a seek and one read), so the memory used is the
    tensor's own size, whatever else the file holds.

    Parameters
    ----------
    info : TensorInfo
    max_entries : int, optional
        Refuse (before reading) a tensor of more entries: the caller's memory cap.
    """
    if info.dtype not in _FLOAT_DTYPES:
        raise InputError(f"tensor {info.name!r} in {info.file} is stored as {info.dtype!r}; "
                         f"only {', '.join(_FLOAT_DTYPES)} can be read exactly")
    if max_entries is not None and info.size > max_entries:
        raise InputError(f"tensor {info.name!r} in {info.file} has {info.size} entries "
                         f"(shape {list(info.shape)}); at most {max_entries} fit discosim's memory "
                         f"budget")
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
