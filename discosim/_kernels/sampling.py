"""Random draws inside numba kernels, all from an explicit numpy Generator passed in.

Uniform points of ``B_D(0, R)`` in reduced coordinates (THEORY §3): the first D coordinates of a
uniform point of the sphere ``S^{D+1} subset R^{D+2}`` are uniform in the D-ball (Archimedes'
projection theorem), so the reduced point is ``z = R G / sqrt(|G|^2 + C)`` with ``G ~ N(0, I_M)``
and ``C ~ chi^2_{D+2-M}``. This equals THEORY's ``R U^{1/D} G / sqrt(|G|^2 + chi^2_{D-M})`` in
law and saves the uniform and the power. The same lift with ``C ~ chi^2_{D-M}`` gives the reduced
coordinates of the direction ``x / |x|``, and a uniform point of an m-ball inside an affine
subspace is the same construction in that subspace (:func:`sphere_lift_norm` serves all three).
`discosim.model.inputs.reduced_points` is the vectorised NumPy version of the same law.
"""

import math

from numba import njit


@njit(cache=True, nogil=True)
def standard_gamma(rng, shape):
    """Gamma(shape, 1) by Marsaglia & Tsang (2000), exact; shape < 1 via the U^(1/a) boost."""
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = rng.random() ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = rng.standard_normal()
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng.random()
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:
            return d * v * boost
        if math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return d * v * boost


@njit(cache=True, nogil=True)
def chi_square(rng, df):
    """chi^2 with ``df`` degrees of freedom (df > 0)."""
    return 2.0 * standard_gamma(rng, 0.5 * df)


@njit(cache=True, nogil=True)
def sphere_lift_norm(rng, ss, df):
    """``sqrt(|G|^2 + C)``, ``C ~ chi^2_df``, for a Gaussian vector G of squared norm ``ss``.

    ``G / sphere_lift_norm`` are the first coordinates of a uniform point of the unit sphere of
    ``R^{len(G) + df}``: with ``df = D + 2 - M`` the reduced point of a uniform point of the
    unit D-ball, with ``df = D - M`` that of a uniform direction (module docstring).
    """
    return math.sqrt(ss + chi_square(rng, df))


@njit(cache=True, nogil=True)
def gaussian_vector(rng, out):
    """Fill ``out`` with iid N(0, 1); return its squared norm."""
    ss = 0.0
    for i in range(out.shape[0]):
        x = rng.standard_normal()
        out[i] = x
        ss += x * x
    return ss


@njit(cache=True, nogil=True)
def random_subset(rng, n, size, out):
    """Uniform ``size``-subset of range(n) into ``out[:size]``, sorted (Floyd's algorithm)."""
    m = 0
    for j in range(n - size, n):
        t = rng.integers(0, j + 1)
        found = False
        for i in range(m):
            if out[i] == t:
                found = True
                break
        out[m] = j if found else t
        m += 1
    sort_small(out, size)


@njit(cache=True, nogil=True)
def sort_small(out, size):
    """Insertion sort of ``out[:size]`` in place (size is tiny: a tie set)."""
    for i in range(1, size):
        v = out[i]
        j = i
        while j > 0 and out[j - 1] > v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
