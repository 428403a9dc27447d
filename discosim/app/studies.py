"""Parameter studies: grids in, tidy CSV + JSON sidecars out, resumable, on joblib or dask.

A study is a function of one grid point (a dict of parameters and a SeedSequence) returning
tidy rows (one per order / metric / time ...). :func:`run_study` expands the grid (cartesian
product of the listed values), skips points already saved under ``out/points/``, runs the rest
over joblib (loky processes, or dask's distributed scheduler), saves each point atomically the
moment it finishes, and finally writes ``results.csv`` (rows in grid order), ``results.json``
(configuration, versions, seeds, timings) and the study's figure. A point's seed depends only on
the base seed and the point's parameters, so an interrupted and resumed run, any ``n_jobs`` and
any backend give the same numbers.

Random gate ensembles: parameters ``ensemble`` (gaussian, orthonormal, correlated),
``rho`` (pairwise row correlation of ``correlated``) and ``n_routers``; each router gets its own
spawned seed and rows carry ``router_index``; the study adds ensemble rows (``router_index`` =
"mean") with the mean and the spread (standard deviation) over routers.

Identity of a saved point: its file holds the study name, the base seed, every parameter and
the code version (discosim's version and a hash of its sources), and the hash of all four. A
point whose identity differs from the run's (another seed, another study in the same ``out``,
other code) or whose file is unreadable is recomputed; with ``resume=True`` the run refuses
instead, in one line, before computing anything. Every grid value is checked (type, range,
relations such as M < D) before the first point runs.
"""

import csv
import hashlib
import io
import itertools
import json
import math
import os
import platform
import time

import numpy as np

from discosim._core.cache import code_version  # noqa: F401  (part of this module's API)
from discosim._core.errors import InputError, check_bool, check_choice, check_int
from discosim.model.inputs import start_point
from discosim.model.router import Router

__all__ = ["STUDIES", "run_study", "expand_grid", "load_grid", "make_router", "study_figure"]

STUDIES = {}


def study(name, grid, figure):
    def deco(f):
        STUDIES[name] = {"func": f, "grid": grid, "figure": figure, "doc": (f.__doc__ or "").strip()}
        return f
    return deco


# --------------------------------------------------------------------------- grids and routers
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
_TEXT = ("path", "inputs")  # the audit study: a checkpoint, an input model or hidden-states file
_BOOL = ("bridge",)


def _choices():
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
        elif key in _TEXT:
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


