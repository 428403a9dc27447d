"""The smoothing gate on an SMoE map: continuity and overhead estimators (THEORY §7).

``f(x) = sum_i p_i(x) E_i(x)`` with random experts (``linear``: ``A_i x``; ``mlp``:
``B_i tanh(C_i x)``) and either the plain top-k gate or the smoothing gate.

- Continuity: jumps ``|f(y + delta v) - f(y - delta v)|`` at points y of Gamma^(1) (normal v), and
  at points of the band edge ``{s_j = g_k - eta}``; log-log exponents with standard errors.
- Overhead: ``E N_eta`` for x uniform in the ball or Gaussian, against ``c_1 eta``.
- Calibration: the eta whose estimated overhead equals a target, with the first guess ``h/c_1``.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from discosim.volumes.constants import SliceConstants, slice_constants
from discosim._core.devices import check_device, resolve_devices
from discosim._core.fitting import row_slopes
from discosim._core.errors import InputError, check_choice, check_int, check_positive, check_positive_array
from discosim._core.memory import check_memory
from discosim._core.results import (ResultMixin, estimate_row, mean_and_stderr, mean_estimate,
                                   value_row)
from discosim.model.gates import kth_largest, smooth_gate, topk_gate
from discosim._core.runtime import (RUN_DEFAULT, add, check_backend, check_n_jobs, derive_seed,
                                   resolve_run_options, run_chunks)
from discosim.model.inputs import INPUTS, ball_points, reduced_points
from discosim.model.router import check_router
from discosim._core.seeding import as_seed_sequence
from discosim.theory import smoothing as ts

__all__ = ["SMoE", "estimate_overhead", "OverheadResult", "measure_continuity", "ContinuityResult",
           "calibrate_eta", "Calibration", "mean_pointwise_slope", "PointwiseSlope"]

EXPERTS = ("linear", "mlp")
# continuity points are held in memory as (n_points, D) arrays and placed one by one (their
# memory is checked with the rest by check_continuity_memory)
MAX_POINTS = 100_000


def check_continuity_memory(router, n_points=0, experts="linear", out_dim=8, hidden=16):
    """Refuse in one line an SMoE (and ``n_points`` continuity points) beyond the memory budget.

    Counted (bytes per entry measured, :data:`discosim._core.memory.COST`): the router's gate
    matrix, the experts' weights (linear: M x out_dim x D; mlp: M x hidden x D), the continuity
    points (n_points x D, with their normals and shifted copies) and the experts' outputs at them
    (n_points x M x out_dim).
    """
    M, D = router.n_experts, router.dim
    width = out_dim if experts == "linear" else hidden
    check_memory([(f"the gate matrix (M={M} x D={D})", M * D, "router"),
                  (f"the {experts} experts' weights (M x {width} x D)", M * width * D,
                   "expert_weight"),
                  (f"{n_points} continuity points of D={D}", n_points * D, "continuity_point"),
                  ("the experts' outputs at them (n_points x M x out_dim)",
                   n_points * M * out_dim, "expert_output")],
                 "lower out_dim, n_points or the router's size")


class SMoE:
    """An SMoE layer on a router with random experts.

    ``f(x) = sum_i p_i(x) E_i(x)`` with experts ``E_i(x) = A_i x`` (``linear``) or
    ``B_i tanh(C_i x)`` (``mlp``) and gate weights ``p`` from either the plain top-k gate (softmax
    over the top-k scores) or the smoothing gate of THEORY §7: with
    ``u_i = (s_i - g_k + eta) / eta``, ``p = softmax(s + S(u))``, ``S = -inf`` for ``u <= 0``,
    ``0`` for ``u >= 1`` and ``-softplus(b_s log(1-u) - a_s log u)`` between. Calling the layer on
    points ``X`` (n, D) gives ``f(X)``, shape (n, out_dim); ``gate="topk"`` or ``"smooth"`` (then
    ``eta`` is required, ``a_s``, ``b_s`` optional).

    Parameters
    ----------
    router : Router
        The router whose scores gate the experts.
    experts : {"linear", "mlp"}
        Kind of random expert.
    out_dim : int
        Output dimension of every expert.
    seed : None, int, SeedSequence or numpy Generator
        Seed of the expert weights (its entropy is kept as ``seed_entropy``).
    hidden : int
        Hidden width of ``mlp`` experts.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> model = ds.SMoE(ds.Router.gaussian(4, 8, k=2, seed=0), seed=0)
    >>> X = np.random.default_rng(1).standard_normal((5, 8))
    >>> model(X, gate="topk").shape, model(X, eta=0.1).shape
    ((5, 8), (5, 8))
    >>> p = model.gate(X, "smooth", eta=0.1)       # weights per expert, rows sum to 1
    >>> bool(np.allclose(p.sum(axis=1), 1.0)), bool(np.all((p > 0).sum(axis=1) >= 2))
    (True, True)
    """

    def __init__(self, router, experts="linear", out_dim=8, *, seed=None, hidden=16):
        self.router = check_router(router)
        self.experts = check_choice("experts", experts, EXPERTS)
        self.out_dim = check_int("out_dim", out_dim, 1)
        hidden = check_int("hidden", hidden, 1)
        check_continuity_memory(router, 0, self.experts, self.out_dim, hidden)
        ss = as_seed_sequence(seed)
        self.seed_entropy = ss.entropy
        # own tag (10, in seeding.STREAM_TAGS): callers pass one seed to the router and the experts,
        # and the router draws from the root stream, so the experts must not
        rng = np.random.default_rng(derive_seed(ss, 10))
        M, D = router.n_experts, router.dim
        if self.experts == "linear":
            self.A = rng.standard_normal((M, self.out_dim, D)) / math.sqrt(D)
        else:
            # unit-variance first layer: pre-activations are O(1) for |x| of order 1
            self.C = rng.standard_normal((M, hidden, D))
            self.B = rng.standard_normal((M, self.out_dim, hidden)) / math.sqrt(hidden)

    def expert_outputs(self, X):
        """(n, M, out_dim) outputs of every expert at points X (n, D)."""
        if self.experts == "linear":
            return np.einsum("mod,nd->nmo", self.A, X)
        h = np.tanh(np.einsum("mhd,nd->nmh", self.C, X))
        return np.einsum("moh,nmh->nmo", self.B, h)

    def gate(self, X, gate="smooth", eta=None, a_s=1.0, b_s=50.0):
        s = self.router.scores(X)
        if gate == "topk":
            return topk_gate(s, self.router.k)
        return smooth_gate(s, self.router.k, eta, a_s, b_s)

    def __call__(self, X, gate="smooth", eta=None, a_s=1.0, b_s=50.0):
        """f(X), shape (n, out_dim)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        p = self.gate(X, gate, eta, a_s, b_s)
        return np.einsum("nm,nmo->no", p, self.expert_outputs(X))


