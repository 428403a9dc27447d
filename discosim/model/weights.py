"""Loading gate weights from ``.npy``, ``.npz`` and ``.safetensors`` files, never by unpickling.

Checkpoints store a router's gate as a 2-D tensor of shape (M, D), e.g.
``model.layers.3.mlp.gate.weight``; pass that name as ``key``. Half-precision and bfloat16
tensors are converted to float64.
"""

import os

import numpy as np

from discosim._core.errors import InputError

__all__ = ["load_weights"]


def _npz_or_safetensors_keys(path):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return list(f.files)
    if ext == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as f:
            return list(f.keys())
    return []


def load_weights(path, key=None):
    """Load one array from ``path``.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.npz`` or ``.safetensors`` file.
    key : str, optional
        Array name inside an ``.npz`` / ``.safetensors`` file; optional when the file holds one
        array.

    Returns
    -------
    ndarray of float64
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InputError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):
        raise InputError(f"weights file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            if key is not None:
                raise InputError(f"a .npy file holds one array; drop --key {key!r}")
            arr = np.load(path, allow_pickle=False)
        elif ext in (".npz", ".safetensors"):
            keys = _npz_or_safetensors_keys(path)
            if key is None:
                if len(keys) != 1:
                    raise InputError(f"{path} holds {len(keys)} arrays; name one with key "
                                     f"(first few: {', '.join(keys[:5])})")
                key = keys[0]
            if key not in keys:
                near = [k for k in keys if key.split(".")[-1] in k][:5]
                hint = f"; similar: {', '.join(near)}" if near else ""
                raise InputError(f"key {key!r} not in {path}{hint}")
            arr = _read_key(path, ext, key)
        else:
            raise InputError(f"unsupported weights format {ext!r}; use .npy, .npz or .safetensors")
    except InputError:
        raise
    except Exception as exc:  # corrupt files raise many types; the user needs one line
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iuf":  # complex would silently lose its imaginary part
        raise InputError(f"{path}: the array has dtype {arr.dtype}; gate weights must be real numbers")
    return arr.astype(np.float64)


def _read_key(path, ext, key):
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return f[key]
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        try:
            return f.get_tensor(key)
        except TypeError:
            # numpy has no bfloat16: widen the raw bits to float32 by hand.
            return _bf16_tensor(path, key)


def _bf16_tensor(path, key):
    import json
    import struct

    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        meta = header[key]
        if meta["dtype"] != "BF16":
            raise InputError(f"cannot convert dtype {meta['dtype']} of {key!r}")
        start, end = meta["data_offsets"]
        fh.seek(8 + n + start)
        raw = np.frombuffer(fh.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(meta["shape"])
