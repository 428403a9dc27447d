"""Public first-hit estimators for Brownian input perturbations (THEORY §6).

:func:`estimate_first_hit` simulates ``X_t = x0 + sigma B_t`` exactly in the router's reduced
coordinates and returns, with standard errors, ``P(tau <= t)`` at requested times next to the
THEORY §6 bounds, and the hit-order profile ``q(delta) = P(X_tau within delta of Gamma^(>=2))``
with its fitted log-log exponent next to the predicted ``pi / theta*``.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from ._kernels.codes import METRIC_CODE, METRICS
from .errors import InputError, check_choice, check_int, check_positive, check_positive_array
from .estimates import mean_and_stderr, proportion_estimate
from .parallel import derive_seed, run_chunks
from .points import reduced_points
from .router import Router
from .seeding import as_seed_sequence
from .theory import diffusion as td

__all__ = ["estimate_first_hit", "HitResult", "simulate_first_exit", "estimate_occupation", "hit_order_wos"]

PATH_CHUNK = 256


def _check_not_on_gamma(router, x0):
    s = np.sort(router.scores(x0[None, :])[0])[::-1]
    if s[router.k - 1] - s[router.k] <= 1e-12 * (abs(s[router.k - 1]) + 1.0):
        raise InputError("x0 lies on the discontinuity set Gamma (a tie across ranks k, k+1)")


def _start_args(router, x0, start, radius):
    """Validate a fixed start x0 (-> its reduced z0) or a per-path random start kind."""
    if x0 is None:
        return None, None, check_choice("start", start, ("ball", "gaussian")), check_positive("radius", radius)
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (router.dim,):
        raise InputError(f"x0 must have length D={router.dim}, got shape {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise InputError("x0 has non-finite entries")
    _check_not_on_gamma(router, x0)
    return x0, router.to_reduced(x0), start, radius


def random_starts(rng, n, router, start, radius):
    """Reduced start points: uniform in B_D(0, R) or Gaussian N(0, R^2/D I_D)."""
    return reduced_points(rng, n, router.n_experts, router.dim, radius, start)


def _exit_task(rng, n, z0, start, radius, router, sigma, dt, n_steps, theta, depth, bridge):
    from ._kernels.paths import first_exit_chunk

    if z0 is None:
        Z0 = np.ascontiguousarray(random_starts(rng, n, router, start, radius))
    else:
        Z0 = np.ascontiguousarray(np.broadcast_to(z0, (n, z0.size)))
    M = router.n_experts
    tau = np.empty(n)
    zhit = np.full((n, M), np.nan)
    first_exit_chunk(rng, Z0, router.reduced_weights, router.bias, router.gram, router.k, sigma, dt,
                     n_steps, theta, depth, bridge, tau, zhit)
    return tau, zhit


def simulate_first_exit(router, x0, sigma, t_max, dt, n_paths, seed=None, n_jobs=1, bridge=True,
                        depth=20, start=None, radius=1.0, process="bm", theta=1.0):
    """Exit times (inf if none by t_max) and reduced exit points of ``n_paths`` paths.

    Start at ``x0`` (length D), or with ``x0=None`` at a fresh random point per path:
    ``start="ball"`` (uniform in B_D(0, radius)) or ``"gaussian"`` (N(0, radius^2/D I_D)).
    ``process``: ``bm`` (x0 + sigma B_t) or ``ou`` (dX = -theta (X - x0) dt + sigma dB).
    """
    if not isinstance(router, Router):
        raise InputError("router must be a discosim.Router")
    process = check_choice("process", process, ("bm", "ou"))
    theta = check_positive("theta", theta) if process == "ou" else 0.0
    x0, z0, start, radius = _start_args(router, x0, start, radius)
    sigma = check_positive("sigma", sigma)
    t_max = check_positive("t_max", t_max)
    dt = check_positive("dt", dt)
    if dt > t_max:
        raise InputError(f"dt={dt} exceeds t_max={t_max}")
    n_paths = check_int("n_paths", n_paths, 2)
    n_steps = int(math.ceil(t_max / dt - 1e-9))
    ss = as_seed_sequence(seed)
    parts = run_chunks(_exit_task, (z0, start, radius, router, sigma, dt, n_steps, theta, depth,
                                    bool(bridge)),
                       n_paths, PATH_CHUNK, derive_seed(ss, 5), n_jobs)
    tau = np.concatenate([p[0] for p in parts])
    zhit = np.concatenate([p[1] for p in parts])
    tau[tau > t_max] = np.inf
    return tau, zhit, ss.entropy


@dataclass(frozen=True)
class HitResult:
    times: tuple
    cdf: list
    lower_bound: list
    upper_bound: list
    fraction_hit: float
    deltas: tuple
    q: list
    exponent_fit: float
    exponent_stderr: float
    exponent_predicted: float
    elapsed_s: float

    def to_dict(self):
        return {"first_hit": {"times": list(self.times), "cdf": [e.value for e in self.cdf],
                              "stderr": [e.stderr for e in self.cdf],
                              "lower_bound": self.lower_bound, "upper_bound": self.upper_bound,
                              "fraction_hit": self.fraction_hit},
                "hit_order": {"deltas": list(self.deltas), "q": [e.value for e in self.q],
                              "stderr": [e.stderr for e in self.q],
                              "exponent_fit": self.exponent_fit,
                              "exponent_stderr": self.exponent_stderr,
                              "exponent_predicted": self.exponent_predicted}}


def _fit(deltas, q):
    ok = [i for i, e in enumerate(q) if e.n_hits >= 20 and e.value < 1]
    if len(ok) < 2:
        return math.nan, math.nan
    x = np.log(np.array(deltas)[ok])
    y = np.log([q[i].value for i in ok])
    w = np.array([(q[i].value / q[i].stderr) ** 2 for i in ok])
    X = np.vstack([np.ones_like(x), x]).T
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov @ (X.T @ (w * y))
    return float(beta[1]), float(math.sqrt(cov[1, 1]))


def estimate_first_hit(router, x0, sigma, t_max, dt, n_paths, times, deltas=(), metric="euclidean",
                       seed=None, n_jobs=1, bridge=True, start=None, radius=1.0, process="bm",
                       theta=1.0):
    """``P(tau <= t)`` with bounds, and ``q(delta)`` with its exponent (THEORY §6).

    Bounds and the predicted exponent need a fixed Brownian start (``x0`` given, ``process="bm"``);
    they are None otherwise.
    """
    metric = check_choice("metric", metric, METRICS)
    times = check_positive_array("times", times)
    if np.any(times > t_max):
        raise InputError(f"times must be <= t_max={t_max}")
    t0 = time.perf_counter()
    tau, zhit, entropy = simulate_first_exit(router, x0, sigma, t_max, dt, n_paths, seed, n_jobs,
                                             bridge, start=start, radius=radius, process=process,
                                             theta=theta)
    cdf = [proportion_estimate(int(np.sum(tau <= t)), tau.size, entropy) for t in times]
    fixed = x0 is not None and process == "bm"
    if fixed:
        lo, hi = td.hitting_bounds(router, x0, sigma, times)
        lo, hi = lo.tolist(), hi.tolist()
    else:
        lo = hi = [None] * len(times)
    hit = np.isfinite(tau)
    q, fit, fit_se, pred = [], math.nan, math.nan, math.nan
    if len(deltas):
        from ._kernels.paths import hit_point_stats
        from ._kernels.pointstats import sort_pairs_for

        deltas = check_positive_array("deltas", deltas)
        dist = np.empty(tau.size)
        hit_point_stats(np.ascontiguousarray(np.nan_to_num(zhit)), tau, router.reduced_weights,
                        router.bias, router.gram, router.k,
                        METRIC_CODE[metric],
                        float(deltas.max()), router.max_row_norm, sort_pairs_for(router.n_experts),
                        dist)
        nh = int(hit.sum())
        if nh >= 2:
            q = [proportion_estimate(int(np.sum(dist[hit] <= d)), nh, entropy) for d in deltas]
            fit, fit_se = _fit(deltas, q)
        pred = td.hit_order_exponent(router, x0) if x0 is not None else None
    return HitResult(tuple(times.tolist()), cdf, lo, hi, float(hit.mean()),
                     tuple(np.atleast_1d(deltas).tolist()), q, fit, fit_se, pred,
                     time.perf_counter() - t0)


def _occupation_task(rng, n, z0, start, radius, router, rmax, metric, eps, pairs, sigma, dt,
                     n_steps, theta, checkpoints):
    from ._kernels.paths import occupation_chunk

    if z0 is None:
        Z0 = np.ascontiguousarray(random_starts(rng, n, router, start, radius))
    else:
        Z0 = np.ascontiguousarray(np.broadcast_to(z0, (n, z0.size)))
    Wr, bias, gram, k, wmax = (router.reduced_weights, router.bias, router.gram, router.k,
                               router.max_row_norm)
    out_sum = np.zeros((checkpoints.size, rmax, eps.size))
    out_sq = np.zeros_like(out_sum)
    occupation_chunk(rng, Z0, Wr, bias, gram, k, rmax, metric, eps, wmax, pairs, sigma, dt, n_steps,
                     theta, checkpoints, out_sum, out_sq)
    return out_sum, out_sq


@dataclass(frozen=True)
class OccupationResult:
    """Mean occupation ``E L_r^eps(t)`` at checkpoint times: ``mean[c][r-1][e]`` with stderr."""

    metric: str
    eps: tuple
    orders: tuple
    times: tuple
    mean: np.ndarray
    stderr: np.ndarray
    bound: np.ndarray  # THEORY §6 bound at t_max per (r, eps); nan where not available
    n_paths: int

    def eps_slopes(self):
        """Per order: least-squares slope of log E L_r^eps(t_max) on log eps, with its stderr."""
        out = {}
        last = len(self.times) - 1
        for i, r in enumerate(self.orders):
            m, se = self.mean[last, i], self.stderr[last, i]
            ok = m > 0
            if ok.sum() < 2:
                out[r] = (math.nan, math.nan)
                continue
            x, y = np.log(np.array(self.eps)[ok]), np.log(m[ok])
            w = (m[ok] / np.maximum(se[ok], 1e-300)) ** 2
            X = np.vstack([np.ones_like(x), x]).T
            cov = np.linalg.pinv(X.T @ (X * w[:, None]))
            beta = cov @ (X.T @ (w * y))
            out[r] = (float(beta[1]), float(math.sqrt(max(cov[1, 1], 0.0))))
        return out

    def to_dict(self):
        last = len(self.times) - 1
        slopes = self.eps_slopes()
        return {"metric": self.metric, "eps": list(self.eps), "times": list(self.times),
                "orders": {str(r): {"mean": self.mean[last, i].tolist(),
                                    "stderr": self.stderr[last, i].tolist(),
                                    "bound": [None if not np.isfinite(b) else float(b)
                                              for b in self.bound[i]],
                                    "mean_vs_time": self.mean[:, i].tolist(),
                                    "eps_slope": slopes[r][0], "eps_slope_stderr": slopes[r][1]}
                           for i, r in enumerate(self.orders)}}


def estimate_occupation(router, x0, sigma, t_max, dt, n_paths, eps, orders=(1, 2, 3),
                        metric="euclidean", process="bm", theta=1.0, n_checkpoints=8, seed=None,
                        n_jobs=1, start=None, radius=1.0):
    """Occupation times ``L_r^eps`` of the order-r tubes along paths from x0 (THEORY §6).

    The whole horizon counts (not stopped at the first hit). Returns means with standard errors
    at ``n_checkpoints`` log-spaced times up to t_max and, for the Brownian motion with the
    euclidean or normal metric, the THEORY §6 bound at t_max (infinite-horizon exact form for
    r >= 3 is available from :func:`discosim.theory.diffusion.occupation_infinite_horizon`).
    """
    from ._kernels.pointstats import sort_pairs_for

    metric = check_choice("metric", metric, METRICS)
    process = check_choice("process", process, ("bm", "ou"))
    eps = np.sort(check_positive_array("eps", eps))
    orders = sorted({check_int("order", r, 1, router.n_experts - 1) for r in orders})
    if process == "ou":
        theta = check_positive("theta", theta)
    x0, z0, start, radius = _start_args(router, x0, start, radius)
    sigma = check_positive("sigma", sigma)
    t_max = check_positive("t_max", t_max)
    dt = check_positive("dt", dt)
    n_paths = check_int("n_paths", n_paths, 2)
    n_steps = int(math.ceil(t_max / dt - 1e-9))
    n_checkpoints = check_int("n_checkpoints", n_checkpoints, 1)
    grid = np.geomspace(max(1, n_steps / 10 ** 3), n_steps, n_checkpoints)
    cps = np.unique(np.append(grid.round(), n_steps).astype(np.int64))  # t_max always included
    rmax = max(orders)
    ss = as_seed_sequence(seed)
    code = METRIC_CODE[metric]
    parts = run_chunks(_occupation_task, (z0, start, radius, router, rmax, code, eps,
                                          sort_pairs_for(router.n_experts), sigma, dt, n_steps,
                                          theta if process == "ou" else 0.0, cps),
                       n_paths, 64, derive_seed(ss, 6), n_jobs)
    tot = np.sum([p[0] for p in parts], axis=0)
    tot2 = np.sum([p[1] for p in parts], axis=0)
    mean, se = mean_and_stderr(tot, tot2, n_paths)
    idx = [r - 1 for r in orders]
    bound = np.full((len(orders), eps.size), np.nan)
    if process == "bm" and metric in ("euclidean", "normal") and x0 is not None:
        for i, r in enumerate(orders):
            for e, ep in enumerate(eps):
                bound[i, e] = td.occupation_bound(router, x0, sigma, ep, r, t_max)
    return OccupationResult(metric, tuple(eps.tolist()), tuple(orders), tuple((cps * dt).tolist()),
                            mean[:, idx, :], se[:, idx, :], bound, n_paths)


def _wos_task(rng, n, z0, start, radius, router, tol, max_steps):
    from ._kernels.paths import walk_on_spheres_chunk

    if z0 is None:
        Z0 = np.ascontiguousarray(random_starts(rng, n, router, start, radius))
    else:
        Z0 = np.ascontiguousarray(np.broadcast_to(z0, (n, z0.size)))
    zexit = np.empty((n, router.n_experts))
    steps = np.empty(n, dtype=np.int64)
    walk_on_spheres_chunk(rng, Z0, router.reduced_weights, router.bias, router.gram, router.k, tol,
                          max_steps, zexit, steps)
    return zexit, steps


def hit_order_wos(router, x0, deltas, n_paths, metric="euclidean", tol=None, seed=None, n_jobs=1,
                  start=None, radius=1.0, max_steps=100_000):
    """``q(delta)`` from exit positions drawn by walk on spheres (no time stepping).

    A second, independent estimator of the hit-order statistics of :func:`estimate_first_hit`
    (exit positions over an infinite horizon; Brownian motion only). ``tol`` defaults to
    ``1e-3 * min(deltas)``, far below the resolution asked for.

    Returns
    -------
    (list of Estimate, mean number of steps per path)
    """
    from ._kernels.paths import hit_point_stats
    from ._kernels.pointstats import sort_pairs_for

    metric = check_choice("metric", metric, METRICS)
    deltas = check_positive_array("deltas", deltas)
    n_paths = check_int("n_paths", n_paths, 2)
    x0, z0, start, radius = _start_args(router, x0, start, radius)
    tol = check_positive("tol", tol if tol is not None else 1e-3 * float(deltas.min()))
    ss = as_seed_sequence(seed)
    parts = run_chunks(_wos_task, (z0, start, radius, router, tol, int(max_steps)), n_paths,
                       PATH_CHUNK, derive_seed(ss, 7), n_jobs)
    zexit = np.concatenate([p[0] for p in parts])
    steps = np.concatenate([p[1] for p in parts])
    dist = np.empty(n_paths)
    hit_point_stats(np.ascontiguousarray(zexit), np.zeros(n_paths), router.reduced_weights,
                    router.bias, router.gram, router.k,
                    METRIC_CODE[metric], float(deltas.max()),
                    router.max_row_norm, sort_pairs_for(router.n_experts), dist)
    q = [proportion_estimate(int(np.sum(dist <= d)), n_paths, ss.entropy) for d in deltas]
    return q, float(steps.mean())
