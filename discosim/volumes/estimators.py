"""Public tube-volume estimators (THEORY §4, §5, §8).

:func:`estimate_volumes` estimates, per order r and per eps, the fraction of ``B_D(0, R)`` that
lies in the order-r tube of the chosen metric, with its standard error and confidence interval,
next to the predictions of THEORY §5:

- ``euclidean``: ``T_eps(Gamma^(r)) = T_eps(Gamma^(>=r))`` (distance to the closed set);
- ``normal``: the fibre tube ``{y + n : y in Gamma_J, n in N_J, |n| <= eps}`` over ``|J| = r+1``;
- ``score``: some window of r+1 consecutive sorted scores holding ranks k, k+1 spreads <= eps.

Methods: ``uniform`` (points uniform in the ball, all eps in one pass) and ``tube`` (the
Karp-Luby-Madras importance sampler of THEORY §8, one run per order and eps, relative error
bounded as eps -> 0; needs b = 0).
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from discosim._kernels.codes import METRIC_CODE, METRIC_SCORE, METRICS
from discosim._core.devices import check_device, resolve_devices
from discosim._core.errors import (InputError, check_bool, check_choice, check_int, check_positive,
                     check_positive_array)
from discosim._core.results import (Estimate, ResultMixin, estimate_row, mean_and_stderr,
                                   proportion_estimate)
from discosim._core.runtime import (RUN_DEFAULT, add, check_backend, check_n_jobs, derive_seed,
                                   resolve_run_options, run_chunks)
from discosim.model.inputs import reduced_points
from discosim.model.router import check_router
from discosim.model.selection import tie_straddles_cut
from discosim._core.seeding import as_seed_sequence

__all__ = ["estimate_volumes", "estimate_slice_volume", "VolumeResult", "OrderResult", "METRICS",
           "METHODS", "default_orders", "check_orders"]

METHODS = ("uniform", "tube")
UNIFORM_CHUNK = 1 << 16
TUBE_CHUNK = 1 << 14


@dataclass(frozen=True)
class OrderResult(ResultMixin):
    """One order at one eps: the estimated fraction and the THEORY §5 predictions.

    One cell of a :class:`VolumeResult`, from :meth:`VolumeResult.order_result`.

    Parameters
    ----------
    order : int
        The order r of the tube ``T_eps(Gamma^(r))``.
    estimate : Estimate
        The estimated fraction of ``B_D(0, R)`` in the tube.
    predicted_slice_sum : float or None
        ``sum_J alpha_J I_{eps^2/R^2}(r/2, d/2+1)`` (THEORY §5; b = 0, euclidean and normal
        metrics), the union's value up to ``O(eps^{r+1})``; None where it does not apply.
    predicted_leading : float or None
        The leading order ``A_r omega_r omega_{D-r} eps^r R^{D-r} / (omega_D R^D)`` (score
        metric: with ``B_r``); None where it does not apply.
    predicted_rel_stderr : float
        Relative standard error of the predictions (from Monte Carlo slice constants; 0 for
        closed forms and Genz).
    overlap : Estimate or None
        Tube method, euclidean or normal metric: the slice sum minus the union, ``S - U``,
        from the same samples.

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> res = ds.estimate_volumes(router, 1.0, [0.05, 0.1], n_samples=20_000, seed=0)
    >>> cell = res.order_result(1, 2)       # eps = 0.1, order 2
    >>> cell.order, cell.estimate.reliable, round(cell.predicted_slice_sum, 4)
    (2, True, 0.1576)
    """

    order: int
    estimate: Estimate
    predicted_slice_sum: float = None
    predicted_leading: float = None
    predicted_rel_stderr: float = 0.0
    overlap: Estimate = None  # tube method, euclidean/normal: S - U from the same samples

    def to_dict(self):
        lo, hi = self.estimate.confidence_interval(0.95)
        extra = {} if self.overlap is None else {"overlap": self.overlap.value,
                                                 "overlap_stderr": self.overlap.stderr}
        return {**extra, "fraction": self.estimate.value, "stderr": self.estimate.stderr,
                "ci_low": lo, "ci_high": hi, "n_hits": self.estimate.n_hits,
                "reliable": self.estimate.reliable,
                "predicted_slice_sum": self.predicted_slice_sum,
                "predicted_leading": self.predicted_leading,
                "predicted_rel_stderr": self.predicted_rel_stderr}

    def to_rows(self):
        """One row: the estimate of the order's fraction with the THEORY §5 predictions."""
        return [self.row()]

    def row(self, **index):
        row = estimate_row("fraction", self.estimate, **index, order=self.order)
        row.update(predicted=self.predicted_leading, predicted_slice_sum=self.predicted_slice_sum,
                   predicted_rel_stderr=self.predicted_rel_stderr)
        if self.overlap is not None:
            row.update(overlap=self.overlap.value, overlap_stderr=self.overlap.stderr)
        return row


