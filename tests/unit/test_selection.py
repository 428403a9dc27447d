"""Routing functions, margins and rounding (discosim.model.selection) against slow, obviously-correct twins.

The twins loop over rows in plain Python: sorted() for top-k with the lower-index tie-break,
np.float16 / struct for fp16, float32 bit manipulation for bf16, math.frexp for ulps.
"""

import math
import struct

import numpy as np
import pytest

from discosim._core.errors import InputError
from discosim.model.selection import (FORMATS, Routing, deepseek_v3_margin, deepseek_v3_mask, round_to_format,
                              sigmoid, topk_margin, topk_mask, ulp)


# --------------------------------------------------------------------------- slow twins
def slow_topk(row, k):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))  # lower index wins ties
    return set(order[:k])


def slow_margin(row, k):
    v = sorted(row, reverse=True)
    return v[k - 1] - v[k]


def slow_deepseek(row, k, c, n_group, topk_group):
    """DeepSeek-V3 routing of one row, written straight from the model's description."""
    M = len(row)
    s = [1 / (1 + math.exp(-x)) + (c[i] if c is not None else 0.0) for i, x in enumerate(row)]
    size = M // n_group
    gscore = []
    for g in range(n_group):
        members = sorted((s[i] for i in range(g * size, (g + 1) * size)), reverse=True)
        gscore.append(members[0] + (members[1] if size > 1 else 0.0))
    gorder = sorted(range(n_group), key=lambda g: (-gscore[g], g))
    kept = gorder[:topk_group]
    cand = [i for i in range(M) if i // size in kept]
    sel = sorted(cand, key=lambda i: (-s[i], i))[:k]
    kept_scores = sorted((s[i] for i in cand), reverse=True)
    margin = kept_scores[k - 1] - kept_scores[k] if len(cand) > k else math.inf
    if topk_group < n_group:
        last, first = gorder[topk_group - 1], gorder[topk_group]
        alt = [g for g in kept if g != last] + [first]
        cand2 = [i for i in range(M) if i // size in alt]
        sel2 = sorted(cand2, key=lambda i: (-s[i], i))[:k]
        if set(sel2) != set(sel):
            margin = min(margin, gscore[last] - gscore[first])
    return set(sel), margin


def slow_fp16(x):
    return float(np.float16(x))  # numpy converts float64 -> half with round-to-nearest-even


def slow_fp16_struct(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def slow_bf16(x32):
    """RNE of a float32 to bf16 by bit manipulation (torch's rule): add 0x7FFF + lsb, truncate."""
    bits = struct.unpack("<I", struct.pack("<f", x32))[0]
    lsb = (bits >> 16) & 1
    bits = ((bits + 0x7FFF + lsb) >> 16) << 16
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def slow_ulp(v, p, emin):
    if v == 0:
        e = emin
    else:
        _, e2 = math.frexp(abs(v))
        e = max(e2 - 1, emin)
    return math.ldexp(1.0, e + 1 - p)


# --------------------------------------------------------------------------- rounding
def test_fp16_rounding_matches_numpy_and_struct():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(4000) * 10.0 ** rng.uniform(-9, 4.5, 4000),
                        [0.0, -0.0, 65504.0, -65504.0, 65519.99, 2.0 ** -24, 2.0 ** -25,
                         3 * 2.0 ** -26, 2.0 ** -14, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11]])
    got = round_to_format(x, "fp16")
    want = np.array([slow_fp16(v) for v in x])
    assert np.array_equal(got, want)
    assert np.array_equal(got, np.array([slow_fp16_struct(v) for v in x]))


def test_fp16_halfway_cases_round_to_even():
    # 1 + 2^-11 is halfway between 1 and 1 + 2^-10: even is 1; 1 + 3*2^-11 goes up to 1 + 2^-9
    got = round_to_format(np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2.0 ** -25]), "fp16")
    assert got.tolist() == [1.0, 1 + 2.0 ** -9, 0.0]


def test_bf16_rounding_matches_bit_manipulation():
    rng = np.random.default_rng(2)
    # float32 inputs so the float32 bit twin sees exactly the same value (no double rounding)
    x32 = (rng.standard_normal(5000) * 10.0 ** rng.uniform(-30, 30, 5000)).astype(np.float32)
    halfway = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, -(1 + 2.0 ** -8), 2.0 ** -130],
                       dtype=np.float32)
    x32 = np.concatenate([x32, halfway])
    got = round_to_format(x32.astype(np.float64), "bf16")
    want = np.array([slow_bf16(v) for v in x32])
    assert np.array_equal(got, want)


def test_fp16_overflow_is_refused():
    with pytest.raises(InputError, match="fp16"):
        round_to_format(np.array([1.0, 70000.0]), "fp16")
    with pytest.raises(InputError, match="fp16"):
        round_to_format(np.array([65520.0]), "fp16")  # rounds up to 2^16: beyond the range
    assert round_to_format(np.array([65519.0]), "fp16")[0] == 65504.0


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "fp32"])
def test_ulp_matches_frexp_loop(fmt):
    f = FORMATS[fmt]
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.uniform(-12, 4, 2000),
                        [0.0, 1.0, 2.0, 0.5, -4.0, 2.0 ** -20]])
    got = ulp(x, fmt)
    want = np.array([slow_ulp(v, f.precision, f.emin) for v in x])
    assert np.array_equal(got, want)
    # the grid spacing: rounding moves a value by at most half of it
    xs = x[np.abs(x) < 6e4]
    assert np.all(np.abs(round_to_format(xs, fmt) - xs) <= ulp(xs, fmt) / 2)