def discontinuity_points(router, rng, n, radius):
    """Points of Gamma^(1) with unit normals: project uniform points on their nearest facet.

    For x in the cell with top-k set K the nearest point of Gamma lies on the facet
    ``s_i = s_j`` (i in K, j not in K) of least ``(s_i - s_j)/|w_i - w_j|`` (THEORY §4.1).
    Returns (Y, V, pairs): points (n, D), normals (n, D), and the swapping experts.
    """
    W, b, k = router.tie_weights, router.bias, router.k
    X = ball_points(rng, n, router.dim, radius)
    S = X @ W.T + b
    order = np.argsort(-S, axis=1)
    Y = np.empty_like(X)
    V = np.empty_like(X)
    pairs = np.empty((n, 2), dtype=int)
    for t in range(n):
        K, rest = order[t, :k], order[t, k:]
        diff = W[K][:, None, :] - W[rest][None, :, :]
        norms = np.linalg.norm(diff, axis=2)
        gaps = (S[t, K][:, None] - S[t, rest][None, :]) / norms
        a, c = np.unravel_index(np.argmin(gaps), gaps.shape)
        i, j = K[a], rest[c]
        v = diff[a, c] / norms[a, c]
        Y[t] = X[t] - gaps[a, c] * v
        V[t] = v
        pairs[t] = (i, j)
    return Y, V, pairs


