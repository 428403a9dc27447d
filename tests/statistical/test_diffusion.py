"""Brownian first hits (THEORY §6): reduced kernel vs full-D Euler twin, exact laws, bounds."""

import math

import numpy as np
import pytest
from scipy import stats

from discosim import InputError, Router
from discosim.diffusion.estimators import estimate_first_hit, simulate_first_exit
from discosim.theory import diffusion as td


def euler_full_d_exit(router, x0, sigma, dt, n_steps, rng, n_paths):
    """Slow twin: D-dimensional Gaussian steps, exit when the top-k set changes (no bridge)."""
    W, b, k = router.tie_weights, router.bias, router.k
    K0 = set(np.argsort(-(W @ x0 + b))[:k])
    tau = np.full(n_paths, np.inf)
    X = np.tile(x0, (n_paths, 1))
    alive = np.ones(n_paths, bool)
    for step in range(1, n_steps + 1):
        X[alive] += sigma * math.sqrt(dt) * rng.standard_normal((alive.sum(), x0.size))
        S = X[alive] @ W.T + b
        top = np.argsort(-S, axis=1)[:, :k]
        left = np.array([set(t) != K0 for t in top])
        idx = np.flatnonzero(alive)[left]
        tau[idx] = step * dt
        alive[idx] = False
    return tau


def test_reduced_kernel_law_equals_full_d_euler_twin():
    """Without the bridge test both detect sign changes on the same grid: same law of tau."""
    router = Router.gaussian(5, 40, 2, seed=1)
    x0 = np.random.default_rng(0).standard_normal(40) * 0.3
    d = td.facet_distances(router, x0).min()
    dt, n_steps = 0.05 * d * d, 60
    fast = simulate_first_exit(router, x0, 1.0, n_steps * dt, dt, 4000, seed=1, bridge=False, depth=0).tau
    slow = euler_full_d_exit(router, x0, 1.0, dt, n_steps, np.random.default_rng(2), 4000)
    # compare the empirical CDFs on the grid (censored at t_max): two-sample chi-square on bins
    edges = np.append(np.arange(0, n_steps + 1) * dt + 0.5 * dt, np.inf)
    # the kernel reports the middle of the crossing step; Euler reports its end
    a = np.histogram(np.where(np.isfinite(fast), np.ceil(fast / dt) * dt, 1e9), edges)[0]
    b_ = np.histogram(np.where(np.isfinite(slow), slow, 1e9), edges)[0]
    keep = (a + b_) >= 10
    assert stats.chi2_contingency(np.vstack([a[keep], b_[keep]]))[1] > 1e-3


def test_levy_law_with_bridge_and_bias_without():
    router = Router.gaussian(2, 6, 1, seed=3)
    x0 = np.random.default_rng(1).standard_normal(6) * 0.3
    d = td.facet_distances(router, x0).min()
    times = d * d * np.array([0.25, 1.0, 4.0])
    exact = td.levy_cdf(d, 1.0, times)
    with_b = estimate_first_hit(router, x0, 1.0, times[-1], 0.01 * d * d, 20000, times, seed=1)
    for e, x in zip(with_b.cdf, exact):
        assert abs(e.value - x) <= 4 * e.stderr
    no_b = estimate_first_hit(router, x0, 1.0, times[-1], 0.01 * d * d, 20000, times, seed=1, bridge=False)
    assert exact[0] - no_b.cdf[0].value > 4 * no_b.cdf[0].stderr  # discrete monitoring misses hits


