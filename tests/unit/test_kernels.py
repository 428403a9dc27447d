"""Every numba kernel against its slow full-dimensional twin in tests/reference.py.

Inputs are seeded random routers and points plus edge cases (ties, M = k+1, k = 1, a bias,
D = 4096 in reduced coordinates). Chunk kernels are compared with twins that replay the same
random stream (see reference.py), so they are compared point for point, not in law.

Tolerances:

- integer and indicator outputs (histograms, counts, slices, step counts) must be equal: on
  generic continuous inputs no point lies within rounding distance of a decision boundary;
- a float computed by the same operations in another order or in another coordinate system
  (reduced vs full D) may differ by the rounding of a sum of n terms, at most ``n eps sum|terms|``
  (the standard bound gamma_n); we allow ``ULPS`` of the magnitude times n;
- a float that the twin computes by another algorithm (least squares vs Cholesky, Householder vs
  Gram-Schmidt) may differ by the backward-error bound ``n cond eps`` of the linear solve, with
  cond the condition number of the Gram matrix involved;
- laws (the samplers) are tested by Kolmogorov-Smirnov / chi-square tests at level 1e-3 on fixed
  seeds; a sampler whose law is wrong fails them at these sample sizes.
"""

import itertools
import math
import pathlib
import re

import numpy as np
import pytest
from scipy import special, stats

import reference as ref
from discosim import Router
from discosim._kernels.volumes import alpha as ka
from discosim._kernels import geometry as kg
from discosim._kernels.diffusion import paths as kp
from discosim._kernels.diffusion import steps as kst
from discosim._kernels import pointstats as kps
from discosim._kernels import sampling as ks
from discosim._kernels.volumes import tube as kt
from discosim._kernels.volumes import uniform as ku
from discosim._kernels.codes import METRIC_CODE, METRICS

EPS = np.finfo(float).eps
ULPS = 4.0  # rounding allowance per term of a reordered sum (module docstring)


def assert_rounding_close(fast, slow, n_terms, magnitude):
    """|fast - slow| <= ULPS * n_terms * eps * magnitude (magnitude: sum of |terms|)."""
    fast, slow = np.asarray(fast, dtype=float), np.asarray(slow, dtype=float)
    bound = ULPS * n_terms * EPS * np.asarray(magnitude, dtype=float)
    assert np.array_equal(np.isinf(fast), np.isinf(slow))
    fin = np.isfinite(slow)
    err = np.abs(fast[fin] - slow[fin])
    assert np.all(err <= np.broadcast_to(bound, slow.shape)[fin]), (err.max(), bound)


def solve_tolerance(router):
    """Relative tolerance n cond eps for quantities the twin gets from another linear solve:
    cond of the Gram matrix of all tie differences w_j - w_0 bounds that of every G_T."""
    W = router.tie_weights
    A = W[1:] - W[0]
    return 16.0 * router.n_experts * np.linalg.cond(A @ A.T) * EPS


def linear(M, D, k, seed, bias=False):
    router = Router.gaussian(M, D, k, seed=seed)
    if bias:
        b = 0.1 * np.random.default_rng(seed + 1000).standard_normal(M)
        router = Router(router.weights, k, bias=b)
    return router


# ------------------------------------------------------------------------------------- codes
def test_one_metric_code_table():
    """The table in _kernels/codes.py is the only one: no module writes its own copy."""
    assert METRICS == ("euclidean", "normal", "score")
    assert sorted(METRIC_CODE.values()) == [0, 1, 2]
    assert (kps.METRIC_NORMAL, kps.METRIC_SCORE) == (METRIC_CODE["normal"], METRIC_CODE["score"])
    root = pathlib.Path(__file__).resolve().parents[2] / "discosim"
    copy = re.compile(r"""["']euclidean["']\s*:\s*\d""")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "codes.py" and copy.search(p.read_text())]
    assert offenders == []