def band_edge_points(router, rng, n, radius, eta):
    """Points where the (k+1)-th expert sits exactly at ``g_k - eta``, with unit normals.

    Moves a uniform point along ``w_j - w_l`` (j the (k+1)-th, l the k-th expert) until
    ``s_j = s_l - eta``; points whose ranking changes on the way are redrawn.
    """
    W, b, k = router.tie_weights, router.bias, router.k
    Ys, Vs = [], []
    tries = 0
    while len(Ys) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise InputError(f"could not place band-edge points: eta={eta} is too wide for this router")
        x = ball_points(rng, 1, router.dim, radius)[0]
        s = W @ x + b
        order = np.argsort(-s)
        l, j = order[k - 1], order[k]
        d = W[j] - W[l]
        nd = np.linalg.norm(d)
        y = x + (-eta - (s[j] - s[l])) / nd ** 2 * d
        sy = W @ y + b
        oy = np.argsort(-sy)
        if oy[k - 1] != l or oy[k] != j:
            continue
        Ys.append(y)
        Vs.append(d / nd)
    return np.array(Ys), np.array(Vs)


@dataclass(frozen=True)
class PointwiseSlope(ResultMixin):
    """Mean over points of each point's least-squares log-log slope of jump vs delta.

    A different estimator from :func:`discosim._core.fitting.loglog_fit` (one fit of pooled values):
    every point has its own constant in ``jump ~ c_y delta^a``, so the slope is fitted per point
    and the points' slopes are averaged; the standard error is their spread over sqrt(n).

    Parameters
    ----------
    slope : float
        Mean of the per-point slopes (NaN with fewer than two usable points or deltas).
    slope_stderr : float
        Their standard deviation over sqrt(n_points).
    n_points : int
        Points used (those whose jumps are all positive).

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> deltas = np.array([0.1, 0.2, 0.4])
    >>> fit = ds.mean_pointwise_slope(deltas, np.outer([1.0, 3.0], deltas ** 1.5))
    >>> round(fit.slope, 6), fit.n_points
    (1.5, 2)
    """

    slope: float
    slope_stderr: float
    n_points: int

    def to_dict(self):
        return asdict(self)

    def to_rows(self):
        return [dict(value_row("slope", self.slope, self.slope_stderr), n_points=self.n_points)]


def mean_pointwise_slope(deltas, jumps):
    """:class:`PointwiseSlope` of ``jumps`` (n_points, n_deltas) against ``deltas``.

    Points whose jumps are not all positive (no discontinuity met) are dropped; fewer than two
    deltas or points left give NaN.

    Parameters
    ----------
    deltas : array_like, shape (n_deltas,)
        Step sizes delta, positive.
    jumps : array_like, shape (n_points, n_deltas)
        ``|f(y + delta v) - f(y - delta v)|`` per point and delta.

    Returns
    -------
    PointwiseSlope
        Mean slope of ``log jump`` against ``log delta`` over the points, with its standard error.

    Examples
    --------
    Two points whose jumps grow like ``delta^1.5`` with different constants:

    >>> import numpy as np
    >>> import discosim as ds
    >>> deltas = np.array([0.1, 0.2, 0.4])
    >>> fit = ds.mean_pointwise_slope(deltas, np.outer([1.0, 3.0], deltas ** 1.5))
    >>> round(fit.slope, 6)
    1.5
    """
    deltas = np.asarray(deltas, dtype=float)
    jumps = np.asarray(jumps, dtype=float)
    keep = np.all(jumps > 0, axis=1)
    if deltas.size < 2 or keep.sum() < 2:
        return PointwiseSlope(math.nan, math.nan, int(keep.sum()))
    slopes = row_slopes(np.log(deltas), np.log(jumps[keep]))
    return PointwiseSlope(float(np.mean(slopes)), float(np.std(slopes, ddof=1) / math.sqrt(slopes.size)),
                          int(slopes.size))