def test_fp16_ulp_is_the_float16_spacing():
    v = np.array([1.0, 1.5, 3.0, 1000.0, 2.0 ** -20])
    want = [float(np.spacing(np.float16(2.0 ** math.floor(math.log2(t))))) for t in v]
    assert ulp(v, "fp16").tolist() == want


# --------------------------------------------------------------------------- top-k
def test_topk_mask_and_margin_match_loops():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 9))
    # plant ties (as rounding makes them): the lower index must win
    x[:100] = np.round(x[:100] * 2) / 2
    for k in (1, 2, 4, 8):
        m = topk_mask(x, k)
        assert np.all(m.sum(axis=1) == k)
        for row, mrow in zip(x, m):
            assert set(np.nonzero(mrow)[0]) == slow_topk(list(row), k)
        assert np.allclose(topk_margin(x, k), [slow_margin(list(r), k) for r in x], rtol=0, atol=0)


def test_topk_tie_break_is_stable_sort():
    x = np.array([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert topk_mask(x, 2).tolist() == [[False, True, True, False, False]]
    order = np.argsort(-x[0], kind="stable")[:2]
    assert set(order) == {1, 2}


# --------------------------------------------------------------------------- DeepSeek-V3
@pytest.mark.parametrize("M,k,G,T", [(16, 4, 4, 2), (32, 8, 8, 4), (12, 3, 3, 3), (10, 2, 1, 1)])
def test_deepseek_v3_matches_loop(M, k, G, T):
    rng = np.random.default_rng(M + k)
    x = rng.standard_normal((200, M)) * 2
    c = rng.standard_normal(M) * 0.05
    mask = deepseek_v3_mask(x, k, c, G, T)
    margin = deepseek_v3_margin(x, k, c, G, T)
    for row, mrow, g in zip(x, mask, margin):
        sel, gm = slow_deepseek(list(row), k, list(c), G, T)
        assert set(np.nonzero(mrow)[0]) == sel
        assert g == pytest.approx(gm, rel=1e-12, abs=1e-15)


def test_deepseek_v3_equals_direct_numpy():
    """Independent vectorised implementation: argsort-based groups and selection."""
    rng = np.random.default_rng(7)
    M, k, G, T = 64, 6, 8, 3
    x = rng.standard_normal((500, M))
    c = rng.uniform(-0.1, 0.1, M)
    s = 1 / (1 + np.exp(-x)) + c
    gs = np.sort(s.reshape(-1, G, M // G), axis=2)[:, :, -2:].sum(axis=2)
    top_groups = np.argsort(-gs, axis=1, kind="stable")[:, :T]
    keep = np.zeros((500, G), dtype=bool)
    np.put_along_axis(keep, top_groups, True, axis=1)
    sc = np.where(np.repeat(keep, M // G, axis=1), s, -np.inf)
    sel = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    want = np.zeros((500, M), dtype=bool)
    np.put_along_axis(want, sel, True, axis=1)
    assert np.array_equal(deepseek_v3_mask(x, k, c, G, T), want)


def test_margin_is_the_smallest_score_change_that_changes_the_set():
    """Raising the (k+1)-th kept score by slightly more than the margin changes the set; a bit
    less does not (expert margins; group margins only count when the swap matters)."""
    rng = np.random.default_rng(8)
    M, k, G, T = 16, 2, 4, 2
    x = rng.standard_normal((12, M))
    c = rng.uniform(-0.05, 0.05, M)
    r = Routing("deepseek_v3", k, c, G, T)
    base = r.select(x)
    g = r.margin(x)
    changed_small = changed_big = 0
    for i in range(12):
        # shift the bias of every expert in turn: the smallest shift that changes the set
        best = math.inf
        for j in range(M):
            for sign in (1.0, -1.0):
                lo, hi = 0.0, 2.0
                cc = c.copy()
                cc[j] += sign * hi
                if np.array_equal(Routing("deepseek_v3", k, cc, G, T).select(x[i:i + 1])[0], base[i]):
                    continue
                for _ in range(30):
                    mid = (lo + hi) / 2
                    cc = c.copy()
                    cc[j] += sign * mid
                    same = np.array_equal(Routing("deepseek_v3", k, cc, G, T).select(x[i:i + 1])[0], base[i])
                    lo, hi = (mid, hi) if same else (lo, mid)
                best = min(best, hi)
        assert g[i] == pytest.approx(best, rel=1e-6, abs=1e-9)


def test_routing_checks():
    with pytest.raises(InputError, match="n_group"):
        Routing("deepseek_v3", 2, None, 3, 1).check(16)
    with pytest.raises(InputError, match="k="):
        Routing("deepseek_v3", 9, None, 4, 1).check(16)
    with pytest.raises(InputError, match="routing"):
        Routing("softmax_magic", 2)
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]