def test_every_kernel_is_cached_and_releases_the_gil():
    """``@njit(cache=True, nogil=True)`` on every kernel: chunks may run on threads, and a run
    does not recompile (see discosim/_kernels/__init__.py)."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher
    import discosim._kernels as pkg
    modules = [ka, kg, kp, kps, ks, kt, ku, kst]
    # bridge.py holds plain functions that steps.py and paths.py compile (and the GPU kernels
    # too), as pointstats.py compiles model.selection's tie_straddles_cut; codes.py is a table and audit.py the audit's per-chunk statistics in NumPy (no loops to compile)
    names = {p.stem for p in pathlib.Path(pkg.__file__).parent.rglob("*.py")} - {"__init__", "codes", "bridge",
                                                                                  "audit"}
    assert names == {m.__name__.rsplit(".", 1)[1] for m in modules}
    kernels = [(m.__name__, name, f) for m in modules for name, f in vars(m).items()
               if isinstance(f, CPUDispatcher) and f.__module__ in (
                   m.__name__, "discosim._kernels.diffusion.bridge", "discosim.model.selection")]
    assert {"facet_weight", "piece_weights", "envelope_keep", "gap_crossing", "tn_rate",
            "tie_straddles_cut"} <= {name for _, name, _ in kernels}
    assert len(kernels) > 30
    for mod, name, f in kernels:
        assert f.targetoptions.get("nogil"), (mod, name)
        assert not isinstance(f._cache, NullCache), (mod, name)


# ---------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("df", [1.0, 7.0, 30.0])
def test_chi_square_law(df):
    """Marsaglia-Tsang (with the U^(1/a) boost below shape 1) against scipy's chi^2 law."""
    rng = np.random.default_rng(int(df))
    c = np.array([ks.chi_square(rng, df) for _ in range(3000)])
    assert stats.kstest(c, stats.chi2(df).cdf).pvalue > 1e-3


def test_random_subset_is_uniform_and_replays():
    rng = np.random.default_rng(0)
    out = np.empty(3, dtype=np.int64)
    counts = {}
    for _ in range(6000):  # 300 expected per subset
        ks.random_subset(rng, 6, 3, out)
        counts[tuple(out)] = counts.get(tuple(out), 0) + 1
    assert len(counts) == 20 and all(len(set(c)) == 3 for c in counts)
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    for n, size in [(9, 1), (9, 4), (5, 5), (40, 3)]:
        out = np.empty(size, dtype=np.int64)
        ks.random_subset(a, n, size, out)
        assert out.tolist() == ref.random_subset(b, n, size)


def _kernel_reduced_points(rng, n, M, df):
    g = np.empty(M)
    z = np.empty((n, M))
    for i in range(n):
        ss = ks.gaussian_vector(rng, g)
        z[i] = g / ks.sphere_lift_norm(rng, ss, df)
    return z


@pytest.mark.parametrize("M,D", [(4, 30), (8, 4096)])
def test_reduced_ball_point_has_the_full_d_law(M, D):
    """Kernel reduced points (G / sphere_lift_norm, df = D+2-M) against Q^T x with x uniform
    in B_D drawn in full D (THEORY §3): |z|^2 and one coordinate, two-sample KS."""
    n = 2000
    z = _kernel_reduced_points(np.random.default_rng(11), n, M, float(D + 2 - M))
    x = ref.uniform_ball_points(np.random.default_rng(12), n, D, 1.0)
    q, _ = np.linalg.qr(np.random.default_rng(13).standard_normal((D, M)))
    full = x @ q
    assert stats.ks_2samp(np.sum(z * z, 1), np.sum(full * full, 1)).pvalue > 1e-3
    assert stats.ks_2samp(z[:, 0], full[:, 0]).pvalue > 1e-3


def test_reduced_direction_has_the_full_d_law():
    """df = D-M gives the reduced coordinates of a uniform unit vector (cosine scores)."""
    M, D, n = 5, 12, 4000
    z = _kernel_reduced_points(np.random.default_rng(21), n, M, float(D - M))
    g = np.random.default_rng(22).standard_normal((n, D))
    u = (g / np.linalg.norm(g, axis=1, keepdims=True))[:, :M]
    assert stats.ks_2samp(np.sum(z * z, 1), np.sum(u * u, 1)).pvalue > 1e-3


