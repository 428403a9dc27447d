"""The per-path step logic of the diffusion kernels, written once for the CPU and the GPU.

Each function is ``@njit`` for the CPU kernels (:mod:`.paths`) and compiled again for the device
by :func:`discosim._cuda.twins.device_twin` for the GPU kernels (:mod:`discosim._cuda.diffusion`),
as the tube sampler's point and spread are. So they allocate nothing and draw no random numbers:
the kernels draw (numpy's Generator on the CPU, the counter-based streams of
:mod:`discosim._cuda.rng` on the GPU) and hand the draws in as data. Everything is float64.

First exit (THEORY §6): a path at reduced point ``z`` with facet gaps ``ga`` (``s_i - s_j``,
i in the start cell's top-k set K, j in the rest R) steps to ``z1`` (:func:`exit_step`); it has
crossed when some gap at ``z1`` is <= 0, or else with the Brownian-bridge crossing probability
(:func:`cross_prob`). A crossing step is refined ``depth`` times: a midpoint is drawn (by facet,
:func:`facet_weights`, :func:`pick_facet`, :func:`bridge_midpoint`; or unconditioned,
:func:`plain_midpoint`), accepted with :func:`midpoint_crossing`'s probabilities, and the half
holding the first crossing is kept (:func:`keep_half`).

Occupation (THEORY §6): every step adds to the running occupation of each tube that holds the
path's point (:func:`occupation_step`), then the path moves (:func:`ou_advance`).
"""

import math

from numba import njit

from discosim._kernels.diffusion import bridge as _bridge
from discosim._kernels.geometry import lower_matvec
from discosim._kernels.pointstats import point_stats

_jit = njit(cache=True, nogil=True)
facet_weight = _jit(_bridge.facet_weight)
gap_crossing = _jit(_bridge.gap_crossing)

# 1 - exp(-x) is exactly 1.0 in float64 for x > 40 (e^-40 < 2^-53 / 2): the factor is skipped
# there without changing any bit
_NO_CROSSING_X = 40.0


@njit(cache=True, nogil=True)
def ou_advance(Z0, p, z, xi, decay, noise, out):
    """``out = z0 + decay (z - z0) + noise xi`` with ``z0 = Z0[p]``: one exact step (theta = 0:
    Brownian motion, decay 1). ``out`` may be ``z`` itself."""
    for m in range(z.shape[0]):
        out[m] = Z0[p, m] + decay * (z[m] - Z0[p, m]) + noise * xi[m]


@njit(cache=True, nogil=True)
def path_scores(Wr, bias, z, s):
    """Scores ``s = b + Wr z`` of reduced point z, the bias first, then the lower-triangular sum
    (the order every path kernel uses, so CPU and GPU gaps carry the same bits)."""
    for a in range(s.shape[0]):
        acc = bias[a]
        for m in range(a + 1):
            acc += Wr[a, m] * z[m]
        s[a] = acc


@njit(cache=True, nogil=True)
def facet_gaps(Wr, bias, z, K, R, s, out):
    """Gaps ``s_i - s_j`` (i in K, j in R; index ``a * len(R) + c``) at reduced point z.

    ``s`` (M,) receives the scores (:func:`path_scores`).
    """
    path_scores(Wr, bias, z, s)
    nR = R.shape[0]
    for a in range(K.shape[0]):
        for c in range(nR):
            out[a * nR + c] = s[K[a]] - s[R[c]]


@njit(cache=True, nogil=True)
def facet_norms2(gram, K, R, out):
    """``|w_i - w_j|^2`` per facet (i in K, j in R), indexed as :func:`facet_gaps`."""
    nR = R.shape[0]
    for a in range(K.shape[0]):
        for c in range(nR):
            i = K[a]
            j = R[c]
            out[a * nR + c] = gram[i, i] + gram[j, j] - 2.0 * gram[i, j]


@njit(cache=True, nogil=True)
def gap_variances(dn2, sigma, h, var):
    """Variance ``sigma^2 |w_i - w_j|^2 h`` of each facet gap's increment over time h."""
    for q in range(dn2.shape[0]):
        var[q] = sigma * sigma * dn2[q] * h


@njit(cache=True, nogil=True)
def any_nonpos(g):
    for q in range(g.shape[0]):
        if g[q] <= 0.0:
            return True
    return False


@njit(cache=True, nogil=True)
def cross_prob(ga, gb, var):
    """P(some gap crosses 0 between end gaps ga and gb): 1 on a sign change, else the bridge
    formula ``1 - prod (1 - exp(-2 ga gb / var))`` (half-spaces independent within a step)."""
    stay = 1.0
    for q in range(ga.shape[0]):
        if gb[q] <= 0.0 or ga[q] <= 0.0:
            return 1.0
        x = 2.0 * ga[q] * gb[q] / var[q]
        if x <= _NO_CROSSING_X:
            stay *= 1.0 - math.exp(-x)
    return 1.0 - stay


@njit(cache=True, nogil=True)
def exit_step(Wr, bias, K, R, Z0, p, z, xi, decay, noise, sigma, dt, dn2, use_bridge, z1, s, ga,
              gb, var):
    """Step path p from z (gaps ga) to z1 (gaps gb) with standard normals xi.

    Returns ``(sure, prob)``: ``sure`` when some gap at z1 is <= 0 (crossed); else ``prob`` is
    the bridge crossing probability (0 without the bridge test), and the path crossed when the
    caller's uniform draw is below it (drawn only then, so the streams do not move otherwise).
    """
    ou_advance(Z0, p, z, xi, decay, noise, z1)
    facet_gaps(Wr, bias, z1, K, R, s, gb)
    if any_nonpos(gb):
        return True, 1.0
    if not use_bridge:
        return False, 0.0
    gap_variances(dn2, sigma, dt, var)
    return False, cross_prob(ga, gb, var)


