"""Public first-hit estimators for Brownian input perturbations (THEORY §6).

:func:`estimate_first_hit` simulates ``X_t = x0 + sigma B_t`` exactly in the router's reduced
coordinates and returns, with standard errors, ``P(tau <= t)`` at requested times next to the
THEORY §6 bounds, and the hit-order profile ``q(delta) = P(X_tau within delta of Gamma^(>=2))``
with its fitted log-log exponent next to the predicted ``pi / theta*``. Paths are simulated and
counted chunk by chunk, so memory does not grow with ``n_paths``.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from discosim._kernels.codes import METRIC_CODE, METRICS
from discosim._core.memory import AVAILABLE_BYTES, check_memory
from discosim._core.errors import (InputError, check_bool, check_choice, check_int, check_positive,
                     check_positive_array)
from discosim._core.devices import check_device, resolve_devices
from discosim._core.results import (ResultMixin, estimate_row, mean_and_stderr,
                                   proportion_estimate, to_jsonable, value_row)
from discosim._core.fitting import loglog_fit
from discosim._core.runtime import (RUN_DEFAULT, add, check_backend, check_n_jobs, derive_seed,
                                   resolve_run_options, run_chunks)
from discosim.diffusion.options import PathOptions, split_keywords
from discosim.model.inputs import check_start, reduced_points
from discosim.model.router import check_router
from discosim._core.seeding import as_seed_sequence
from discosim.theory import diffusion as td

__all__ = ["estimate_first_hit", "HitResult", "simulate_first_exit", "FirstExitResult",
           "estimate_occupation", "OccupationResult", "hit_order_wos", "WosResult", "MAX_STEPS",
           "PROCESSES", "PathOptions"]

PATH_CHUNK = 256
PROCESSES = ("bm", "ou")
# Steps per path: beyond this one path takes seconds to minutes and a run never ends.
MAX_STEPS = 10_000_000
# simulate_first_exit returns every path: refuse outputs beyond the memory budget (estimate_first_hit
# streams). Its exit points (n_paths x (M + 1) float64) exist twice for a moment: per chunk, merged.
MAX_RESULT_BYTES = AVAILABLE_BYTES // 2


@dataclass(frozen=True)
class _Paths:
    """Validated path settings shared by every path estimator."""

    x0: np.ndarray  # None: random start per path
    z0: np.ndarray
    inputs: str
    radius: float
    sigma: float
    t_max: float
    dt: float
    n_steps: int
    theta: float  # 0 for Brownian motion
    process: str


def _check_paths(router, x0, inputs, radius, sigma, t_max, dt, process, theta):
    check_router(router)
    process = check_choice("process", process, PROCESSES)
    theta = check_positive("theta", theta) if process == "ou" else 0.0
    x0, z0, inputs, radius = check_start(router, x0, inputs, radius)
    sigma = check_positive("sigma", sigma)
    t_max = check_positive("t_max", t_max)
    dt = check_positive("dt", dt)
    if dt > t_max:
        raise InputError(f"dt={dt} exceeds t_max={t_max}")
    ratio = t_max / dt
    if not ratio <= MAX_STEPS:
        raise InputError(f"t_max/dt = {ratio:.3g} steps per path exceeds {MAX_STEPS:.0e}; "
                         "raise dt or lower t_max")
    n_steps = int(math.ceil(ratio - 1e-9))
    return _Paths(x0, z0, inputs, radius, sigma, t_max, dt, n_steps, theta, process)


def _starts(rng, n, router, pp):
    if pp.z0 is None:
        return np.ascontiguousarray(reduced_points(rng, n, router.n_experts, router.dim,
                                                   pp.radius, pp.inputs))
    return np.ascontiguousarray(np.broadcast_to(pp.z0, (n, pp.z0.size)))


def _probe_tie_enumeration(router, pp, eps_max, ss, what):
    """The euclidean enumeration check of :func:`discosim.volumes.estimators.check_tie_enumeration` at inputs
    where the paths go: the starts spread by the Brownian motion's law at t_max."""
    from discosim.volumes.estimators import PROBE_POINTS, check_tie_candidates

    rng = np.random.Generator(np.random.PCG64(derive_seed(ss, 99)))
    Z = _starts(rng, PROBE_POINTS, router, pp)
    Z = Z + pp.sigma * math.sqrt(pp.t_max) * rng.standard_normal(Z.shape)
    check_tie_candidates(router, Z, eps_max, what)


def _exit_chunk(rng, n, router, pp, depth, bridge):
    from discosim._kernels.diffusion.paths import first_exit_chunk

    Z0 = _starts(rng, n, router, pp)
    tau = np.empty(n)
    zhit = np.full((n, router.n_experts), np.nan)
    # the refinement's own stream: PCG64 jumped by 2^127 steps, independent of the chunk's
    refine = np.random.Generator(rng.bit_generator.jumped())
    first_exit_chunk(rng, refine, Z0, router.reduced_weights, router.bias, router.gram, router.k,
                     pp.sigma, pp.dt, pp.n_steps, pp.theta, depth, bridge, tau, zhit)
    tau[tau > pp.t_max] = np.inf
    return tau, zhit


def _hit_distances(router, zhit, tau, metric, delta_max):
    from discosim._kernels.diffusion.paths import hit_point_stats
    from discosim._kernels.pointstats import sort_pairs_for

    dist = np.empty(tau.size)
    hit_point_stats(np.ascontiguousarray(np.nan_to_num(zhit)), tau, router.reduced_weights,
                    router.bias, router.gram, router.k, METRIC_CODE[metric], float(delta_max),
                    router.max_row_norm, sort_pairs_for(router.n_experts), dist)
    return dist