# ---------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("bias", [False, True])
def test_lower_matvec_is_the_full_d_score(bias):
    router = linear(7, 15, 3, seed=2, bias=bias)
    rng = np.random.default_rng(2)
    for z in rng.standard_normal((50, 7)):
        out = np.empty(7)
        kg.lower_matvec(router.reduced_weights, z, 1.0, router.bias, out)
        x = ref.embed(router, z)
        slow = router.weights @ x + router.bias
        mag = np.abs(router.weights) @ np.abs(x) + np.abs(router.bias)
        assert_rounding_close(out, slow, router.dim + 7, mag)  # two sums of <= D + M terms


def test_subset_normal_distance_is_the_full_d_projection():
    """|n_T|^2 by Cholesky in reduced coordinates vs |x - P_{S_T} x|^2 by least squares in R^D,
    for every tie set T of every size, with a bias."""
    router = linear(6, 11, 2, seed=3, bias=True)
    M, W, b = 6, router.weights, router.bias
    tol = solve_tolerance(router)
    G, e, lam = np.empty((M, M)), np.empty(M), np.empty(M)
    for x in ref.uniform_ball_points(np.random.default_rng(3), 10, 11, 1.0):
        s = W @ x + b
        for t in range(2, M + 1):
            for T in itertools.combinations(range(M), t):
                fast = kg.subset_normal_distance2(s, router.gram, np.array(T), t, G, e, lam)
                slow = np.sum((x - ref.project_on_tie_subspace(W, b, x, T)) ** 2)
                assert fast == pytest.approx(slow, rel=tol, abs=tol * np.sum(x * x))


def test_normal_basis_and_projection_match_full_d():
    router = linear(7, 13, 3, seed=4)
    M, W = 7, router.weights
    tol = solve_tolerance(router)
    rng = np.random.default_rng(4)
    for r in (1, 2, 3):
        for J in list(itertools.combinations(range(M), r + 1))[:6]:
            Q = np.empty((r, M))
            det = kg.orthonormal_normal_basis(router.reduced_weights, np.array(J), r, Q)
            np.testing.assert_allclose(ref.embed(router, Q), ref.normal_basis(W, J), rtol=0,
                                       atol=tol)
            assert det == pytest.approx(ref.gram_det(W, J), rel=tol)
            g = rng.standard_normal(M)
            y = g.copy()
            kg.project_out(Q, r, y)
            x = ref.embed(router, g)
            slow = ref.project_on_tie_subspace(W, np.zeros(M), x, J)
            np.testing.assert_allclose(ref.embed(router, y), slow, rtol=0,
                                       atol=tol * np.linalg.norm(x))


@pytest.mark.parametrize("n,t", [(1, 1), (4, 1), (5, 2), (6, 3), (7, 7), (9, 4)])
def test_next_combination_enumerates_like_itertools(n, t):
    idx = np.arange(t, dtype=np.int64)
    seen = [tuple(idx)]
    while kg.next_combination(idx, t, n):
        seen.append(tuple(idx))
    assert seen == list(itertools.combinations(range(n), t))


# -------------------------------------------------------------------------------- pointstats
def _kernel_stats(router, S, metric, rmax, eps_max=np.inf, pairs=None):
    out = np.empty((S.shape[0], rmax))
    if pairs is None:
        pairs = kps.sort_pairs_for(router.n_experts)
    kps.stats_from_scores(np.ascontiguousarray(S), router.gram, router.k, rmax,
                          METRIC_CODE[metric], eps_max, router.max_row_norm, pairs, out)
    return out


def _block_stats(S, k, rmax, pairs):
    ST = np.ascontiguousarray(S.T).copy()
    out = np.empty((rmax, S.shape[0]))
    kps.score_window_stats(ST, S.shape[0], k, rmax, pairs, out)
    return out.T


def _window_reference(S, k, rmax):
    return np.array([[ref.score_window_stat(s, k, r) for r in range(1, rmax + 1)] for s in S])


