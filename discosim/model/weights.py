"""Loading arrays from ``.npy``, ``.npz`` and ``.safetensors`` files, never by unpickling.

Checkpoints store a router's gate as a 2-D tensor of shape (M, D), e.g.
``model.layers.3.mlp.gate.weight``; pass that name as ``key``. Half-precision and bfloat16
tensors are converted to float64.

Nothing is read before it is known to fit: the shape and dtype of an array come from its header
(the ``.npy`` header, the header of each ``.npz`` member, read through the zip file without
decompressing the data, or the safetensors header), and an array is refused in one line when
its header disagrees with the bytes stored, when its dtype is not a real number, or when it
has more entries than the caller's cap (``max_entries``), before its data are decompressed or
read. An ``.npz`` file is read one member at a time (:class:`NpzArrays`).
"""

import math
import os
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from discosim._core.errors import InputError
from discosim._core.memory import MAX_ARRAY_ENTRIES
from discosim.model.safetensors import read_header, read_tensor

__all__ = ["load_weights", "NpzArrays", "npy_header", "map_npy", "open_arrays", "MAX_ARRAY_ENTRIES"]

# npz files hold one array per layer or per name: a few hundred at most in real use. The zip
# directory costs ~0.5 kB of Python objects per member, so this keeps opening one below 30 MB.
MAX_NPZ_MEMBERS = 1 << 16


def npy_header(fp, where):
    """``(shape, dtype, fortran_order, data_bytes)`` of the ``.npy`` stream ``fp`` (left at the
    start of the data); one-line :class:`InputError` when it is not a ``.npy`` header."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, zipfile.BadZipFile) as exc:
        msg = str(exc) or type(exc).__name__
        raise InputError(f"{where} is not a valid .npy array: {msg}".splitlines()[0]) from None
    if dtype.hasobject:
        raise InputError(f"cannot read {where}: it holds Python objects (a pickle); only numeric "
                         f"arrays are read")
    return tuple(shape), dtype, fortran, math.prod(shape) * dtype.itemsize


def _check_header(shape, dtype, where, max_entries):
    if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
        # complex would silently lose its imaginary part
        raise InputError(f"{where} has dtype {dtype}; only arrays of real numbers are read")
    n = math.prod(shape)
    if max_entries is not None and n > max_entries:
        raise InputError(f"{where} has {n} entries (shape {list(shape)}); at most {max_entries} "
                         f"fit discosim's memory budget")


def _read_data(fp, shape, dtype, fortran, nbytes, where):
    """The array whose header was just read from ``fp`` (exactly ``nbytes`` more bytes)."""
    arr = np.empty(math.prod(shape), dtype=dtype)
    view = memoryview(arr.view(np.uint8).reshape(-1)) if nbytes else None
    got = 0
    while got < nbytes:  # by 1 MB: a compressed member is inflated into ``arr`` piece by piece
        n = fp.readinto(view[got:min(nbytes, got + (1 << 20))])
        if not n:
            raise InputError(f"{where} is truncated: {nbytes} bytes of data expected, {got} found")
        got += n
    if fortran:
        return arr.reshape(shape[::-1]).T
    return arr.reshape(shape)


def _load_npy(path, max_entries):
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            shape, dtype, fortran, nbytes = npy_header(fh, path)
            _check_header(shape, dtype, path, max_entries)
            if fh.tell() + nbytes != size:
                raise InputError(f"{path}: its header declares {nbytes} bytes of data for shape "
                                 f"{list(shape)}, the file holds {size - fh.tell()}")
            return _read_data(fh, shape, dtype, fortran, nbytes, path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def map_npy(path, max_entries=None):
    """An ``.npy`` file mapped read-only (nothing read yet), after its header is checked: a numeric
    dtype, at most ``max_entries`` entries, and exactly the bytes its shape needs."""
    path = _check_path(path, ".npy file")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            shape, dtype, _, nbytes = npy_header(fh, path)
            start = fh.tell()
        _check_header(shape, dtype, path, max_entries)
        if start + nbytes != size:
            raise InputError(f"{path}: its header declares {nbytes} bytes of data for shape "
                             f"{list(shape)}, the file holds {size - start}")
        if nbytes == 0:  # an empty array cannot be mapped
            return np.empty(shape, dtype=dtype)
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}".splitlines()[0]) from None


class NpzArrays(Mapping):
    """The arrays of an ``.npz`` file by name, each read (and checked) only when asked for.

    Opening reads the zip directory and, for every member, its ``.npy`` header (a few hundred
    bytes inflated), so shapes and dtypes are known and checked before any data are read:
    ``shape(key)``, ``dtype(key)``. ``arrays[key]`` reads one member, refusing it before
    decompressing when it has more than ``max_entries`` entries.
    """

    def __init__(self, path, max_entries=MAX_ARRAY_ENTRIES):
        self.path = os.fspath(path)
        self.max_entries = max_entries
        self._headers = {}
        try:
            with zipfile.ZipFile(self.path) as zf:
                infos = zf.infolist()
                if len(infos) > MAX_NPZ_MEMBERS:
                    raise InputError(f"{self.path} holds {len(infos)} members; at most "
                                     f"{MAX_NPZ_MEMBERS} are read")
                for info in infos:
                    key = info.filename[:-4] if info.filename.endswith(".npy") else None
                    if key is None:
                        raise InputError(f"{self.path}: member {info.filename!r} is not a .npy "
                                         f"array")
                    where = f"{self.path}[{key!r}]"
                    with zf.open(info) as fp:
                        shape, dtype, fortran, nbytes = npy_header(fp, where)
                        header_len = fp.tell()
                    if header_len + nbytes != info.file_size:
                        raise InputError(f"{where}: its header declares {nbytes} bytes of data "
                                         f"for shape {list(shape)}, the member holds "
                                         f"{info.file_size - header_len}")
                    self._headers[key] = (info, shape, dtype, fortran, nbytes)
        except InputError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
                NotImplementedError, zlib.error) as exc:
            msg = str(exc) or type(exc).__name__
            raise InputError(f"{self.path} is not a valid .npz file: {msg}".splitlines()[0]) \
                from None
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def shape(self, key):
        return self._headers[key][1]

    def dtype(self, key):
        return self._headers[key][2]

    def __iter__(self):
        return iter(self._headers)

    def __len__(self):
        return len(self._headers)

    def __contains__(self, key):
        return key in self._headers

    def __getitem__(self, key):
        info, shape, dtype, fortran, nbytes = self._headers[key]
        where = f"{self.path}[{key!r}]"
        _check_header(shape, dtype, where, self.max_entries)
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(info) as fp:
                npy_header(fp, where)
                return _read_data(fp, shape, dtype, fortran, nbytes, where)
        except InputError:
            raise
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
            msg = str(exc) or type(exc).__name__
            raise InputError(f"cannot read {where}: {msg}".splitlines()[0]) from None
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc.strerror or exc}") from None


def _check_path(path, what="weights file"):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InputError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):
        raise InputError(f"{what} not found: {path}")
    return path


def open_arrays(path, max_entries=MAX_ARRAY_ENTRIES):
    """``{name: array}`` view of a ``.npz`` or ``.safetensors`` file, read one array at a time."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        return NpzArrays(path, max_entries)
    return _SafetensorsArrays(path, max_entries)