@dataclass(frozen=True, eq=False)
class ContinuityResult(ResultMixin):
    """Jumps ``|f(y + delta v) - f(y - delta v)|``: ``jumps[name]`` (n_points, len(deltas)).

    ``name`` is ``topk`` or ``smooth`` (at points of Gamma^(1)) or ``band_edge`` (smoothed map at
    the band edge); ``exponents[name]`` is its :class:`PointwiseSlope`.

    Parameters
    ----------
    deltas : tuple of float
        Half-steps delta, increasing.
    eta : float
        Band width of the smoothing gate.
    a_s, b_s : float
        Shape parameters of the smoothing gate.
    jumps : dict of str to ndarray
        ``{name: (n_points, len(deltas))}`` for the measured maps.
    exponents : dict of str to PointwiseSlope
        The jump exponent of each.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import discosim as ds
    >>> model = ds.SMoE(ds.Router.gaussian(4, 8, k=2, seed=0), seed=0)
    >>> res = ds.measure_continuity(model, [1e-4, 1e-3], eta=0.1, n_points=20, seed=0)
    >>> sorted(res.jumps), res.jumps["topk"].shape
    (['band_edge', 'smooth', 'topk'], (20, 2))
    """

    deltas: tuple
    eta: float
    a_s: float
    b_s: float
    jumps: dict
    exponents: dict
    seed_entropy: int

    def summary(self, name):
        jump = self.jumps[name]
        return {"median": np.median(jump, axis=0).tolist(), "mean": jump.mean(axis=0).tolist(),
                "mean_stderr": (jump.std(axis=0, ddof=1) / math.sqrt(jump.shape[0])).tolist(),
                "exponent": self.exponents[name].slope,
                "exponent_stderr": self.exponents[name].slope_stderr}

    def to_dict(self):
        return {"deltas": list(self.deltas), "eta": self.eta, "a_s": self.a_s, "b_s": self.b_s,
                "seed_entropy": self.seed_entropy,
                "jumps": {name: self.summary(name) for name in self.jumps}}

    def to_rows(self):
        """Rows ``jump`` per (map, delta): the mean jump over the points with its standard error
        and the median; ``exponent`` per map (the mean pointwise slope)."""
        rows = []
        for name in self.jumps:
            s = self.summary(name)
            for c, d in enumerate(self.deltas):
                rows.append(dict(value_row("jump", s["mean"][c], s["mean_stderr"][c], map=name,
                                           delta=d), median=s["median"][c],
                                 n_samples=self.jumps[name].shape[0]))
            rows.append(dict(value_row("exponent", s["exponent"], s["exponent_stderr"], map=name),
                             n_samples=self.exponents[name].n_points))
        extra = dict(eta=self.eta, a_s=self.a_s, b_s=self.b_s, seed_entropy=self.seed_entropy)
        return [dict(r, **extra) for r in rows]


WHERE = ("discontinuity", "band_edge")


def measure_continuity(model, deltas, eta, *, a_s=1.0, b_s=50.0, n_points=200, radius=1.0,
                       seed=RUN_DEFAULT.seed, where=WHERE, options=None):
    """Jumps of the top-k and smoothed maps across Gamma^(1) and across the band edge.

    Returns a :class:`ContinuityResult` with jumps ``topk`` and ``smooth`` at Gamma^(1)
    points and ``band_edge`` for the smoothed map, each (n_points, len(deltas)).

    THEORY §7: across ``Gamma^(1)`` top-k jumps by O(1) (exponent 0) while the smoothed map is
    Lipschitz (exponent 1, as ``S(u) ~ -(1-u)^{b_s}`` is flat near u = 1); across the band edge
    ``{s_j = g_k - eta}`` the weight behaves like ``u^{a_s}``, exponent ``min(a_s, 1)``.

    Parameters
    ----------
    model : SMoE
        The layer whose maps are measured.
    deltas : sequence of float
        Half-steps delta along the unit normal v.
    eta : float
        Band width of the smoothing gate.
    a_s, b_s : float
        Shape parameters of the smoothing gate (THEORY §7 defaults 1 and 50).
    n_points : int
        Points per surface (projections of uniform points of ``B_D(0, radius)``).
    radius : float
        Radius of the ball the points are drawn from.
    seed : None, int, SeedSequence or numpy Generator
        Seed; its entropy is in the result.
    where : sequence of {"discontinuity", "band_edge"}
        Which surfaces to measure.
    options : RunOptions, optional
        Its seed instead of ``seed`` (one stream: the speed settings do not apply).

    Returns
    -------
    ContinuityResult
        Jumps per map and point, with their per-point log-log exponents.

    Examples
    --------
    >>> import discosim as ds
    >>> model = ds.SMoE(ds.Router.gaussian(4, 8, k=2, seed=0), seed=0)
    >>> res = ds.measure_continuity(model, [1e-4, 1e-3], eta=0.1, n_points=20, seed=0)
    >>> bool(abs(res.exponents["topk"].slope) < 0.05)       # top-k jumps: exponent 0
    True
    >>> bool(abs(res.exponents["smooth"].slope - 1) < 0.05)  # smoothed map: Lipschitz
    True
    """
    seed = resolve_run_options("measure_continuity", options, seed=seed).seed
    if not isinstance(model, SMoE):
        raise InputError("model must be a discosim.smoothing.estimators.SMoE")
    deltas = np.sort(check_positive_array("deltas", deltas))
    eta = check_positive("eta", eta)
    if isinstance(where, str) or not where:
        raise InputError(f"where must be a non-empty list of {', '.join(WHERE)}")
    where = tuple(check_choice("where", w, WHERE) for w in where)
    a_s = check_positive("a_s", a_s)
    b_s = check_positive("b_s", b_s)
    n_points = check_int("n_points", n_points, 2, MAX_POINTS)
    radius = check_positive("radius", radius)
    check_continuity_memory(model.router, n_points, model.experts, model.out_dim,
                            model.B.shape[2] if model.experts == "mlp" else 16)
    ss = as_seed_sequence(seed)
    jumps, exps = {}, {}
    if "discontinuity" in where:
        Y, V, _ = discontinuity_points(model.router, np.random.default_rng(derive_seed(ss, 0)),
                                       n_points, radius)
        for name in ("topk", "smooth"):
            jump = np.empty((n_points, deltas.size))
            for c, d in enumerate(deltas):
                jump[:, c] = np.linalg.norm(model(Y + d * V, name, eta, a_s, b_s)
                                         - model(Y - d * V, name, eta, a_s, b_s), axis=1)
            jumps[name] = jump
            exps[name] = mean_pointwise_slope(deltas, jump)
    if "band_edge" in where:
        Y, V = band_edge_points(model.router, np.random.default_rng(derive_seed(ss, 1)),
                                n_points, radius, eta)
        jump = np.empty((n_points, deltas.size))
        for c, d in enumerate(deltas):
            jump[:, c] = np.linalg.norm(model(Y + d * V, "smooth", eta, a_s, b_s)
                                     - model(Y - d * V, "smooth", eta, a_s, b_s), axis=1)
        jumps["band_edge"] = jump
        exps["band_edge"] = mean_pointwise_slope(deltas, jump)
    return ContinuityResult(tuple(deltas.tolist()), eta, a_s, b_s, jumps, exps, ss.entropy)