@pytest.mark.parametrize("M,k,rmax,ties", [
    (5, 2, 3, False), (8, 2, 3, False), (16, 5, 3, False), (40, 8, 3, False),
    (600, 8, 2, False),          # above the block network's limit: insertion
    (6, 5, 5, False),            # M = k+1, every order
    (9, 1, 4, False),            # k = 1
    (12, 4, 4, True),            # many exact ties
])
def test_score_windows_one_kernel_every_path(M, k, rmax, ties):
    """The one sorting-network + window kernel, as a block and one point at a time, with the
    network and with insertion, against a full sort: spreads of the same two scores, so equal."""
    rng = np.random.default_rng(M + k)
    n = 300 if M < 100 else 40
    S = rng.integers(0, 4, (n, M)).astype(float) if ties else rng.standard_normal((n, M))
    slow = _window_reference(S, k, rmax)
    router = Router.gaussian(M, M + 1, k, seed=1) if M < 100 else None
    for pairs in (kps.sort_pairs_for(M, block=True), kps.sorting_network(0)):
        np.testing.assert_array_equal(_block_stats(S, k, rmax, pairs), slow)
    if router is not None:
        for pairs in (kps.sort_pairs_for(M), kps.sorting_network(0)):
            np.testing.assert_array_equal(_kernel_stats(router, S, "score", rmax, pairs=pairs),
                                          slow)


@pytest.mark.parametrize("n", [2, 5, 8, 13, 16])
def test_sorting_network_sorts_every_zero_one_input(n):
    """Zero-one principle: a comparator network sorts every input iff it sorts all 2^n 0-1 inputs."""
    pairs = kps.sorting_network(n)
    X = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(float)
    for a, b in pairs:
        hi, lo = np.maximum(X[:, a], X[:, b]), np.minimum(X[:, a], X[:, b])
        X[:, a], X[:, b] = hi, lo
    assert np.all(np.diff(X, axis=1) <= 0)


@pytest.mark.parametrize("M,D,k,seed,bias", [(5, 9, 2, 1, False), (6, 10, 3, 2, True),
                                             (5, 8, 1, 5, False), (4, 9, 3, 6, True)])
def test_normal_fibre_distance_matches_full_d_projection(M, D, k, seed, bias):
    router = linear(M, D, k, seed, bias)
    X = ref.uniform_ball_points(np.random.default_rng(seed + 100), 60, D, 1.0)
    S = ref.scores(router.weights, router.bias, X)
    rmax = min(3, M - 1)
    fast = _kernel_stats(router, S, "normal", rmax, eps_max=10.0)
    slow = np.array([[ref.normal_fibre_distance(router.weights, router.bias, k, x, r)
                      for r in range(1, rmax + 1)] for x in X])
    np.testing.assert_allclose(fast, slow, rtol=solve_tolerance(router))


@pytest.mark.parametrize("k,bias,n", [(2, False, 8), (1, True, 6),
                                      pytest.param(2, True, 60, marks=pytest.mark.slow)])
def test_euclidean_distance_matches_bruteforce_optimiser(k, bias, n):
    """THEORY §4.1 exact distance vs SLSQP over every admissible cone of every slice. The twin
    accepts a point whose constraints hold to 1e-7, so it may sit up to 1e-7 / min|w_a - w_b|
    from the cone; the optimum itself converges to ftol 1e-14."""
    router = linear(5, 8, k, seed=4, bias=bias)
    W = router.weights
    slack = 1e-7 / min(np.linalg.norm(W[a] - W[b]) for a, b in itertools.combinations(range(5), 2))
    X = ref.uniform_ball_points(np.random.default_rng(1), n, 8, 1.0)
    S = ref.scores(W, router.bias, X)
    fast = _kernel_stats(router, S, "euclidean", 2, eps_max=10.0)
    for i, x in enumerate(X):
        for r in (1, 2):
            slow = ref.euclidean_distance_bruteforce(W, router.bias, k, x, r)
            assert fast[i, r - 1] == pytest.approx(slow, abs=2 * slack)


