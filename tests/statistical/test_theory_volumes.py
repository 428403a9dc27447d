"""Closed forms of THEORY §5 against independent computations."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from discosim import Router
from discosim.volumes.constants import slice_alpha, slice_constants
from discosim.theory import volumes as tv
from discosim.volumes import integrals as vi
from discosim.theory.alpha import alpha_orthants, genz_error_bound, orthonormal_alpha


@pytest.mark.parametrize("D,r,eps", [(3, 1, 0.3), (8, 2, 0.05), (8, 3, 0.5), (40, 2, 0.1), (12, 5, 0.7)])
def test_tube_fraction_equals_direct_quadrature(D, r, eps):
    """V_r = int_{|n|<=eps} omega_d (R^2 - |n|^2)^(d/2) dn over the r-dim normal ball."""
    d = D - r
    area_r = r * tv.unit_ball_volume(r)  # surface of the unit r-sphere
    val, _ = integrate.quad(lambda t: area_r * t ** (r - 1) * tv.unit_ball_volume(d)
                            * (1 - t * t) ** (d / 2), 0, eps, epsabs=0, epsrel=1e-12)
    assert tv.tube_fraction(eps, 1.0, D, r) == pytest.approx(val / tv.unit_ball_volume(D), rel=1e-9)


def test_tube_fraction_scale_invariance_and_limits():
    assert tv.tube_fraction(0.2, 2.0, 10, 2) == pytest.approx(tv.tube_fraction(0.1, 1.0, 10, 2))
    assert tv.tube_fraction(5.0, 1.0, 10, 2) == 1.0


@pytest.mark.parametrize("D", [8, 512, 2048, 8192])
def test_log_fraction_is_stable_at_real_sizes(D):
    for r in (1, 2, 3):
        for eps in (1e-3, 1e-2, 0.1):
            lf = tv.log_tube_fraction(eps, 1.0, D, r)
            assert math.isfinite(lf)
            f = tv.tube_fraction(eps, 1.0, D, r)
            if f > 1e-300:
                assert lf == pytest.approx(math.log(f), rel=1e-10)
    # where betainc underflows the log form continues the power law: slope r per e-fold
    a = tv.log_tube_fraction(1e-200, 1.0, D, 2)
    b = tv.log_tube_fraction(1e-201, 1.0, D, 2)
    assert a - b == pytest.approx(2 * math.log(10), rel=1e-9)
    assert math.isfinite(tv.log_tube_volume(1e-3, 1.0, D, 3))


def test_leading_order_and_its_correction():
    D, r, R = 50, 2, 1.0
    for eps in (1e-3, 1e-2):
        exact = tv.tube_fraction(eps, R, D, r)
        lead = tv.leading_tube_fraction(eps, R, D, r)
        corr = tv.relative_correction(eps, R, D, r)
        assert exact / lead - 1 == pytest.approx(corr, rel=0.05)


def test_log_ball_volume_matches_direct_formula():
    for n in (1, 2, 3, 10, 100):
        assert tv.unit_ball_volume(n) == pytest.approx(math.pi ** (n / 2) / math.gamma(n / 2 + 1), rel=1e-12)
    assert math.isfinite(float(tv.log_unit_ball_volume(8192)))


def test_theory_example_values():
    """THEORY §5: M=4, D=8, k=2, R=1, eps=0.05 per-slice fractions 0.04548 and 0.009963."""
    for r, expected in ((1, 0.04548), (2, 0.009963)):
        val = orthonormal_alpha(4, 2, r) * tv.tube_fraction(0.05, 1.0, 8, r)
        assert val == pytest.approx(expected, abs=6e-6)


@pytest.mark.parametrize("M,k,r", [(4, 2, 1), (5, 2, 2), (6, 3, 1), (6, 2, 3)])
def test_orthonormal_alpha_closed_form_vs_genz_vs_mc(M, k, r):
    router = Router.orthonormal(M, M + 3, k, seed=M + k + r)
    closed = orthonormal_alpha(M, k, r)
    J = tuple(range(r + 1))
    genz = alpha_orthants(router.reduced_weights, k, J, rng=np.random.default_rng(0))
    assert abs(genz - closed) <= genz_error_bound(M, k, r)
    a = slice_alpha(router, J, method="mc", n_samples=200_000, seed=1); mc, se = a.value, a.stderr
    assert abs(mc - closed) <= 4 * se + 1e-12


def test_genz_and_mc_agree_on_a_gaussian_router():
    router = Router.gaussian(6, 10, 2, seed=3)
    for J in [(0, 1), (1, 4), (0, 2, 5)]:
        genz = slice_alpha(router, J, method="genz", seed=0).value
        a = slice_alpha(router, J, method="mc", n_samples=200_000, seed=2); mc, se = a.value, a.stderr
        assert abs(genz - mc) <= 4 * se + genz_error_bound(6, 2, len(J) - 1)


def _genz_sum_bounds(router, r):
    """Stated Genz error of A_r and of B_r = sum (r+1) det(G_J)^(-1/2) alpha_J over all slices."""
    from discosim.theory.alpha import slice_normal_basis
    per = genz_error_bound(router.n_experts, router.k, r)
    slices = list(itertools.combinations(range(router.n_experts), r + 1))
    dets = [slice_normal_basis(router.reduced_weights, J)[1] for J in slices]
    return per * len(slices), per * sum((r + 1) / math.sqrt(d) for d in dets)


def test_slice_constants_mc_is_unbiased_for_the_genz_sum():
    router = Router.gaussian(6, 10, 2, seed=3)
    exact = slice_constants(router, 2, method="genz")
    mc = slice_constants(router, 2, method="mc", n_samples=400_000, seed=5)
    genz_a, genz_b = _genz_sum_bounds(router, 2)
    assert abs(mc.alpha_sum - exact.alpha_sum) <= 4 * mc.alpha_sum_stderr + genz_a
    assert abs(mc.score_weight_sum - exact.score_weight_sum) <= 4 * mc.score_weight_stderr + genz_b


def test_alpha_sum_over_order1_slices_is_a_probability_mass():
    """Every direction lies in exactly one cell, so sum_J alpha_J over straddling order-1 slices
    relates to the mean number of facets: A_1 >= 1 and alpha_J <= 1."""
    router = Router.gaussian(5, 9, 2, seed=9)
    vals = [slice_alpha(router, J, seed=0).value for J in itertools.combinations(range(5), 2)]
    assert all(0 <= v <= 1 + 1e-6 for v in vals)
    assert sum(vals) >= 1


def test_ratio_constant_matches_its_definition():
    D = 30
    c = tv.ratio_constant(3.0, 2.0, 3, 1, D)
    direct = (3.0 * tv.unit_ball_volume(3) * tv.unit_ball_volume(D - 3)) / (
        2.0 * tv.unit_ball_volume(1) * tv.unit_ball_volume(D - 1))
    assert c == pytest.approx(direct, rel=1e-12)
    assert tv.predicted_ratio(3.0, 2.0, 3, 1, D, 0.01, 1.0) == pytest.approx(direct * 1e-4, rel=1e-12)
    # per-slice leading order over ratio of leading orders
    lead3 = tv.predicted_union_fraction(3.0, 0.01, 1.0, D, 3)
    lead1 = tv.predicted_union_fraction(2.0, 0.01, 1.0, D, 1)
    assert lead3 / lead1 == pytest.approx(direct * 1e-4, rel=1e-12)


def test_score_polytope_volume_by_monte_carlo():
    """(r+1) eps^r / sqrt(det G_J) for the fibre {n in N_J : spread of s_J <= eps}."""
    router = Router.gaussian(5, 9, 2, seed=4)
    Wr = router.reduced_weights
    J = [0, 2, 3]
    r, eps = 2, 0.4
    V = Wr[J[1:]] - Wr[J[0]]
    q, rr = np.linalg.qr(V.T)
    det = float(np.prod(np.diag(rr)) ** 2)
    box = 3.0
    rng = np.random.default_rng(0)
    n = 400_000
    u = rng.uniform(-box, box, size=(n, r))
    sc = (u @ q.T) @ Wr.T
    p = np.mean(np.ptp(sc[:, J], axis=1) <= eps)
    se = math.sqrt(p * (1 - p) / n)
    vol = (2 * box) ** r
    assert abs(p * vol - tv.score_polytope_volume(eps, r, det)) <= 4 * se * vol


@pytest.mark.parametrize("M,D,k,seed", [(6, 10, 2, 3), (8, 20, 3, 1), (7, 12, 1, 2)])
def test_order1_all_pairs_monte_carlo_is_unbiased(M, D, k, seed):
    router = Router.gaussian(M, D, k, seed=seed)
    exact = slice_constants(router, 1, method="genz")
    mc = slice_constants(router, 1, method="mc", n_samples=100_000, seed=4)
    assert mc.method == "mc-pairs"
    genz_a, genz_b = _genz_sum_bounds(router, 1)
    assert abs(mc.alpha_sum - exact.alpha_sum) <= 4 * mc.alpha_sum_stderr + genz_a
    assert abs(mc.score_weight_sum - exact.score_weight_sum) <= 4 * mc.score_weight_stderr + genz_b


def test_inverse_tube_fraction_round_trip():
    for D, r in ((10, 1), (512, 3)):
        for frac in (1e-9, 1e-3, 0.4):
            eps = tv.inverse_tube_fraction(frac, 2.0, D, r)
            assert tv.tube_fraction(eps, 2.0, D, r) == pytest.approx(frac, rel=1e-9)


# ------------------------------------------------------------------ sphere inputs, bias, real sizes
@pytest.mark.parametrize("D,eps", [(4, 0.3), (9, 0.1), (30, 0.2)])
def test_sphere_slab_fraction_by_quadrature(D, eps):
    """r = 1 on the sphere: u_1 has density prop. to (1 - t^2)^((D-3)/2) on [-1, 1] (THEORY §9)."""
    dens = lambda t: (1 - t * t) ** ((D - 3) / 2)
    num, _ = integrate.quad(dens, -eps, eps, epsabs=1e-13)
    den, _ = integrate.quad(dens, -1, 1, epsabs=1e-13)
    assert tv.sphere_tube_fraction(eps, 1.0, D, 1) == pytest.approx(num / den, rel=1e-9)


def test_sphere_tube_fraction_by_full_dimensional_sampling():
    rng = np.random.default_rng(11)
    D, r, eps, n = 7, 2, 0.4, 400_000
    g = rng.standard_normal((n, D))
    u = g / np.linalg.norm(g, axis=1)[:, None]
    hit = np.sum(u[:, :r] ** 2, axis=1) <= eps * eps
    p, se = hit.mean(), hit.std(ddof=1) / math.sqrt(n)
    assert abs(p - tv.sphere_tube_fraction(eps, 1.0, D, r)) <= 4 * se
    # and the ball's parameter d/2 + 1 is a different number here
    assert abs(p - tv.tube_fraction(eps, 1.0, D, r)) > 4 * se


def test_exact_relative_correction_tends_to_the_first_order_formula():
    D, r = 4096, 2
    d = D - r
    rem, first = [], []
    for x in (0.4, 0.1, 0.025):  # d eps^2 / R^2
        eps = math.sqrt(x / d)
        f = tv.relative_correction(eps, 1.0, D, r)
        exact = tv.exact_relative_correction(eps, 1.0, D, r)
        assert exact == pytest.approx(tv.tube_fraction(eps, 1.0, D, r)
                                      / tv.leading_tube_fraction(eps, 1.0, D, r) - 1, rel=1e-9)
        rem.append(abs(exact - f))
        first.append(abs(f))
    # higher order: the remainder shrinks faster than the first-order term (which falls 4x per step)
    for i in range(2):
        assert rem[i + 1] / rem[i] < first[i + 1] / first[i]
        assert rem[i] < first[i]


def test_fibre_integral_without_bias_is_alpha_times_beta():
    router = Router.orthonormal(4, 8, 2, seed=3)
    for J in ((0, 1), (0, 1, 2)):
        r = len(J) - 1
        v, se = vi.slice_fibre_fraction(router.reduced_weights, None, 2, J, 0.1, 1.0, 8, 200_000, rng=1)
        exact = orthonormal_alpha(4, 2, r) * tv.tube_fraction(0.1, 1.0, 8, r)
        assert abs(v - exact) <= 4 * se
        a, ase = vi.finite_radius_alpha(router.reduced_weights, None, 2, J, 1.0, 8, 200_000, rng=2)
        assert abs(a - orthonormal_alpha(4, 2, r)) <= 4 * ase + 1e-12


def test_fibre_integral_with_bias_by_full_dimensional_hit_or_miss():
    """Affine S_J in R^D, points uniform in the full D-ball: an independent route."""
    rng = np.random.default_rng(5)
    M, D, k, eps, n = 3, 5, 1, 0.15, 400_000
    W = rng.standard_normal((M, D)) / math.sqrt(D)
    b = 0.2 * rng.standard_normal(M)
    router = Router(W, k, bias=b)
    J = (0, 1)
    g = rng.standard_normal((n, D))
    x = g / np.linalg.norm(g, axis=1)[:, None] * rng.random(n)[:, None] ** (1 / D)
    a = W[1] - W[0]
    c = b[1] - b[0]
    t = (x @ a + c) / (a @ a)  # signed normal distance / |a|: y = x - t a lies on S_J
    y = x - t[:, None] * a
    s = y @ W.T + b
    above = (s[:, 2] > s[:, 0]).astype(int)
    inside = (np.abs(t) * np.linalg.norm(a) <= eps) & (above >= k - 1) & (above <= k - 1)
    p, se = inside.mean(), inside.std(ddof=1) / math.sqrt(n)
    v, vse = vi.slice_fibre_fraction(router.reduced_weights, router.bias, k, J, eps, 1.0, D,
                                     400_000, rng=6)
    assert abs(p - v) <= 4 * math.hypot(se, vse)
    # the unbiased alpha is not the answer at this bias and radius
    a0 = alpha_orthants(Router(W, k).reduced_weights, k, J)
    assert abs(p - a0 * tv.tube_fraction(eps, 1.0, D, 1)) > 4 * math.hypot(se, vse)


def test_finite_radius_alpha_tends_to_alpha_as_R_grows():
    rng = np.random.default_rng(8)
    router = Router(np.linalg.qr(rng.standard_normal((8, 4)))[0].T, 2, bias=0.2 * rng.standard_normal(4))
    J = (0, 1)
    alpha = orthonormal_alpha(4, 2, 1)
    near, se_near = vi.finite_radius_alpha(router.reduced_weights, router.bias, 2, J, 1.0, 8, 200_000, rng=1)
    far, se_far = vi.finite_radius_alpha(router.reduced_weights, router.bias, 2, J, 1e4, 8, 200_000, rng=1)
    assert abs(far - alpha) <= 4 * se_far + 1e-3  # O(|b|/R) = 2e-5 left at R = 1e4
    assert abs(near - alpha) > 4 * se_near
