"""Volume claims (THEORY §5, §8, §9): exact slices, unions, ratios, score tubes, the sampler.

Each family has a ``measure_*`` step (simulation) and a ``judge_*`` step (the rule: measured
numbers and predictions in, :class:`~discosim.validation.rules.Row` out). ``validate`` and the
planted-error tests (``tests/statistical/test_volumes_planted.py``) call the same judges, so a
planted error fails exactly the rule that the report applies.

Set-ups (fixed; seeds from the context; the shared routers are built by :mod:`discosim.cases`):

- ``slice_exact``: orthonormal M=4, D=8, k=2, R=1, eps=0.1; ball (``I(r/2, d/2+1)``) and sphere
  (``I(r/2, d/2)``, THEORY §9) inputs; per-slice hit-or-miss in NumPy.
- ``biased_slice``: the same router with a bias ~ 0.15 N(0, 1): the finite-R prediction
  (:func:`discosim.volumes.integrals.slice_fibre_fraction`), not the R -> infinity one.
- ``real_sizes``: D = 4096 and 8192, eps with ``d eps^2/R^2 = 0.4``: the per-slice fraction
  against the exact ``alpha_J I(r/2, d/2+1)`` (the leading order is 7-10% off there).
- ``slice_sum_vs_union``: orthonormal M=4, D=8, k=2 (tube sampler's overlap estimate).
- ``ratio_theorem``: orthonormal M=6, D=10, k=2; the slopes are derived (the tube sampler's
  normalisation), the constants test ``A_n/A_1``.
- ``importance_sampler``: the same router; the tube sampler against a full-D NumPy hit-or-miss
  twin, and the growth exponent of its relative sd per sample.
- ``euclidean_normal``: Gaussian M=6, D=10, k=2, points drawn near faces of order > r.
- ``scaling_law``: uniform sampler, ``fraction(R, eps) = fraction(1, eps/R)`` for b = 0 (derived:
  exact homogeneity of cones; it checks the sampler's handling of R).
- ``score_tube_constant``: Gaussian M=6, D=12, k=2; and the same gate as a cosine router.
"""

import itertools
import math

import numpy as np

from discosim._core.fitting import linear_fit
from discosim.cases import SLICE_SETUP, biased_router, ratio_router, score_tube_router, slice_router
from discosim.volumes.constants import slice_constants
from discosim.model.router import Router
from discosim.model.selection import tie_straddles_cut
from discosim.theory import volumes as tv
from discosim.volumes import integrals as vi
from discosim.theory.alpha import alpha_orthants, orthonormal_alpha, slice_normal_basis
from discosim.volumes.estimators import estimate_slice_volume, estimate_volumes
from discosim.validation.rules import (ClaimOutput, Row, at_most, claim, close_to, curve, figure, points)

S5 = "§5"
S8 = "§8"
S9 = "§9"


# ------------------------------------------------------------------ small shared pieces
def _ss(seed, *tags):
    """An independent SeedSequence per (seed, tag...) so that no two measurements share draws
    (spawn-key tags, not a padded entropy list: discosim._core.seeding.stream_seed)."""
    from discosim._core.seeding import stream_seed

    return stream_seed(seed, *tags)


def _wls(x, y, se, columns):
    """Weighted least squares ``y ~ sum_j beta_j columns_j(x)``; returns (beta, covariance).

    The covariance is from the stated errors (weights 1/se^2).
    """
    X = np.column_stack([c(np.asarray(x, dtype=float)) for c in columns])
    fit = linear_fit(X, y, weights=1.0 / np.asarray(se, dtype=float) ** 2)
    return fit.coef, fit.cov


def proportion_draw(n, p):
    """``draw`` of a hit-or-miss proportion from n points whose truth is ``p (1 + delta)``."""
    return lambda rng, delta, size: rng.binomial(n, min(max(p * (1.0 + delta), 0.0), 1.0), size) / n


def fit_draw(x, values, se, columns, index, predicted, *, relative, log):
    """The ``draw`` of a row whose statistic is coefficient ``index`` of a weighted fit.

    The fit ``y ~ sum_j beta_j columns_j(x)`` (``y = log values`` when ``log``, weights from
    ``se``) is redone on data regenerated around the fitted curve with coefficient ``index``
    moved to the planted truth (``predicted * (1 + delta)`` when ``relative``, else
    ``predicted + delta``) and normal noise of the points' own standard errors (kept relative
    to the value for log fits), as the row's estimator sees it. Returns
    ``draw(rng, delta, size) -> ndarray (size,)``, the contract of
    :class:`~discosim.validation.rules.Row`.
    """
    x, values, se = (np.asarray(a, dtype=float) for a in (x, values, se))
    X = np.column_stack([c(x) for c in columns])
    y = np.log(values) if log else values
    y_se = se / values if log else se
    beta = linear_fit(X, y, weights=1.0 / y_se ** 2).coef
    rel_se = se / values

    def draw(rng, delta, size):
        target = predicted * (1.0 + delta) if relative else predicted + delta
        mu = X @ beta + (target - beta[index]) * X[:, index]
        base = np.exp(mu) if log else mu
        noise_se = rel_se * base if log else se
        v = base + rng.standard_normal((int(size), len(x))) * noise_se
        if log:
            v = np.maximum(v, 1e-300 * base)  # a draw below zero is a far outlier: keep it finite
            yy, w = np.log(v), (v / noise_se) ** 2
        else:
            yy, w = v, np.broadcast_to(1.0 / noise_se ** 2, v.shape)
        A = np.einsum("si,ij,ik->sjk", w, X, X)
        b = np.einsum("si,ij,si->sj", w, X, yy)
        return np.linalg.solve(A, b[..., None])[:, index, 0]

    return draw