def test_order1_matches_facet_formula():
    router = Router.gaussian(8, 16, 3, seed=7)
    X = ref.uniform_ball_points(np.random.default_rng(2), 400, 16, 2.0)
    S = ref.scores(router.weights, router.bias, X)
    fast = _kernel_stats(router, S, "euclidean", 1, eps_max=100.0)[:, 0]
    slow = [ref.order1_facet_distance(router.weights, router.bias, 3, x) for x in X]
    np.testing.assert_allclose(fast, slow, rtol=solve_tolerance(router))


def test_eps_max_prunes_but_never_changes_small_distances():
    router = Router.gaussian(7, 12, 3, seed=3)
    S = ref.scores(router.weights, router.bias,
                   ref.uniform_ball_points(np.random.default_rng(3), 300, 12, 1.0))
    full = _kernel_stats(router, S, "euclidean", 3, eps_max=100.0)
    cut = _kernel_stats(router, S, "euclidean", 3, eps_max=0.05)
    small = full <= 0.05
    np.testing.assert_array_equal(cut[small], full[small])
    assert np.all(np.isinf(cut[~small]) | (cut[~small] > 0.05))


# ----------------------------------------------------------------------------------- uniform
def _uniform_hist(router, seed, n, rmax, radius, metric, eps):
    hist = np.zeros((rmax, eps.size + 1), dtype=np.int64)
    ku.uniform_chunk(np.random.default_rng(seed), n, router.reduced_weights, router.bias,
                     router.gram, router.k, rmax, radius, router.dim, METRIC_CODE[metric],
                     router.kind == "cosine", eps, router.max_row_norm,
                     kps.sort_pairs_for(router.n_experts, block=True), hist)
    return hist


@pytest.mark.parametrize("router,metric,n,eps", [
    (linear(8, 20, 2, 1), "score", 1000, [0.02, 0.1, 0.3]),
    (linear(8, 20, 2, 2, bias=True), "score", 600, [0.05, 0.2]),
    (Router.gaussian(6, 15, 2, seed=3, kind="cosine"), "score", 600, [0.05, 0.2]),
    (linear(40, 60, 8, 4), "score", 300, [0.01, 0.05]),
    (linear(8, 4096, 7, 5), "score", 300, [0.001, 0.01]),  # large D, M = k+1
    (linear(5, 9, 1, 6), "normal", 120, [0.05, 0.2]),       # k = 1
    (linear(5, 9, 2, 7, bias=True), "normal", 120, [0.05, 0.2]),
    (linear(5, 9, 2, 8, bias=True), "euclidean", 20, [0.05, 0.15]),
    pytest.param(linear(6, 10, 3, 9, bias=True), "euclidean", 200, [0.05, 0.15],
                 marks=pytest.mark.slow),
], ids=["score", "score-bias", "score-cosine", "score-M40", "score-D4096", "normal-k1",
        "normal-bias", "euclidean-bias", "euclidean-many"])
def test_uniform_chunk_counts_the_same_points_as_full_d(router, metric, n, eps):
    eps = np.array(eps)
    rmax = min(3, router.n_experts - 1)
    radius = 1.5
    fast = _uniform_hist(router, 7, n, rmax, radius, metric, eps)
    slow = ref.uniform_chunk(router, np.random.default_rng(7), n, rmax, radius, metric, eps)
    np.testing.assert_array_equal(fast, slow)


# -------------------------------------------------------------------------------------- tube
def test_score_circumradius_is_the_farthest_vertex_of_the_fibre_polytope():
    router = linear(6, 10, 2, seed=2)
    M, tol = 6, solve_tolerance(router)
    ws = (np.zeros(M), np.empty((M, M)), np.empty(M), np.empty(M))
    for r in (1, 2, 3):
        for J in list(itertools.combinations(range(M), r + 1))[::4]:
            fast = kt.score_circumradius2(router.gram, np.array(J), r, 0.3, *ws)
            assert fast == pytest.approx(ref.fibre_circumradius2(router.weights, J, 0.3), rel=tol)


