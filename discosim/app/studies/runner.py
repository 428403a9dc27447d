"""Running a study: grid in, tidy CSV + JSON sidecars out, resumable, on joblib or dask.

:func:`run_study` expands the grid (cartesian product of the listed values) and checks every
point, skips points already saved under ``out/points/`` whose identity
(:mod:`discosim.app.studies.identity`) matches, runs the rest over joblib (loky processes, or
dask's distributed scheduler), saves each point atomically the moment it finishes, and finally
writes ``results.csv`` (rows in grid order), ``results.json`` (configuration, versions, seeds,
timings) and the study's figure. A point's seed depends only on the base seed and the point's
parameters, so an interrupted and resumed run, any ``n_jobs`` and any backend give the same
numbers.
"""

import csv
import io
import json
import os
import platform
import time

import numpy as np

from discosim._core.cache import code_version
from discosim._core.errors import InputError, check_bool, check_choice, check_int
from discosim.app.studies.identity import (FileHasher, point_identity, point_key, point_seed,
                                           read_point, rows_digest)
from discosim.app.studies.registry import STUDIES, check_point, expand_grid

__all__ = ["run_study", "study_figure"]


def _run_point(name, params, base_seed, identity, device="cpu"):
    """One grid point; ``identity`` (from the parent, so every worker records the same) is
    ``(identity dict, its hash)``."""
    t0 = time.perf_counter()
    rows = STUDIES[name]["func"](params, point_seed(base_seed, params), device=device)
    return {"identity": identity[0], "identity_hash": identity[1], "params": params, "rows": rows,
            "rows_digest": rows_digest(rows), "seconds": time.perf_counter() - t0}


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
    code version, device, the content of every input file: :func:`point_identity`) matches are
    reused; others are recomputed, or with ``resume=True`` refused in one line.
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
    hasher = FileHasher()  # each input file hashed once in this run
    for p in points:
        ident, digest = identity[point_key(p)] = point_identity(name, p, seed, device, hasher)
        doc, why = read_point(os.path.join(pdir, point_key(p) + ".json"), ident, digest)
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
    return _assemble(name, out_dir, points, merged, seed, elapsed, n_jobs, backend, device,
                     identity)


def _assemble(name, out_dir, points, grid, seed, elapsed, n_jobs, backend, device, identity):
    """results.csv, results.json and the figure from the saved points of this run's
    ``identity`` (point key -> (identity, hash))."""
    from discosim._core.results import dumps
    from discosim._core.io import write_atomic

    pdir = os.path.join(out_dir, "points")
    all_rows, secs = [], 0.0
    for i, p in enumerate(points):
        ident, digest = identity[point_key(p)]
        res, why = read_point(os.path.join(pdir, point_key(p) + ".json"), ident, digest)
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
                        "identity_hash": identity[point_key(p)][1],
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
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error,
            RecursionError) as exc:  # RecursionError: JSON nested past the parser's limit
        raise InputError(f"cannot read the study results in {out_dir} ({type(exc).__name__}: "
                         f"{exc}); rerun the study".splitlines()[0]) from None