def fit_power_with_next_order(x, y, se, next_power=1.0):
    """Fit ``log y = a + s log x + c x^next_power`` (the next-order term included).

    Returns ``(s, se_s, a, se_a)``. Errors of log y are ``se / y`` to first order.
    """
    x, y, se = (np.asarray(a, dtype=float) for a in (x, y, se))
    beta, cov = _wls(x, np.log(y), se / y,
                     [np.ones_like, np.log, lambda t: t ** next_power])
    return float(beta[1]), float(math.sqrt(cov[1, 1])), float(beta[0]), float(math.sqrt(cov[0, 0]))


# ------------------------------------------------------------------ slice_exact (§5, §9)
def judge_slice_fraction(claim_name, section, quantity, measured, stderr, predicted, draw=None,
                         **data):
    """Exact per-slice fraction: two-sided, relative, no band."""
    return close_to(claim_name, section, quantity, predicted, measured, stderr, draw=draw, **data)


def slice_prediction(alpha, eps, radius, dim, order, inputs="ball"):
    """``alpha_J I_{eps^2/R^2}(r/2, d/2+1)`` (ball) or ``alpha_J I(r/2, d/2)`` (sphere)."""
    f = tv.tube_fraction if inputs == "ball" else tv.sphere_tube_fraction
    return float(alpha * f(eps, radius, dim, order))


@claim("slice_exact", S5, "per-slice normal tube = α_J I_{ε²/R²}(r/2, d/2+1) in the ball and "
       "α_J I_{ε²/R²}(r/2, d/2) on the sphere (orthonormal M=4, D=8, k=2, ε=0.1)")
def slice_exact(ctx):
    s = SLICE_SETUP
    router = slice_router(ctx.seed)
    n = ctx.samples(1_500_000)
    rows = []
    for inputs in ("ball", "sphere"):
        for J in ((0, 1), (0, 1, 2)):
            r = len(J) - 1
            pred = slice_prediction(orthonormal_alpha(s["M"], s["k"], r), s["eps"], s["radius"],
                                    s["D"], r, inputs)
            est = estimate_slice_volume(router, J, s["radius"], s["eps"], n_samples=n,
                                        seed=_ss(ctx.seed, r, inputs == "sphere"), inputs=inputs)
            b = "d/2+1" if inputs == "ball" else "d/2"
            rows.append(judge_slice_fraction("slice_exact", S5 if inputs == "ball" else S9,
                                             f"r={r} slice fraction, {inputs}: alpha I(r/2, {b})",
                                             est.value, est.stderr, pred,
                                             draw=proportion_draw(n, pred), n=n))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ biased_slice (§5 finite R)
@claim("biased_slice", S5, "with a bias the per-slice tube is the finite-R integral over the "
       "affine S_J (constant λ_d(Γ_J ∩ B_R)/(ω_d R^d)), not the R → ∞ α_J")
def biased_slice(ctx):
    s = SLICE_SETUP
    router = biased_router(ctx.seed)
    n = ctx.samples(1_500_000)
    n_pred = ctx.samples(1_000_000)
    rows = []
    for J in ((0, 1), (0, 1, 2)):
        r = len(J) - 1
        pred, pred_se = vi.slice_fibre_fraction(router.reduced_weights, router.bias, s["k"], J,
                                                s["eps"], s["radius"], s["D"], n_pred,
                                                rng=np.random.default_rng([ctx.seed, 7, r]))
        a_R, _ = vi.finite_radius_alpha(router.reduced_weights, router.bias, s["k"], J, s["radius"],
                                        s["D"], n_pred, rng=np.random.default_rng([ctx.seed, 8, r]))
        est = estimate_slice_volume(router, J, s["radius"], s["eps"], n_samples=n, seed=_ss(ctx.seed, 9, r))
        rows.append(judge_slice_fraction(
            "biased_slice", S5, f"r={r} biased slice fraction vs finite-R integral",
            est.value, math.hypot(est.stderr, pred_se), pred,
            alpha_finite_R=a_R, alpha_R_infinity=orthonormal_alpha(s["M"], s["k"], r),
            prediction_stderr=pred_se, bias=router.bias.tolist()))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ real_sizes (§5)
def judge_real_size_fraction(quantity, measured, stderr, n, alpha, dim, order, eps, radius=1.0,
                             **data):
    """Per-slice fraction at a real size against the exact ``alpha_J I_{eps^2/R^2}(r/2, d/2+1)``.

    Two-sided, relative, no band: the closed form is exact at every eps (THEORY §5), so nothing
    is neglected; the leading order and its first correction are reported beside it.
    """
    exact = alpha * float(tv.tube_fraction(eps, radius, dim, order))
    lead = alpha * float(tv.leading_tube_fraction(eps, radius, dim, order))
    return close_to("real_sizes", S5, quantity, exact, measured, stderr,
                    draw=proportion_draw(n, exact), n=n, leading=lead,
                    measured_correction=measured / lead - 1.0,
                    exact_correction=exact / lead - 1.0,
                    first_order_correction=float(tv.relative_correction(eps, radius, dim, order)),
                    **data)