@njit(cache=True, nogil=True)
def take_point(z, zsrc, g, gsrc):
    """``z = zsrc`` and its gaps ``g = gsrc``."""
    for m in range(z.shape[0]):
        z[m] = zsrc[m]
    for q in range(g.shape[0]):
        g[q] = gsrc[q]


@njit(cache=True, nogil=True)
def facet_weights(ga, gb, var, cw):
    """``cw[q]``: facet q's crossing probability over the step (:mod:`.bridge`); returns the sum."""
    C = 0.0
    for q in range(ga.shape[0]):
        cw[q] = facet_weight(ga[q], gb[q], var[q])
        C += cw[q]
    return C


@njit(cache=True, nogil=True)
def pick_facet(cw, u):
    """The facet q with ``sum cw[:q] <= u < sum cw[:q+1]`` (u uniform on [0, sum cw))."""
    q = 0
    acc = cw[0]
    while acc <= u and q < cw.shape[0] - 1:
        q += 1
        acc += cw[q]
    return q


@njit(cache=True, nogil=True)
def bridge_midpoint(Wr, bias, K, R, q, y, z, z1, ga, gb, s_mid, xi, d, zm, s, gm):
    """Midpoint ``zm`` (gaps ``gm``) of the bridge from z to z1 whose facet q has gap y.

    The midpoint is ``(z + z1)/2 + s_mid xi`` with the noise's component along the facet normal
    ``d = w_i - w_j`` set so that the gap is y (:mod:`.bridge`, step 2). ``xi`` (M standard
    normals) may be ``zm`` itself; ``d`` is a workspace (M,).
    """
    M = z.shape[0]
    nR = R.shape[0]
    i = K[q // nR]
    j = R[q % nR]
    dd = 0.0
    dxi = 0.0
    for m in range(M):
        d[m] = (Wr[i, m] if m <= i else 0.0) - (Wr[j, m] if m <= j else 0.0)
        dd += d[m] * d[m]
        dxi += d[m] * xi[m]
    f = ((y - 0.5 * (ga[q] + gb[q])) / s_mid - dxi) / dd
    for m in range(M):
        zm[m] = 0.5 * (z[m] + z1[m]) + s_mid * (xi[m] + f * d[m])
    facet_gaps(Wr, bias, zm, K, R, s, gm)


@njit(cache=True, nogil=True)
def midpoint_crossing(ga, gb, gm, var):
    """``(sum_q Q_q, pl, q_cross)`` at a midpoint with gaps gm (:mod:`.bridge`, step 3):
    P(crossing in the left half | zm) and P(crossing | zm); the midpoint is accepted with
    probability ``q_cross / sum_q Q_q``."""
    qs = 0.0
    for q in range(ga.shape[0]):
        qs += gap_crossing(gm[q], ga[q], gb[q], var[q])
    pl = cross_prob(ga, gm, var)
    return qs, pl, 1.0 - (1.0 - pl) * (1.0 - cross_prob(gm, gb, var))


@njit(cache=True, nogil=True)
def plain_midpoint(Wr, bias, K, R, z, z1, s_mid, xi, zm, s, gm):
    """Unconditioned midpoint ``(z + z1)/2 + s_mid xi`` of a step flagged by a sign change at its
    end (no bridge test: every midpoint crosses). Returns pl, 1 when some gap at zm is <= 0.
    ``xi`` may be ``zm`` itself."""
    for m in range(z.shape[0]):
        zm[m] = 0.5 * (z[m] + z1[m]) + s_mid * xi[m]
    facet_gaps(Wr, bias, zm, K, R, s, gm)
    return 1.0 if any_nonpos(gm) else 0.0


@njit(cache=True, nogil=True)
def keep_half(left, z, z1, zm, ga, gb, gm):
    """Keep the half ``[z, zm]`` (left: the first crossing is in it) or ``[zm, z1]``."""
    if left:
        take_point(z1, zm, gb, gm)
    else:
        take_point(z, zm, ga, gm)


@njit(cache=True, nogil=True)
def exit_point(z, z1, out, p):
    """``out[p] = (z + z1)/2``: the exit point, the middle of the last refinement interval."""
    for m in range(z.shape[0]):
        out[p, m] = 0.5 * (z[m] + z1[m])


@njit(cache=True, nogil=True)
def occupation_step(Wr, bias, gram, k, rmax, metric, eps_sorted, wmax, pairs, z, s, stat, ws_G,
                    ws_v, ws_i, occ, inc):
    """Add ``inc`` to ``occ[r, e]`` for every order-r tube of radius ``eps_sorted[e]`` holding z.

    ``inc``: dt on the CPU (float occupation times), 1 on the GPU (integer step counts). The
    workspaces are those of :func:`discosim._kernels.pointstats.point_workspace`.
    """
    n_eps = eps_sorted.shape[0]
    lower_matvec(Wr, z, 1.0, bias, s)
    point_stats(s, gram, k, rmax, metric, eps_sorted[n_eps - 1], wmax, pairs, ws_G, ws_v, ws_i,
                stat)
    for r in range(rmax):
        for e in range(n_eps):
            if stat[r] <= eps_sorted[e]:
                occ[r, e] += inc
