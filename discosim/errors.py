"""One exception type for bad input, and the small checks that raise it.

Every check raises :class:`InputError` with a single line that names the problem, so the CLI can
print it and exit with status 2 without a traceback.
"""

import math

import numpy as np

__all__ = ["InputError", "check_positive", "check_finite_array", "check_choice", "check_int"]


class InputError(ValueError):
    """Bad input to a discosim function: the message is one line naming the problem."""


def check_positive(name, value):
    """Return ``float(value)``; raise unless it is finite and > 0."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise InputError(f"{name} must be finite and > 0, got {value!r}")
    return x


def check_positive_array(name, values):
    """Return a 1-D float array of the values; raise unless all are finite and > 0."""
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty list of numbers")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name} must all be finite and > 0, got {arr.tolist()}")
    return arr


def check_int(name, value, low=None, high=None):
    """Return ``int(value)``; raise unless it is an integer in [low, high]."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise InputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise InputError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise InputError(f"{name} must be <= {high}, got {v}")
    return v


def check_choice(name, value, choices):
    """Return ``value``; raise unless it is one of ``choices``."""
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_finite_array(name, arr, ndim):
    """Return ``arr`` as a C-contiguous float64 array of ``ndim`` dims with finite entries."""
    a = np.asarray(arr)
    if a.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} has non-finite entries (NaN or inf)")
    return a