def _check_device(device, devices):
    """None for the CPU, else the validated GPU ids (before any work)."""
    if check_device(device) == "cpu":
        return None
    return resolve_devices(devices)


def _hit_task(rng, n, router, pp, depth, bridge, times, deltas, metric):
    """Counts of one chunk: [tau <= t per time, hits, dist <= delta per delta]."""
    return _hit_counts(*_exit_chunk(rng, n, router, pp, depth, bridge), router, times, deltas,
                       metric)


def _hit_counts(tau, zhit, router, times, deltas, metric):
    out = np.zeros(times.size + 1 + deltas.size, dtype=np.int64)
    out[:times.size] = np.sum(tau[None, :] <= times[:, None], axis=1)
    hit = np.isfinite(tau)
    out[times.size] = hit.sum()
    if deltas.size:
        dist = _hit_distances(router, zhit, tau, metric, deltas.max())[hit]
        out[times.size + 1:] = np.sum(dist[None, :] <= deltas[:, None], axis=1)
    return out


@dataclass(frozen=True, eq=False)
class FirstExitResult(ResultMixin):
    """Every path of :func:`simulate_first_exit`.

    Parameters
    ----------
    tau : ndarray, shape (n_paths,)
        Exit times; ``inf`` where the path had not left its start cell by ``t_max``.
    exit_points : ndarray, shape (n_paths, M)
        Reduced exit points (NaN where ``tau`` is inf).
    t_max : float
        The horizon.
    n_steps : int
        Time steps per path, ``ceil(t_max / dt)``.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.simulate_first_exit(router, x0, 1.0, 1.0, 0.01, 200, seed=0)
    >>> res.tau.shape, res.exit_points.shape, res.n_steps
    ((200,), (200, 3), 100)
    >>> still_inside = ~np.isfinite(res.tau)
    >>> bool(np.isnan(res.exit_points[still_inside]).all())
    True
    """

    tau: np.ndarray
    exit_points: np.ndarray
    t_max: float
    n_steps: int
    seed_entropy: int

    def to_dict(self):
        return {"tau": self.tau, "exit_points": self.exit_points, "t_max": self.t_max,
                "n_steps": self.n_steps, "seed_entropy": self.seed_entropy}

    def to_rows(self):
        """One row per path: ``exit_time`` (None where the path had not left by t_max) and the
        reduced exit point ``exit_point[j]``."""
        points = to_jsonable(self.exit_points)  # NaN (no exit) -> None
        return [dict(value_row("exit_time", t, path=i), seed_entropy=self.seed_entropy,
                     **{f"exit_point[{j}]": v for j, v in enumerate(p)})
                for i, (t, p) in enumerate(zip(self.tau, points))]