def test_sigma_scaling():
    """tau for sigma equals tau for sigma=1 at time sigma^2 t: P_sigma(tau<=t) = P_1(tau<=sigma^2 t)."""
    router = Router.gaussian(4, 8, 2, seed=5)
    x0 = np.random.default_rng(3).standard_normal(8) * 0.4
    d = td.facet_distances(router, x0).min()
    a = estimate_first_hit(router, x0, 2.0, d * d, 0.0025 * d * d, 8000, [d * d], seed=1)
    b = estimate_first_hit(router, x0, 1.0, 4 * d * d, 0.01 * d * d, 8000, [4 * d * d], seed=2)
    ea, eb = a.cdf[0], b.cdf[0]
    assert abs(ea.value - eb.value) <= 4 * math.hypot(ea.stderr, eb.stderr)


def test_wedge_formula_reduces_to_levy_for_a_half_plane():
    t = np.array([0.1, 1.0, 10.0])
    np.testing.assert_allclose(td.wedge_survival(2.0, 0.4, math.pi, t),
                               1 - td.levy_cdf(2.0 * math.sin(0.4), 1.0, t), rtol=1e-10)


def test_wedge_law_from_simulation():
    router = Router.gaussian(3, 6, 1, seed=4)
    x0 = np.random.default_rng(2).standard_normal(6) * 0.3
    r0, phi0, theta = td.wedge_geometry(router, x0)
    d = td.facet_distances(router, x0).min()
    times = r0 * r0 * np.array([0.3, 1.0])
    res = estimate_first_hit(router, x0, 1.0, times[-1], 0.01 * d * d, 10000, times, seed=4)
    for e, x in zip(res.cdf, 1 - td.wedge_survival(r0, phi0, theta, times)):
        assert abs(e.value - x) <= 4 * e.stderr


def test_bounds_bracket_the_estimate_and_are_ordered():
    router = Router.gaussian(6, 10, 3, seed=2)
    x0 = np.random.default_rng(5).standard_normal(10) * 0.5
    d = td.facet_distances(router, x0).min()
    times = d * d * np.array([0.3, 1.0, 3.0])
    lo, hi = td.hitting_bounds(router, x0, 1.0, times)
    assert np.all(lo <= hi) and np.all(np.diff(lo) >= 0)
    res = estimate_first_hit(router, x0, 1.0, times[-1], 0.01 * d * d, 4000, times, seed=1)
    for e, a, b in zip(res.cdf, lo, hi):
        assert a - 4 * e.stderr <= e.value <= b + 4 * e.stderr


def test_orthonormal_ridge_angle_is_two_thirds_pi():
    router = Router.orthonormal(5, 9, 2, seed=1)
    x0 = np.random.default_rng(0).standard_normal(9)
    assert td.hit_order_exponent(router, x0) == pytest.approx(1.5)


@pytest.mark.parametrize("kw,word", [(dict(sigma=0), "sigma"), (dict(t_max=-1), "t_max"), (dict(dt=0), "dt"),
                                     (dict(x0=np.zeros(5)), "length"), (dict(n_paths=0), "n_paths")])
def test_bad_path_input(kw, word):
    router = Router.gaussian(4, 8, 2, seed=0)
    args = dict(x0=np.ones(8) * 0.1 + np.arange(8) * 0.01, sigma=1.0, t_max=1.0, dt=0.01, n_paths=10)
    args.update(kw)
    with pytest.raises(InputError, match=word):
        simulate_first_exit(router, **args)


def test_start_on_gamma_is_refused():
    router = Router(np.eye(3, 6), 1)
    x0 = np.array([1.0, 1.0, 0.0, 0, 0, 0])
    with pytest.raises(InputError, match="Gamma"):
        simulate_first_exit(router, x0, 1.0, 1.0, 0.01, 10)


def test_same_seed_same_paths_for_any_n_jobs():
    router = Router.gaussian(4, 8, 2, seed=0)
    x0 = np.random.default_rng(0).standard_normal(8) * 0.3
    a = simulate_first_exit(router, x0, 1.0, 1.0, 0.01, 1000, seed=7, n_jobs=1).tau
    b = simulate_first_exit(router, x0, 1.0, 1.0, 0.01, 1000, seed=7, n_jobs=2).tau
    np.testing.assert_array_equal(a, b)


