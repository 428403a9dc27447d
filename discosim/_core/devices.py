"""Device selection for the estimators: ``device="cpu"`` (numba CPU kernels) or ``"cuda"``.

The CUDA backend (``discosim._cuda``) needs numba's CUDA target (the optional extra
``pip install discosim[cuda]``, i.e. ``numba-cuda``) and a usable NVIDIA GPU. Nothing here imports
``numba.cuda`` unless ``device="cuda"`` is asked for, so the CPU path never pays for it (and never
fails on machines without the CUDA libraries).

``devices``: which GPUs to spread chunks over (None: every visible one, i.e. what
``CUDA_VISIBLE_DEVICES`` leaves). A list may name the same GPU twice: two workers then share it,
which is how the multi-device merge is tested on one GPU. Results never depend on the device list
(chunk i always draws from stream i; see :mod:`discosim._cuda.launch`).
"""

import contextlib
import importlib

import numpy as np

from discosim._core.errors import InputError, check_int

__all__ = ["DEVICES", "check_device", "check_devices", "cuda_module", "cuda_available",
           "resolve_devices"]

DEVICES = ("cpu", "cuda")

_CUDA = None


def check_device(device):
    """Return ``device`` ("cpu" or "cuda"); raise :class:`InputError` for anything else.

    Only validates the name: whether a GPU is usable is checked by :func:`cuda_module`.
    """
    if device is None:
        return "cpu"
    if not isinstance(device, str) or device not in DEVICES:
        raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def check_devices(devices):
    """``devices`` as given to an estimator: None, a count >= 1, or GPU ids >= 0 (a tuple).

    Only the form is checked here; which GPUs exist is checked when ``device="cuda"`` runs
    (:func:`discosim._core.devices.resolve_devices`).
    """
    if devices is None:
        return None
    if isinstance(devices, (bool, np.bool_, str, bytes)):
        raise InputError(f"devices must be None, a count or a list of GPU ids, got {devices!r}")
    if isinstance(devices, (int, np.integer)):
        return check_int("devices", devices, 1)
    try:
        ids = tuple(check_int("devices", d, 0) for d in devices)
    except TypeError:
        raise InputError(f"devices must be None, a count or a list of GPU ids, got {devices!r}") from None
    if not ids:
        raise InputError("devices must name at least one GPU id")
    return ids


@contextlib.contextmanager
def _numpy_row_stack():
    # numba-cuda (<= 0.30) registers an overload of np.row_stack when it is imported; numpy 2.5
    # removed that alias of vstack. It exists here only for the length of that import, so the
    # user's numpy is left as it was (no process-wide patch).
    added = not hasattr(np, "row_stack")
    if added:
        np.row_stack = np.vstack
    try:
        yield
    finally:
        if added:
            del np.row_stack


def import_numba_cuda():
    """``numba.cuda`` imported with numba-cuda's numpy alias in place for the import only."""
    with _numpy_row_stack():
        cuda = importlib.import_module("numba.cuda")
        try:  # the module whose import registers the row_stack overload: load it inside the scope
            importlib.import_module("numba.cuda.np.arrayobj")
        except ImportError:  # older numba-cuda (numba's own arrayobj) or the simulator
            pass
    return cuda


def cuda_module():
    """``numba.cuda``, imported on first use; raises a one-line InputError without a usable GPU."""
    global _CUDA
    if _CUDA is not None:
        return _CUDA
    try:
        cuda = import_numba_cuda()
    except Exception as exc:  # ImportError, or a broken CUDA library found at import
        raise InputError("device 'cuda' needs numba's CUDA target: pip install "
                         f"'discosim[cuda]' (numba-cuda) ({type(exc).__name__})") from None
    try:
        ok = cuda.is_available()
    except Exception:
        ok = False
    if not ok:
        raise InputError("device 'cuda' needs a usable NVIDIA GPU and driver; none was found "
                         "(use device 'cpu')")
    _CUDA = cuda
    return cuda


def cuda_available():
    """True when :func:`cuda_module` would succeed (imports numba.cuda: only call it if you mean it)."""
    try:
        cuda_module()
    except InputError:
        return False
    return True


def resolve_devices(devices=None):
    """GPU ids to run on: None -> all visible; an int n -> the first n; a list -> those ids.

    Validates before any work and raises InputError naming ``devices``.
    """
    cuda = cuda_module()
    n_vis = len(cuda.gpus)
    if devices is None:
        return list(range(n_vis))
    if isinstance(devices, (bool, np.bool_)):
        raise InputError(f"devices must be None, a count or a list of GPU ids, got {devices!r}")
    if isinstance(devices, (int, np.integer)):
        if not 1 <= devices <= n_vis:
            raise InputError(f"devices must be between 1 and {n_vis} (visible GPUs), got {devices}")
        return list(range(int(devices)))
    try:
        ids = [int(d) for d in devices]
    except (TypeError, ValueError):
        raise InputError(f"devices must be None, a count or a list of GPU ids, got {devices!r}") from None
    if not ids or any(d < 0 or d >= n_vis for d in ids):
        raise InputError(f"devices must list GPU ids in 0..{n_vis - 1}, got {list(devices)!r}")
    return ids