def simulate_first_exit(router, x0, sigma, t_max, dt, n_paths, *, inputs="ball", radius=1.0,
                        path=None, options=None, **keywords):
    """Exit times and reduced exit points of ``n_paths`` paths (all kept in memory).

    Start at ``x0`` (length D), or with ``x0=None`` at a fresh random point per path:
    ``inputs="ball"`` (uniform in B_D(0, radius)) or ``"gaussian"`` (N(0, radius^2/D I_D)).
    For statistics of many paths use :func:`estimate_first_hit`, which streams.

    The first hitting time of Gamma is the exit time of the open cell ``C(x0)`` of the start's
    top-k set (THEORY §6); the paths move in the router's reduced coordinates
    (``z_t = z0 + sigma B^(M)_t``, THEORY §3), so D costs nothing.

    Parameters
    ----------
    router : Router
        The router.
    x0 : array_like, shape (D,), or None
        Start point; None starts each path at a fresh random point drawn from ``inputs``.
    sigma : float
        Noise level: ``X_t = x0 + sigma B_t``.
    t_max : float
        Horizon; paths still inside their start cell at ``t_max`` count as not hit.
    dt : float
        Time step (exact Gaussian increments in reduced coordinates, THEORY §6).
    n_paths : int
        Number of paths.
    inputs : {"ball", "gaussian"}
        Random starts (``x0=None``): uniform in ``B_D(0, radius)`` or ``N(0, radius^2/D I_D)``.
    radius : float
        Their scale.
    path : PathOptions, optional
        The law of the paths and their stepping (:class:`~discosim.diffusion.options.PathOptions`):
        ``process`` ``"bm"`` (Brownian motion ``x0 + sigma B_t``) or ``"ou"``
        (Ornstein-Uhlenbeck ``dX = -theta (X - x0) dt + sigma dB``, simulation only) with its
        mean-reversion rate ``theta``; ``bridge`` (default True): also detect crossings
        between steps by the Brownian-bridge crossing probability of each half-space and sample
        the crossing time from the bridge (THEORY §6), False: sign changes only; ``depth``:
        bisection depth of the bridge's crossing-time refinement; and optionally ``dt`` instead
        of the argument.
    options : RunOptions, optional
        How the run is executed (:class:`~discosim._core.runtime.RunOptions`): ``seed`` (None,
        int, SeedSequence or Generator; its entropy is in the result; same seed, same numbers
        for any ``n_jobs``), ``n_jobs`` (workers, -1: all cores; more than the cores only with
        ``force_jobs``), ``backend`` (``threads``, ``loky``, ``threading``, ``dask``: how chunks
        of paths are spread; the numbers do not depend on it), ``progress`` (a bar; None: when
        stderr is a terminal), ``device`` (``cuda``: the paths run on the GPUs of ``devices``,
        :mod:`discosim._cuda.diffusion`; the same law, its own random streams).
    **keywords
        The names of ``path`` and ``options`` one by one (``seed=1``, ``n_jobs=4``,
        ``bridge=False``, ``process="ou"``, ...), as before they were grouped; a name given both
        ways is an InputError.

    Returns
    -------
    FirstExitResult
        Exit times (inf if not hit by ``t_max``) and reduced exit points of every path.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.simulate_first_exit(router, x0, sigma=1.0, t_max=1.0, dt=0.01, n_paths=200,
    ...                              seed=0)
    >>> res.tau.shape
    (200,)
    >>> bool(np.all(res.tau[np.isfinite(res.tau)] <= 1.0))
    True
    """
    run, dt, bridge, depth, process, theta = split_keywords("simulate_first_exit", keywords,
                                                            options, path, dt)
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs, device, devices = run.force_jobs, run.device, run.devices
    pp = _check_paths(router, x0, inputs, radius, sigma, t_max, dt, process, theta)
    n_paths = check_int("n_paths", n_paths, 2)
    check_memory([(f"exit points of {n_paths} paths", n_paths * (router.n_experts + 1),
                   "exit_point")], "use estimate_first_hit (streams) or fewer paths")
    depth = check_int("depth", depth, 0, 60)
    bridge = check_bool("bridge", bridge)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    devices = _check_device(device, devices)
    ss = as_seed_sequence(seed)
    if devices is not None:  # device="cuda": its own streams (discosim._cuda.diffusion.paths)
        from discosim._cuda.diffusion.paths import first_exit_units
        from discosim._cuda.rng import run_key

        parts = first_exit_units(router, pp, depth, bridge, n_paths, run_key(derive_seed(ss, 5)),
                                 derive_seed(ss, 5, 1), devices, lambda tau, zhit: (tau, zhit))
    else:
        parts = run_chunks(_exit_chunk, (router, pp, depth, bridge), n_paths, PATH_CHUNK,
                           derive_seed(ss, 5), n_jobs, backend,
                           progress=progress, desc="paths",
                           unit="path", force_jobs=force_jobs)
    tau = np.concatenate([p[0] for p in parts])
    zhit = np.concatenate([p[1] for p in parts])
    return FirstExitResult(tau, zhit, pp.t_max, pp.n_steps, ss.entropy)


@dataclass(frozen=True, eq=False)
class HitResult(ResultMixin):
    """Result of :func:`estimate_first_hit`.

    ``cdf[i]`` estimates ``P(tau <= times[i])``; ``lower_bound``/``upper_bound`` are the THEORY §6
    bounds (None without a fixed Brownian start). ``q[j]`` estimates ``q(deltas[j])`` among the
    paths that hit; the exponent is the weighted log-log slope (:func:`discosim._core.fitting.loglog_fit`).

    Parameters
    ----------
    times : tuple of float
        The times t of the CDF.
    cdf : tuple of Estimate
        ``P(tau <= t)`` per time.
    lower_bound, upper_bound : ndarray, shape (len(times),), or None
        ``max_ij 2 Phibar(d_ij / (sigma sqrt t))`` and ``min(1, sum_ij 2 Phibar(...))``.
    fraction_hit : float
        Fraction of paths that hit Gamma by ``t_max``.
    deltas : tuple of float
        The resolutions delta of the hit-order profile.
    q : tuple of Estimate
        ``q(delta)``: the fraction of hit points within delta of ``Gamma^(>=2)``, among paths that
        hit (empty without ``deltas``).
    exponent_fit, exponent_stderr : float
        Fitted log-log slope of ``q(delta)`` and its standard error (NaN with fewer than two
        trusted points).
    exponent_predicted : float or None
        ``pi / theta*``, theta* the largest ridge angle of the start cell (needs a fixed start).
    n_paths : int
        Paths simulated.
    seed_entropy : int
        Entropy of the seed.
    elapsed_s : float
        Wall time.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.estimate_first_hit(router, x0, 1.0, 1.0, 0.01, 1000, [0.1, 1.0],
    ...                             deltas=[0.01, 0.1], seed=0)
    >>> len(res.cdf), len(res.q), res.lower_bound.shape
    (2, 2, (2,))
    >>> sorted(res.to_dict())
    ['first_hit', 'hit_order', 'n_paths', 'seed_entropy']
    """

    times: tuple
    cdf: tuple
    lower_bound: np.ndarray
    upper_bound: np.ndarray
    fraction_hit: float
    deltas: tuple
    q: tuple
    exponent_fit: float
    exponent_stderr: float
    exponent_predicted: float
    n_paths: int
    seed_entropy: int
    elapsed_s: float

    def to_dict(self):
        n = len(self.times)
        lo = [None] * n if self.lower_bound is None else self.lower_bound.tolist()
        hi = [None] * n if self.upper_bound is None else self.upper_bound.tolist()
        return {"first_hit": {"times": list(self.times), "cdf": [e.value for e in self.cdf],
                              "stderr": [e.stderr for e in self.cdf],
                              "lower_bound": lo, "upper_bound": hi,
                              "fraction_hit": self.fraction_hit},
                "hit_order": {"deltas": list(self.deltas), "q": [e.value for e in self.q],
                              "stderr": [e.stderr for e in self.q],
                              "exponent_fit": self.exponent_fit,
                              "exponent_stderr": self.exponent_stderr,
                              "exponent_predicted": self.exponent_predicted},
                "n_paths": self.n_paths, "seed_entropy": self.seed_entropy}

    def to_rows(self):
        """Rows ``cdf`` per time (with the THEORY §6 ``lower_bound``, ``upper_bound``), ``q`` per
        delta, ``exponent`` (fitted, with ``predicted``) and ``fraction_hit``."""
        rows = []
        for i, (t, e) in enumerate(zip(self.times, self.cdf)):
            rows.append(dict(estimate_row("cdf", e, time=t),
                             lower_bound=None if self.lower_bound is None else self.lower_bound[i],
                             upper_bound=None if self.upper_bound is None else self.upper_bound[i]))
        rows += [estimate_row("q", e, delta=d) for d, e in zip(self.deltas, self.q)]
        if self.deltas:
            rows.append(dict(value_row("exponent", self.exponent_fit, self.exponent_stderr),
                             predicted=self.exponent_predicted, seed_entropy=self.seed_entropy))
        rows.append(dict(value_row("fraction_hit", self.fraction_hit), n_samples=self.n_paths,
                         seed_entropy=self.seed_entropy))
        return to_jsonable(rows)


