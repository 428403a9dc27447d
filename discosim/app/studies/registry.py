"""The registry of studies (name -> definition) and the grammar of their grids.

A definition (:mod:`discosim.app.studies.definitions`) is registered with :func:`study`: a
function of one grid point ``(params, seed_seq, device)`` returning tidy rows, its default grid
and its figure. A grid maps parameter names to a value or a list of values; :func:`expand_grid`
takes the cartesian product and :func:`check_point` validates one point against the type rules
below, which every parameter of every study must have (``tests/integration/test_studies.py``
checks it), so a bad grid fails before the first point runs.
"""

import itertools
import json
import math
import os

from discosim._core.errors import InputError, check_bool, check_choice, check_int

__all__ = ["STUDIES", "study", "load_grid", "expand_grid", "check_point", "TEXT_PARAMETERS"]

STUDIES = {}


def study(name, grid, figure):
    """Register the decorated function as study ``name`` with its default ``grid`` and ``figure``.

    ``STUDIES[name]`` is ``{"func", "grid", "figure", "doc"}``; ``doc`` is the function's
    docstring (``discosim study list`` prints it).
    """
    def deco(f):
        STUDIES[name] = {"func": f, "grid": grid, "figure": figure, "doc": (f.__doc__ or "").strip()}
        return f
    return deco


def load_grid(path):
    """A grid from a JSON or TOML file: ``{param: [values, ...] or value}``."""
    if not os.path.isfile(path):
        raise InputError(f"grid file not found: {path}")
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as fh:
                grid = tomllib.load(fh)
        else:
            with open(path) as fh:
                grid = json.load(fh)
    except Exception as exc:  # one line for the user, whatever the parser raised
        raise InputError(f"cannot parse grid {path}: {exc}".splitlines()[0]) from None
    if not isinstance(grid, dict):
        raise InputError(f"grid {path} must map parameter names to values")
    return grid


def expand_grid(defaults, overrides):
    """Cartesian product of the grid (defaults updated by overrides) as a list of dicts."""
    if not isinstance(overrides, dict):
        raise InputError("a grid maps parameter names to values")
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise InputError(f"unknown grid parameter(s) {sorted(unknown)}; known: {sorted(defaults)}")
    grid = dict(defaults)
    grid.update(overrides)
    keys = list(grid)
    values = []
    for key in keys:
        v = grid[key]
        v = v if isinstance(v, list) else [v]
        if not v:
            raise InputError(f"grid parameter {key} has no values")
        values.append(v)
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


# Grid parameters by type; every study's parameters appear here (test_studies checks it).
_POSITIVE = ("eps", "eta", "radius", "sigma", "t_max", "dt", "dt_over_d2", "t_over_d2")
_INTEGER = {"M": 2, "D": 2, "k": 1, "n_routers": 1, "n_samples": 2, "n_paths": 2, "order": 1,
            "seed_x0": 0, "constants_samples": 0}
_REAL = ("rho",)
# the audit study: a checkpoint, an input model or a hidden-states file; every text parameter
# may name input files, so each has a reader in identity.INPUT_FILES (test_studies checks it)
TEXT_PARAMETERS = ("path", "inputs")
_BOOL = ("bridge",)


def _choices():
    from discosim.cases import ENSEMBLES
    from discosim.volumes.estimators import METRICS

    return {"ensemble": ENSEMBLES, "metric": METRICS}


def check_point(params):
    """Validate and normalise one grid point (types, ranges, relations); returns a new dict.

    Raises :class:`InputError` naming the parameter, so a bad grid fails before any point runs.
    """
    from discosim._core.errors import check_positive
    from discosim.diffusion.estimators import MAX_STEPS

    out = {}
    choices = _choices()
    for key, v in params.items():
        if isinstance(v, (dict, list, tuple)):
            raise InputError(f"grid value of {key} must be a single value or a list of them, got {v!r}")
        if key in _POSITIVE:
            if isinstance(v, (bool, str)):  # "0.1" from a grid file is a string, True is not 1.0
                raise InputError(f"{key} must be a number, got {v!r}")
            out[key] = check_positive(key, v)
        elif key in _INTEGER:
            out[key] = check_int(key, v, _INTEGER[key])
        elif key in _REAL:
            if isinstance(v, (bool, str)) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"{key} must be a finite number, got {v!r}")
            out[key] = float(v)
        elif key in _BOOL:
            out[key] = check_bool(key, v)
        elif key in TEXT_PARAMETERS:
            out[key] = str(v)
        elif key in choices:
            out[key] = check_choice(key, v, choices[key])
        else:
            raise InputError(f"grid parameter {key} has no type rule")  # a study without rules
    if "M" in out:
        M = out["M"]
        if "D" in out and M >= out["D"]:
            raise InputError(f"need M < D (THEORY §1), got M={M}, D={out['D']}")
        if "k" in out and not out["k"] < M:
            raise InputError(f"k must be < M={M}, got k={out['k']}")
        if "order" in out and not out["order"] <= M - 1:
            raise InputError(f"order must be <= M - 1 = {M - 1}, got {out['order']}")
        if out.get("ensemble") == "correlated" and not -1.0 / (M - 1) < out.get("rho", 0.0) < 1.0:
            raise InputError(f"rho must lie in (-1/(M-1), 1), got {out.get('rho')}")
    if "dt" in out and "t_max" in out:
        if out["dt"] > out["t_max"] or out["t_max"] / out["dt"] > MAX_STEPS:
            raise InputError(f"need dt <= t_max and t_max/dt <= {MAX_STEPS:.0e}, got "
                             f"dt={out['dt']}, t_max={out['t_max']}")
    if "dt_over_d2" in out and "t_over_d2" in out:
        if out["t_over_d2"] / out["dt_over_d2"] > MAX_STEPS:
            raise InputError(f"t_over_d2/dt_over_d2 must be <= {MAX_STEPS:.0e}")
    return out
