"""The slice constants ``A_r = sum_J alpha_J`` and ``B_r = sum_J (r+1) det(G_J)^(-1/2) alpha_J``.

``A_r`` sets the leading order of the euclidean/normal tube volume of order r, ``B_r`` that of
the score tube (THEORY §5). They are computed

- in closed form for orthonormal rows (:func:`discosim.theory.alpha.orthonormal_alpha`),
- exactly over every slice by Gaussian orthants (Genz) while ``C(M, r+1)`` times the number of
  orthants per slice is modest,
- otherwise by an unbiased Monte Carlo estimate over sampled directions and slices (slices drawn
  near ranks k, k+1 of the direction, importance-weighted), reported with its own standard
  error (THEORY §5 (b)).
"""

import hashlib
import itertools
import math
from dataclasses import dataclass, asdict

import numpy as np

from discosim._core import cache
from discosim._core.errors import InputError, check_choice, check_int
from discosim._core.results import ResultMixin, mean_and_stderr, value_row
from discosim._core.runtime import RUN_DEFAULT, add, derive_seed, resolve_run_options, run_chunks
from discosim._core.seeding import as_seed_sequence
from discosim.model.router import check_router
from discosim.theory.alpha import alpha_orthants, orthant_terms, orthonormal_alpha, slice_normal_basis

__all__ = ["SliceConstants", "SliceAlpha", "slice_constants", "slice_alpha", "is_orthonormal"]

GENZ_BUDGET = 3000  # orthant evaluations (each ~1 ms) allowed before switching to Monte Carlo


@dataclass(frozen=True)
class SliceConstants(ResultMixin):
    """``A_r`` and ``B_r`` of a router with their standard errors (0 for closed forms).

    ``A_r = sum_{|J|=r+1} alpha_J`` sets the leading order of the euclidean and normal tubes,
    ``B_r = sum_J (r+1) det(G_J)^(-1/2) alpha_J`` that of the score tube (THEORY §5).

    Parameters
    ----------
    order : int
        The order r.
    n_slices : int
        ``C(M, r+1)``, the number of slices J.
    alpha_sum : float
        ``A_r``.
    alpha_sum_stderr : float
        Its standard error (0 for the closed form and Genz).
    score_weight_sum : float
        ``B_r``.
    score_weight_stderr : float
        Its standard error.
    method : {"orthonormal", "genz", "mc", "mc-pairs"}
        How they were computed (``mc-pairs``: order 1 by Monte Carlo over every pair).
    seed_entropy : int or None
        Entropy of the seed (None for the closed form).

    Examples
    --------
    >>> import discosim as ds
    >>> c = ds.slice_constants(ds.Router.orthonormal(4, 8, k=2, seed=0), 1)
    >>> c.method, c.n_slices, round(c.alpha_sum, 4), round(c.score_weight_sum, 4)
    ('orthonormal', 6, 2.351, 3.3248)
    """

    order: int
    n_slices: int
    alpha_sum: float
    alpha_sum_stderr: float
    score_weight_sum: float
    score_weight_stderr: float
    method: str
    seed_entropy: object = None  # None for the closed form

    def to_dict(self):
        return asdict(self)

    def to_rows(self):
        """Rows ``A`` (sum of alpha_J) and ``B`` (the score-tube constant) of this order."""
        extra = dict(n_slices=self.n_slices, method=self.method, seed_entropy=self.seed_entropy)
        return [value_row("A", self.alpha_sum, self.alpha_sum_stderr, order=self.order, **extra),
                value_row("B", self.score_weight_sum, self.score_weight_stderr, order=self.order,
                          **extra)]


def is_orthonormal(router, tol=1e-10):
    """Whether the gate rows are orthonormal (``W W^T = I`` to ``tol``): the closed-form case."""
    check_router(router)
    return bool(np.allclose(router.gram, np.eye(router.n_experts), atol=tol, rtol=0))


WINDOW_HALO = 2  # ranks beyond k-r-1 .. k+r+1 that the slice proposal still favours


def _alpha_mc_task(rng, n, Wr, k, r, fixed_J, halo=WINDOW_HALO):
    from discosim._kernels.volumes.alpha import alpha_mc_chunk

    out = np.zeros(4)
    alpha_mc_chunk(rng, Wr, k, r, n, fixed_J, halo, out)
    return out