def fit_hit_order(deltas, q):
    """Exponent of ``q(delta)`` by :func:`~discosim._core.fitting.loglog_fit` over the trusted points.

    Points with fewer than ``MIN_RELIABLE_HITS`` hits or ``q = 1`` (no information on the slope)
    are left out; fewer than two left give NaN.
    """
    ok = [i for i, e in enumerate(q) if e.reliable and 0 < e.value < 1]
    if len(ok) < 2:
        return math.nan, math.nan
    fit = loglog_fit(np.asarray(deltas)[ok], [q[i].value for i in ok], [q[i].stderr for i in ok])
    return fit.slope, fit.slope_stderr


def estimate_first_hit(router, x0, sigma, t_max, dt, n_paths, times, *, deltas=(),
                       metric="euclidean", inputs="ball", radius=1.0, path=None, options=None,
                       **keywords):
    """``P(tau <= t)`` with bounds, and ``q(delta)`` with its exponent (THEORY §6).

    Bounds and the predicted exponent need a fixed Brownian start (``x0`` given, ``process="bm"``);
    they are None otherwise. Everything is validated before the first path is simulated.

    THEORY §6: with ``d_ij = (s_i(x0) - s_j(x0)) / |w_i - w_j|`` (i in the top-k set, j not),
    ``max_ij 2 Phibar(d_ij / (sigma sqrt t)) <= P(tau <= t) <= min(1, sum_ij 2 Phibar(...))``; the
    first hit lands on ``Gamma^(1)`` almost surely, and ``q(delta)``, the chance that it lands
    within delta of ``Gamma^(>=2)``, decays like ``delta^(pi / theta*)``. Paths are counted chunk
    by chunk, so memory does not grow with ``n_paths``.

    Parameters
    ----------
    router : Router
        The router.
    x0 : array_like, shape (D,), or None
        Start point; None starts each path at a fresh random point drawn from ``inputs``.
    sigma : float
        Noise level: ``X_t = x0 + sigma B_t``.
    t_max : float
        Horizon; paths still inside their start cell at ``t_max`` count as not hit.
    dt : float
        Time step (exact Gaussian increments in reduced coordinates, THEORY §6).
    n_paths : int
        Number of paths.
    times : sequence of float
        Times ``t <= t_max`` at which ``P(tau <= t)`` is estimated.
    deltas : sequence of float
        Resolutions of the hit-order profile ``q(delta)`` (empty: none).
    metric : {"euclidean", "normal", "score"}
        Distance from the hit point to ``Gamma^(>=2)`` (THEORY §4).
    inputs : {"ball", "gaussian"}
        Random starts (``x0=None``): uniform in ``B_D(0, radius)`` or ``N(0, radius^2/D I_D)``.
    radius : float
        Their scale.
    path : PathOptions, optional
        The law of the paths and their stepping (:class:`~discosim.diffusion.options.PathOptions`):
        ``process`` ``"bm"`` (Brownian motion ``x0 + sigma B_t``) or ``"ou"``
        (Ornstein-Uhlenbeck ``dX = -theta (X - x0) dt + sigma dB``, simulation only) with its
        mean-reversion rate ``theta``; ``bridge`` (default True): also detect crossings
        between steps by the Brownian-bridge crossing probability of each half-space and sample
        the crossing time from the bridge (THEORY §6), False: sign changes only; ``depth``:
        bisection depth of the bridge's crossing-time refinement; and optionally ``dt`` instead
        of the argument.
    options : RunOptions, optional
        How the run is executed (:class:`~discosim._core.runtime.RunOptions`): ``seed`` (None,
        int, SeedSequence or Generator; its entropy is in the result; same seed, same numbers
        for any ``n_jobs``), ``n_jobs`` (workers, -1: all cores; more than the cores only with
        ``force_jobs``), ``backend`` (``threads``, ``loky``, ``threading``, ``dask``: how chunks
        of paths are spread; the numbers do not depend on it), ``progress`` (a bar; None: when
        stderr is a terminal), ``device`` (``cuda``: the paths run on the GPUs of ``devices``,
        :mod:`discosim._cuda.diffusion`; the same law, its own random streams).
    **keywords
        The names of ``path`` and ``options`` one by one (``seed=1``, ``n_jobs=4``,
        ``bridge=False``, ``process="ou"``, ...), as before they were grouped; a name given both
        ways is an InputError.

    Returns
    -------
    HitResult
        The CDF with its bounds, and ``q(delta)`` with its fitted and predicted exponents.

    See Also
    --------
    hit_order_wos : ``q(delta)`` by walk on spheres, an independent estimator.

    Examples
    --------
    A top-1 router with 3 experts; the estimated CDF lies between the bounds.

    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.estimate_first_hit(router, x0, sigma=1.0, t_max=1.0, dt=0.01, n_paths=1000,
    ...                             times=[0.1, 0.5, 1.0], deltas=[0.01, 0.03, 0.1], seed=0)
    >>> cdf = np.array([e.value for e in res.cdf])
    >>> se = np.array([e.stderr for e in res.cdf])
    >>> bool(np.all((res.lower_bound - 4 * se <= cdf) & (cdf <= res.upper_bound + 4 * se)))
    True
    >>> print(round(float(res.exponent_predicted), 2))      # pi / theta*
    1.46
    """
    run, dt, bridge, depth, process, theta = split_keywords("estimate_first_hit", keywords,
                                                            options, path, dt)
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs, device, devices = run.force_jobs, run.device, run.devices
    pp = _check_paths(router, x0, inputs, radius, sigma, t_max, dt, process, theta)
    n_paths = check_int("n_paths", n_paths, 2)
    metric = check_choice("metric", metric, METRICS)
    times = check_positive_array("times", times)
    if np.any(times > pp.t_max):
        raise InputError(f"times must be <= t_max={pp.t_max}")
    deltas = (check_positive_array("deltas", deltas) if deltas is not None and len(deltas)
              else np.empty(0))
    depth = check_int("depth", depth, 0, 60)
    bridge = check_bool("bridge", bridge)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    devices = _check_device(device, devices)
    ss = as_seed_sequence(seed)
    if metric == "euclidean" and deltas.size:
        _probe_tie_enumeration(router, pp, float(deltas.max()), ss, "delta")
    t0 = time.perf_counter()
    if devices is not None:  # device="cuda": its own streams (discosim._cuda.diffusion.paths)
        from discosim._cuda.diffusion.paths import first_exit_units
        from discosim._cuda.rng import run_key

        counts = np.sum(first_exit_units(
            router, pp, depth, bridge, n_paths, run_key(derive_seed(ss, 5)), derive_seed(ss, 5, 1),
            devices, lambda tau, zhit: _hit_counts(tau, zhit, router, times, deltas, metric)),
            axis=0)
    else:
        counts = run_chunks(_hit_task, (router, pp, depth, bridge, times, deltas, metric),
                            n_paths, PATH_CHUNK, derive_seed(ss, 5), n_jobs, backend, progress,
                            "paths", reduce=add, unit="path", force_jobs=force_jobs)
    cdf = tuple(proportion_estimate(int(c), n_paths, ss.entropy) for c in counts[:times.size])
    fixed = pp.x0 is not None and process == "bm"
    lo = hi = None
    if fixed:
        lo, hi = td.hitting_bounds(router, pp.x0, pp.sigma, times)
    nh = int(counts[times.size])
    q, fit, fit_se, pred = (), math.nan, math.nan, None
    if deltas.size:
        if nh >= 2:
            q = tuple(proportion_estimate(int(c), nh, ss.entropy) for c in counts[times.size + 1:])
            fit, fit_se = fit_hit_order(deltas, q)
        pred = td.hit_order_exponent(router, pp.x0) if pp.x0 is not None else None
    return HitResult(tuple(times.tolist()), cdf, lo, hi, nh / n_paths, tuple(deltas.tolist()), q,
                     fit, fit_se, pred, n_paths, ss.entropy, time.perf_counter() - t0)