def _opt(x):
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True, eq=False)
class VolumeResult(ResultMixin):
    """Result of :func:`estimate_volumes`: arrays of shape (len(eps), len(orders)).

    Column ``j`` is order ``orders[j]``, row ``i`` is ``eps[i]`` (the order given). Predictions
    are NaN where THEORY §5 gives none (or ``predict=False``); overlaps are NaN except for the
    tube method with the euclidean or normal metric. :meth:`order_result` gives one cell as an
    :class:`OrderResult`, :meth:`series` one order's column over eps, :meth:`estimate` one
    cell's :class:`Estimate`, ``to_dict()`` the whole result as plain JSON types.

    Parameters
    ----------
    router : dict
        ``Router.summary()``: M, D, k, kind and whether a bias is present.
    radius : float
        R.
    metric : {"euclidean", "normal", "score"}
        The tube metric (THEORY §4).
    method : {"uniform", "tube"}
        The sampler (THEORY §8).
    n_samples : int
        Samples (uniform: shared by every cell; tube: per cell).
    seed_entropy : int
        Entropy of the seed that drew them: the same entropy reproduces the numbers.
    eps : tuple of float
        The tube radii, in the order given.
    orders : tuple of int
        The orders r, increasing.
    fraction, stderr : ndarray, shape (len(eps), len(orders))
        Estimated fraction of ``B_D(0, R)`` in each tube and its standard error.
    n_hits : ndarray of int, shape (len(eps), len(orders))
        Samples that landed in the tube (tube method: with a nonzero weight).
    predicted_slice_sum, predicted_leading : ndarray, shape (len(eps), len(orders))
        The THEORY §5 predictions (see :class:`OrderResult`); NaN where none applies.
    predicted_rel_stderr : ndarray, shape (len(orders),)
        Relative standard error of the predictions, per order.
    overlap, overlap_stderr : ndarray, shape (len(eps), len(orders))
        Tube method, euclidean or normal metric: ``S - U`` (slice sum minus union) and its
        standard error; NaN otherwise.
    elapsed_s : float
        Wall time of the estimate.
    constants : dict
        ``{r: SliceConstants}`` behind the predictions.

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> res = ds.estimate_volumes(router, 1.0, [0.05, 0.1], n_samples=20_000, seed=0)
    >>> res.fraction.shape, res.orders
    ((2, 3), (1, 2, 3))
    >>> res.series(1).shape                 # order 1 over eps
    (2,)
    >>> res.estimate(0, 1).n_samples
    20000
    >>> sorted(res.to_dict())[:4]
    ['constants', 'elapsed_s', 'method', 'metric']
    """

    router: dict
    radius: float
    metric: str
    method: str
    n_samples: int
    seed_entropy: int
    eps: tuple
    orders: tuple
    fraction: np.ndarray
    stderr: np.ndarray
    n_hits: np.ndarray
    predicted_slice_sum: np.ndarray
    predicted_leading: np.ndarray
    predicted_rel_stderr: np.ndarray  # per order, shape (len(orders),)
    overlap: np.ndarray
    overlap_stderr: np.ndarray
    elapsed_s: float
    constants: dict = field(default_factory=dict)

    def _col(self, order):
        try:
            return self.orders.index(int(order))
        except ValueError:
            raise InputError(f"order {order} was not estimated; orders: {list(self.orders)}") from None

    def estimate(self, eps_index, order):
        """The :class:`Estimate` of the order-``order`` fraction at ``eps[eps_index]``."""
        j = self._col(order)
        interval = "wilson" if self.method == "uniform" else "normal"
        return Estimate(float(self.fraction[eps_index, j]), float(self.stderr[eps_index, j]),
                        self.n_samples, int(self.n_hits[eps_index, j]), interval, self.seed_entropy)

    def order_result(self, eps_index, order):
        """Estimate and predictions of one order at ``eps[eps_index]`` as an :class:`OrderResult`."""
        j = self._col(order)
        ov = None
        if math.isfinite(self.overlap[eps_index, j]):
            ov = Estimate(float(self.overlap[eps_index, j]), float(self.overlap_stderr[eps_index, j]),
                          self.n_samples, int(self.n_hits[eps_index, j]), "normal", self.seed_entropy)
        return OrderResult(int(order), self.estimate(eps_index, order),
                           _opt(self.predicted_slice_sum[eps_index, j]),
                           _opt(self.predicted_leading[eps_index, j]),
                           float(self.predicted_rel_stderr[j]), ov)

    def series(self, order, name="fraction"):
        """One order's column over eps: ``fraction``, ``stderr``, ``n_hits``, ``overlap``, ...."""
        if name not in _SERIES:
            raise InputError(f"unknown series {name!r}; choose one of {', '.join(_SERIES)}")
        return np.array(getattr(self, name)[:, self._col(order)])

    def to_dict(self):
        return {"router": self.router, "radius": self.radius, "metric": self.metric,
                "method": self.method, "n_samples": self.n_samples,
                "seed": self.seed_entropy, "seed_entropy": self.seed_entropy,
                "elapsed_s": self.elapsed_s,
                "constants": {str(r): c for r, c in self.constants.items()},
                "results": [{"eps": e, "orders": {str(r): self.order_result(i, r).to_dict()
                                                  for r in self.orders}}
                            for i, e in enumerate(self.eps)]}

    def to_rows(self):
        """One row per (eps, order): the fraction's estimate, ``predicted`` (the leading order)
        and the slice-sum prediction, with the metric and method."""
        return [dict(self.order_result(i, r).row(eps=e), metric=self.metric, method=self.method)
                for i, e in enumerate(self.eps) for r in self.orders]


