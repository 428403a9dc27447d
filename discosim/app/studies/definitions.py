"""The studies: one function per study, of one grid point, returning tidy rows.

Each definition is registered (:func:`discosim.app.studies.registry.study`) with its default
grid and its figure. The grids start from the claims' own cases (:mod:`discosim.cases`): the
ratio theorem's router for ``volume_ratios`` and ``sampler_efficiency``, the score-tube router
for ``tube_metrics``, the apex router for ``occupation``, the smoothing router for ``smoothing``
and the one hyperplane of Levy's law for ``first_hit``, so a study extends a claim's number over
a grid instead of building a look-alike set-up.

Random gate ensembles: parameters ``ensemble`` (gaussian, orthonormal, correlated), ``rho``
(pairwise row correlation of ``correlated``) and ``n_routers``; each router gets its own spawned
seed and rows carry ``router_index``; the study adds ensemble rows (``router_index`` = "mean")
with the mean and the spread (standard deviation) over routers.
"""

import time

import numpy as np

from discosim import cases
from discosim._core.errors import check_bool, check_int
from discosim.app.studies.registry import study
from discosim.model.inputs import start_point

__all__ = ["make_router", "routers_of", "ENSEMBLES"]

ENSEMBLES = cases.ENSEMBLES
make_router = cases.random_router  # (ensemble, M, D, k, seed, rho=0.0): the studies' old name


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
       grid={"eps": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "radius": 1.0, **cases.RATIO_CASE, "n_routers": 1,
             "rho": 0.0, "n_samples": 20000, "metric": "euclidean"},
       figure={"x": "eps", "y": "ratio_to_order1", "pred": "predicted_ratio", "group": "order",
               "xlabel": "eps/R", "ylabel": "U_r / U_1"})
def volume_ratios(params, seed_seq, device="cpu"):
    """Ratio theorem: U_r/U_1 against eps/R per order (tube sampler), with its prediction."""
    rows = _vol_rows(params, seed_seq, params["metric"], "tube", device)
    return rows + _ensemble_rows(rows, ["order"], ["fraction", "ratio_to_order1"])


@study("tube_metrics",
       grid={"eps": [0.01, 0.03, 0.1], "radius": 1.0, **cases.SCORE_TUBE_CASE, "n_routers": 1,
             "rho": 0.0, "n_samples": 200000, "metric": ["euclidean", "normal", "score"]},
       figure={"x": "eps", "y": "fraction", "err": "stderr", "pred": "predicted_leading",
               "group": ["metric", "order"], "xlabel": "eps/R", "ylabel": "fraction of the ball"})
def tube_metrics(params, seed_seq, device="cpu"):
    """The three tube metrics on the same routers (uniform sampler)."""
    return _vol_rows(params, seed_seq, params["metric"], "uniform", device)


@study("sampler_efficiency",
       grid={"eps": [1e-3, 1e-2, 1e-1], "radius": 1.0, **cases.RATIO_CASE, "n_routers": 1,
             "rho": 0.0, "n_samples": 20000, "order": [1, 2, 3]},
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

    router = cases.levy_router(0)
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
       grid={"eps": [0.02, 0.05, 0.1, 0.2], **cases.APEX_CASE, "n_routers": 1,
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
       grid={"eta": [0.002, 0.005, 0.01, 0.02, 0.04], **cases.SMOOTHING_CASE, "n_routers": 1,
             "rho": 0.0, "n_samples": 400000},
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

