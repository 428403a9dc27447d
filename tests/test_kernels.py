"""Fast kernels against their slow full-D twins in tests/reference.py."""

import numpy as np
import pytest
from scipy import stats

import reference as ref
from discosim import Router
from discosim._kernels.sampling import random_subset
from discosim._kernels.codes import METRIC_EUCLIDEAN, METRIC_NORMAL, METRIC_SCORE
from discosim._kernels.pointstats import sort_pairs_for, sorting_network, stats_from_scores
from discosim._kernels.tube import family_count_score, score_circumradius2


def _kernel_stats(router, S, metric, rmax, eps_max=np.inf):
    out = np.empty((S.shape[0], rmax))
    stats_from_scores(np.ascontiguousarray(S), router.gram, router.k, rmax, metric, eps_max,
                      router.max_row_norm, sort_pairs_for(router.n_experts), out)
    return out


@pytest.mark.parametrize("M,D,k,seed", [(5, 9, 2, 1), (6, 10, 3, 2), (4, 7, 1, 3), (20, 30, 5, 4)])
def test_score_windows_match_full_sort(M, D, k, seed):
    router = Router.gaussian(M, D, k, seed=seed)
    rng = np.random.default_rng(seed)
    X = ref.uniform_ball_points(rng, 500, D, 1.0)
    S = ref.scores(router.weights, router.bias, X)
    rmax = min(3, M - 1)
    fast = _kernel_stats(router, S, METRIC_SCORE, rmax)
    slow = np.array([[ref.score_window_stat(s, k, r) for r in range(1, rmax + 1)] for s in S])
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("M,D,k,seed,bias", [(5, 9, 2, 1, False), (6, 10, 3, 2, True),
                                             (5, 8, 1, 5, False)])
def test_normal_fibre_distance_matches_full_d_projection(M, D, k, seed, bias):
    router = Router.gaussian(M, D, k, seed=seed)
    if bias:
        router = Router(router.weights, k, bias=0.05 * np.random.default_rng(seed).standard_normal(M))
    rng = np.random.default_rng(seed + 100)
    X = ref.uniform_ball_points(rng, 200, D, 1.0)
    S = ref.scores(router.weights, router.bias, X)
    fast = _kernel_stats(router, S, METRIC_NORMAL, 3, eps_max=10.0)
    slow = np.array([[ref.normal_fibre_distance(router.weights, router.bias, k, x, r)
                      for r in (1, 2, 3)] for x in X])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_euclidean_distance_matches_bruteforce_optimiser():
    """THEORY §4.1 exact distance vs SLSQP over every admissible cone of every slice."""
    router = Router.gaussian(5, 8, 2, seed=4)
    rng = np.random.default_rng(1)
    X = ref.uniform_ball_points(rng, 60, 8, 1.0)
    S = ref.scores(router.weights, router.bias, X)
    fast = _kernel_stats(router, S, METRIC_EUCLIDEAN, 2, eps_max=10.0)
    for i, x in enumerate(X):
        for r in (1, 2):
            slow = ref.euclidean_distance_bruteforce(router.weights, router.bias, 2, x, r)
            assert fast[i, r - 1] == pytest.approx(slow, rel=1e-6, abs=1e-9)


def test_order1_matches_facet_formula():
    router = Router.gaussian(8, 16, 3, seed=7)
    rng = np.random.default_rng(2)
    X = ref.uniform_ball_points(rng, 400, 16, 2.0)
    S = ref.scores(router.weights, router.bias, X)
    fast = _kernel_stats(router, S, METRIC_EUCLIDEAN, 1, eps_max=100.0)[:, 0]
    slow = [ref.order1_facet_distance(router.weights, router.bias, 3, x) for x in X]
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


def test_eps_max_prunes_but_never_changes_small_distances():
    router = Router.gaussian(7, 12, 3, seed=3)
    rng = np.random.default_rng(3)
    S = ref.scores(router.weights, router.bias, ref.uniform_ball_points(rng, 300, 12, 1.0))
    full = _kernel_stats(router, S, METRIC_EUCLIDEAN, 3, eps_max=100.0)
    cut = _kernel_stats(router, S, METRIC_EUCLIDEAN, 3, eps_max=0.05)
    small = full <= 0.05
    np.testing.assert_array_equal(cut[small], full[small])
    assert np.all(np.isinf(cut[~small]) | (cut[~small] > 0.05))