class _SafetensorsArrays(Mapping):
    def __init__(self, path, max_entries):
        self._infos = read_header(path)
        self.max_entries = max_entries

    def shape(self, key):
        return self._infos[key].shape

    def __iter__(self):
        return iter(self._infos)

    def __len__(self):
        return len(self._infos)

    def __getitem__(self, key):
        return read_tensor(self._infos[key], self.max_entries)


def load_weights(path, key=None, *, max_entries=MAX_ARRAY_ENTRIES):
    """Load one array from ``path`` as float64.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.npz`` or ``.safetensors`` file.
    key : str, optional
        Array name inside an ``.npz`` / ``.safetensors`` file; optional when the file holds one
        array.
    max_entries : int or None
        Refuse, before reading its data, an array of more entries (default: what discosim's
        memory budget allows for an array that is loaded and converted to float64).

    Returns
    -------
    ndarray of float64
    """
    path = _check_path(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        if key is not None:
            raise InputError(f"a .npy file holds one array; drop --key {key!r}")
        arr = _load_npy(path, max_entries)
    elif ext in (".npz", ".safetensors"):
        arrays = open_arrays(path, max_entries)
        keys = list(arrays)
        if key is None:
            if len(keys) != 1:
                raise InputError(f"{path} holds {len(keys)} arrays; name one with key "
                                 f"(first few: {', '.join(map(repr, keys[:5]))})")
            key = keys[0]
        if not isinstance(key, str) or key not in arrays:
            near = [k for k in keys if isinstance(key, str) and key.split(".")[-1] in k][:5]
            hint = f"; similar: {', '.join(map(repr, near))}" if near else ""
            raise InputError(f"key {key!r} not in {path}{hint}")
        arr = arrays[key]
    else:
        raise InputError(f"unsupported weights format {ext!r}; use .npy, .npz or .safetensors")
    return np.asarray(arr, dtype=np.float64)