def _occupation_task(rng, n, router, pp, rmax, metric, eps, pairs, checkpoints):
    from discosim._kernels.diffusion.paths import occupation_chunk

    Z0 = _starts(rng, n, router, pp)
    out_sum = np.zeros((checkpoints.size, rmax, eps.size))
    out_sq = np.zeros_like(out_sum)
    occupation_chunk(rng, Z0, router.reduced_weights, router.bias, router.gram, router.k, rmax,
                     metric, eps, router.max_row_norm, pairs, pp.sigma, pp.dt, pp.n_steps,
                     pp.theta, checkpoints, out_sum, out_sq)
    return out_sum, out_sq


@dataclass(frozen=True, eq=False)
class OccupationResult(ResultMixin):
    """Mean occupation ``E L_r^eps(t)`` at checkpoint times: ``mean[c, j, e]`` with stderr.

    ``c`` indexes ``times``, ``j`` ``orders``, ``e`` ``eps``; ``bound[j, e]`` is the THEORY §6
    bound at t_max (NaN where not available).

    Parameters
    ----------
    metric : {"euclidean", "normal", "score"}
        The tube metric.
    eps : tuple of float
        Tube radii, increasing.
    orders : tuple of int
        The orders r.
    times : tuple of float
        Checkpoint times (log-spaced, the last is ``t_max``).
    mean, stderr : ndarray, shape (len(times), len(orders), len(eps))
        ``E L_r^eps(t)`` and its standard error.
    bound : ndarray, shape (len(orders), len(eps))
        The THEORY §6 bound on ``E L_r^eps(t_max)`` (NaN where none applies).
    n_paths : int
        Paths simulated.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.estimate_occupation(router, x0, 1.0, 1.0, 0.01, 100, [0.05, 0.1], seed=0)
    >>> res.mean.shape, res.orders, res.times[-1]
    ((8, 2, 2), (1, 2), 1.0)
    >>> sorted(res.eps_slopes())
    [1, 2]
    """

    metric: str
    eps: tuple
    orders: tuple
    times: tuple
    mean: np.ndarray
    stderr: np.ndarray
    bound: np.ndarray
    n_paths: int
    seed_entropy: int

    def eps_slopes(self):
        """Per order: :func:`~discosim._core.fitting.loglog_fit` slope of E L_r^eps(t_max) on eps."""
        out = {}
        for j, r in enumerate(self.orders):
            m, se = self.mean[-1, j], self.stderr[-1, j]
            ok = (m > 0) & (se > 0)
            if ok.sum() < 2:
                out[r] = (math.nan, math.nan)
                continue
            fit = loglog_fit(np.array(self.eps)[ok], m[ok], se[ok])
            out[r] = (fit.slope, fit.slope_stderr)
        return out

    def to_dict(self):
        slopes = self.eps_slopes()
        return {"metric": self.metric, "eps": list(self.eps), "times": list(self.times),
                "n_paths": self.n_paths, "seed_entropy": self.seed_entropy,
                "orders": {str(r): {"mean": self.mean[-1, j].tolist(),
                                    "stderr": self.stderr[-1, j].tolist(),
                                    "bound": [None if not np.isfinite(b) else float(b)
                                              for b in self.bound[j]],
                                    "mean_vs_time": self.mean[:, j].tolist(),
                                    "eps_slope": slopes[r][0], "eps_slope_stderr": slopes[r][1]}
                           for j, r in enumerate(self.orders)}}

    def to_rows(self):
        """Rows ``mean_occupation`` per (time, order, eps), with the THEORY §6 ``bound`` at t_max,
        and ``eps_slope`` per order."""
        rows = []
        last = len(self.times) - 1
        for c, t in enumerate(self.times):
            for j, r in enumerate(self.orders):
                for e, ep in enumerate(self.eps):
                    rows.append(dict(value_row("mean_occupation", self.mean[c, j, e],
                                               self.stderr[c, j, e], time=t, order=r, eps=ep),
                                     n_samples=self.n_paths,
                                     bound=self.bound[j, e] if c == last else None))
        for r, (s, se) in self.eps_slopes().items():
            rows.append(value_row("eps_slope", s, se, order=r))
        return to_jsonable([dict(r, metric=self.metric, seed_entropy=self.seed_entropy)
                            for r in rows])