def test_reduced_sampler_has_the_full_d_law():
    """z = R G / sqrt(|G|^2 + chi2_{D+2-M}) has the law of Q^T x, x uniform in B_D (THEORY §3)."""
    from discosim._kernels.sampling import chi_square

    M, D, n = 4, 30, 20000
    rng = np.random.default_rng(11)
    g = rng.standard_normal((n, M))
    # the kernel's chi-square sampler (Marsaglia-Tsang) against numpy's reference law
    c = np.array([chi_square(np.random.default_rng(i), D + 2 - M) for i in range(2000)])
    assert stats.kstest(c, stats.chi2(D + 2 - M).cdf).pvalue > 1e-3
    z2 = np.sum(g * g, axis=1) / (np.sum(g * g, axis=1) + rng.chisquare(D + 2 - M, n))
    x = ref.uniform_ball_points(rng, n, D, 1.0)
    full2 = np.sum(x[:, :M] ** 2, axis=1)
    assert stats.ks_2samp(z2, full2).pvalue > 1e-3


@pytest.mark.parametrize("n", [2, 5, 8, 13, 16])
def test_sorting_network_sorts(n):
    pairs = sorting_network(n)
    rng = np.random.default_rng(n)
    for _ in range(50):
        x = rng.standard_normal(n)
        buf = x.copy()
        for a, b in pairs:
            buf[a], buf[b] = max(buf[a], buf[b]), min(buf[a], buf[b])
        np.testing.assert_array_equal(buf, np.sort(x)[::-1])


def test_random_subset_is_uniform():
    rng = np.random.default_rng(0)
    out = np.empty(3, dtype=np.int64)
    counts = {}
    for _ in range(20000):
        random_subset(rng, 6, 3, out)
        counts[tuple(out)] = counts.get(tuple(out), 0) + 1
    assert len(counts) == 20 and all(len(set(c)) == 3 for c in counts)
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


def test_family_count_score_matches_enumeration():
    import itertools
    rng = np.random.default_rng(5)
    for _ in range(200):
        s = rng.standard_normal(7)
        for r in (1, 2, 3):
            slow = sum(1 for J in itertools.combinations(range(7), r + 1)
                       if np.ptp(s[list(J)]) <= 0.8)
            assert family_count_score(s, r, 0.8, np.empty(7)) == slow


def test_score_circumradius_is_the_farthest_point_of_the_polytope():
    router = Router.gaussian(5, 9, 2, seed=2)
    J = np.array([0, 2, 3], dtype=np.int64)
    r, eps = 2, 0.3
    M = 5
    rad2 = score_circumradius2(router.gram, J, r, eps, np.zeros(M), np.empty((M, M)),
                               np.empty(M), np.empty(M))
    # sample the fibre polytope in N_J and check nobody is farther than the circumradius
    Wr = router.reduced_weights
    V = Wr[J[1:]] - Wr[J[0]]
    q, _ = np.linalg.qr(V.T)
    rng = np.random.default_rng(0)
    u = rng.uniform(-3, 3, size=(200000, r)) @ q.T
    sc = u @ Wr.T
    inside = np.ptp(sc[:, J], axis=1) <= eps
    far2 = np.max(np.sum(u[inside] ** 2, axis=1))
    assert far2 <= rad2 * (1 + 1e-12)
    assert far2 >= 0.95 * rad2


@pytest.mark.parametrize("M,k", [(8, 2), (16, 5), (40, 8)])
def test_block_score_stats_match_full_sort(M, k):
    """The vectorised block path of the uniform kernel, on the same scores as the reference."""
    from discosim._kernels.pointstats import score_window_stats
    rng = np.random.default_rng(M)
    S = rng.standard_normal((300, M))
    ST = np.ascontiguousarray(S.T).copy()
    rmax = 3
    stats_ = np.empty((rmax, 300))
    score_window_stats(ST, 300, k, rmax, sort_pairs_for(M, block=True), np.empty(M), stats_)
    slow = np.array([[ref.score_window_stat(s, k, r) for s in S] for r in range(1, rmax + 1)])
    np.testing.assert_array_equal(stats_, slow)


def test_family_count_subspace_matches_enumeration():
    """N(x) = #{J : |P_{N_J} x| <= eps} by brute force over all slices in full D."""
    import itertools
    from discosim._kernels.tube import family_count_subspace
    router = Router.gaussian(6, 12, 2, seed=9)
    W = router.weights
    rng = np.random.default_rng(1)
    M = 6
    for x in ref.uniform_ball_points(rng, 100, 12, 1.0):
        s = W @ x
        for r, eps in ((1, 0.1), (2, 0.15), (3, 0.2)):
            slow = sum(1 for J in itertools.combinations(range(M), r + 1)
                       if np.linalg.norm(x - ref.project_on_tie_subspace(W, np.zeros(M), x, J)) <= eps)
            fast = family_count_subspace(s, router.gram, r, eps, router.max_row_norm,
                                         np.empty(M, dtype=np.int64), np.empty(r + 1, dtype=np.int64),
                                         np.empty(r + 1, dtype=np.int64), np.empty((M, M)),
                                         np.empty(M), np.empty(M))
            assert fast == slow
