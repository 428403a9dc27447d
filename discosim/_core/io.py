"""Writing results so that nothing a run has saved is ever half-written, lost, or put outside its
folder.

Every file goes to a temporary name beside its target and is moved into place with ``os.replace``
(atomic on POSIX): a crash, a full disk or Ctrl-C leaves either the old file or the new one, never
a torn one. Figures go the same way (:func:`save_figure`). Every file name taken from input (a
figure name in a ``validate.json``, a layer name in a checkpoint) passes :func:`safe_name` before
it is joined to an output folder, so no input can make discosim write outside that folder.
"""

import contextlib
import io
import os
import re

from discosim._core.errors import InputError

__all__ = ["write_atomic", "open_atomic", "save_figure", "safe_name", "safe_join"]

# a plain file name: letters, digits, and . _ - inside; no separators, no leading dot
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` atomically.

    Examples
    --------
    >>> import os, tempfile
    >>> from discosim._core.io import write_atomic
    >>> d = tempfile.mkdtemp()
    >>> write_atomic(os.path.join(d, "a.txt"), "hello")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello'
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    try:
        with open(tmp, mode) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def open_atomic(path, mode="wb"):
    """A file opened for writing under a temporary name, moved to ``path`` when the block ends
    without an exception (streamed writes too large for :func:`write_atomic`'s one buffer).

    Examples
    --------
    >>> import os, tempfile
    >>> from discosim._core.io import open_atomic
    >>> d = tempfile.mkdtemp()
    >>> with open_atomic(os.path.join(d, "b.bin")) as fh:
    ...     _ = fh.write(b"abc")
    >>> open(os.path.join(d, "b.bin"), "rb").read()
    b'abc'
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, mode) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_figure(fig, path, **kwargs):
    """Render ``fig`` into memory in the format of ``path``'s suffix, then write it atomically."""
    path = os.fspath(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1][1:], **kwargs)
    write_atomic(path, buf.getvalue())


def safe_name(name, what="file name"):
    """``name`` if it is a plain file name (no folder part, no ``..``, no control characters);
    otherwise a one-line :class:`InputError`.

    Examples
    --------
    >>> from discosim._core.io import safe_name
    >>> safe_name("hit_order")
    'hit_order'
    >>> safe_name("../evil")
    Traceback (most recent call last):
    ...
    discosim._core.errors.InputError: unsafe file name '../evil': use letters, digits, '.', '_' and '-' only
    """
    if not isinstance(name, str) or not _SAFE.fullmatch(name) or ".." in name:
        raise InputError(f"unsafe {what} {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def safe_join(folder, name, suffix="", what="file name"):
    """``folder/name+suffix`` for a :func:`safe_name` ``name``, checked to stay inside ``folder``."""
    path = os.path.join(os.fspath(folder), safe_name(name, what) + suffix)
    root = os.path.realpath(folder)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise InputError(f"unsafe {what} {name!r}: it leaves {folder}")
    return path