def estimate_occupation(router, x0, sigma, t_max, dt, n_paths, eps, *, orders=None,
                        metric="euclidean", n_checkpoints=8, inputs="ball", radius=1.0,
                        path=None, options=None, **keywords):
    """Occupation times ``L_r^eps`` of the order-r tubes along paths from x0 (THEORY §6).

    The whole horizon counts (not stopped at the first hit). Returns means with standard errors
    at ``n_checkpoints`` log-spaced times up to t_max and, for the Brownian motion with the
    euclidean or normal metric, the THEORY §6 bound at t_max (infinite-horizon exact form for
    r >= 3 is available from :func:`discosim.theory.diffusion.occupation_infinite_horizon`).
    ``orders`` defaults to ``1 .. min(3, M - 1)``.

    ``device="cuda"``: the paths run on the GPUs ``devices`` (:mod:`discosim._cuda.diffusion.occupation`:
    the same tube statistics compiled for the device, its own random streams; same law).

    THEORY §6: ``L_r^eps(t) = int_0^t 1{X_s in T_eps(Gamma^(>=r))} ds``, bounded in mean by
    ``sum_J int_0^t F_{chi'^2_r}(eps^2/(sigma^2 s); d_J^2/(sigma^2 s)) ds`` (noncentral chi^2);
    it grows like sqrt(t) for r = 1, like log t for r = 2 and stays bounded for r >= 3.

    Parameters
    ----------
    router : Router
        The router.
    x0 : array_like, shape (D,), or None
        Start point; None starts each path at a fresh random point drawn from ``inputs``.
    sigma : float
        Noise level: ``X_t = x0 + sigma B_t``.
    t_max : float
        Horizon; paths still inside their start cell at ``t_max`` count as not hit.
    dt : float
        Time step (exact Gaussian increments in reduced coordinates, THEORY §6).
    n_paths : int
        Number of paths.
    eps : sequence of float
        Tube radii.
    orders : sequence of int, optional
        Orders r (default ``1 .. min(3, M - 1)``).
    metric : {"euclidean", "normal", "score"}
        The tube metric (THEORY §4).
    n_checkpoints : int
        Log-spaced times at which the running means are recorded.
    inputs : {"ball", "gaussian"}
        Random starts (``x0=None``): uniform in ``B_D(0, radius)`` or ``N(0, radius^2/D I_D)``.
    radius : float
        Their scale.
    path : PathOptions, optional
        The law of the paths and their stepping (:class:`~discosim.diffusion.options.PathOptions`):
        ``process`` ``"bm"`` (Brownian motion ``x0 + sigma B_t``) or ``"ou"``
        (Ornstein-Uhlenbeck ``dX = -theta (X - x0) dt + sigma dB``, simulation only) with its
        mean-reversion rate ``theta``, and optionally ``dt`` instead of the argument.
    options : RunOptions, optional
        How the run is executed (:class:`~discosim._core.runtime.RunOptions`): ``seed`` (None,
        int, SeedSequence or Generator; its entropy is in the result; same seed, same numbers
        for any ``n_jobs``), ``n_jobs`` (workers, -1: all cores; more than the cores only with
        ``force_jobs``), ``backend`` (``threads``, ``loky``, ``threading``, ``dask``: how chunks
        of paths are spread; the numbers do not depend on it), ``progress`` (a bar; None: when
        stderr is a terminal), ``device`` (``cuda``: the paths run on the GPUs of ``devices``,
        :mod:`discosim._cuda.diffusion`; the same law, its own random streams).
    **keywords
        The names of ``path`` and ``options`` one by one (``seed=1``, ``n_jobs=4``,
        ``process="ou"``, ...), as before they were grouped; a name given both ways is an
        InputError.

    Returns
    -------
    OccupationResult
        Means and standard errors per time, order and eps, with the bounds at ``t_max``.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.estimate_occupation(router, x0, sigma=1.0, t_max=1.0, dt=0.01, n_paths=100,
    ...                              eps=[0.05, 0.1], seed=0)
    >>> res.mean.shape                         # (times, orders, eps)
    (8, 2, 2)
    >>> np.round(res.bound, 3)                 # THEORY §6 bound at t_max, per order and eps
    array([[0.185, 0.37 ],
           [0.003, 0.013]])
    >>> bool(np.all(res.mean[-1] <= res.bound + 4 * res.stderr[-1]))
    True
    """
    run, dt, _, _, process, theta = split_keywords("estimate_occupation", keywords, options,
                                                   path, dt, path_fields=("process", "theta"))
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs, device, devices = run.force_jobs, run.device, run.devices
    from discosim._kernels.pointstats import sort_pairs_for
    from discosim.volumes.estimators import check_orders

    pp = _check_paths(router, x0, inputs, radius, sigma, t_max, dt, process, theta)
    metric = check_choice("metric", metric, METRICS)
    eps = np.sort(check_positive_array("eps", eps))
    orders = check_orders(orders, router.n_experts)
    n_paths = check_int("n_paths", n_paths, 2)
    n_checkpoints = check_int("n_checkpoints", n_checkpoints, 1, 10_000)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    devices = _check_device(device, devices)
    n_steps = pp.n_steps
    grid = np.geomspace(max(1, n_steps / 10 ** 3), n_steps, n_checkpoints)
    cps = np.unique(np.append(grid.round(), n_steps).astype(np.int64))  # t_max always included
    ss = as_seed_sequence(seed)
    if metric == "euclidean":
        _probe_tie_enumeration(router, pp, float(eps[-1]), ss, "eps")
    if devices is not None:
        from discosim._cuda.diffusion.occupation import occupation_sums
        from discosim._cuda.rng import run_key

        counts, counts2 = occupation_sums(router, pp, max(orders), METRIC_CODE[metric], eps, cps,
                                          n_paths, run_key(derive_seed(ss, 6, 1)),
                                          derive_seed(ss, 6, 2), devices)
        tot, tot2 = pp.dt * counts, pp.dt * pp.dt * counts2
    else:
        tot, tot2 = run_chunks(_occupation_task, (router, pp, max(orders), METRIC_CODE[metric],
                                                  eps, sort_pairs_for(router.n_experts), cps),
                               n_paths, 64, derive_seed(ss, 6), n_jobs, backend, progress,
                               "occupation", reduce=add, unit="path", force_jobs=force_jobs)
    mean, se = mean_and_stderr(tot, tot2, n_paths)
    idx = [r - 1 for r in orders]
    bound = np.full((len(orders), eps.size), np.nan)
    if pp.process == "bm" and metric in ("euclidean", "normal") and pp.x0 is not None:
        for j, r in enumerate(orders):
            for e, ep in enumerate(eps):
                bound[j, e] = td.occupation_bound(router, pp.x0, pp.sigma, ep, r, pp.t_max)
    return OccupationResult(metric, tuple(eps.tolist()), orders, tuple((cps * pp.dt).tolist()),
                            mean[:, idx, :], se[:, idx, :], bound, n_paths, ss.entropy)