def test_occupation_matches_full_d_twin():
    """Occupation of the order-1 euclidean tube: reduced kernel vs D-dim Gaussian steps."""
    from discosim.diffusion.estimators import estimate_occupation
    import reference as ref

    router = Router.gaussian(4, 20, 2, seed=2)
    x0 = np.random.default_rng(1).standard_normal(20) * 0.3
    dt, n_steps, eps, n = 0.01, 100, 0.1, 600
    fast = estimate_occupation(router, x0, 1.0, n_steps * dt, dt, n, [eps], orders=(1,), seed=3,
                               n_checkpoints=1)
    rng = np.random.default_rng(4)
    W, b, k = router.weights, router.bias, router.k
    occ = np.zeros(n)
    X = np.tile(x0, (n, 1))
    for _ in range(n_steps):
        d = np.array([ref.order1_facet_distance(W, b, k, x) for x in X])
        occ += dt * (d <= eps)
        X += math.sqrt(dt) * rng.standard_normal(X.shape)
    m, se = fast.mean[-1, 0, 0], fast.stderr[-1, 0, 0]
    assert abs(m - occ.mean()) <= 4 * math.hypot(se, occ.std(ddof=1) / math.sqrt(n))
    assert m <= fast.bound[0, 0] + 4 * se


def test_occupation_infinite_horizon_is_the_limit_of_the_bound():
    router = Router.orthonormal(5, 9, 2, seed=1)
    x0 = np.random.default_rng(0).standard_normal(9) * 0.5
    for eps in (0.05, 2.0):  # d_J >= eps and d_J <= eps branches
        lim = td.occupation_infinite_horizon(router, x0, 1.0, eps, 3)
        assert td.occupation_bound(router, x0, 1.0, eps, 3, 1e7) == pytest.approx(lim, rel=5e-3)


def test_ou_process_stays_closer_than_brownian_motion():
    """OU pulls back to x0: it leaves the cell later (a comparison that fails if theta is ignored)."""
    router = Router.gaussian(4, 8, 2, seed=0)
    x0 = np.random.default_rng(0).standard_normal(8) * 0.3
    d = td.facet_distances(router, x0).min()
    t = 4 * d * d
    bm = estimate_first_hit(router, x0, 1.0, t, 0.01 * d * d, 4000, [t], seed=1)
    ou = estimate_first_hit(router, x0, 1.0, t, 0.01 * d * d, 4000, [t], seed=1, process="ou",
                            theta=5.0 / (d * d))
    a, b = bm.cdf[0], ou.cdf[0]
    assert a.value - b.value > 4 * math.hypot(a.stderr, b.stderr)
    assert ou.lower_bound is None and ou.upper_bound is None


def test_random_starts_per_path():
    router = Router.gaussian(4, 8, 2, seed=0)
    tau = simulate_first_exit(router, None, 1.0, 1.0, 0.01, 500, seed=2, inputs="gaussian").tau
    assert np.isfinite(tau).mean() > 0.5
    with pytest.raises(InputError, match="inputs"):
        simulate_first_exit(router, None, 1.0, 1.0, 0.01, 10, inputs="cube")


def test_growth_laws_match_the_bound_integral():
    """The chi'^2 bound integral grows like the stated laws: sqrt t (r=1), log t (r=2)."""
    router = Router.orthonormal(4, 8, 2, seed=1)
    x0 = np.random.default_rng(0).standard_normal(8) * 0.5
    n1 = math.comb(4, 2)
    b = [td.occupation_bound(router, x0, 1.0, 0.05, 1, t) for t in (1e4, 4e4)]
    kind, c = td.occupation_growth(1, 0.05, 1.0)
    # the integrand is the leading law times exp(-d^2/2s) (1 + O(eps^2/s)): beyond s = t_min the
    # relative deficit is below (d_max^2 + eps^2) / t_min
    rel = (td.slice_distances(router, x0, 1).max() ** 2 + 0.05 ** 2) / 1e4
    assert kind == "sqrt" and (b[1] - b[0]) == pytest.approx(n1 * c * (200 - 100), rel=rel)
    n2 = math.comb(4, 3)
    b = [td.occupation_bound(router, x0, 1.0, 0.05, 2, t) for t in (1e4, 1e5)]
    kind, c = td.occupation_growth(2, 0.05, 1.0)
    rel = (td.slice_distances(router, x0, 2).max() ** 2 + 0.05 ** 2) / 1e4
    assert kind == "log10" and (b[1] - b[0]) == pytest.approx(n2 * c, rel=rel)