def _gaps_below_gk(router, z):
    """``g_k - s_i`` for reduced points z (n, M): positive exactly for experts below rank k."""
    S = z @ router.reduced_weights.T + router.bias
    return kth_largest(S, router.k)[:, None] - S


def _overhead_task(rng, n, router, radius, inputs, etas):
    z = reduced_points(rng, n, router.n_experts, router.dim, radius, inputs)
    gap = _gaps_below_gk(router, z)
    out = np.empty((etas.size, 2))
    for e, eta in enumerate(etas):
        cnt = np.sum((gap > 0) & (gap < eta), axis=1)
        out[e] = (cnt.sum(), np.sum(cnt.astype(float) ** 2))
    return out


@dataclass(frozen=True, eq=False)
class OverheadResult(ResultMixin):
    """``E N_eta`` per eta (``estimates[i]`` at ``etas[i]``) and the leading order ``c_1 eta``.

    Parameters
    ----------
    etas : tuple of float
        Band widths eta.
    estimates : tuple of Estimate
        ``E N_eta`` per eta.
    predicted_leading : ndarray, shape (len(etas),)
        ``c_1 eta``.
    coefficient : float
        ``c_1`` of THEORY §7.
    coefficient_rel_stderr : float
        Its relative standard error (from the slice constants; 0 for closed forms and Genz).
    inputs : {"ball", "gaussian"}
        The input distribution.
    n_samples : int
        Samples.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> res = ds.estimate_overhead(router, 1.0, [0.01, 0.02], n_samples=20_000, seed=0)
    >>> len(res.estimates), round(res.coefficient, 2)
    (2, 3.87)
    """

    etas: tuple
    estimates: tuple
    predicted_leading: np.ndarray
    coefficient: float
    coefficient_rel_stderr: float
    inputs: str
    n_samples: int
    seed_entropy: int

    def to_dict(self):
        return {"etas": list(self.etas), "mean_extra": [e.value for e in self.estimates],
                "stderr": [e.stderr for e in self.estimates],
                "predicted_leading": self.predicted_leading, "c1": self.coefficient,
                "c1_rel_stderr": self.coefficient_rel_stderr, "inputs": self.inputs,
                "n_samples": self.n_samples, "seed_entropy": self.seed_entropy}

    def to_rows(self):
        """Rows ``mean_extra`` per eta (``E N_eta``, with ``predicted`` = c_1 eta) and ``c1``."""
        rows = [dict(estimate_row("mean_extra", e, eta=eta), predicted=p)
                for eta, e, p in zip(self.etas, self.estimates, self.predicted_leading.tolist())]
        rows.append(dict(value_row("c1", self.coefficient,
                                   abs(self.coefficient) * self.coefficient_rel_stderr),
                         seed_entropy=self.seed_entropy))
        return [dict(r, inputs=self.inputs) for r in rows]