@pytest.mark.parametrize("metric", ["score", "normal"])
def test_tube_draw_slices_replays(metric):
    router = linear(6, 10, 2, seed=5)
    n, r, eps = 40, 2, 0.2
    J, rho2, u = np.empty((n, r + 1), dtype=np.int64), np.empty(n), np.empty(n)
    kt.tube_draw_slices(np.random.default_rng(3), n, 6, r, router.gram, metric == "score", eps,
                        J, rho2, u)
    J2, rho22, u2 = ref.tube_draw_slices(router, np.random.default_rng(3), n, r, eps, metric)
    np.testing.assert_array_equal(J, J2)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_allclose(rho2, rho22, rtol=solve_tolerance(router))


def test_family_count_score_matches_enumeration():
    rng = np.random.default_rng(5)
    for _ in range(200):
        s = rng.standard_normal(7)
        for r in (1, 2, 3):
            slow = sum(1 for J in itertools.combinations(range(7), r + 1)
                       if np.ptp(s[list(J)]) <= 0.8)
            assert kt.family_count_score(s, r, 0.8, np.empty(7)) == slow


def test_family_count_subspace_matches_enumeration():
    """N(x) = #{J : |P_{N_J} x| <= eps} by brute force over all slices in full D."""
    router = Router.gaussian(6, 12, 2, seed=9)
    W, M = router.weights, 6
    for x in ref.uniform_ball_points(np.random.default_rng(1), 100, 12, 1.0):
        s = W @ x
        for r, eps in ((1, 0.1), (2, 0.15), (3, 0.2)):
            slow = sum(1 for J in itertools.combinations(range(M), r + 1)
                       if np.linalg.norm(x - ref.project_on_tie_subspace(W, np.zeros(M), x, J)) <= eps)
            fast = kt.family_count_subspace(s, router.gram, r, eps, router.max_row_norm,
                                            np.empty(M, dtype=np.int64), np.empty(r + 1, dtype=np.int64),
                                            np.empty(r + 1, dtype=np.int64), np.empty((M, M)),
                                            np.empty(M), np.empty(M))
            assert fast == slow


@pytest.mark.parametrize("metric,r,n", [("score", 1, 60), ("score", 2, 60), ("normal", 1, 60),
                                        ("normal", 2, 40), ("euclidean", 1, 8)])
def test_tube_chunk_scores_the_same_points_as_full_d(metric, r, n):
    """The importance sampler's sums against the twin that rebuilds each point in R^D."""
    router = linear(5, 10, 2, seed=11)
    M, D, radius = 5, 10, 1.0
    eps = 0.3 if metric == "score" else 0.15
    rng = np.random.default_rng(5)
    J = np.array([ref.random_subset(rng, M, r + 1) for _ in range(n)], dtype=np.int64)
    rho2 = np.array([ref.fibre_circumradius2(router.weights, j, eps) if metric == "score"
                     else eps * eps for j in J])
    a, b = 0.5 * r, 0.5 * (D - r) + 1.0
    cap = special.betainc(a, b, np.minimum(rho2 / radius ** 2, 1.0))
    beta = special.betaincinv(a, b, rng.random(n) * cap)
    factor = math.comb(M, r + 1) * cap
    out = np.zeros(5)
    kt.tube_chunk(np.random.default_rng(6), router.reduced_weights, router.gram, router.k, r,
                  radius, D, METRIC_CODE[metric], eps, router.max_row_norm,
                  kps.sort_pairs_for(M), J, beta, factor, out)
    slow = ref.tube_chunk(router, np.random.default_rng(6), r, radius, metric, eps, J, beta,
                          factor)
    assert out[2] == slow[2] and slow[2] > 0  # the same points hit
    # sums of the same n terms factor/N: rounding of an n-term sum
    assert_rounding_close(out[[0, 3]], slow[[0, 3]], n, 2 * np.sum(factor))
    assert_rounding_close(out[[1, 4]], slow[[1, 4]], n, 4 * np.sum(factor ** 2))


