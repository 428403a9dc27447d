"""The smoothing gate on an SMoE map: continuity and overhead estimators (THEORY §7).

``f(x) = sum_i p_i(x) E_i(x)`` with random experts (``linear``: ``A_i x``; ``mlp``:
``B_i tanh(C_i x)``) and either the plain top-k gate or the smoothing gate.

- Continuity: jumps ``|f(y + delta v) - f(y - delta v)|`` at points y of Gamma^(1) (normal v), and
  at points of the band edge ``{s_j = g_k - eta}``; log-log exponents with standard errors.
- Overhead: ``E N_eta`` for x uniform in the ball or Gaussian, against ``c_1 eta``.
- Calibration: the eta whose estimated overhead equals a target, with the first guess ``h/c_1``.
"""

import math
from dataclasses import dataclass

import numpy as np

from .constants import slice_constants
from .errors import InputError, check_choice, check_int, check_positive, check_positive_array
from .estimates import mean_and_stderr, mean_estimate
from .gates import kth_largest, smooth_gate, topk_gate
from .parallel import derive_seed, run_chunks
from .points import DISTRIBUTIONS, reduced_points
from .router import Router
from .seeding import as_seed_sequence
from .theory import smoothing as ts

__all__ = ["SMoE", "estimate_overhead", "measure_continuity", "calibrate_eta", "fit_exponent"]

EXPERT_KINDS = ("linear", "mlp")


class SMoE:
    """An SMoE layer on a router with random experts.

    Parameters
    ----------
    router : Router
    experts : {"linear", "mlp"}
    out_dim : int
    seed : int
        Seed of the expert weights.
    hidden : int
        Hidden width of ``mlp`` experts.
    """

    def __init__(self, router, experts="linear", out_dim=8, seed=0, hidden=16):
        if not isinstance(router, Router):
            raise InputError("router must be a discosim.Router")
        self.router = router
        self.experts = check_choice("experts", experts, EXPERT_KINDS)
        self.out_dim = check_int("out_dim", out_dim, 1)
        rng = np.random.default_rng(as_seed_sequence(seed))
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