_SERIES = ("fraction", "stderr", "n_hits", "predicted_slice_sum", "predicted_leading", "overlap",
           "overlap_stderr")


def _uniform_task(rng, n, Wr, bias, gram, k, rmax, radius, dim, metric, cosine, eps, wmax):
    from discosim._kernels.pointstats import sort_pairs_for
    from discosim._kernels.volumes.uniform import uniform_chunk

    hist = np.zeros((rmax, eps.shape[0] + 1), dtype=np.int64)
    uniform_chunk(rng, n, Wr, bias, gram, k, rmax, radius, dim, metric, cosine, eps, wmax,
                  sort_pairs_for(Wr.shape[0], block=True), hist)
    return hist


def _tube_task(rng, n, Wr, gram, k, r, radius, dim, metric, eps, wmax, n_slices):
    from scipy import special

    from discosim._kernels.pointstats import sort_pairs_for
    from discosim._kernels.volumes.tube import tube_chunk, tube_draw_slices

    M = Wr.shape[0]
    J = np.empty((n, r + 1), dtype=np.int64)
    rho2 = np.empty(n)
    u = np.empty(n)
    tube_draw_slices(rng, n, M, r, gram, metric == METRIC_SCORE, eps, J, rho2, u)
    a, b = 0.5 * r, 0.5 * (dim - r) + 1.0
    cap = special.betainc(a, b, np.minimum(rho2 / radius ** 2, 1.0))
    beta = special.betaincinv(a, b, u * cap)
    out = np.zeros(5)
    tube_chunk(rng, Wr, gram, k, r, radius, dim, metric, eps, wmax, sort_pairs_for(M), J, beta,
               float(n_slices) * cap, out)
    return out


def default_orders(n_experts):
    """The orders a router with M experts has, up to 3: ``1 .. min(3, M - 1)`` (THEORY §4)."""
    return tuple(range(1, min(3, n_experts - 1) + 1))


def check_orders(orders, n_experts):
    """Sorted distinct orders ``1 <= r <= M - 1``; None gives :func:`default_orders`."""
    if orders is None:
        return default_orders(n_experts)
    if isinstance(orders, (str, bytes)):
        raise InputError(f"orders must be integers, got {orders!r}")
    orders = np.atleast_1d(np.asarray(orders, dtype=object))
    if orders.size == 0:
        raise InputError("orders must be a non-empty list of integers")
    return tuple(sorted({check_int("order", o, 1, n_experts - 1) for o in orders.ravel().tolist()}))