def _c1(router, radius, inputs, constants, seed_seq, n_jobs, backend, force_jobs):
    """``c_1`` of THEORY §7 and its relative standard error, from the order-1 slice constants."""
    if constants is None:
        constants = slice_constants(router, 1, seed=derive_seed(seed_seq, 8), n_jobs=n_jobs,
                                    backend=backend, force_jobs=force_jobs)
    # for order 1, det G_J = |w_i - w_j|^2, so B_1 = 2 sum_{i<j} alpha_ij / |w_i - w_j|
    coef = ts.overhead_coefficient(constants.score_weight_sum / 2.0, router.dim, radius, inputs)
    rel = (constants.score_weight_stderr / constants.score_weight_sum
           if constants.score_weight_sum else 0.0)
    return coef, rel


def estimate_overhead(router, radius, etas, *, n_samples=400_000, seed=RUN_DEFAULT.seed,
                      n_jobs=RUN_DEFAULT.n_jobs, backend=RUN_DEFAULT.backend, inputs="ball",
                      constants=None, progress=RUN_DEFAULT.progress,
                      force_jobs=RUN_DEFAULT.force_jobs, device=RUN_DEFAULT.device,
                      devices=RUN_DEFAULT.devices, options=None):
    """Mean number of extra active experts ``E N_eta`` (THEORY §7) for several eta.

    ``inputs``: ``ball`` (uniform in B_D(0, R)) or ``gaussian`` (N(0, R^2/D I_D)). The slice
    constant behind ``c_1`` is seeded from ``seed`` unless ``constants`` (order 1) is given.
    ``device="cuda"``: the samples are drawn and counted on the GPU (:mod:`discosim._cuda.smoothing`;
    same law, its own random streams); ``devices`` picks the GPUs. ``c_1`` is computed on the CPU.

    THEORY §7: ``N_eta(x) = #{i : g_k - eta < s_i < g_k}`` and, for x uniform in ``B_D(0, R)``
    with b = 0, ``E N_eta = c_1 eta + O(eta^2)`` with
    ``c_1 = (2/R) (omega_{D-1}/omega_D) sum_{i<j} alpha_ij / |w_i - w_j|``.

    Parameters
    ----------
    router : Router
        The router.
    radius : float
        R > 0.
    etas : sequence of float
        Band widths eta > 0.
    n_samples : int
        Inputs drawn (shared by every eta).
    seed : None, int, SeedSequence or numpy Generator
        Seed; its entropy is in the result. Same seed, same numbers for any ``n_jobs``.
    n_jobs : int
        Workers (-1: all cores; more than the cores only with ``force_jobs``).
    backend : {"threads", "loky", "threading", "dask"}
        How chunks are spread over the workers; the numbers do not depend on it.
    inputs : {"ball", "gaussian"}
        The input distribution.
    constants : SliceConstants, optional
        Order-1 slice constants behind ``c_1`` (computed here when None).
    progress : bool or None
        Progress bar (None: when stderr is a terminal).
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    device : {"cpu", "cuda"}
        Where the samples are drawn and counted.
    devices : None, int or list of int
        GPUs for ``device="cuda"`` (None: every visible one).
    options : RunOptions, optional
        seed, n_jobs, backend, progress, device, devices and force_jobs in one object (:class:`~discosim._core.runtime.RunOptions`); a name given both
        ways is an InputError.

    Returns
    -------
    OverheadResult
        ``E N_eta`` per eta with standard errors, and ``c_1 eta``.

    See Also
    --------
    calibrate_eta : the eta that costs a given overhead.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> res = ds.estimate_overhead(router, 1.0, [0.01, 0.02], n_samples=20_000, seed=0)
    >>> np.round(res.predicted_leading, 4)           # c_1 eta
    array([0.0387, 0.0774])
    >>> mean = np.array([e.value for e in res.estimates])
    >>> se = np.array([e.stderr for e in res.estimates])
    >>> bool(np.all(abs(mean - res.predicted_leading) < 4 * se))
    True
    """
    check_router(router)
    run = resolve_run_options("estimate_overhead", options, seed=seed, n_jobs=n_jobs,
                              backend=backend, progress=progress, force_jobs=force_jobs,
                              device=device, devices=devices)
    seed, n_jobs, backend, progress = run.seed, run.n_jobs, run.backend, run.progress
    force_jobs, device, devices = run.force_jobs, run.device, run.devices
    radius = check_positive("radius", radius)
    etas = check_positive_array("eta", etas)
    inputs = check_choice("inputs", inputs, INPUTS)
    n_samples = check_int("n_samples", n_samples, 2)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    device = check_device(device)
    ss = as_seed_sequence(seed)
    if device == "cuda":
        from discosim._cuda.smoothing import overhead_sums
        from discosim._cuda.rng import run_key

        tot = overhead_sums(router, radius, etas, inputs, n_samples, run_key(derive_seed(ss, 3)),
                            resolve_devices(devices))
    else:
        tot = run_chunks(_overhead_task, (router, radius, inputs, etas), n_samples, 1 << 15,
                         derive_seed(ss, 3), n_jobs, backend, progress, "overhead", reduce=add,
                         force_jobs=force_jobs)
    ests = []
    for e in range(etas.size):
        m, se = mean_and_stderr(tot[e, 0], tot[e, 1], n_samples)
        ests.append(mean_estimate(m, se, n_samples, int(tot[e, 0]), ss.entropy))
    coef, rel = _c1(router, radius, inputs, constants, ss, n_jobs, backend, force_jobs)
    return OverheadResult(tuple(etas.tolist()), tuple(ests), coef * etas, coef, rel, inputs,
                          n_samples, ss.entropy)