def _alpha_pairs_task(rng, n, Wr, gram, k):
    from discosim._kernels.volumes.alpha import alpha_pairs_chunk

    out = np.zeros(4)
    alpha_pairs_chunk(rng, Wr, gram, k, n, out)
    return out


@dataclass(frozen=True)
class SliceAlpha(ResultMixin):
    """``alpha_J`` of one slice J with its standard error (Genz's own error is below 1e-5).

    ``alpha_J = lambda_d(Gamma_J ∩ B(0,R)) / (omega_d R^d)`` is the relative angular size of the
    slice's cone in its subspace ``S_J`` (THEORY §2, §5).

    Parameters
    ----------
    slice_experts : tuple of int
        The slice J, sorted.
    value : float
        ``alpha_J``.
    stderr : float
        Its standard error (0 reported for Genz).
    method : {"genz", "mc"}
        Gaussian orthant sums or Monte Carlo over directions (THEORY §5 (a), (b)).
    n_samples : int
        Directions drawn (0 for Genz).
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import discosim as ds
    >>> a = ds.slice_alpha(ds.Router.orthonormal(4, 8, k=2, seed=0), [0, 1], seed=0)
    >>> a.slice_experts, round(a.value, 4), a.method
    ((0, 1), 0.3918, 'genz')
    """

    slice_experts: tuple
    value: float
    stderr: float
    method: str
    n_samples: int
    seed_entropy: object

    def to_dict(self):
        return asdict(self)

    def to_rows(self):
        return [value_row("alpha", self.value, self.stderr,
                          slice=",".join(map(str, self.slice_experts)), method=self.method,
                          n_samples=self.n_samples, seed_entropy=self.seed_entropy)]