MAX_TIE_CANDIDATES = 20
PROBE_POINTS = 2000


def check_tie_enumeration(router, radius, eps_max, seed_seq):
    """Refuse, before any work, a euclidean run whose exact distances would not finish.

    ``dist(x, Gamma^(>=r))`` is a minimum over every tie set among the experts scoring within
    ``2 max|w| eps`` of the k-th score (THEORY §5), about ``2^c`` sets for ``c`` such experts. When
    eps is large against the spread of the scores (the tube then fills most of the ball), ``c``
    approaches M. A probe of ``PROBE_POINTS`` inputs (seeded from the run) finds the largest ``c``.
    """
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed_seq, 99)))
    Z = reduced_points(rng, PROBE_POINTS, router.n_experts, router.dim, radius, "ball")
    check_tie_candidates(router, Z, eps_max)


def check_tie_candidates(router, Z, eps_max, what="eps"):
    """Raise InputError when some reduced point of ``Z`` has more than ``MAX_TIE_CANDIDATES``
    experts within ``2 max|w| eps_max`` of its k-th score (see :func:`check_tie_enumeration`)."""
    S = Z @ router.reduced_weights.T + router.bias
    gk = np.sort(S, axis=1)[:, router.n_experts - router.k]
    c = int(np.max(np.sum(np.abs(S - gk[:, None]) <= 2.0 * router.max_row_norm * eps_max, axis=1)))
    if c > MAX_TIE_CANDIDATES:
        raise InputError(f"metric 'euclidean' at {what}={eps_max:g}: up to {c} experts score within "
                         f"2 max|w| {what} of the k-th, and the exact distance visits every tie set "
                         f"among them (about 2^{c} per input); use a smaller {what}, or metric "
                         f"'normal' or 'score'")


