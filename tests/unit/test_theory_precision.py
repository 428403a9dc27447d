"""discosim.theory.precision (THEORY §9, the flip rate's next order) against brute force:
rounding with a random lattice offset, exact enumeration of the offset's pieces, rounding to
the real bf16 grid, and the full top-k of rounded logits."""

import math

import numpy as np
import pytest

from discosim.model.router import Router
from discosim.model.selection import round_to_format, topk_mask, ulp
from discosim.theory import precision as tp
from discosim.validation import precision as cp


def _mc_offset_flip(values, index, k, u, rng, n=20_000):
    """Direct Monte Carlo of rounding on the lattice u Z shifted by U ~ U(0, u)."""
    U = rng.random(n) * u
    r = np.round((values[None, :] + U[:, None]) / u)
    ranks = np.broadcast_to(index, r.shape)
    # the rounded top-k (ties to the lower index) against ranks 1..k, by full selection
    scores = np.empty_like(r)
    np.put_along_axis(scores, ranks, r, axis=1)
    chosen = topk_mask(scores, k)
    exact = np.zeros_like(chosen)
    exact[:, index[:k]] = True
    return np.mean(np.any(chosen != exact, axis=1))


def test_pair_merge_probability_is_the_lattice_rate():
    rng = np.random.default_rng(1)
    for g in (0.0, 0.3, 0.9, 1.2):
        U = rng.random(200_000)
        same = np.round(0.0 + U) == np.round(-g + U)
        p = float(tp.pair_merge_probability(g, 1.0))
        assert abs(same.mean() - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / U.size) + 1e-12


def test_offset_flip_exact_enumeration_matches_monte_carlo_and_vector_form():
    rng = np.random.default_rng(2)
    for _ in range(30):
        m, k = 5, int(rng.integers(1, 4))
        vals = np.sort(rng.random(m) * 2.5)[::-1]
        idx = rng.permutation(m)
        phi = tp.offset_flip_probability(vals, idx, k, 1.0)
        vec = tp.offset_flip_terms(vals[None], idx[None], k, np.array([1.0]))[0]
        assert phi == pytest.approx(vec, abs=1e-12)
        mc = _mc_offset_flip(vals, idx, k, 1.0, rng)
        assert abs(mc - phi) <= 4 * math.sqrt(max(phi * (1 - phi), 1e-4) / 20_000)


def test_pair_plus_triple_terms_equal_the_exact_three_logit_model():
    # three logits within u of the cut and the rest farther than u from all of them: the
    # uniform-offset flip probability is exactly the pair term plus the triple terms
    rng = np.random.default_rng(3)
    for k in (1, 2, 3):
        for _ in range(200):
            g1, g2 = rng.random(2) * 0.7
            top = 5.0 + rng.random()
            near = np.array([top, top - g1, top - g1 - g2])
            start = k - 1 - int(rng.integers(0, 2)) if k >= 2 else 0  # cluster at ranks (k-1..k+1) or (k..k+2)
            vals = np.concatenate([top + 3.0 + np.arange(start)[::-1], near, top - 4.0 - np.arange(2)])
            idx = rng.permutation(vals.size)
            u = np.array([1.0])
            pair = tp.pair_merge_probability(vals[k - 1] - vals[k], 1.0) * (idx[k] < idx[k - 1])
            tri = tp.triple_terms(vals[None], idx[None], k, u)[0]
            exact = tp.offset_flip_terms(vals[None], idx[None], k, u)[0]
            assert pair + tri == pytest.approx(exact, abs=1e-12)


def test_triple_constant_and_index_average():
    # (1/6) of the orders meet each index condition; ∫∫ (1 - g1 - g2)_+ = 1/2
    g = (np.arange(400) + 0.5) / 400
    T = np.maximum(1 - g[:, None] - g[None, :], 0).mean()
    assert T / 6 == pytest.approx(tp.TRIPLE, rel=1e-2)