# ------------------------------------------------------------------------------------- alpha
@pytest.mark.parametrize("r,fixed", [(1, (1, 4)), (2, (0, 2, 5)), (2, ()), (3, ())])
def test_alpha_mc_chunk_replays_in_full_d(r, fixed):
    router = linear(7, 12, 3, seed=8)
    n = 300
    out = np.zeros(4)
    ka.alpha_mc_chunk(np.random.default_rng(9), router.reduced_weights, router.k, r, n,
                      np.array(fixed, dtype=np.int64), 2, out)
    slow = ref.alpha_mc_chunk(router, np.random.default_rng(9), r, n, fixed, 2)
    assert slow[0] > 0
    # out[0], out[1]: sums of the same 1/q terms; out[2], out[3] carry det(G_J)^(-1/2)
    assert_rounding_close(out[:2], slow[:2], n, slow[:2])
    np.testing.assert_allclose(out[2:], slow[2:], rtol=solve_tolerance(router) + ULPS * n * EPS)


@pytest.mark.parametrize("k", [1, 3])
def test_alpha_pairs_chunk_replays_in_full_d(k):
    router = linear(6, 11, k, seed=10)
    n = 150
    out = np.zeros(4)
    ka.alpha_pairs_chunk(np.random.default_rng(4), router.reduced_weights, router.gram, k, n, out)
    slow = ref.alpha_pairs_chunk(router, np.random.default_rng(4), n)
    np.testing.assert_array_equal(out[:2], slow[:2])  # integer counts
    np.testing.assert_allclose(out[2:], slow[2:], rtol=solve_tolerance(router) + ULPS * n * EPS)


# ------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("theta", [0.0, 0.3, 5.0])
def test_ou_step_coefficients_match_the_exact_variance_integral(theta):
    from scipy import integrate
    sigma, dt = 0.7, 0.01
    decay, noise = kp.ou_step_coefficients(theta, sigma, dt)
    var, err = integrate.quad(lambda s: math.exp(-2 * theta * s), 0.0, dt)
    assert decay == pytest.approx(math.exp(-theta * dt), rel=ULPS * EPS)
    assert noise ** 2 == pytest.approx(sigma ** 2 * var, rel=ULPS * EPS + err / var)


@pytest.mark.parametrize("metric", ["score", "normal"])
def test_hit_point_stats_match_full_d(metric):
    router = linear(5, 9, 2, seed=12, bias=True)
    rng = np.random.default_rng(12)
    Z = rng.standard_normal((80, 5)) * 0.5
    tau = np.where(rng.random(80) < 0.2, np.inf, 1.0)
    out = np.empty(80)
    kp.hit_point_stats(Z, tau, router.reduced_weights, router.bias, router.gram, 2,
                       METRIC_CODE[metric], 10.0, router.max_row_norm, kps.sort_pairs_for(5), out)
    slow = ref.hit_point_stats(router, Z, tau, metric, 10.0)
    tol = solve_tolerance(router) if metric == "normal" else ULPS * 5 * EPS
    np.testing.assert_allclose(out, slow, rtol=tol, atol=tol)


@pytest.mark.parametrize("metric,theta", [("score", 0.0), ("score", 2.0), ("normal", 0.0)])
def test_occupation_chunk_replays_in_full_d(metric, theta):
    router = linear(5, 9, 2, seed=13, bias=True)
    Z0 = np.ascontiguousarray(0.3 * np.random.default_rng(13).standard_normal((2, 5)))
    eps = np.array([0.05, 0.2])
    n_steps, cps = 100, np.array([30, 60, 100], dtype=np.int64)
    rmax, sigma, dt = 2, 1.0, 1e-3
    s1, s2 = np.zeros((3, rmax, 2)), np.zeros((3, rmax, 2))
    kp.occupation_chunk(np.random.default_rng(14), Z0, router.reduced_weights, router.bias,
                        router.gram, 2, rmax, METRIC_CODE[metric], eps, router.max_row_norm,
                        kps.sort_pairs_for(5), sigma, dt, n_steps, theta, cps, s1, s2)
    t1, t2 = ref.occupation_chunk(router, np.random.default_rng(14), Z0, rmax, metric, eps,
                                  sigma, dt, n_steps, theta, cps)
    assert t1.max() > 0
    # the same dt added in the same order: identical sums when the same steps are in the tube
    np.testing.assert_array_equal(s1, t1)
    np.testing.assert_array_equal(s2, t2)