def estimate_volumes(router, radius, eps, orders=None, *, metric="euclidean", method="uniform",
                     n_samples=1_000_000, seed=RUN_DEFAULT.seed, n_jobs=RUN_DEFAULT.n_jobs,
                     backend=RUN_DEFAULT.backend, progress=RUN_DEFAULT.progress, constants=None,
                     predict=True, prediction_samples=100_000, force_jobs=RUN_DEFAULT.force_jobs,
                     device=RUN_DEFAULT.device, devices=RUN_DEFAULT.devices, options=None):
    """Estimate the fraction of ``B_D(0, R)`` in the order-r tubes of ``router``.

    For each order r and each eps, the fraction ``U_r / (omega_D R^D)`` of the ball within eps of
    the tie surfaces ``Gamma^(r)`` in the chosen metric (THEORY §4), with its standard error,
    next to the predictions of THEORY §5: with b = 0 the slice sum
    ``sum_J alpha_J I_{eps^2/R^2}(r/2, d/2+1)`` (d = D - r), which the union approaches up to
    ``O(eps^{r+1})``, and the leading order ``A_r omega_r omega_{D-r} (eps/R)^r / omega_D``
    (score metric: ``B_r omega_{D-r} (eps/R)^r / omega_D``). Points are drawn in reduced
    coordinates (THEORY §3), so D costs nothing.

    Parameters
    ----------
    router : Router
        The router whose tie surfaces are measured.
    radius : float
        R > 0.
    eps : float or sequence of float
        Tube radii (score-spread for the score metric), each > 0.
    orders : sequence of int, optional
        Orders r, ``1 <= r <= M - 1``; default ``1 .. min(3, M - 1)``.
    metric : {"euclidean", "normal", "score"}
        The tube (THEORY §4): distance to ``Gamma^(r)``, the normal fibre tube of the slices, or
        the spread of r+1 consecutive sorted scores around ranks k, k+1.
    method : {"uniform", "tube"}
        ``uniform``: points uniform in the ball, every eps and order in one pass. ``tube``: the
        Karp-Luby-Madras importance sampler of THEORY §8, one run per (order, eps), relative
        error bounded as eps -> 0 (needs b = 0).
    n_samples : int
        Samples for ``uniform`` (shared by every eps and order) or per (order, eps) for ``tube``.
        Memory does not depend on it: chunks are streamed.
    seed : None, int, SeedSequence or numpy Generator
        Base seed; the entropy used is in the result. Same seed, same numbers for any n_jobs.
    n_jobs : int
        Workers (-1: all cores; more than the cores only with ``force_jobs``).
    backend : {"threads", "loky", "threading", "dask"}
        How chunks are spread over the workers; the numbers do not depend on it.
    progress : bool or None
        Progress bar (None: when stderr is a terminal).
    constants : dict, optional
        Precomputed ``{r: SliceConstants}`` (see :func:`discosim.volumes.constants.slice_constants`).
    predict : bool
        Compute the THEORY §5 predictions (needs the slice constants; cached per router).
    prediction_samples : int
        Monte Carlo size of the slice constants when they are computed here (routers too large
        for the closed form or Genz; M = 256 takes a few seconds per order at the default).
        Their seed is derived from ``seed``.
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    device : {"cpu", "cuda"}
        ``cuda``: the samplers run on the GPU (:mod:`discosim._cuda.volumes.uniform`,
        :mod:`discosim._cuda.volumes.tube`; same law, their own random streams); ``devices`` picks the
        GPUs (None: all visible). The ``tube`` method on the GPU draws the normal radius from a power law and reweights it exactly
        (``discosim._cuda.volumes.tube``): same mean, its own standard error.
    devices : None, int or list of int
        GPUs for ``device="cuda"`` (None: every visible one).
    options : RunOptions, optional
        seed, n_jobs, backend, progress, device, devices and force_jobs in one object (instead
        of the keywords; a name given both ways is an error).

    Returns
    -------
    VolumeResult
        Fractions, standard errors and predictions, each of shape (len(eps), len(orders)).

    See Also
    --------
    estimate_slice_volume : the normal tube of one slice, by an independent NumPy estimator.
    slice_constants : the ``A_r``, ``B_r`` behind the predictions.

    Examples
    --------
    An orthonormal router (closed-form slice constants), uniform sampler:

    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> res = ds.estimate_volumes(router, 1.0, [0.05, 0.1], n_samples=20_000, seed=0)
    >>> res.orders, res.fraction.shape
    ((1, 2, 3), (2, 3))
    >>> np.round(res.predicted_slice_sum[:, 0], 4)      # order 1: sum_J alpha_J I(1/2, 4)
    array([0.2729, 0.541 ])

    The union lies below the slice sum (the overlaps, THEORY §5):

    >>> bool(np.all(res.fraction <= res.predicted_slice_sum + 4 * res.stderr))
    True

    The tube sampler resolves a thin order-2 tube to a small relative error:

    >>> thin = ds.estimate_volumes(router, 1.0, 0.01, orders=[2], method="tube",
    ...                            n_samples=20_000, seed=0)
    >>> bool(thin.stderr[0, 0] < 1e-3 * thin.fraction[0, 0])
    True
    """
    check_router(router)
    run = resolve_run_options("estimate_volumes", options, seed=seed, n_jobs=n_jobs,
                              backend=backend, progress=progress, force_jobs=force_jobs,
                              device=device, devices=devices)
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs, device, devices = run.force_jobs, run.device, run.devices
    radius = check_positive("radius", radius)
    eps_arr = check_positive_array("eps", eps)
    metric = check_choice("metric", metric, METRICS)
    method = check_choice("method", method, METHODS)
    n_samples = check_int("n_samples", n_samples, 2)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    orders = check_orders(orders, router.n_experts)
    prediction_samples = check_int("prediction_samples", prediction_samples, 100)
    predict = check_bool("predict", predict)
    if constants is not None and (not isinstance(constants, dict)
                                  or any(r not in constants for r in orders)):
        raise InputError(f"constants must map every order {list(orders)} to SliceConstants")
    cosine_scores = router.kind == "cosine" and metric == "score"
    if method == "tube":
        if router.has_bias:
            raise InputError("method 'tube' needs an unbiased router (b = 0); use method 'uniform'")
        if cosine_scores:
            raise InputError("method 'tube' does not support cosine scores; use method 'uniform'")
    device = check_device(device)
    if device == "cuda":
        devices = resolve_devices(devices)
    ss = as_seed_sequence(seed)
    if method == "uniform" and metric == "euclidean" and not cosine_scores:
        check_tie_enumeration(router, radius, float(np.max(eps_arr)), ss)
    t0 = time.perf_counter()
    Wr, gram, k = router.reduced_weights, router.gram, router.k
    M, D = router.n_experts, router.dim
    wmax = router.max_row_norm
    code = METRIC_CODE[metric]
    n_eps, n_ord = eps_arr.size, len(orders)
    shape = (n_eps, n_ord)
    frac, se, hits = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int64)
    ov, ov_se = np.full(shape, np.nan), np.full(shape, np.nan)
    run = dict(n_jobs=n_jobs, backend=backend, progress=progress, reduce=add,
               force_jobs=force_jobs)
    if method == "uniform":
        order_of_eps = np.argsort(eps_arr, kind="stable")
        eps_sorted = np.ascontiguousarray(eps_arr[order_of_eps])
        if device == "cuda":
            from discosim._cuda.rng import run_key
            from discosim._cuda.volumes.uniform import uniform_counts

            counts, _ = uniform_counts(router, radius, eps_sorted, max(orders), code,
                                       cosine_scores, n_samples, run_key(derive_seed(ss, 0)),
                                       devices)
        else:
            hist = run_chunks(_uniform_task, (Wr, router.bias, gram, k, max(orders), radius, D,
                                              code, cosine_scores, eps_sorted, wmax),
                              n_samples, UNIFORM_CHUNK, derive_seed(ss, 0), desc="volume",
                              warm=True, **run)
            counts = np.cumsum(hist, axis=1)
        for pos, i in enumerate(order_of_eps):
            for j, r in enumerate(orders):
                c = int(counts[r - 1, pos])
                p = c / n_samples
                frac[i, j], se[i, j], hits[i, j] = p, math.sqrt(p * (1 - p) / n_samples), c
    else:
        for j, r in enumerate(orders):
            n_slices = math.comb(M, r + 1)
            for i, e in enumerate(eps_arr):
                if device == "cuda":
                    from discosim._cuda.rng import run_key
                    from discosim._cuda.volumes.tube import tube_sums

                    tot, _ = tube_sums(router, r, radius, float(e), code, n_samples,
                                       run_key(derive_seed(ss, 1, r, i)), devices,
                                       host_threads=n_jobs)
                else:
                    tot = run_chunks(_tube_task, (Wr, gram, k, r, radius, D, code, float(e),
                                                  wmax, n_slices),
                                     n_samples, TUBE_CHUNK, derive_seed(ss, 1, r, i),
                                     desc=f"tube r={r}", **run)
                frac[i, j], se[i, j] = mean_and_stderr(tot[0], tot[1], n_samples)
                hits[i, j] = int(tot[2])
                if metric != "score":
                    ov[i, j], ov_se[i, j] = mean_and_stderr(tot[3], tot[4], n_samples)

    from discosim.theory import volumes as tv

    slice_sum, leading = np.full(shape, np.nan), np.full(shape, np.nan)
    rel = np.zeros(n_ord)
    if predict and not cosine_scores:
        if constants is None:
            from discosim.volumes.constants import slice_constants  # scipy.stats and Genz: only when predicting

            constants = {r: slice_constants(router, r, n_samples=prediction_samples,
                                            seed=derive_seed(ss, 8), n_jobs=n_jobs,
                                            backend=backend, force_jobs=force_jobs)
                         for r in orders}
        for j, r in enumerate(orders):
            c = constants[r]
            if metric in ("euclidean", "normal"):
                if not router.has_bias:
                    slice_sum[:, j] = tv.slice_sum_fraction(c.alpha_sum, eps_arr, radius, D, r)
                leading[:, j] = tv.predicted_union_fraction(c.alpha_sum, eps_arr, radius, D, r)
                rel[j] = c.alpha_sum_stderr / c.alpha_sum if c.alpha_sum else 0.0
            else:
                leading[:, j] = tv.leading_score_fraction(eps_arr, radius, D, r, c.score_weight_sum)
                rel[j] = c.score_weight_stderr / c.score_weight_sum if c.score_weight_sum else 0.0
    return VolumeResult(router.summary(), radius, metric, method, n_samples, ss.entropy,
                        tuple(float(e) for e in eps_arr), orders, frac, se, hits, slice_sum,
                        leading, rel, ov, ov_se, time.perf_counter() - t0,
                        dict(constants) if (predict and constants) else {})