def _uniform_ball(rng, n, dim, radius):
    g = rng.standard_normal((n, dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * radius * rng.random(n)[:, None] ** (1.0 / dim)


def discontinuity_points(router, rng, n, radius):
    """Points of Gamma^(1) with unit normals: project uniform points on their nearest facet.

    For x in the cell with top-k set K the nearest point of Gamma lies on the facet
    ``s_i = s_j`` (i in K, j not in K) of least ``(s_i - s_j)/|w_i - w_j|`` (THEORY §4.1).
    Returns (Y, V, pairs): points (n, D), normals (n, D), and the swapping experts.
    """
    W, b, k = router.tie_weights, router.bias, router.k
    X = _uniform_ball(rng, n, router.dim, radius)
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
        x = _uniform_ball(rng, 1, router.dim, radius)[0]
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


def fit_exponent(deltas, jumps):
    """Per-point log-log slopes of jump vs delta, averaged: (exponent, stderr).

    Points whose jumps are all zero (no discontinuity met) are dropped.
    """
    if len(deltas) < 2:
        return float("nan"), float("nan")
    ld = np.log(deltas)
    lj = np.log(np.maximum(jumps, 1e-300))
    keep = np.all(jumps > 0, axis=1)
    lj = lj[keep]
    x = ld - ld.mean()
    slopes = (lj - lj.mean(axis=1, keepdims=True)) @ x / np.sum(x * x)
    if slopes.size < 2:
        return float("nan"), float("nan")
    return float(np.mean(slopes)), float(np.std(slopes, ddof=1) / math.sqrt(slopes.size))


@dataclass(frozen=True)
class ContinuityResult:
    deltas: tuple
    eta: float
    jumps: dict  # name -> (n_points, n_deltas) array
    exponents: dict  # name -> (exponent, stderr)

    def summary(self, name):
        J = self.jumps[name]
        return {"median": np.median(J, axis=0).tolist(), "mean": J.mean(axis=0).tolist(),
                "mean_stderr": (J.std(axis=0, ddof=1) / math.sqrt(J.shape[0])).tolist(),
                "exponent": self.exponents[name][0], "exponent_stderr": self.exponents[name][1]}


def measure_continuity(model, deltas, eta, a_s=1.0, b_s=50.0, n_points=200, radius=1.0,
                       seed=None, where=("discontinuity", "band_edge")):
    """Jumps of the top-k and smoothed maps across Gamma^(1) and across the band edge.

    Returns a :class:`ContinuityResult` with jumps ``topk`` and ``smooth`` at Gamma^(1)
    points and ``band_edge`` for the smoothed map, each (n_points, len(deltas)).
    """
    deltas = np.sort(check_positive_array("deltas", deltas))
    eta = check_positive("eta", eta)
    a_s = check_positive("a_s", a_s)
    b_s = check_positive("b_s", b_s)
    n_points = check_int("n_points", n_points, 2)
    radius = check_positive("radius", radius)
    ss = as_seed_sequence(seed)
    jumps, exps = {}, {}
    if "discontinuity" in where:
        Y, V, _ = discontinuity_points(model.router, np.random.default_rng(derive_seed(ss, 0)),
                                       n_points, radius)
        for name in ("topk", "smooth"):
            J = np.empty((n_points, deltas.size))
            for c, d in enumerate(deltas):
                J[:, c] = np.linalg.norm(model(Y + d * V, name, eta, a_s, b_s)
                                         - model(Y - d * V, name, eta, a_s, b_s), axis=1)
            jumps[name] = J
            exps[name] = fit_exponent(deltas, J)
    if "band_edge" in where:
        Y, V = band_edge_points(model.router, np.random.default_rng(derive_seed(ss, 1)),
                                n_points, radius, eta)
        J = np.empty((n_points, deltas.size))
        for c, d in enumerate(deltas):
            J[:, c] = np.linalg.norm(model(Y + d * V, "smooth", eta, a_s, b_s)
                                     - model(Y - d * V, "smooth", eta, a_s, b_s), axis=1)
        jumps["band_edge"] = J
        exps["band_edge"] = fit_exponent(deltas, J)
    return ContinuityResult(tuple(deltas.tolist()), eta, jumps, exps)


def _gaps_below_gk(router, z):
    """``g_k - s_i`` for reduced points z (n, M): positive exactly for experts below rank k."""
    S = z @ router.reduced_weights.T + router.bias
    return kth_largest(S, router.k)[:, None] - S


def _overhead_task(rng, n, router, radius, distribution, etas):
    z = reduced_points(rng, n, router.n_experts, router.dim, radius, distribution)
    gap = _gaps_below_gk(router, z)
    out = np.empty((etas.size, 2))
    for e, eta in enumerate(etas):
        cnt = np.sum((gap > 0) & (gap < eta), axis=1)
        out[e] = (cnt.sum(), np.sum(cnt.astype(float) ** 2))
    return out


@dataclass(frozen=True)
class OverheadResult:
    etas: tuple
    estimates: list
    predicted_leading: list
    coefficient: float
    coefficient_rel_stderr: float
    distribution: str


def estimate_overhead(router, radius, etas, n_samples=400_000, seed=None, n_jobs=1,
                      distribution="ball", constants=None):
    """Mean number of extra active experts ``E N_eta`` (THEORY §7) for several eta.

    ``distribution``: ``ball`` (uniform in B_D(0, R)) or ``gaussian`` (N(0, R^2/D I_D)).
    """
    radius = check_positive("radius", radius)
    etas = check_positive_array("eta", etas)
    distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
    n_samples = check_int("n_samples", n_samples, 2)
    ss = as_seed_sequence(seed)
    parts = run_chunks(_overhead_task, (router, radius, distribution, etas),
                       n_samples, 1 << 15, derive_seed(ss, 3), n_jobs)
    tot = np.sum(parts, axis=0)
    ests = []
    for e in range(etas.size):
        m, se = mean_and_stderr(tot[e, 0], tot[e, 1], n_samples)
        ests.append(mean_estimate(m, se, n_samples, int(tot[e, 0]), ss.entropy))
    c = constants if constants is not None else slice_constants(router, 1, seed=0, n_jobs=n_jobs)
    # for order 1, det G_J = |w_i - w_j|^2, so B_1 = 2 sum_{i<j} alpha_ij / |w_i - w_j|
    pair_sum = c.score_weight_sum / 2.0
    coef = ts.overhead_coefficient(pair_sum, router.dim, radius, distribution)
    rel = c.score_weight_stderr / c.score_weight_sum if c.score_weight_sum else 0.0
    return OverheadResult(tuple(etas.tolist()), ests, (coef * etas).tolist(), coef, rel, distribution)


def calibrate_eta(router, target, radius=1.0, n_samples=200_000, seed=None, distribution="ball",
                  constants=None):
    """The eta with estimated ``E N_eta = target`` (common random numbers, Brent's method).

    Returns (eta, eta_first_guess) where the first guess is ``target / c_1``.
    """
    target = check_positive("target overhead", target)
    distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
    if target >= router.n_experts - router.k:
        raise InputError(f"target overhead must be < M - k = {router.n_experts - router.k}")
    ss = as_seed_sequence(seed)
    rng = np.random.default_rng(derive_seed(ss, 4))
    dim = router.dim
    z = reduced_points(rng, n_samples, router.n_experts, dim, radius, distribution)
    gap = _gaps_below_gk(router, z)
    gap = np.sort(np.where(gap > 0, gap, np.inf).ravel())
    # mean N_eta = #{gaps < eta} / n: a step function, so invert it on the sorted gaps
    idx = int(math.ceil(target * n_samples))
    eta = float(gap[min(idx, gap.size) - 1])
    c = constants if constants is not None else slice_constants(router, 1, seed=0)
    coef = ts.overhead_coefficient(c.score_weight_sum / 2.0, dim, radius, distribution)
    return eta, target / coef