def point_key(params):
    """Stable short name of a grid point's file (hash of its sorted parameters)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_seed(base_seed, params):
    """The point's SeedSequence: base seed plus words of the parameter hash (order-free)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
    words = tuple(int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(base_seed, spawn_key=words)




def _file_fingerprint(value):
    """Size and modification time of the files a path parameter names (a checkpoint directory,
    a hidden-states file): a checkpoint rewritten in place is another input, although its path
    is the same. Cheap on a 100 GB model: nothing is read."""
    if not isinstance(value, str) or not value or not os.path.exists(value):
        return None
    if os.path.isdir(value):
        names = sorted(f for f in os.listdir(value)
                       if f.endswith((".json", ".safetensors", ".npy", ".npz")))
        files = [os.path.join(value, f) for f in names]
    else:
        files = [value]
    return [[os.path.basename(f), os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files]


def _rows_digest(rows):
    """Digest of a point's rows in their saved (JSON) form: an edited or damaged point is stale."""
    from discosim._core.results import to_jsonable

    text = json.dumps(to_jsonable(rows), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def point_identity(name, params, seed, device="cpu"):
    """What makes a saved point reusable: study, base seed, every parameter, the files that
    path parameters name (size and mtime), code version, and the device when it is not the CPU
    (the GPU draws other random numbers: its points are never reused for a CPU run, nor back)."""
    ident = {"study": name, "seed": seed, "params": params, "code": code_version()}
    if device != "cpu":
        ident["device"] = device
    files = {k: fp for k, v in params.items() if (fp := _file_fingerprint(v)) is not None}
    if files:
        ident["files"] = files
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
    return ident, digest


def _read_point(path, ident, digest):
    """(rows, None) for a matching saved point, else (None, why): missing, unreadable, stale."""
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
        old = doc.get("identity") or {}
        what = [k for k in ("study", "seed", "params", "files", "code", "device")
                if old.get(k) != ident.get(k)] or ["identity"]
        return None, f"{path} was made with another {', '.join(what)}"
    if doc.get("rows_digest") != _rows_digest(doc["rows"]):
        return None, f"{path} has rows that do not match their digest (edited or damaged)"
    return doc, None


ENSEMBLES = ("gaussian", "orthonormal", "correlated")


def make_router(ensemble, M, D, k, seed, rho=0.0):
    """A router of a random ensemble: gaussian, orthonormal, or correlated rows (pairwise rho)."""
    ensemble = check_choice("ensemble", ensemble, ENSEMBLES)
    if ensemble == "gaussian":
        return Router.gaussian(M, D, k, seed=seed)
    if ensemble == "orthonormal":
        return Router.orthonormal(M, D, k, seed=seed)
    return Router.correlated(M, D, k, rho, seed=seed)


def routers_of(params, seed_seq):
    """The point's router ensemble: one spawned seed per router."""
    n = check_int("n_routers", params.get("n_routers", 1), 1)
    seeds = seed_seq.spawn(n)
    return [make_router(params.get("ensemble", "gaussian"), params["M"], params["D"], params["k"],
                        s, params.get("rho", 0.0)) for s in seeds]


def _ensemble_rows(rows, by, value_cols):
    """Mean and spread over routers for each group of ``by`` columns."""
    out = []
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    for key, rs in groups.items():
        if len(rs) < 2:
            continue
        row = dict(rs[0])
        row["router_index"] = "mean"
        for c in value_cols:
            vals = np.array([x[c] for x in rs if x[c] is not None], dtype=float)
            row[c] = float(vals.mean()) if vals.size else None
            row[c + "_spread"] = float(vals.std(ddof=1)) if vals.size > 1 else None
        out.append(row)
    return out


# --------------------------------------------------------------------------- the studies
def _vol_rows(params, seed_seq, metric, method, device="cpu"):
    from discosim.volumes.estimators import estimate_volumes

    rows = []
    orders = tuple(range(1, min(3, params["M"] - 1) + 1))
    for ri, router in enumerate(routers_of(params, seed_seq)):
        res = estimate_volumes(router, params.get("radius", 1.0), [params["eps"]], orders=orders,
                               metric=metric, method=method, n_samples=params["n_samples"],
                               seed=seed_seq.spawn(1)[0], progress=False, device=device)
        f1 = res.estimate(0, 1)
        for r in orders:
            o = res.order_result(0, r)
            e = o.estimate
            rows.append({"router_index": ri, "order": r, "metric": metric, "method": method,
                         "fraction": e.value, "stderr": e.stderr, "n_hits": e.n_hits,
                         "predicted_slice_sum": o.predicted_slice_sum,
                         "predicted_leading": o.predicted_leading,
                         "ratio_to_order1": e.value / f1.value if f1.value else None,
                         "predicted_ratio": (o.predicted_leading / res.order_result(0, 1).predicted_leading
                                             if o.predicted_leading else None)})
    return rows


@study("volume_ratios",
       grid={"eps": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "radius": 1.0, "M": 6, "D": 10, "k": 2,
             "ensemble": "orthonormal", "n_routers": 1, "rho": 0.0, "n_samples": 20000,
             "metric": "euclidean"},
       figure={"x": "eps", "y": "ratio_to_order1", "pred": "predicted_ratio", "group": "order",
               "xlabel": "eps/R", "ylabel": "U_r / U_1"})
def volume_ratios(params, seed_seq, device="cpu"):
    """Ratio theorem: U_r/U_1 against eps/R per order (tube sampler), with its prediction."""
    rows = _vol_rows(params, seed_seq, params["metric"], "tube", device)
    return rows + _ensemble_rows(rows, ["order"], ["fraction", "ratio_to_order1"])


@study("tube_metrics",
       grid={"eps": [0.01, 0.03, 0.1], "radius": 1.0, "M": 6, "D": 12, "k": 2, "ensemble": "gaussian",
             "n_routers": 1, "rho": 0.0, "n_samples": 200000,
             "metric": ["euclidean", "normal", "score"]},
       figure={"x": "eps", "y": "fraction", "err": "stderr", "pred": "predicted_leading",
               "group": ["metric", "order"], "xlabel": "eps/R", "ylabel": "fraction of the ball"})
def tube_metrics(params, seed_seq, device="cpu"):
    """The three tube metrics on the same routers (uniform sampler)."""
    return _vol_rows(params, seed_seq, params["metric"], "uniform", device)


@study("sampler_efficiency",
       grid={"eps": [1e-3, 1e-2, 1e-1], "radius": 1.0, "M": 6, "D": 10, "k": 2, "ensemble": "orthonormal",
             "n_routers": 1, "rho": 0.0, "n_samples": 20000, "order": [1, 2, 3]},
       figure={"x": "eps", "y": "efficiency", "group": "order", "xlabel": "eps/R",
               "ylabel": "variance ratio uniform / tube per sample"})
def sampler_efficiency(params, seed_seq, device="cpu"):
    """Importance (tube) sampler vs uniform sampling: per-sample variance ratio and relative SE."""
    from discosim.volumes.estimators import estimate_volumes

    rows = []
    r = params["order"]
    for ri, router in enumerate(routers_of(params, seed_seq)):
        t0 = time.perf_counter()
        res = estimate_volumes(router, params.get("radius", 1.0), [params["eps"]], orders=(r,), method="tube",
                               n_samples=params["n_samples"], seed=seed_seq.spawn(1)[0], progress=False,
                               device=device)
        dt = time.perf_counter() - t0
        e = res.estimate(0, r)
        p = res.order_result(0, r).predicted_slice_sum
        rows.append({"router_index": ri, "order": r, "fraction": e.value, "stderr": e.stderr,
                     "relative_stderr": e.relative_stderr, "seconds": dt,
                     "efficiency": p * (1 - p) / (e.n_samples * e.stderr ** 2) if e.stderr else None,
                     "uniform_samples_for_same_se": p * (1 - p) / e.stderr ** 2 if e.stderr else None})
    return rows


@study("first_hit",
       grid={"dt_over_d2": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "bridge": [True, False], "t_over_d2": 1.0,
             "sigma": 1.0, "n_paths": 20000, "seed_x0": 1},
       figure={"x": "dt_over_d2", "y": "abs_bias", "err": "stderr", "group": "bridge",
               "xlabel": "dt sigma^2 / d^2", "ylabel": "|P(tau<=t) - Levy| at t = d^2/sigma^2"})
def first_hit(params, seed_seq, device="cpu"):
    """Levy (M = 2): bias of P(tau <= t) against the step, with and without the bridge test."""
    from discosim.diffusion.estimators import estimate_first_hit
    from discosim.theory import diffusion as td

    router = Router.gaussian(2, 6, 1, seed=0)
    x0 = start_point(router, params["seed_x0"], scale=0.3)
    d = td.facet_distances(router, x0).min()
    sig = params["sigma"]
    scale = d * d / (sig * sig)  # times in units of d^2 / sigma^2
    t = params["t_over_d2"] * scale
    res = estimate_first_hit(router, x0, sig, t, params["dt_over_d2"] * scale, params["n_paths"], [t],
                             seed=seed_seq, bridge=check_bool("bridge", params["bridge"]), device=device)
    e = res.cdf[0]
    exact = float(td.levy_cdf(d, sig, t))
    return [{"cdf": e.value, "stderr": e.stderr, "exact": exact, "bias": e.value - exact,
             "abs_bias": abs(e.value - exact), "lower_bound": res.lower_bound[0],
             "upper_bound": res.upper_bound[0]}]


@study("hit_order",
       grid={"M": [4, 6, 8], "D": 12, "k": 2, "ensemble": ["orthonormal", "gaussian"], "n_routers": 1,
             "rho": 0.0, "n_paths": 4000, "seed_x0": 3},
       figure={"x": "M", "y": "exponent_fit", "err": "exponent_stderr", "pred": "exponent_predicted",
               "group": "ensemble", "xlabel": "M", "ylabel": "exponent of q(delta)", "logx": False,
               "logy": False})
def hit_order(params, seed_seq, device="cpu"):
    """Hit-order exponent of q(delta) against pi/theta* over router sizes and ensembles."""
    from discosim.diffusion.estimators import estimate_first_hit
    from discosim.theory import diffusion as td

    rows = []
    for ri, router in enumerate(routers_of(params, seed_seq)):
        x0 = start_point(router, params["seed_x0"])
        d = td.facet_distances(router, x0).min()
        deltas = d * np.array([0.01, 0.03, 0.1, 0.3])
        res = estimate_first_hit(router, x0, 1.0, 20 * d * d, 0.01 * d * d, params["n_paths"], [d * d],
                                 deltas=deltas, seed=seed_seq.spawn(1)[0], device=device)
        rows.append({"router_index": ri, "exponent_fit": res.exponent_fit,
                     "exponent_stderr": res.exponent_stderr, "exponent_predicted": res.exponent_predicted,
                     "fraction_hit": res.fraction_hit})
    return rows + _ensemble_rows(rows, [], ["exponent_fit", "exponent_predicted"])


@study("occupation",
       grid={"eps": [0.02, 0.05, 0.1, 0.2], "M": 5, "D": 9, "k": 2, "ensemble": "orthonormal", "n_routers": 1,
             "rho": 0.0, "sigma": 1.0, "t_max": 10.0, "dt": 0.01, "n_paths": 300, "seed_x0": 4},
       figure={"x": "eps", "y": "mean", "err": "stderr", "pred": "bound", "group": "order",
               "xlabel": "eps", "ylabel": "E L_r^eps(t_max)"})
def occupation(params, seed_seq, device="cpu"):
    """Occupation times per order against the THEORY §6 bounds."""
    from discosim.diffusion.estimators import estimate_occupation

    rows = []
    for ri, router in enumerate(routers_of(params, seed_seq)):
        x0 = start_point(router, params["seed_x0"])
        res = estimate_occupation(router, x0, params["sigma"], params["t_max"], params["dt"], params["n_paths"],
                                  [params["eps"]], seed=seed_seq.spawn(1)[0], n_checkpoints=1,
                                  device=device)
        for i, r in enumerate(res.orders):
            rows.append({"router_index": ri, "order": r, "mean": float(res.mean[-1, i, 0]),
                         "stderr": float(res.stderr[-1, i, 0]), "bound": float(res.bound[i, 0])})
    return rows + _ensemble_rows(rows, ["order"], ["mean"])


@study("smoothing",
       grid={"eta": [0.002, 0.005, 0.01, 0.02, 0.04], "M": 8, "D": 64, "k": 2, "ensemble": "gaussian",
             "n_routers": 1, "rho": 0.0, "n_samples": 400000},
       figure={"x": "eta", "y": "mean_extra", "err": "stderr", "pred": "predicted_leading",
               "xlabel": "eta", "ylabel": "extra active experts E N_eta"})
def smoothing(params, seed_seq, device="cpu"):
    """Overhead of the smoothing gate against c1 eta."""
    from discosim.smoothing.estimators import estimate_overhead

    rows = []
    for ri, router in enumerate(routers_of(params, seed_seq)):
        res = estimate_overhead(router, 1.0, [params["eta"]], n_samples=params["n_samples"],
                                seed=seed_seq.spawn(1)[0], device=device)
        e = res.estimates[0]
        rows.append({"router_index": ri, "mean_extra": e.value, "stderr": e.stderr,
                     "predicted_leading": res.predicted_leading[0], "c1": res.coefficient})
    return rows + _ensemble_rows(rows, [], ["mean_extra", "c1"])


@study("audit",
       grid={"path": "", "inputs": "sphere", "n_samples": 20000, "eps": 0.01, "constants_samples": 0},
       figure={"x": "layer_index", "y": "value", "err": "stderr", "pred": "predicted",
               "group": ["model", "quantity", "parameter"], "xlabel": "router layer",
               "ylabel": "flip rate (bf16, fp16) / P(margin <= eps)", "logx": False})
def audit(params, seed_seq, device="cpu"):
    """Checkpoint audits (THEORY §9): per-layer flip rates and margin fraction; --set path=A B."""
    from discosim.audit.estimators import study_rows

    return study_rows(params, seed_seq, device)


# --------------------------------------------------------------------------- running
def _run_point(name, params, base_seed, identity, device="cpu"):
    """One grid point; ``identity`` (from the parent, so every worker records the same) is
    ``(identity dict, its hash)``."""
    t0 = time.perf_counter()
    rows = STUDIES[name]["func"](params, point_seed(base_seed, params), device=device)
    return {"identity": identity[0], "identity_hash": identity[1], "params": params, "rows": rows,
            "rows_digest": _rows_digest(rows), "seconds": time.perf_counter() - t0}


def _versions():
    import numba
    import scipy

    from discosim._core.version import __version__

    return {"discosim": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "python": platform.python_version()}


def run_study(name, out_dir, grid=None, *, seed=0, n_jobs=1, backend="loky", scheduler=None,
              progress=None, resume=False, stop_after=None, force_jobs=False, device="cpu"):
    """Run study ``name`` over its grid (defaults updated by ``grid``) into ``out_dir``.

    Every grid point is validated first. Saved points whose identity (study, seed, parameters,
    code version) matches are reused; others are recomputed, or with ``resume=True`` refused.
    Returns the path of ``results.csv``. ``stop_after`` (testing aid) stops after that many new
    points, as an interruption would. ``device="cuda"``: every point's estimators run on the GPU
    (all visible devices; with n_jobs > 1 the point workers share them).

    What ``discosim study NAME`` runs. Each finished point is saved atomically in
    ``out_dir/points/`` with its identity; ``results.csv`` (tidy: one row per point and
    order/router), ``results.json`` (grid, seeds, versions, timings) and the study's figure
    follow at the end.

    Parameters
    ----------
    name : str
        A study of ``discosim study list``: ``volume_ratios``, ``tube_metrics``,
        ``sampler_efficiency``, ``first_hit``, ``hit_order``, ``occupation``, ``smoothing`` or
        ``audit``.
    out_dir : str or path-like
        Output directory (created).
    grid : dict, optional
        ``{parameter: value or list of values}`` overriding the study's defaults; every
        combination is one point.
    seed : int
        Base seed; each point's seed is derived from it and the point's parameters.
    n_jobs : int
        Points run in parallel; the numbers do not depend on it.
    backend : {"loky", "dask", "threading"}
        How points are spread over the workers.
    scheduler : str, optional
        Address of a dask scheduler (``backend="dask"``; default: a local cluster).
    progress : bool or None
        Progress bar (None: when stderr is a terminal).
    resume : bool
        Refuse, in one line, saved points that do not match instead of recomputing them.
    stop_after : int, optional
        Stop after this many new points (a testing aid).
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    device : {"cpu", "cuda"}
        Where every point's estimators run.

    Returns
    -------
    str
        Path of ``results.csv``.

    Examples
    --------
    The smoothing overhead at two band widths on a small router:

    >>> import csv
    >>> import os
    >>> import tempfile
    >>> from pathlib import Path
    >>> import discosim as ds
    >>> tmp = tempfile.TemporaryDirectory()
    >>> grid = {"eta": [0.01, 0.02], "M": 4, "D": 8, "n_samples": 5000}
    >>> path = ds.run_study("smoothing", os.path.join(tmp.name, "smoothing"), grid, n_jobs=1,
    ...                     progress=False)
    >>> os.path.basename(path)
    'results.csv'
    >>> rows = list(csv.DictReader(Path(path).read_text().splitlines()))
    >>> [row["eta"] for row in rows]
    ['0.01', '0.02']

    A second run reuses both saved points and gives the same file:

    >>> before = Path(path).read_text()
    >>> path = ds.run_study("smoothing", os.path.join(tmp.name, "smoothing"), grid,
    ...                     progress=False)
    >>> Path(path).read_text() == before
    True
    >>> tmp.cleanup()
    """
    from discosim._core.devices import check_device, cuda_module

    from discosim._core.results import dumps
    from discosim._core.io import write_atomic
    from discosim._core.runtime import _progress_bar, check_n_jobs

    name = check_choice("study", name, tuple(STUDIES))
    backend = check_choice("backend", backend, ("loky", "dask", "threading"))
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    seed = check_int("seed", seed, 0)
    resume = check_bool("resume", resume)
    device = check_device(device)
    if device == "cuda":
        cuda_module()  # one line, before any point runs, when no GPU is usable
    spec = STUDIES[name]
    points = [check_point(p) for p in expand_grid(spec["grid"], grid or {})]
    merged = dict(spec["grid"])
    merged.update(grid or {})
    out_dir = os.fspath(out_dir)
    pdir = os.path.join(out_dir, "points")
    for d in (out_dir, pdir):
        if os.path.exists(d) and not os.path.isdir(d):
            raise InputError(f"--out {out_dir}: {d} exists and is not a directory")
    todo = []
    identity = {}
    for p in points:
        ident, digest = identity[point_key(p)] = point_identity(name, p, seed, device)
        doc, why = _read_point(os.path.join(pdir, point_key(p) + ".json"), ident, digest)
        if doc is None:
            if why is not None and resume:
                raise InputError(f"cannot resume: {why}; use a fresh --out or drop --resume")
            todo.append(p)
    if resume and len(todo) == len(points) and points:
        raise InputError(f"cannot resume: no saved points of this run in {pdir}")
    os.makedirs(pdir, exist_ok=True)
    missing = len(todo)
    if stop_after is not None:
        todo = todo[:stop_after]
    t0 = time.perf_counter()
    bar = _progress_bar(len(todo), name, progress, unit="point")
    client = None
    try:
        if backend == "dask" and todo:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise InputError("backend dask needs the 'distributed' package: pip install 'discosim[dask]'") from None
            if scheduler:
                client = Client(scheduler)
            else:
                client = Client(LocalCluster(n_workers=n_jobs, threads_per_worker=1, host="127.0.0.1",
                                             dashboard_address=None, processes=True))
        if todo and n_jobs == 1 and backend != "dask":
            for p in todo:  # in this process: Ctrl-C stops between points, saved ones stay
                res = _run_point(name, p, seed, identity[point_key(p)], device)
                write_atomic(os.path.join(pdir, point_key(p) + ".json"), dumps(res))
                if bar is not None:
                    bar.update(1)
        elif todo:
            import joblib

            tasks = (joblib.delayed(_run_point)(name, p, seed, identity[point_key(p)], device)
                     for p in todo)
            with joblib.parallel_config(backend=backend, n_jobs=n_jobs):
                par = joblib.Parallel(return_as="generator_unordered")
                for res in par(tasks):
                    write_atomic(os.path.join(pdir, point_key(res["params"]) + ".json"), dumps(res))
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not scheduler:
                cluster.close()
    elapsed = time.perf_counter() - t0
    if len(todo) < missing:
        return None  # stopped early: the finished points are saved, rerun to complete
    return _assemble(name, out_dir, points, merged, seed, elapsed, n_jobs, backend, device)


def _assemble(name, out_dir, points, grid, seed, elapsed, n_jobs, backend, device="cpu"):
    from discosim._core.results import dumps
    from discosim._core.io import write_atomic

    pdir = os.path.join(out_dir, "points")
    all_rows, secs = [], 0.0
    for i, p in enumerate(points):
        ident, digest = point_identity(name, p, seed, device)
        res, why = _read_point(os.path.join(pdir, point_key(p) + ".json"), ident, digest)
        if res is None:
            raise InputError(why or f"point {i} of the grid is missing in {pdir}")
        secs += res["seconds"]
        for r in res["rows"]:
            all_rows.append({"point": i, **p, **r})
    cols = []
    for r in all_rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in all_rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    csv_path = os.path.join(out_dir, "results.csv")
    write_atomic(csv_path, buf.getvalue())
    side = {"study": name, "doc": STUDIES[name]["doc"], "grid": grid,
            "points": [{"index": i, "key": point_key(p), "params": p,
                        "identity_hash": point_identity(name, p, seed, device)[1],
                        "seed": {"entropy": seed, "spawn_key": list(point_seed(seed, p).spawn_key)}}
                       for i, p in enumerate(points)],
            "seed": seed, "code_version": code_version(), "versions": _versions(),
            "n_jobs": n_jobs, "backend": backend, "device": device,
            "wall_seconds_this_run": elapsed, "point_seconds_total": secs,
            "figure": STUDIES[name]["figure"]}
    write_atomic(os.path.join(out_dir, "results.json"), dumps(side, indent=1))
    study_figure(out_dir)
    return csv_path


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def study_figure(out_dir):
    """Draw a study's figure from its saved results.csv/results.json (no recomputation)."""
    from discosim.plotting.figures import plot_study

    side_path = os.path.join(out_dir, "results.json")
    csv_path = os.path.join(out_dir, "results.csv")
    try:
        with open(side_path) as fh:
            side = json.load(fh)
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        name, figure = side["study"], side["figure"]
        if name not in STUDIES:  # the name becomes a file name: only a known study may
            raise ValueError(f"results.json names an unknown study {name!r}")
        figure = STUDIES[name]["figure"]  # the study's own figure spec, not the file's copy
        cols = [figure[c] for c in ("x", "y") if c in figure]
        if not isinstance(figure, dict) or len(cols) < 2 or not rows:
            raise ValueError("no figure columns or no rows")
        for i, r in enumerate(rows):  # a truncated file leaves rows without their values
            if r.get(cols[0]) in (None, "") or r.get(cols[1]) is None or None in r:
                raise ValueError(f"row {i + 1} of results.csv is incomplete")
            if r[cols[1]] not in ("",) and not _is_number(r[cols[1]]):
                raise ValueError(f"row {i + 1} of results.csv has a non-numeric {cols[1]} "
                                 f"{r[cols[1]]!r}")
        return plot_study(name, figure, rows, out_dir)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the study results in {out_dir} ({type(exc).__name__}: "
                         f"{exc}); rerun the study".splitlines()[0]) from None