def estimate_slice_volume(router, slice_experts, radius, eps, n_samples=1_000_000, *,
                          seed=RUN_DEFAULT.seed, batch=1 << 16, inputs="ball", options=None):
    """Fraction of ``B_D(0, R)`` in the normal (fibre) tube of one slice ``Gamma_J``.

    ``{y + n : y in Gamma_J, n in N_J, |n| <= eps}``: a point is in it iff its projection on
    ``S_J`` has J tied across ranks k, k+1 and the normal part is at most eps (THEORY §4.2). With
    b = 0 the exact value is ``alpha_J I_{eps^2/R^2}(r/2, d/2+1)`` (THEORY §5). Vectorised NumPy on
    reduced points (an implementation independent of the numba kernels).

    Parameters
    ----------
    router : Router
        The router.
    slice_experts : sequence of int
        The slice J: at least 2 distinct expert indices (order r = len(J) - 1).
    radius : float
        R > 0.
    eps : float
        Normal radius of the tube, > 0.
    n_samples : int
        Points drawn.
    seed : None, int, SeedSequence or numpy Generator
        Seed; its entropy is in the result.
    batch : int
        Points per vectorised batch (memory, not the numbers).
    inputs : {"ball", "sphere", "gaussian"}
        Where the points lie: uniform in ``B_D(0, R)``, uniform on its sphere (THEORY §9: exact
        value ``alpha_J I_{eps^2/R^2}(r/2, d/2)``) or ``N(0, R^2/D I_D)``.
    options : RunOptions, optional
        Its seed instead of ``seed`` (one stream: the speed settings do not apply).

    Returns
    -------
    Estimate
        The fraction, a proportion with Wilson's interval.

    Examples
    --------
    THEORY §5's worked example: M = 4, D = 8, k = 2, R = 1, orthonormal rows; the per-slice
    normal tube at eps = 0.05 holds 0.04548 of the ball (r = 1).

    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> e = ds.estimate_slice_volume(router, [0, 1], 1.0, 0.05, n_samples=20_000, seed=0)
    >>> e.n_samples, bool(abs(e.value - 0.04548) < 4 * e.stderr)
    (20000, True)
    """
    check_router(router)
    seed = resolve_run_options("estimate_slice_volume", options, seed=seed).seed
    radius = check_positive("radius", radius)
    eps = check_positive("eps", eps)
    n_samples = check_int("n_samples", n_samples, 2)
    # the loop below advances by batch points a pass: batch < 1 never ends
    batch = check_int("batch", batch, 1)
    inputs = check_choice("inputs", inputs, ("ball", "gaussian", "sphere"))  # sphere: THEORY §9
    M, D, k = router.n_experts, router.dim, router.k
    J = sorted({check_int("slice expert", j, 0, M - 1) for j in np.atleast_1d(slice_experts)})
    if len(J) < 2:
        raise InputError("a slice needs at least 2 distinct experts")
    ss = as_seed_sequence(seed)
    rng = np.random.default_rng(derive_seed(ss, 2))
    Wr, b = router.reduced_weights, router.bias
    V = Wr[J[1:]] - Wr[J[0]]
    GJ = V @ V.T
    others = np.array([i for i in range(M) if i not in J])
    hits = 0
    done = 0
    while done < n_samples:
        m = min(batch, n_samples - done)
        z = reduced_points(rng, m, M, D, radius, inputs)
        s = z @ Wr.T + b
        gaps = s[:, J[1:]] - s[:, [J[0]]]
        lam = np.linalg.solve(GJ, gaps.T).T
        dist2 = np.sum(lam * gaps, axis=1)
        y = z - lam @ V
        sy = y @ Wr.T + b
        above = np.sum(sy[:, others] > sy[:, [J[0]]], axis=1) if others.size else np.zeros(m)
        inside = (dist2 <= eps * eps) & tie_straddles_cut(above, len(J), k)
        hits += int(np.sum(inside))
        done += m
    return proportion_estimate(hits, n_samples, ss.entropy)
