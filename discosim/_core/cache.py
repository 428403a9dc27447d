"""On-disk cache of derived constants (the slice constants A_r, B_r of a router), and the code
version that keys every saved result.

A cached value is keyed by everything that determines it -- the router's reduced weights, bias,
k and kind, the order, the method, the sample size, the seed -- and by the code version (the
package version and a hash of every source file), so a value is never reused by other code or for
another router. Files are JSON, written atomically; an unreadable or mismatched file is ignored
and rewritten.

Where: ``$DISCOSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/discosim``, else ``~/.cache/discosim``.
``DISCOSIM_CACHE_DIR=off`` turns the disk cache off (the in-process cache stays).
"""

import hashlib
import json
import os

from discosim._core.version import __version__

__all__ = ["code_version", "cache_dir", "load", "store"]

_CODE_VERSION = None


def code_version():
    """discosim's version, the versions of the numerical libraries and a hash of discosim's source
    files: results made by other code, or by other numpy/scipy/numba, are stale."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import numba
        import numpy
        import scipy

        # the package root, one level above this file's _core/
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for lib in (numpy, scipy, numba):
            h.update(f"{lib.__name__}={lib.__version__};".encode())
        for dirpath, dirnames, files in sorted(os.walk(root)):
            dirnames.sort()
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    h.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as fh:
                        h.update(fh.read())
        _CODE_VERSION = f"{__version__}+{h.hexdigest()[:12]}"
    return _CODE_VERSION


def cache_dir():
    """The cache directory, or None when the disk cache is off."""
    env = os.environ.get("DISCOSIM_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "discosim")


def _path(kind, key):
    d = cache_dir()
    if d is None:
        return None, None
    ident = json.dumps({"kind": kind, "key": key, "code": code_version()}, sort_keys=True)
    return os.path.join(d, f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"), ident


def load(kind, key):
    """The cached dict for ``key`` (JSON-able), or None (absent, unreadable, or another key)."""
    path, ident = _path(kind, key)
    if path is None:
        return None
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("ident") != ident or not isinstance(doc.get("value"), dict):
        return None
    return doc["value"]


def store(kind, key, value):
    """Save ``value`` (a JSON-able dict) for ``key``; a cache that cannot be written is skipped."""
    from discosim._core.io import write_atomic

    path, ident = _path(kind, key)
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, json.dumps({"ident": ident, "value": value}))
    except OSError:
        pass  # a read-only home must not stop a computation