@dataclass(frozen=True)
class Calibration(ResultMixin):
    """The eta whose estimated overhead ``E N_eta`` equals ``target``, and the guess ``target/c_1``.

    Parameters
    ----------
    eta : float
        The calibrated band width.
    eta_first_guess : float
        ``target / c_1``, the leading-order answer (THEORY §7).
    target : float
        The overhead asked for (extra active experts on average).
    inputs : {"ball", "gaussian"}
        The input distribution.
    n_samples : int
        Samples behind the calibration.
    seed_entropy : int
        Entropy of the seed.

    Examples
    --------
    >>> import discosim as ds
    >>> cal = ds.calibrate_eta(ds.Router.orthonormal(4, 8, k=2, seed=0), 0.05,
    ...                        n_samples=20_000, seed=0)
    >>> cal.target, round(cal.eta_first_guess, 4)
    (0.05, 0.0129)
    """

    eta: float
    eta_first_guess: float
    target: float
    inputs: str
    n_samples: int
    seed_entropy: int

    def to_dict(self):
        return asdict(self)

    def to_rows(self):
        """One row ``eta``: the calibrated value, the first guess ``target / c_1`` and the target."""
        return [dict(value_row("eta", self.eta), first_guess=self.eta_first_guess,
                     target=self.target, inputs=self.inputs, n_samples=self.n_samples,
                     seed_entropy=self.seed_entropy)]


# the bracket around the calibrated eta is narrowed until it holds at most this many gaps
_COLLECT_MAX = 1 << 20
_N_BINS = 4096


def _gap_task(rng, n, router, radius, inputs, edges, collect):
    """Positive gaps ``g_k - s_i`` of one chunk: counts per bin of ``edges``, or the gaps inside."""
    gap = _gaps_below_gk(router, reduced_points(rng, n, router.n_experts, router.dim, radius, inputs))
    gap = gap[gap > 0]
    if collect:
        return [np.sort(gap[(gap > edges[0]) & (gap <= edges[-1])])]
    return np.bincount(np.searchsorted(edges, gap, side="left"), minlength=edges.size + 1)


def _concat(a, b):
    return a + b