REAL_X = np.array([0.2, 0.4, 0.8, 1.6])  # d eps^2 / R^2 of the figure; rows at 0.4


@claim("real_sizes", S5, "real sizes D = 4096, 8192 at d ε²/R² = 0.4, where the leading order is "
       "off by 7–10%: the per-slice fraction equals the exact α_J I_{ε²/R²}(r/2, d/2+1) (the "
       "leading order's correction −r d ε²/(2(r+2)R²) reported beside it)",
       figures={"real_size_correction": "relative correction of the leading order at D = 4096 "
                                        "against d ε²/R²: first-order formula and exact closed form"})
def real_sizes(ctx):
    rows, layers = [], []
    n = ctx.samples(1_000_000)
    for D in (4096, 8192):
        router = Router.orthonormal(4, D, 2, seed=ctx.seed)
        for J in ((0, 1), (0, 1, 2)):
            r = len(J) - 1
            d = D - r
            alpha = orthonormal_alpha(4, 2, r)
            xs = REAL_X if D == 4096 else np.array([0.4])
            meas, meas_se = [], []
            for x in xs:
                eps = math.sqrt(x / d)
                lead = alpha * float(tv.leading_tube_fraction(eps, 1.0, D, r))
                m = n if x == 0.4 else max(n // 2, 1000)
                est = estimate_slice_volume(router, J, 1.0, eps, n_samples=m,
                                            seed=_ss(ctx.seed, D, r, int(1000 * x)))
                meas.append(est.value / lead - 1.0)
                meas_se.append(est.stderr / lead)
                if x == 0.4:
                    rows.append(judge_real_size_fraction(
                        f"D={D} r={r}: slice fraction vs exact alpha I(r/2, d/2+1) "
                        f"(eps={eps:.3g}, d eps^2/R^2 = 0.4)", est.value, est.stderr, m, alpha,
                        D, r, eps))
            if D == 4096:
                fine = np.geomspace(xs[0], xs[-1], 40)
                eps_f = np.sqrt(fine / d)
                layers += [points(xs, -np.array(meas), meas_se, f"r={r}: measured (95% CI)", group=r),
                           curve(fine, -tv.relative_correction(eps_f, 1.0, D, r),
                                 f"r={r}: first order r d eps^2/(2(r+2)R^2)", group=r, style="--"),
                           curve(fine, -tv.exact_relative_correction(eps_f, 1.0, D, r),
                                 f"r={r}: exact (incomplete beta)", group=r)]
    series = {"real_size_correction": figure(
        "orthonormal router M=4, D=4096, k=2, one slice, ball inputs",
        r"$d\,\epsilon^2/R^2$", r"$1 - $ fraction / leading order", layers)}
    return ClaimOutput(tuple(rows), series)


# ------------------------------------------------------------------ tube runs on one router
RATIO_EPS = np.array([0.1, 0.03, 0.01, 0.003, 0.001])


def measure_tube_fractions(router, eps, orders, n, seed, metric="euclidean", constants_seed=None,
                           **kw):
    """Tube sampler fractions ``f[r]``, errors ``se[r]``, overlaps ``(S-U)`` and slice sums ``S``.

    ``constants_seed`` (an int; default ``seed``) seeds the slice constants behind S.
    """
    cseed = seed if constants_seed is None else constants_seed
    consts = {r: slice_constants(router, r, seed=cseed) for r in orders}
    res = estimate_volumes(router, 1.0, eps, orders=orders, metric=metric, method="tube",
                           n_samples=n, seed=seed, constants=consts, **kw)
    out = {"consts": consts, "result": res}
    for key, get in (("f", lambda o: o.estimate.value), ("se", lambda o: o.estimate.stderr),
                     ("S", lambda o: o.predicted_slice_sum), ("lead", lambda o: o.predicted_leading),
                     ("ov", lambda o: o.overlap.value), ("ov_se", lambda o: o.overlap.stderr),
                     ("relse", lambda o: o.estimate.relative_stderr)):
        out[key] = {r: np.array([get(res.order_result(i, r)) for i in range(len(eps))]) for r in orders}
    return out


# ------------------------------------------------------------------ slice_sum_vs_union (§5)
def judge_overlap_order(quantity, eps, gap, gap_se, predicted=1.0):
    """Relative overlap ``(S-U)/S ~ eps^1``: slope of ``log gap = a + s log eps + c eps``,
    two-sided, absolute; ``draw`` refits regenerated points (a fit's statistic, not exactly
    normal)."""
    cols = [np.ones_like, np.log, lambda t: t]
    beta, cov = _wls(eps, np.log(gap), np.asarray(gap_se) / np.asarray(gap), cols)
    draw = fit_draw(eps, gap, gap_se, cols, 1, predicted, relative=False, log=True)
    return close_to("slice_sum_vs_union", S5, quantity, predicted, float(beta[1]),
                    float(math.sqrt(cov[1, 1])), relative=False, draw=draw,
                    eps=list(map(float, eps)), relative_overlap=list(map(float, gap)),
                    relative_overlap_se=list(map(float, gap_se)))


UNION_EPS = np.array([0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005])
# Largest eps of each order's fit. The fit's neglected eps^2 term biases the exponent by
# ~0.006 over the whole grid: 1.2 SE for r = 2 (measured to 0.5% a point; the issue's
# four runs read +3.4 SE), 0.1 SE for r = 1 (3x noisier). Without eps = 0.2, r = 2's bias is
# <= 0.002 (0.2 SE; from a cubic fitted to 16 seeds' pooled overlaps) at SE 0.0086; r = 1 keeps
# the grid (an eps^2 term or a shorter grid would take it past the 0.1 target).
UNION_EPS_MAX = {1: 0.2, 2: 0.1}


@claim("slice_sum_vs_union", S5, "U_r = Σ_J α_J V_r − O(ε^{r+1}): the relative overlap "
       "(S−U)/S is of order ε (next-order term fitted; r = 2 over ε ≤ 0.1, where ε² is negligible)")
def slice_sum_vs_union(ctx):
    # M=4: large alpha_J, so the overlap S - U is estimated from many samples
    router = slice_router(ctx.seed)
    m = measure_tube_fractions(router, UNION_EPS, (1, 2), ctx.samples(400_000), ctx.seed,
                               metric="normal", **ctx.estimator_kwargs())
    rows = []
    for r in (1, 2):
        keep = UNION_EPS <= UNION_EPS_MAX[r]
        gap, gap_se = (m["ov"][r] / m["S"][r])[keep], (m["ov_se"][r] / m["S"][r])[keep]
        rows.append(judge_overlap_order(f"r={r} exponent s of (S-U)/S, log fit a + s log eps + c eps "
                                        f"over eps/R in [{UNION_EPS[keep].min():g}, "
                                        f"{UNION_EPS[keep].max():g}]", UNION_EPS[keep], gap, gap_se))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ ratio_theorem (§5, Thm A.18)
def curvature_factor(eps, dim, n, m=1, radius=1.0):
    """``(V_n/lead_n) / (V_m/lead_m)``: the exact O(d eps^2) curvature of the ratio (closed form)."""
    return (np.exp(tv.log_tube_fraction(eps, radius, dim, n) - tv.log_leading_tube_fraction(eps, radius, dim, n))
            / np.exp(tv.log_tube_fraction(eps, radius, dim, m) - tv.log_leading_tube_fraction(eps, radius, dim, m)))


RATIO_SLOPE_DERIVED = (
    "importance_sampler: tube sampler vs full-D NumPy hit-or-miss (the slope holds by "
    "construction of the tube sampler: its weight is C(M, r+1) I_{eps^2/R^2}(r/2, d/2+1) times "
    "the fibre membership over N(x), so U_n/U_1 over the exact curvature factor K is "
    "omega_n omega_{D-n}/(omega_1 omega_{D-1}) eps^(n-1) times membership averages; that "
    "normalisation is what the twin rows check, and the membership's O(eps) term is the "
    "constant row's and slice_sum_vs_union's)")


def judge_ratio_slope(quantity, eps, ratio, ratio_se, predicted_slope, dim, n, m=1):
    """Slope of ``U_n/U_m`` after the exact curvature factor, with the O(eps) overlap term fitted.

    Marked derived (:data:`RATIO_SLOPE_DERIVED`): with the tube sampler on both sides it cannot
    fail except through the membership term that other rows test."""
    K = curvature_factor(eps, dim, n, m)
    s, s_se, _, _ = fit_power_with_next_order(eps, np.asarray(ratio) / K, np.asarray(ratio_se) / K)
    return close_to("ratio_theorem", "§5 (Thm A.18)", quantity, predicted_slope, s, s_se,
                    relative=False, derived=RATIO_SLOPE_DERIVED)


def judge_ratio_constant(quantity, eps, ratio, ratio_se, constant, dim, n, m=1):
    """``C`` of ``U_n/U_m = C (eps/R)^(n-m) (1 + c eps + c2 eps^2)``: the intercept at eps -> 0 of
    ``U_n/U_m / (K eps^(n-m))`` over the eps grid, K the exact curvature factor (the overlap
    terms fitted, not banded). Without the eps^2 term the U_3/U_1 constant read +0.20% +- 0.07%
    (1.0 SE of the full run; mean of 8 seeds); with it +0.01% +- 0.09%, and U_2/U_1 -0.09% +-
    0.11%.

    The omega factors of C come from the tube sampler's normalisation and cancel; what the row
    tests is ``A_n/A_m``: the sampler's fibre memberships against the closed-form orthant
    integrals behind ``constant`` (independent code). Two-sided, relative; ``draw`` refits."""
    eps = np.asarray(eps, dtype=float)
    K = curvature_factor(eps, dim, n, m)
    y = np.asarray(ratio) / K / eps ** (n - m)
    y_se = np.asarray(ratio_se) / K / eps ** (n - m)
    cols = [np.ones_like, lambda t: t, lambda t: t * t]
    beta, cov = _wls(eps, y, y_se, cols)
    draw = fit_draw(eps, y, y_se, cols, 0, constant, relative=True, log=False)
    return close_to("ratio_theorem", "§5 (Thm A.18)", quantity, constant, float(beta[0]),
                    float(math.sqrt(cov[0, 0])), draw=draw, next_order_coefficients=beta[1:].tolist())


@claim("ratio_theorem", "§5 (Thm A.18)", "U_n/U_1 → C (ε/R)^{n−1}, C = ω_nω_{D−n}A_n/(ω_1ω_{D−1}A_1): "
       "the constant's A_n/A_1 (O(ε), O(ε²) terms fitted, exact O(dε²) curvature divided out); the slope "
       "and the ω factors come with the tube sampler's normalisation (rows marked derived)",
       figures={"volume_fraction_vs_eps": "tube fractions of orders 1–3 against ε/R with the leading order",
                "volume_ratios_vs_eps": "U_n/U_1 against the ratio theorem"})
def ratio_theorem(ctx):
    router = ratio_router(ctx.seed)
    D = router.dim
    eps = RATIO_EPS
    m = measure_tube_fractions(router, eps, (1, 2, 3), ctx.samples(300_000), ctx.seed,
                               **ctx.estimator_kwargs())
    f, s = m["f"], m["se"]
    rows, vol_layers, rat_layers = [], [], []
    for r in (1, 2, 3):
        vol_layers += [points(eps, f[r], s[r], f"order {r}: measured (95% CI)", group=f"r{r}"),
                       curve(eps, m["lead"][r], f"order {r}: leading order", group=f"r{r}")]
    for n_ in (2, 3):
        ratio = f[n_] / f[1]
        ratio_se = ratio * np.sqrt((s[n_] / f[n_]) ** 2 + (s[1] / f[1]) ** 2)
        rows.append(judge_ratio_slope(f"slope of U_{n_}/U_1", eps, ratio, ratio_se, n_ - 1, D, n_))
        C = float(tv.ratio_constant(m["consts"][n_].alpha_sum, m["consts"][1].alpha_sum, n_, 1, D))
        rows.append(judge_ratio_constant(f"constant C of U_{n_}/U_1 = C eps^{n_ - 1} "
                                         f"(1 + c eps + c2 eps^2): A_{n_}/A_1 (the omega factors "
                                         f"cancel)",
                                         eps, ratio, ratio_se, C, D, n_))
        pred = tv.predicted_ratio(m["consts"][n_].alpha_sum, m["consts"][1].alpha_sum, n_, 1, D, eps, 1.0)
        rat_layers += [points(eps, ratio, ratio_se, f"$U_{n_}/U_1$ measured (95% CI)", group=n_),
                       curve(eps, pred, f"$U_{n_}/U_1$ ratio theorem, slope {n_ - 1}", group=n_)]
    res = m["result"]
    title = (f"orthonormal router M={router.n_experts}, D={D}, k={router.k}, R=1, "
             f"{res.metric} metric, {res.method} sampler, n={res.n_samples}/point")
    series = {"volume_fraction_vs_eps": figure(title, r"$\epsilon/R$ (tube radius over ball radius)",
                                               r"fraction of $B_D(0,R)$ in the order-$r$ tube", vol_layers),
              "volume_ratios_vs_eps": figure(title, r"$\epsilon/R$", r"volume ratio $U_n/U_1$", rat_layers)}
    return ClaimOutput(tuple(rows), series)


# ------------------------------------------------------------------ euclidean_normal (§5)
def _face_points(Wr, k, q_min, n, eps, rng):
    """Points within 2 eps of random faces of order >= q_min (tie sets straddling k, k+1)."""
    M = Wr.shape[0]
    out = []
    while sum(len(o) for o in out) < n:
        q = int(rng.integers(q_min, M))  # order of the face: |J'| = q + 1
        Jp = sorted(rng.choice(M, q + 1, replace=False).tolist())
        z = rng.standard_normal((4 * n, M)) * 0.5
        V = Wr[Jp[1:]] - Wr[Jp[0]]
        y = z - (np.linalg.solve(V @ V.T, V @ z.T)).T @ V
        s = y @ Wr.T
        others = [i for i in range(M) if i not in Jp]
        above = np.sum(s[:, others] > s[:, [Jp[0]]] + 1e-12, axis=1) if others else np.zeros(len(y))
        y = y[tie_straddles_cut(above, q + 1, k)]
        u = rng.standard_normal(y.shape)
        u /= np.linalg.norm(u, axis=1)[:, None]
        out.append(y + (2.0 * eps * rng.random(len(y)))[:, None] * u)
    return np.concatenate(out)[:n]


def euclidean_slice_distances(Wr, k, order, X):
    """``dist(x, cl Gamma_J)`` for every slice J of the given order, by brute force (NumPy).

    ``cl Gamma_J`` is the union over admissible above-sets A of the polyhedral cones
    ``{z in S_J : s_a >= v (a in A), s_b <= v (b not in A u J)}`` (THEORY §4, b = 0). The projection
    on a polyhedral cone is the projection on the linear span of its active face; every subset
    of constraints is tried as the active set, and the nearest feasible candidate is the
    projection (feasible candidates are never nearer than it). Returns ``(slices, dist)`` with
    dist of shape (n, n_slices).
    """
    M = Wr.shape[0]
    r = order
    slices = list(itertools.combinations(range(M), r + 1))
    dist = np.full((len(X), len(slices)), np.inf)
    for jj, J in enumerate(slices):
        others = [i for i in range(M) if i not in J]
        E = Wr[list(J[1:])] - Wr[J[0]]
        for c in range(max(0, k - r), min(k - 1, len(others)) + 1):
            for A in itertools.combinations(others, c):
                # inequality rows C z <= 0
                C = np.array([-(Wr[a] - Wr[J[0]]) if a in A else (Wr[a] - Wr[J[0]]) for a in others])
                C = C.reshape(len(others), M)
                for n_act in range(len(others) + 1):
                    for act in itertools.combinations(range(len(others)), n_act):
                        B = np.vstack([E, C[list(act)]]) if act else E
                        P = np.eye(M) - np.linalg.pinv(B) @ B
                        Y = X @ P.T
                        ok = np.all(Y @ C.T <= 1e-12, axis=1) if len(others) else np.ones(len(X), bool)
                        d = np.linalg.norm(X - Y, axis=1)
                        d = np.where(ok, d, np.inf)
                        dist[:, jj] = np.minimum(dist[:, jj], d)
    return slices, dist


def normal_fibre_membership(Wr, k, order, X, eps, slices=None):
    """``(n, n_slices)`` booleans: x in the normal fibre tube of Gamma_J (|J| = order + 1).

    ``dist(x, S_J) <= eps`` and the projection of x on ``S_J`` has J tied across ranks k, k+1.
    """
    M = Wr.shape[0]
    r = order
    slices = list(itertools.combinations(range(M), r + 1)) if slices is None else slices
    out = np.zeros((len(X), len(slices)), dtype=bool)
    for jj, J in enumerate(slices):
        V = Wr[list(J[1:])] - Wr[J[0]]
        lam = np.linalg.solve(V @ V.T, V @ X.T).T
        Y = X - lam @ V
        d2 = np.sum((X - Y) ** 2, axis=1)
        s = Y @ Wr.T
        others = [i for i in range(M) if i not in J]
        above = np.sum(s[:, others] > s[:, [J[0]]], axis=1) if others else np.zeros(len(X))
        out[:, jj] = (d2 <= eps * eps) & tie_straddles_cut(above, r + 1, k)
    return out


def judge_membership(order, euclid, normal, n_caps):
    """Exact point-by-point agreement of euclidean and normal membership.

    Zero mismatches among n points detects a mismatch rate p with power 1 - (1-p)^n >= 95% once
    ``p >= ln(20)/n``: that is the row's resolution (an absolute rate).
    """
    n = len(euclid)
    mism = int(np.sum(euclid != normal))
    res = math.log(20.0) / n
    return Row("euclidean_normal", S5,
               f"r={order}: euclidean != normal memberships among {n} points near faces "
               f"of order > {order} ({n_caps} in single-slice caps)",
               0.0, float(mism), 0.0, "mismatches == 0 (exact)", res, "absolute", mism == 0,
               data={"n_points": n, "n_in_euclidean_tube": int(np.sum(euclid)),
                     "n_single_slice_caps": int(n_caps), "mismatches": mism},
               sides=0)  # exact: a correct identity never fails, no false alarms


def measure_membership(Wr, k, order, n, eps, rng, single_slice=False):
    """Euclidean and normal memberships of points near higher-order faces, and the cap count.

    ``single_slice``: the planted error of a normal tube without neighbours: slice by slice,
    the euclidean tube of ``cl Gamma_J`` against the fibre tube of that ``Gamma_J`` alone (every
    (point, slice) pair is compared; the caps make them differ).
    """
    X = _face_points(Wr, k, order + 1, n, eps, rng)
    slices, dist = euclidean_slice_distances(Wr, k, order, X)
    fib = normal_fibre_membership(Wr, k, order, X, eps, slices)
    caps = np.any((dist <= eps) & ~fib, axis=1)
    if single_slice:
        return (dist <= eps).ravel(), fib.ravel(), int(np.sum(caps))
    return dist.min(axis=1) <= eps, fib.any(axis=1), int(np.sum(caps))


@claim("euclidean_normal", S5, "the euclidean ε-tube of Γ^(≥r) is the union of the normal fibre "
       "tubes of the order-r slices, point by point (r = 1, 2, 3; points near higher-order faces)")
def euclidean_normal(ctx):
    router = Router.gaussian(6, 10, 2, seed=ctx.seed)
    rng = np.random.default_rng([ctx.seed, 55])
    n = ctx.samples(3000, 500)
    rows = []
    for r in (1, 2, 3):
        euclid, normal, caps = measure_membership(router.reduced_weights, router.k, r, n, 0.05, rng)
        rows.append(judge_membership(r, euclid, normal, caps))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ scaling_law (§5)
SCALING_DERIVED = (
    "scaling_law: exact homogeneity of the b = 0 cones (x -> R x maps the eps/R-tube of B_1 onto "
    "the eps-tube of B_R); the row checks how the uniform sampler handles R, no THEORY quantity")


def judge_scaling(quantity, measured, measured_se, predicted, predicted_se):
    """fraction(R, eps) against fraction(1, eps/R), two-sided; derived (:data:`SCALING_DERIVED`)."""
    return close_to("scaling_law", S5, quantity, predicted, measured, math.hypot(measured_se, predicted_se),
                    derived=SCALING_DERIVED)


@claim("scaling_law", S5, "b = 0: U_r(R, ε) = R^D U_r(1, ε/R), i.e. the fraction of B_R at ε "
       "equals that of B_1 at ε/R (uniform sampler, independent seeds; derived: exact homogeneity "
       "of cones, a check of how R is handled)")
def scaling_law(ctx):
    router = ratio_router(ctx.seed)
    n = ctx.device_samples(1_500_000)
    R, e1 = 2.5, 0.05
    consts = {r: slice_constants(router, r, seed=ctx.seed) for r in (1, 2)}
    kw = dict(orders=(1, 2), metric="euclidean", method="uniform", n_samples=n, constants=consts,
              **ctx.estimator_kwargs())
    big = estimate_volumes(router, R, [R * e1], seed=_ss(ctx.seed, 1), **kw)
    unit = estimate_volumes(router, 1.0, [e1], seed=_ss(ctx.seed, 2), **kw)
    rows = []
    for r in (1, 2):
        a, b = big.order_result(0, r).estimate, unit.order_result(0, r).estimate
        rows.append(judge_scaling(f"r={r}: fraction(R={R:g}, eps={R * e1:g}) vs fraction(1, {e1:g})",
                                  a.value, a.stderr, b.value, b.stderr))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ score tubes (§5), cosine (§1, §9)
def judge_score_constant(quantity, measured, stderr, predicted, **data):
    return close_to("score_tube_constant", S5, quantity, predicted, measured, stderr, **data)


def cosine_slice_sum(router, eps):
    """Order-1 score tube of a cosine router, slice by slice (THEORY §1, §9, derived).

    Cosine scores are scale-free, so the fraction of the ball is the fraction of the unit sphere;
    a pair's score gap ``(w_a - w_b).u`` (normalised rows) is at most eps within the slab of
    half-width ``eps/|w_a - w_b|``: ``sum_J alpha_J I_{eps^2/|w_a-w_b|^2}(1/2, (D-1)/2)``.
    """
    rng = np.random.default_rng(0)
    eps = np.asarray(eps, dtype=float)
    total = np.zeros_like(eps)
    for J in itertools.combinations(range(router.n_experts), 2):
        a = alpha_orthants(router.reduced_weights, router.k, J, rng=rng)
        _, det = slice_normal_basis(router.reduced_weights, J)
        total += a * tv.sphere_tube_fraction(eps / math.sqrt(det), 1.0, router.dim, 1)
    return total


COSINE_EPS = np.array([0.04, 0.02, 0.01, 0.005])


def judge_cosine_intercept(eps, union, union_se, slice_sum):
    """``U_1/S = a + c eps + c2 eps^2`` (overlaps and edges are O(eps)): the intercept a is 1."""
    y = np.asarray(union) / slice_sum
    y_se = np.asarray(union_se) / slice_sum
    cols = [np.ones_like, lambda t: t, lambda t: t * t]
    beta, cov = _wls(eps, y, y_se, cols)
    return close_to("score_tube_constant", "§1, §9",
                    "cosine router: U_1/sum_J alpha_J I(1/2,(D-1)/2) at eps -> 0 (O(eps), O(eps^2) fitted)",
                    1.0, float(beta[0]), float(math.sqrt(cov[0, 0])),
                    draw=fit_draw(eps, y, y_se, cols, 0, 1.0, relative=True, log=False),
                    eps=list(map(float, eps)),
                    ratio=list(map(float, y)))


@claim("score_tube_constant", S5, "score tube ≈ Σ_J (r+1) det(G_J)^{−1/2} α_J ω_{D−r} ε^r R^{D−r}; "
       "cosine routers: order-1 score tube = sphere slabs of half-width ε/|ŵ_a − ŵ_b|")
def score_tube_constant(ctx):
    router = score_tube_router(ctx.seed)
    eps = 1e-3
    n = ctx.samples(160_000)
    rows = []
    for r in (1, 2):
        c = slice_constants(router, r, seed=ctx.seed)
        res = estimate_volumes(router, 1.0, eps, orders=(r,), metric="score", method="tube",
                               n_samples=n, seed=_ss(ctx.seed, r), constants={r: c}, **ctx.estimator_kwargs())
        o = res.order_result(0, r)
        rows.append(judge_score_constant(f"r={r} score fraction at eps/R=1e-3", o.estimate.value,
                                         o.estimate.stderr, o.predicted_leading))
    cos = score_tube_router(ctx.seed, kind="cosine")
    res = estimate_volumes(cos, 1.0, COSINE_EPS, orders=(1,), metric="score", method="uniform",
                           n_samples=ctx.device_samples(3_000_000), seed=_ss(ctx.seed, 3),
                           constants={1: slice_constants(cos, 1, seed=ctx.seed)}, **ctx.estimator_kwargs())
    U = np.array([res.order_result(i, 1).estimate.value for i in range(len(COSINE_EPS))])
    Use = np.array([res.order_result(i, 1).estimate.stderr for i in range(len(COSINE_EPS))])
    rows.append(judge_cosine_intercept(COSINE_EPS, U, Use, cosine_slice_sum(cos, COSINE_EPS)))
    return ClaimOutput(tuple(rows), {})


# ------------------------------------------------------------------ importance_sampler (§8)
def full_dim_union_fraction(router, order, eps, n, rng, batch=1 << 15):
    """Hit-or-miss fraction of ``B_D(0, 1)`` in the normal-metric order-r tube, in full D (NumPy).

    The slow, obviously correct twin of the samplers: points uniform in the D-ball (not the
    reduced coordinates), membership by :func:`normal_fibre_membership` slice by slice on the
    full weight rows (not the kernels' ``point_stats``). Returns ``(fraction, stderr, n)``.
    """
    W = np.asarray(router.weights, dtype=float)
    D = W.shape[1]
    slices = list(itertools.combinations(range(W.shape[0]), order + 1))
    hits = done = 0
    while done < n:
        m = min(batch, n - done)
        g = rng.standard_normal((m, D))
        X = g / np.linalg.norm(g, axis=1)[:, None] * rng.random(m)[:, None] ** (1.0 / D)
        hits += int(np.sum(normal_fibre_membership(W, router.k, order, X, eps, slices).any(axis=1)))
        done += m
    p = hits / n
    return p, math.sqrt(p * (1.0 - p) / n), n


def judge_samplers(quantity, tube, tube_se, twin, twin_se, **data):
    """Tube (importance) sampler against the full-D NumPy hit-or-miss twin: two-sided, relative.

    The twin shares no code with the sampler (points, membership, weights), so a wrong weight or
    membership in the kernels moves one side only. Both sides are means of many independent
    samples (the twin a binomial proportion near 0.3), so the normal model with the combined
    standard error is the row's law (no ``draw``).
    """
    return close_to("importance_sampler", S8, quantity, twin, tube, math.hypot(tube_se, twin_se),
                    tube_stderr=float(tube_se), twin_stderr=float(twin_se), **data)


def log_relsd_stderr(n, hit_rate):
    """Standard error of ``log`` of the relative sd (sd / mean) of n weights ``c * Bernoulli(p)``.

    Where no two slice regions hold the point (all but O(eps) of them), the tube sampler's weight
    is the constant ``C(M, r+1) I_{eps^2/R^2}(r/2, d/2+1)`` or 0, so the relative sd is
    ``sqrt(q/p)`` of the hit rate p, and the delta method gives ``0.5 / sqrt(n p q)``.
    """
    p = min(max(float(hit_rate), 1e-9), 1 - 1e-9)
    return 0.5 / math.sqrt(n * p * (1 - p))


def judge_relerr_growth(order, eps, rel_sd, n, hit_rates):
    """Growth exponent g of the per-sample relative sd, ``rel_sd ~ eps^g``: two-sided, g = 0.

    THEORY §8: the tube sampler's weight law tends to a fixed law as eps -> 0, so its relative sd
    tends to a constant: g = 0, with O(eps) changes (weights with N(x) >= 2), which on a grid
    from 1e-3 moved g by about 1 SE of the full run and from 1e-4 by under 0.2 SE (measured over
    40 seeds). Hit-or-miss sampling has g = -r/2. The fit is ``log rel_sd = a + g log eps``
    weighted by :func:`log_relsd_stderr`; ``draw`` refits data regenerated with a planted g.
    """
    eps = np.asarray(eps, dtype=float)
    rel_sd = np.asarray(rel_sd, dtype=float)
    log_se = np.array([log_relsd_stderr(n, p) for p in hit_rates])
    cols = [np.ones_like, np.log]
    beta, cov = _wls(eps, np.log(rel_sd), log_se, cols)
    draw = fit_draw(eps, rel_sd, rel_sd * log_se, cols, 1, 0.0, relative=False, log=True)
    return close_to("importance_sampler", S8,
                    f"r={order}: growth exponent g of the relative sd per sample, rel_sd ~ "
                    f"eps^g over eps/R in [{eps.min():g}, {eps.max():g}] (hit-or-miss: g = -r/2)",
                    0.0, float(beta[1]), float(math.sqrt(cov[1, 1])), relative=False, draw=draw,
                    relative_sd=rel_sd.tolist(), relative_sd_log_stderr=log_se.tolist(),
                    eps=eps.tolist(), n=n)


SAMPLER_EPS = {1: 0.05, 2: 0.1}
RELERR_EPS = np.array([1e-4, 1e-5, 1e-6, 1e-7])  # from 1e-3, the O(eps) term read ~1 SE in g


@claim("importance_sampler", S8, "the tube (Karp–Luby–Madras) sampler agrees with a full-D NumPy "
       "hit-or-miss twin (no shared code) where both resolve 2%; its relative sd per sample "
       "does not grow over 3 decades of ε (exponent 0)")
def importance_sampler(ctx):
    router = ratio_router(ctx.seed)
    consts = {r: slice_constants(router, r, seed=ctx.seed) for r in (1, 2, 3)}
    kw = ctx.estimator_kwargs()
    rows = []
    n_twin = ctx.samples(200_000)  # NumPy in full D: 2.0% resolution with the tube side
    for r in (1, 2):
        e = SAMPLER_EPS[r]
        t = estimate_volumes(router, 1.0, [e], orders=(r,), metric="normal", method="tube",
                             n_samples=ctx.samples(500_000), seed=_ss(ctx.seed, 12, r),
                             constants=consts, **kw).order_result(0, r).estimate
        u, u_se, _ = full_dim_union_fraction(router, r, e, n_twin,
                                             np.random.default_rng(_ss(ctx.seed, 11, r)))
        rows.append(judge_samplers(f"r={r} fraction at eps/R={e:g}: tube sampler vs full-D "
                                   f"NumPy hit-or-miss", t.value, t.stderr, u, u_se, n_twin=n_twin))
    n = ctx.samples(40_000)
    m = measure_tube_fractions(router, RELERR_EPS, (1, 2, 3), n, _ss(ctx.seed, 13), metric="normal",
                               constants_seed=ctx.seed, **kw)
    for r in (1, 2, 3):
        rel_sd = m["relse"][r] * math.sqrt(n)
        res = m["result"]
        hit = [res.order_result(i, r).estimate.n_hits / n for i in range(len(RELERR_EPS))]
        rows.append(judge_relerr_growth(r, RELERR_EPS, rel_sd, n, hit))
    return ClaimOutput(tuple(rows), {})