def test_walk_on_spheres_replays_in_full_d():
    router = linear(5, 9, 2, seed=15, bias=True)
    Z0 = np.ascontiguousarray(0.2 * np.random.default_rng(15).standard_normal((20, 5)))
    tol_stop, max_steps = 1e-6, 10_000
    zexit, steps = np.empty((20, 5)), np.empty(20, dtype=np.int64)
    kp.walk_on_spheres_chunk(np.random.default_rng(16), Z0, router.reduced_weights, router.bias,
                             router.gram, 2, tol_stop, max_steps, zexit, steps)
    z2, st2 = ref.walk_on_spheres_chunk(router, np.random.default_rng(16), Z0, tol_stop, max_steps)
    np.testing.assert_array_equal(steps, st2)
    # each step adds a vector of length <= the start's distance to the boundary (<= |z0| + 1)
    mag = (np.linalg.norm(Z0, axis=1) + 1.0)[:, None]
    assert_rounding_close(zexit, z2, 16 * (steps[:, None] + 1) * 5, mag)


@pytest.mark.parametrize("theta,bridge", [(0.0, True), (0.0, False), (3.0, True)])
def test_first_exit_chunk_replays_in_full_d(theta, bridge):
    """Exit times and points of the bridge-refined walk against the twin that walks in R^D."""
    router = linear(5, 9, 2, seed=17, bias=True)
    n, n_steps, depth, sigma, dt = 8, 200, 8, 1.0, 1e-3
    Z0 = np.ascontiguousarray(0.1 * np.random.default_rng(17).standard_normal((n, 5)))
    tau, zhit = np.empty(n), np.full((n, 5), np.nan)
    kp.first_exit_chunk(np.random.default_rng(18), np.random.default_rng(19), Z0, router.reduced_weights, router.bias,
                        router.gram, 2, sigma, dt, n_steps, theta, depth, bridge, tau, zhit)
    tau2, zhit2 = ref.first_exit_chunk(router, np.random.default_rng(18), np.random.default_rng(19), Z0, sigma, dt,
                                       n_steps, theta, depth, bridge)
    assert np.isfinite(tau).sum() >= 2  # some paths exit within the horizon
    np.testing.assert_array_equal(tau, tau2)  # the same halvings of the same step
    hit = np.isfinite(tau)
    # positions: sums of n_steps + depth Gaussian increments of size <= sigma sqrt(dt)
    mag = np.linalg.norm(Z0[hit], axis=1, keepdims=True) + sigma * math.sqrt(dt) * (n_steps + depth)
    assert_rounding_close(zhit[hit], zhit2[hit], 16 * (n_steps + depth) * 5, mag)


@pytest.mark.parametrize("metric", ["euclidean", "normal"])
def test_uniform_screen_drops_only_points_without_a_distance_below_eps_max(metric):
    # uniform_chunk skips slice_distance_stats where the gap g_k - g_{k+1} exceeds
    # 2 max|w| eps_max (1 + 1e-6) plus twice the tie tolerance: every such point must have no
    # order's distance <= eps_max; a screen at 0.6 of that width would drop some that do
    router = linear(6, 10, 2, 11, bias=True)
    S = ref.scores(router.weights, router.bias,
                   ref.uniform_ball_points(np.random.default_rng(11), 4000, 10, 1.0))
    eps_max = 0.08
    st = _kernel_stats(router, S, metric, 3, eps_max=eps_max)
    top = -np.sort(-S, axis=1)
    k, w = router.k, router.max_row_norm
    gap = top[:, k - 1] - top[:, k]
    thr = 2 * w * eps_max * (1 + 1e-6) + 4e-11 * (np.abs(top[:, k - 1]) + w * eps_max + 1e-300)
    dropped = gap > thr
    assert dropped.mean() > 0.1 and np.all(np.isinf(st[dropped]))
    assert np.any(np.isfinite(st[gap > 0.6 * thr]).any(axis=1))