def calibrate_eta(router, target, radius=1.0, *, n_samples=200_000, seed=RUN_DEFAULT.seed,
                  inputs="ball", constants=None, n_jobs=RUN_DEFAULT.n_jobs,
                  backend=RUN_DEFAULT.backend, force_jobs=RUN_DEFAULT.force_jobs, options=None):
    """The eta with estimated ``E N_eta = target`` (exact inversion on common random numbers).

    ``mean N_eta = #{positive gaps < eta} / n`` is a step function of eta, so the answer is the
    ``ceil(target n)``-th smallest positive gap ``g_k - s_i`` over the n samples. It is found in
    bounded memory: each pass regenerates the same samples (same chunk seeds) and counts the gaps
    per bin of a bracket, which narrows until the gaps inside it fit in memory and are sorted.

    Parameters
    ----------
    router : Router
        The router.
    target : float
        Extra active experts wanted on average, ``0 < target < M - k``.
    radius : float
        R > 0.
    n_samples : int
        Inputs drawn.
    seed : None, int, SeedSequence or numpy Generator
        Seed; its entropy is in the result.
    inputs : {"ball", "gaussian"}
        The input distribution.
    constants : SliceConstants, optional
        Order-1 slice constants behind the first guess ``target / c_1``.
    n_jobs : int
        Workers; the numbers do not depend on it.
    backend : {"threads", "loky", "threading", "dask"}
        How chunks are spread over the workers.
    force_jobs : bool
        Allow ``n_jobs`` above the number of cores.
    options : RunOptions, optional
        seed, n_jobs, backend and force_jobs in one object (:class:`~discosim._core.runtime.RunOptions`); a name given both
        ways is an InputError.

    Returns
    -------
    Calibration
        The calibrated eta and the leading-order guess.

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.orthonormal(4, 8, k=2, seed=0)
    >>> cal = ds.calibrate_eta(router, 0.05, n_samples=20_000, seed=0)
    >>> bool(abs(cal.eta / cal.eta_first_guess - 1) < 0.1)   # O(eta^2) apart
    True
    """
    check_router(router)
    run = resolve_run_options("calibrate_eta", options, seed=seed, n_jobs=n_jobs, backend=backend,
                              force_jobs=force_jobs)
    seed, n_jobs, backend, force_jobs = run.seed, run.n_jobs, run.backend, run.force_jobs
    target = check_positive("target overhead", target)
    radius = check_positive("radius", radius)
    inputs = check_choice("inputs", inputs, INPUTS)
    n_samples = check_int("n_samples", n_samples, 2)
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    if target >= router.n_experts - router.k:
        raise InputError(f"target overhead must be < M - k = {router.n_experts - router.k}")
    if constants is not None and not isinstance(constants, SliceConstants):
        raise InputError("constants must be the order-1 SliceConstants")
    ss = as_seed_sequence(seed)
    gss = derive_seed(ss, 4)
    run = dict(n_jobs=n_jobs, backend=backend, progress=False, force_jobs=force_jobs)
    args = (router, radius, inputs)
    need = int(math.ceil(target * n_samples))  # rank of eta among the positive gaps (1-based)
    scale = router.max_row_norm * radius
    lo, hi = 0.0, math.inf
    # bin i of a pass counts the gaps in (edges[i-1], edges[i]]; bin 0 all gaps <= edges[0]
    edges = np.concatenate([[0.0], np.geomspace(1e-12 * scale, 1e3 * scale, _N_BINS)])
    while True:
        counts = run_chunks(_gap_task, args + (edges, False), n_samples, 1 << 15, gss,
                            reduce=add, **run)
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, need, side="left"))  # the bin holding the need-th gap
        below = int(cum[b - 1]) if b else 0  # gaps <= lo
        lo = float(edges[b - 1]) if b else lo
        hi = float(edges[b]) if b < edges.size else math.inf
        if counts[b] <= _COLLECT_MAX or not math.isfinite(hi) or hi <= np.nextafter(lo, math.inf):
            break
        edges = np.linspace(lo, hi, _N_BINS + 1)
    if not math.isfinite(hi):
        raise InputError("cannot calibrate: the target needs gaps beyond the score range")
    gaps = run_chunks(_gap_task, args + (np.array([lo, hi]), True), n_samples, 1 << 15, gss,
                      reduce=_concat, **run)
    eta = float(np.sort(np.concatenate(gaps))[need - below - 1])
    coef, _ = _c1(router, radius, inputs, constants, ss, n_jobs, backend, force_jobs)
    return Calibration(eta, target / coef, target, inputs, n_samples, ss.entropy)
