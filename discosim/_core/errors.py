"""One exception type for bad input, and the small checks that raise it.

Every check raises :class:`InputError` with a single line that names the problem, so the CLI can
print it and exit with status 2 without a traceback.
"""

import math

import numpy as np

__all__ = ["InputError", "check_positive", "check_positive_array", "check_finite_array",
           "check_choice", "check_int", "check_bool", "printable"]


class InputError(ValueError):
    """Bad input to a discosim function: the message is one line naming the problem.

    A subclass of :class:`ValueError`. Every public function checks its input before any work
    and raises this error; the command line prints the message and exits with status 2, without
    a traceback.

    Parameters
    ----------
    message : str
        One line that names the argument and what is wrong with it.

    Examples
    --------
    >>> import discosim as ds
    >>> try:
    ...     ds.Router.gaussian(8, 4, k=2)
    ... except ds.InputError as exc:
    ...     print(exc)
    need M < D (THEORY §1), got M=8, D=4
    """


def check_positive(name, value):
    """Return ``float(value)``; raise unless it is a finite real number > 0.

    Strings and booleans are refused as :func:`check_int` refuses them: ``radius="1"`` is a
    caller's mistake, not a number.
    """
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise InputError(f"{name} must be finite and > 0, got {value!r}")
    return x


def check_positive_array(name, values):
    """Return a 1-D float array of the values; raise unless all are finite and > 0."""
    try:
        arr = np.atleast_1d(np.asarray(values))
        if arr.dtype.kind not in "biuf":  # strings, complex, objects: not a list of reals
            raise TypeError
        arr = arr.astype(float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of real numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty list of numbers")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name} must all be finite and > 0, got {arr.tolist()}")
    return arr


def check_int(name, value, low=None, high=None):
    """Return ``int(value)``; raise unless it is an integer in [low, high] (``1e13`` is one)."""
    try:
        ok = not isinstance(value, (bool, np.bool_, str, bytes)) and float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise InputError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise InputError(f"{name} must be <= {high}, got {v}")
    return v


def check_bool(name, value):
    """Return ``value`` as a bool: True/False (or the strings true/false, any case); else raise.

    Strict on purpose: ``bool("False")`` is True, which is how a grid value ``False`` read from
    text used to turn into True.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InputError(f"{name} must be true or false, got {value!r}")


def check_choice(name, value, choices):
    """Return ``value``; raise unless it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_finite_array(name, arr, ndim):
    """Return ``arr`` as a C-contiguous float64 array of ``ndim`` dims with finite entries."""
    try:
        a = np.asarray(arr)
    except (TypeError, ValueError):  # ragged nested lists
        raise InputError(f"{name} must be a rectangular {ndim}-dimensional array") from None
    if a.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} has non-finite entries (NaN or inf)")
    return a


def printable(text):
    """``str(text)`` with every character a terminal would act on escaped, ``repr``-style.

    A newline prints as ``\\n``, an escape code as ``\\x1b``, a right-to-left override as
    ``\\u202e``: a tensor name, a config field or a claim name read from a file can then neither
    forge a second line of an error message nor recolour or rewrite the terminal. Printable text,
    non-ASCII letters included, is unchanged.

    Examples
    --------
    >>> from discosim._core.errors import printable
    >>> print(printable("gate.weight\\ndiscosim: error: forged \\x1b[31m"))
    gate.weight\\ndiscosim: error: forged \\x1b[31m
    >>> print(printable("Gating ε"))
    Gating ε
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
