"""Identity of a saved study point: what must be equal for a saved point to be reused.

A point's identity is the study name, the base seed, every parameter, the code version
(discosim's version and a hash of its sources), the device when it is not the CPU (the GPU draws
other random numbers), and the content of every input file the point reads: for a checkpoint
(``path``) its index, every shard and the ``config.json`` beside it (also when ``path`` names
one ``.safetensors`` file); for hidden states (``inputs``) the ``.npy``/``.npz`` file. Files are
hashed by content (SHA-256 of the bytes, streamed), so a checkpoint rewritten in place, one byte
of a shard changed or ``k`` edited in ``config.json`` makes another point, whatever the file's
name, size or modification time; within one run each file is hashed once (cached by path, size
and modification time).

:func:`point_identity` is the one identity of every study; :func:`read_point` reads a saved
point back and says in one line why it cannot be reused.
"""

import hashlib
import json
import os

import numpy as np

from discosim._core.cache import code_version

__all__ = ["point_key", "point_seed", "point_identity", "rows_digest", "read_point", "FileHasher",
           "INPUT_FILES", "input_files"]


def point_key(params):
    """Stable short name of a grid point's file (hash of its sorted parameters)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_seed(base_seed, params):
    """The point's SeedSequence: base seed plus words of the parameter hash (order-free)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
    words = tuple(int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(base_seed, spawn_key=words)


# ------------------------------------------------------------------ the input files of a point
def _checkpoint_files(value):
    """The files opening the checkpoint at ``value`` reads (index, shards, config.json)."""
    from discosim.checkpoints.store import open_store

    if not value or not os.path.exists(value):
        return ()  # nothing to read: the point itself says so in one line
    store = open_store(value)  # headers only; a broken checkpoint fails here, before any point
    return store.input_files


def _inputs_files(value):
    """The hidden-states file of ``inputs`` (none for the input models sphere and ball)."""
    from discosim.audit.estimators import INPUT_MODELS

    if value in INPUT_MODELS or not os.path.isfile(value):
        return ()
    return (os.path.abspath(value),)


# text parameter -> the files its value makes a point read (registry.TEXT_PARAMETERS: each has one)
INPUT_FILES = {"path": _checkpoint_files, "inputs": _inputs_files}


def input_files(params):
    """``{parameter: (absolute paths, ...)}`` of every input file a point with ``params`` reads."""
    out = {}
    for key, reader in INPUT_FILES.items():
        value = params.get(key)
        if isinstance(value, str) and value:
            files = reader(value)
            if files:
                out[key] = tuple(os.path.abspath(f) for f in files)
    return out


class FileHasher:
    """SHA-256 of files by content, each hashed once per (path, size, mtime_ns).

    One hasher lives for one run: a file rewritten during the run with the same size and
    modification time (a coarse-clock file system) is not seen, but the next run hashes afresh.
    """

    def __init__(self):
        self._digests = {}

    def digest(self, path):
        """``(size in bytes, hex SHA-256)`` of the file at ``path``, streamed."""
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            with open(path, "rb") as fh:
                self._digests[key] = hashlib.file_digest(fh, "sha256").hexdigest()
        return st.st_size, self._digests[key]


def _files_identity(params, hasher):
    """``{parameter: [{"file", "bytes", "sha256"}, ...]}``; file names relative to their folder."""
    out = {}
    for key, files in input_files(params).items():
        root = os.path.commonpath([os.path.dirname(f) for f in files])
        entries = []
        for f in files:
            size, digest = hasher.digest(f)
            entries.append({"file": os.path.relpath(f, root), "bytes": size, "sha256": digest})
        out[key] = sorted(entries, key=lambda e: e["file"])
    return out


def point_identity(name, params, seed, device="cpu", hasher=None):
    """What makes a saved point reusable, and its hash: ``(identity dict, hex digest)``.

    Parameters
    ----------
    name : str
        The study.
    params : dict
        The point's parameters (checked).
    seed : int
        The run's base seed.
    device : {"cpu", "cuda"}
        Recorded when it is not the CPU: a GPU point is never reused for a CPU run, nor back.
    hasher : FileHasher, optional
        The run's file hasher (a fresh one by default).

    Returns
    -------
    tuple of (dict, str)
        The identity (study, seed, params, code, device, and ``files``: every input file's name,
        size and SHA-256 by parameter) and the SHA-256 of its sorted JSON.
    """
    ident = {"study": name, "seed": seed, "params": params, "code": code_version()}
    if device != "cpu":
        ident["device"] = device
    files = _files_identity(params, hasher or FileHasher())
    if files:
        ident["files"] = files
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
    return ident, digest


def rows_digest(rows):
    """Digest of a point's rows in their saved (JSON) form: an edited or damaged point is stale."""
    from discosim._core.results import to_jsonable

    text = json.dumps(to_jsonable(rows), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _changed_files(old, new):
    """The input files whose content differs between two identities' ``files`` (one line)."""
    def table(files):
        if not isinstance(files, dict):
            return {}
        return {(k, e.get("file")): e.get("sha256") for k, v in files.items() if isinstance(v, list)
                for e in v if isinstance(e, dict)}

    a, b = table(old), table(new)
    names = sorted({f"{k}: {f}" for (k, f) in set(a) | set(b) if a.get((k, f)) != b.get((k, f))})
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def read_point(path, ident, digest):
    """A saved point that this run may reuse.

    Returns
    -------
    tuple
        ``(doc, None)`` for a matching point; ``(None, None)`` when there is none; ``(None,
        why)`` for one that is unreadable, of another identity, or edited (``why``: one line).
    """
    if not os.path.exists(path):
        return None, None
    try:
        with open(path) as fh:
            doc = json.load(fh)
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise ValueError("no rows")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__})"
    if doc.get("identity_hash") != digest:
        old = doc.get("identity") if isinstance(doc.get("identity"), dict) else {}
        what = [f"another {k}" for k in ("study", "seed", "params", "code", "device")
                if old.get(k) != ident.get(k)]
        if old.get("files") != ident.get("files"):
            changed = _changed_files(old.get("files"), ident.get("files"))
            what.append(f"other input files ({changed} changed)" if changed else "other input files")
        return None, f"{path} was made with {', '.join(what or ['another identity'])}"
    if doc.get("rows_digest") != rows_digest(doc["rows"]):
        return None, f"{path} has rows that do not match their digest (edited or damaged)"
    return doc, None