def _wos_task(rng, n, router, pp, tol, max_steps, deltas, metric):
    from discosim._kernels.diffusion.paths import walk_on_spheres_chunk

    Z0 = _starts(rng, n, router, pp)
    zexit = np.empty((n, router.n_experts))
    steps = np.empty(n, dtype=np.int64)
    walk_on_spheres_chunk(rng, Z0, router.reduced_weights, router.bias, router.gram, router.k,
                          tol, max_steps, zexit, steps)
    dist = _hit_distances(router, zexit, np.zeros(n), metric, deltas.max())
    out = np.zeros(deltas.size + 2, dtype=np.int64)
    out[:deltas.size] = np.sum(dist[None, :] <= deltas[:, None], axis=1)
    out[deltas.size] = steps.sum()
    out[deltas.size + 1] = np.sum(steps >= max_steps)
    return out


@dataclass(frozen=True, eq=False)
class WosResult(ResultMixin):
    """``q(delta)`` by walk on spheres: ``q[j]`` at ``deltas[j]``, and the mean steps per path.

    ``n_truncated`` paths reached ``max_steps`` and were stopped on their nearest facet.

    Parameters
    ----------
    deltas : tuple of float
        The resolutions delta.
    q : tuple of Estimate
        ``q(delta)``: fraction of exit points within delta of ``Gamma^(>=2)``.
    mean_steps : float
        Mean walk-on-spheres steps per path.
    n_truncated : int
        Paths stopped at ``max_steps``.
    n_paths : int
        Paths simulated.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.hit_order_wos(router, x0, [0.01, 0.1], 200, seed=0)
    >>> len(res.q), res.n_truncated
    (2, 0)
    """

    deltas: tuple
    q: tuple
    mean_steps: float
    n_truncated: int
    n_paths: int
    seed_entropy: int

    def to_dict(self):
        return {"deltas": list(self.deltas), "q": [e.value for e in self.q],
                "stderr": [e.stderr for e in self.q], "mean_steps": self.mean_steps,
                "n_truncated": self.n_truncated, "n_paths": self.n_paths,
                "seed_entropy": self.seed_entropy}

    def to_rows(self):
        """Rows ``q`` per delta, ``mean_steps`` and ``n_truncated``."""
        extra = dict(n_samples=self.n_paths, seed_entropy=self.seed_entropy)
        return ([estimate_row("q", e, delta=d) for d, e in zip(self.deltas, self.q)]
                + [dict(value_row("mean_steps", self.mean_steps), **extra),
                   dict(value_row("n_truncated", self.n_truncated), **extra)])