def test_walk_on_spheres_agrees_with_time_stepping():
    from discosim.diffusion.estimators import hit_order_wos
    router = Router.orthonormal(5, 9, 2, seed=3)
    x0 = np.random.default_rng(7).standard_normal(9) * 0.5
    d = td.facet_distances(router, x0).min()
    deltas = d * np.array([0.03, 0.1, 0.3])
    ts = estimate_first_hit(router, x0, 1.0, 200 * d * d, 0.01 * d * d, 3000, [d * d], deltas=deltas, seed=1)
    wos = hit_order_wos(router, x0, deltas, 10000, seed=2)
    assert wos.mean_steps > 1
    for a, b in zip(ts.q, wos.q):
        assert abs(a.value - b.value) <= 4 * math.hypot(a.stderr, b.stderr)


def test_euclidean_path_statistics_that_would_not_finish_are_refused_before_work(no_work):
    # M = 24 in D = 64: at eps (or delta) = 0.1 the exact euclidean distance would visit ~2^24
    # tie sets per point; the probe at the paths' Brownian spread refuses before any path runs
    from discosim.diffusion.estimators import estimate_first_hit, estimate_occupation

    r = Router(np.random.default_rng(24).standard_normal((24, 64)) / 8.0, 4)
    x0 = 0.1 * np.random.default_rng(25).standard_normal(64)
    with pytest.raises(InputError, match="eps=0.1") as exc:
        estimate_occupation(r, x0, 0.1, 1.0, 0.1, 100, [0.1], orders=(1,))
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="delta=0.1"):
        estimate_first_hit(r, x0, 0.1, 1.0, 0.1, 100, [0.5], deltas=[0.01, 0.1])


def test_euclidean_probe_lets_feasible_path_runs_through():
    from discosim.diffusion.estimators import estimate_occupation

    r = Router(np.random.default_rng(24).standard_normal((24, 64)) / 8.0, 4)
    x0 = 0.1 * np.random.default_rng(25).standard_normal(64)
    estimate_occupation(r, x0, 0.1, 0.2, 0.1, 10, [0.005], orders=(1,))
    # the normal metric never enumerates beyond order r + 1: no probe
    estimate_occupation(r, x0, 0.1, 0.2, 0.1, 10, [0.1], orders=(1,), metric="normal")


def test_exit_step_does_not_depend_on_the_refinement():
    """The refinement draws from its own stream: every path exits in the same step at any depth."""
    from discosim.diffusion.estimators import simulate_first_exit

    r = Router.gaussian(4, 8, 2, seed=21)
    x0 = 0.3 * np.random.default_rng(21).standard_normal(8)
    dt = 0.01
    a = simulate_first_exit(r, x0, 0.5, 0.5, dt, 400, seed=4, depth=0)
    b = simulate_first_exit(r, x0, 0.5, 0.5, dt, 400, seed=4, depth=12)
    assert np.isfinite(a.tau).sum() > 50
    assert np.array_equal(np.isfinite(a.tau), np.isfinite(b.tau))
    fin = np.isfinite(a.tau)
    assert np.array_equal(np.floor(a.tau[fin] / dt), np.floor(b.tau[fin] / dt))
