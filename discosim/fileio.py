"""Writing results so that nothing a run has saved is ever half-written or lost.

Every file goes to a temporary name beside its target and is moved into place with ``os.replace``
(atomic on POSIX): a crash or Ctrl-C leaves either the old file or the new one, never a torn one.
"""

import os

__all__ = ["write_atomic"]


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` atomically."""
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