def _check_slice(router, J):
    M = router.n_experts
    try:
        J = np.asarray(sorted(int(j) for j in J), dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(f"slice J must be a list of expert indices, got {J!r}") from None
    if J.size < 2 or J.size > M or len(set(J.tolist())) != J.size or J.min() < 0 or J.max() >= M:
        raise InputError(f"slice J must be 2..M distinct expert indices in [0, {M}), got {J.tolist()}")
    return J


def slice_alpha(router, J, method="genz", *, n_samples=100_000, seed=RUN_DEFAULT.seed,
                n_jobs=RUN_DEFAULT.n_jobs, backend=RUN_DEFAULT.backend,
                force_jobs=RUN_DEFAULT.force_jobs, options=None):
    """alpha_J of one slice: ``genz`` (orthant sum) or ``mc`` (directions).

    THEORY §5: (a) for ``Y ~ N(0, P_{S_J})`` the gaps ``delta_i = (w_i - w_{j0}) . Y`` (i not in J)
    are Gaussian, and ``alpha_J = sum_A P(delta_A > 0, delta_{A^c} < 0)`` over the "above" sets
    ``A`` with ``k - r <= |A| <= k - 1`` (Genz); (b) the fraction of directions in ``S_J`` whose
    ranking puts J across ranks k, k+1.

    Parameters
    ----------
    router : Router
        The router.
    J : sequence of int
        The slice: 2 to M distinct expert indices.
    method : {"genz", "mc"}
        Orthant sum (scipy's Genz integration) or Monte Carlo over directions.
    n_samples : int
        Directions for ``mc``.
    seed : None, int, SeedSequence or numpy Generator
        Seed of Genz's randomised lattice or of the directions.
    n_jobs : int
        Workers for ``mc``; the numbers do not depend on it.
    backend : {"threads", "loky", "threading", "dask"}
        How the ``mc`` chunks are spread.
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    options : RunOptions, optional
        The run-control names above (seed, n_jobs, backend, force_jobs) in one object; a name
        given both ways is an error.

    Returns
    -------
    SliceAlpha
        ``alpha_J`` with its standard error.

    Examples
    --------
    Orthonormal rows (THEORY §5): every slice has the same alpha, and both routes agree.

    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> exact = ds.slice_alpha(router, [0, 1], seed=0)
    >>> round(exact.value, 4)
    0.3918
    >>> mc = ds.slice_alpha(router, [0, 1], method="mc", n_samples=20_000, seed=0)
    >>> bool(abs(mc.value - exact.value) < 4 * mc.stderr)
    True
    """
    check_router(router)
    run = resolve_run_options("slice_alpha", options, seed=seed, n_jobs=n_jobs, backend=backend,
                              force_jobs=force_jobs)
    seed, n_jobs, backend, force_jobs = run.seed, run.n_jobs, run.backend, run.force_jobs
    method = check_choice("alpha method", method, ("genz", "mc"))
    J = _check_slice(router, J)
    n_samples = check_int("n_samples", n_samples, 2)
    ss = as_seed_sequence(seed)
    if method == "genz":
        rng = np.random.default_rng(ss)
        value = alpha_orthants(router.reduced_weights, router.k, J, seed=rng)
        return SliceAlpha(tuple(J.tolist()), float(value), 0.0, method, 0, ss.entropy)
    s = run_chunks(_alpha_mc_task, (router.reduced_weights, router.k,
                                    J.size - 1, J), n_samples, 1 << 15, ss, n_jobs=n_jobs,
                   backend=backend, reduce=add, force_jobs=force_jobs)
    p = s[0] / n_samples
    return SliceAlpha(tuple(J.tolist()), float(p), math.sqrt(p * (1 - p) / n_samples), method,
                      n_samples, ss.entropy)


def _router_key(router):
    h = hashlib.sha256()
    for a in (router.reduced_weights, router.bias):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(f"{router.k}|{router.kind}".encode())
    return h.hexdigest()


_CACHE = {}
_CACHE_MAX = 256


def slice_constants(router, order, method="auto", *, n_samples=100_000, seed=RUN_DEFAULT.seed,
                    n_jobs=RUN_DEFAULT.n_jobs, backend=RUN_DEFAULT.backend,
                    force_jobs=RUN_DEFAULT.force_jobs, options=None):
    """``A_r`` and ``B_r`` for ``order`` r (see the module docstring).

    Results are cached per (router's reduced weights, order, method, n_samples, seed): a study
    or a session that asks again for the same router pays nothing. The cache key holds the
    seed's entropy and spawn key, so ``seed=None`` (fresh entropy) never hits it.

    ``A_r = sum_{|J|=r+1} alpha_J`` and ``B_r = sum_J (r+1) det(G_J)^(-1/2) alpha_J``, with
    ``G_J`` the Gram matrix of ``w_{j_i} - w_{j_0}`` (THEORY §5). Orthonormal rows have the closed
    form ``A_r = C(M, r+1) alpha`` with the equicorrelated orthant integral of THEORY §5.

    Parameters
    ----------
    router : Router
        The router.
    order : int
        The order r, ``1 <= r <= M - 1``.
    method : {"auto", "orthonormal", "genz", "mc"}
        ``auto``: closed form for orthonormal rows, Genz while cheap, else Monte Carlo.
    n_samples : int
        Draws for the Monte Carlo route.
    seed : None, int, SeedSequence or numpy Generator
        Seed of Genz's randomised lattice and of the Monte Carlo route.
    n_jobs : int
        Workers for the Monte Carlo route; the numbers do not depend on it.
    backend : {"threads", "loky", "threading", "dask"}
        How its chunks are spread.
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    options : RunOptions, optional
        The run-control names above (seed, n_jobs, backend, force_jobs) in one object; a name
        given both ways is an error.

    Returns
    -------
    SliceConstants
        ``A_r``, ``B_r`` and their standard errors.

    Examples
    --------
    >>> import discosim as ds
    >>> c = ds.slice_constants(ds.Router.orthonormal(4, 8, k=2, seed=0), 1)
    >>> c.method, c.n_slices, round(c.alpha_sum, 4)
    ('orthonormal', 6, 2.351)

    A Gaussian router: Genz while the orthant sums are few, Monte Carlo on request.

    >>> router = ds.Router.gaussian(6, 12, k=2, seed=0)
    >>> exact = ds.slice_constants(router, 2, seed=0)
    >>> exact.method, exact.n_slices
    ('genz', 20)
    >>> mc = ds.slice_constants(router, 2, method="mc", n_samples=20_000, seed=0)
    >>> bool(abs(mc.alpha_sum - exact.alpha_sum) < 4 * mc.alpha_sum_stderr)
    True
    """
    check_router(router)
    run = resolve_run_options("slice_constants", options, seed=seed, n_jobs=n_jobs,
                              backend=backend, force_jobs=force_jobs)
    seed, n_jobs, backend, force_jobs = run.seed, run.n_jobs, run.backend, run.force_jobs
    r = check_int("order", order, 1, router.n_experts - 1)
    method = check_choice("constants method", method, ("auto", "orthonormal", "genz", "mc"))
    n_samples = check_int("n_samples", n_samples, 2)
    ss = as_seed_sequence(seed)
    key = (_router_key(router), r, method, n_samples, ss.entropy, tuple(ss.spawn_key))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        # fresh entropy (seed=None) is never seen again: no disk cache for it
        disk = seed is not None
        saved = cache.load("slice_constants", _json_key(key)) if disk else None
        try:
            _CACHE[key] = SliceConstants(**saved) if saved is not None else None
        except TypeError:  # a file of another layout
            _CACHE[key] = None
        if _CACHE[key] is None:
            _CACHE[key] = _slice_constants(router, r, method, n_samples, ss, n_jobs, backend,
                                           force_jobs)
            if disk:
                cache.store("slice_constants", _json_key(key), _CACHE[key].to_dict())
    return _CACHE[key]


def _json_key(key):
    return [str(x) if not isinstance(x, (int, str, tuple)) else x for x in key]


def _slice_constants(router, r, method, n_samples, ss, n_jobs, backend, force_jobs):
    M, k = router.n_experts, router.k
    n_slices = math.comb(M, r + 1)
    if method == "auto":
        if is_orthonormal(router):
            method = "orthonormal"
        elif n_slices * orthant_terms(M, k, r) <= GENZ_BUDGET:
            method = "genz"
        else:
            method = "mc"
    if method == "orthonormal":
        if not is_orthonormal(router):
            raise InputError("constants method 'orthonormal' needs W W^T = I")
        a = n_slices * orthonormal_alpha(M, k, r)
        # det G_J = r + 1 for orthonormal rows
        return SliceConstants(r, n_slices, a, 0.0, a * (r + 1) / math.sqrt(r + 1), 0.0, method)
    if method == "genz":
        rng = np.random.default_rng(ss)
        A = B = 0.0
        for J in itertools.combinations(range(M), r + 1):
            alpha = alpha_orthants(router.reduced_weights, k, J, seed=rng)
            _, det = slice_normal_basis(router.reduced_weights, J)
            A += alpha
            B += (r + 1) * alpha / math.sqrt(det)
        return SliceConstants(r, n_slices, A, 0.0, B, 0.0, method, ss.entropy)
    entropy = ss.entropy
    ss = derive_seed(ss, 7919, r)
    run = dict(n_jobs=n_jobs, backend=backend, reduce=add, force_jobs=force_jobs, progress=False)
    if r == 1:
        # every pair per direction: far less variance than one sampled slice per direction
        n_dir = max(2, n_samples // max(1, M // 16))
        s = run_chunks(_alpha_pairs_task, (router.reduced_weights, router.gram, k), n_dir,
                       1 << 10, ss, **run)
        mean_a, se_a = mean_and_stderr(s[0], s[1], n_dir)
        mean_b, se_b = mean_and_stderr(s[2], s[3], n_dir)
        return SliceConstants(r, n_slices, mean_a, se_a, 2 * mean_b, 2 * se_b, "mc-pairs", entropy)
    s = run_chunks(_alpha_mc_task, (router.reduced_weights, k, r,
                                    np.empty(0, dtype=np.int64)),
                   n_samples, 1 << 15, ss, **run)
    mean_a, se_a = mean_and_stderr(s[0], s[1], n_samples)
    mean_b, se_b = mean_and_stderr(s[2], s[3], n_samples)
    return SliceConstants(r, n_slices, mean_a, se_a, (r + 1) * mean_b, (r + 1) * se_b, method,
                          entropy)