@pytest.mark.parametrize("negative, const", [(False, tp.BINADE_POSITIVE), (True, tp.BINADE_NEGATIVE)])
def test_pair_binade_integral_is_the_stated_constant(negative, const):
    u = 2.0 ** -7
    gs = (np.arange(800) + 0.5) / 800 * 2 * u
    level = (-2.0 if negative else 2.0) + 2.0 ** -12
    v = np.column_stack([np.full(gs.size, level), level - gs, np.full(gs.size, -9.0)])
    idx = np.tile([1, 0, 2], (gs.size, 1))  # the flip side
    d = tp.binade_shift_terms(v, idx, 1, "bf16", pair_only=True) * tp.BINADE_WINDOW * u
    assert d.sum() * (2 * u / gs.size) / u ** 2 == pytest.approx(const, abs=1e-9)


@pytest.mark.parametrize("negative", [False, True])
def test_pair_binade_constant_against_rounding_with_a_smooth_density(negative):
    # brute force: exact bf16 rounding of pairs whose level has a smooth density across 2^1;
    # E[merge_exact - (1 - g/u(v))_+] = w(B) ∫ Delta dg (per unit density of the gap)
    rng = np.random.default_rng(4)
    u, B, sd, G, n = 2.0 ** -7, 2.0, 12 * 2.0 ** -7, 0.05, 3_000_000
    a = B + sd * rng.standard_normal(n)
    g = rng.uniform(0, G, n)
    v, b = (-a + g, -a) if negative else (a, a - g)
    diff = (round_to_format(v, "bf16") == round_to_format(b, "bf16")) - \
        tp.pair_merge_probability(g, ulp(v, "bf16"))
    scale = G * math.sqrt(2 * math.pi) * sd / u ** 2
    est, se = diff.mean() * scale, diff.std() / math.sqrt(n) * scale
    const = tp.BINADE_NEGATIVE if negative else tp.BINADE_POSITIVE
    assert abs(est - const) <= 4 * se
    # integrating over whole cells of the larger logit instead gives -1/8 (+3/8): rejected
    assert abs(est - (3 / 8 if negative else -1 / 8)) > 4 * se


def test_window_flips_equal_full_rounding():
    rng = np.random.default_rng(5)
    for M, k in ((8, 2), (64, 8)):
        Rt = Router.gaussian(M, 2048, k, seed=M).reduced_weights
        l0 = rng.standard_normal((4000, M)) @ Rt.T
        # logits near a coarse grid: many near-ties, clusters reaching the window edges
        l0 = np.round(l0 * 8) / 8 + rng.standard_normal(l0.shape) * 2.0 ** -10
        lo, hi = cp._window(M, k)
        order = np.argsort(-l0, axis=1, kind="stable")
        iw = order[:, lo:hi]
        w = np.take_along_axis(l0, iw, axis=1)
        for fmt in ("bf16", "fp16"):
            f = cp.window_flips(w, iw, k - lo, lo, hi, M, lambda e: l0[e], k, fmt)
            full = np.any(topk_mask(round_to_format(l0, fmt), k) != topk_mask(l0, k), axis=1)
            assert f.sum() > (200 if fmt == "bf16" else 20)
            assert np.array_equal(f, full)


def test_cluster_flip_equals_topk_of_rounded():
    rng = np.random.default_rng(6)
    r = rng.integers(0, 4, (5000, 6)).astype(float)
    r = -np.sort(-r, axis=1)
    idx = np.argsort(rng.random((5000, 6)), axis=1)
    for k in (1, 2, 3):
        scores = np.empty_like(r)
        np.put_along_axis(scores, idx, r, axis=1)
        exact = np.zeros(r.shape, dtype=bool)
        np.put_along_axis(exact, idx[:, :k], True, axis=1)
        assert np.array_equal(tp.cluster_flip(r, idx, k), np.any(topk_mask(scores, k) != exact, axis=1))


def test_next_order_terms_track_the_exact_rounding_rate():
    # leading + next order against the direct count through the claim's estimator (radial
    # conditional Monte Carlo), M = 64, k = 8, bf16: agreement within 4 paired SE
    router = Router.gaussian(64, cp.DIM, 8, seed=11)
    r = cp.measure_flips(router, 20_000, np.random.SeedSequence(11), formats=("bf16",))["bf16"]
    assert r["measured"] > 0.01
    assert abs(r["measured"] - r["predicted"]) <= 4 * r["diff_se"]
    # the O(u^3) remainder is small against the rate
    assert abs(r["remainder"]) <= 0.01 * r["predicted"] + 4 * r["remainder_se"]