def hit_order_wos(router, x0, deltas, n_paths, *, metric="euclidean", tol=None,
                  seed=RUN_DEFAULT.seed, n_jobs=RUN_DEFAULT.n_jobs, backend=RUN_DEFAULT.backend,
                  inputs="ball", radius=1.0, max_steps=100_000, progress=RUN_DEFAULT.progress,
                  force_jobs=RUN_DEFAULT.force_jobs, options=None):
    """``q(delta)`` from exit positions drawn by walk on spheres (no time stepping).

    A second, independent estimator of the hit-order statistics of :func:`estimate_first_hit`
    (exit positions over an infinite horizon; Brownian motion only). ``tol`` defaults to
    ``1e-3 * min(deltas)``, far below the resolution asked for.

    Parameters
    ----------
    router : Router
        The router.
    x0 : array_like, shape (D,), or None
        Start point; None starts each path at a fresh random point drawn from ``inputs``.
    deltas : sequence of float
        Resolutions delta of ``q(delta)``.
    n_paths : int
        Number of walks.
    metric : {"euclidean", "normal", "score"}
        Distance from the exit point to ``Gamma^(>=2)``.
    tol : float, optional
        A walk stops within ``tol`` of the cell's boundary.
    seed : None, int, SeedSequence or numpy Generator
        Seed; its entropy is in the result. Same seed, same numbers for any ``n_jobs``.
    n_jobs : int
        Workers (-1: all cores; more than the cores only with ``force_jobs``).
    backend : {"threads", "loky", "threading", "dask"}
        How chunks of paths are spread over the workers; the numbers do not depend on it.
    inputs : {"ball", "gaussian"}
        Random starts (``x0=None``): uniform in ``B_D(0, radius)`` or ``N(0, radius^2/D I_D)``.
    radius : float
        Their scale.
    max_steps : int
        Steps after which a walk is stopped on its nearest facet (counted in ``n_truncated``).
    progress : bool or None
        Progress bar (None: when stderr is a terminal).
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    options : RunOptions, optional
        seed, n_jobs, backend, progress and force_jobs (CPU only) in one object (:class:`~discosim._core.runtime.RunOptions`); a name given both
        ways is an InputError.

    Returns
    -------
    WosResult
        ``q(delta)`` per delta, with the walks' mean step count.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> res = ds.hit_order_wos(router, x0, deltas=[0.01, 0.1], n_paths=200, seed=0)
    >>> len(res.q), res.q[0].value <= res.q[1].value     # q grows with delta
    (2, True)
    >>> res.n_truncated
    0
    """
    check_router(router)
    run = resolve_run_options("hit_order_wos", options, seed=seed, n_jobs=n_jobs, backend=backend,
                              progress=progress, force_jobs=force_jobs)
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs = run.force_jobs
    metric = check_choice("metric", metric, METRICS)
    deltas = check_positive_array("deltas", deltas)
    n_paths = check_int("n_paths", n_paths, 2)
    x0, z0, inputs, radius = check_start(router, x0, inputs, radius)
    tol = check_positive("tol", tol if tol is not None else 1e-3 * float(deltas.min()))
    max_steps = check_int("max_steps", max_steps, 1)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    pp = _Paths(x0, z0, inputs, radius, 1.0, 1.0, 1.0, 1, 0.0, "bm")
    ss = as_seed_sequence(seed)
    tot = run_chunks(_wos_task, (router, pp, tol, max_steps, deltas, metric), n_paths,
                     PATH_CHUNK, derive_seed(ss, 7), n_jobs, backend, progress, "walk on spheres",
                     reduce=add, unit="path", force_jobs=force_jobs)
    q = tuple(proportion_estimate(int(c), n_paths, ss.entropy) for c in tot[:deltas.size])
    return WosResult(tuple(deltas.tolist()), q, float(tot[deltas.size]) / n_paths,
                     int(tot[deltas.size + 1]), n_paths, ss.entropy)
