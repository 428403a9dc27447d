"""Random input points, in reduced coordinates (THEORY §3) or in full dimension, vectorised NumPy.

``inputs="ball"``: uniform in ``B_D(0, R)``. The first D coordinates of a uniform point of
``S^{D+1} subset R^{D+2}`` are uniform in the D-ball, so the reduced point is
``R G / sqrt(|G|^2 + chi^2_{D+2-M})`` with ``G ~ N(0, I_M)`` (the numba kernels use the same law),
and the full point is ``R G / sqrt(|G|^2 + chi^2_2)`` with ``G ~ N(0, I_D)``.
``inputs="gaussian"``: ``x ~ N(0, R^2/D I_D)`` (|x| is about R), i.e. ``z = (R/sqrt(D)) G``.
``inputs="sphere"`` (NumPy estimators only): uniform on ``S^{D-1}(R)`` (THEORY §9),
``z = R G / sqrt(|G|^2 + chi^2_{D-M})``.

Also the one start-point helper of the path estimators: a fixed start ``x0`` (checked, reduced)
or a random start per path drawn from ``inputs``.
"""

import math

import numpy as np

from discosim._core.errors import InputError, check_choice, check_finite_array, check_positive
from discosim._core.seeding import as_seed_sequence

__all__ = ["reduced_points", "ball_points", "start_point", "check_start", "INPUTS"]

INPUTS = ("ball", "gaussian")


def reduced_points(rng, n, n_experts, dim, radius, inputs="ball"):
    """(n, M) reduced coordinates of n random inputs; draws G first, then the chi-square."""
    g = rng.standard_normal((n, n_experts))
    if inputs == "ball":
        c = rng.chisquare(dim + 2 - n_experts, size=n)
        return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]
    if inputs == "sphere":
        c = rng.chisquare(dim - n_experts, size=n) if dim > n_experts else np.zeros(n)
        return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]
    return g * (radius / math.sqrt(dim))


def ball_points(rng, n, dim, radius):
    """(n, D) points uniform in ``B_D(0, radius)`` (full dimension; same law as above, M = D)."""
    g = rng.standard_normal((n, dim))
    c = rng.chisquare(2, size=n)
    return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]


def start_point(router, seed, scale=0.5):
    """A fixed start ``x0 = scale * G``, ``G ~ N(0, I_D)`` drawn from ``seed`` (studies, claims)."""
    rng = np.random.default_rng(as_seed_sequence(seed))
    return rng.standard_normal(router.dim) * scale


def _check_not_on_gamma(router, x0):
    s = np.sort(router.scores(x0[None, :])[0])[::-1]
    if s[router.k - 1] - s[router.k] <= 1e-12 * (abs(s[router.k - 1]) + 1.0):
        raise InputError("x0 lies on the discontinuity set Gamma (a tie across ranks k, k+1)")


def check_start(router, x0, inputs="ball", radius=1.0):
    """Validate a path start: a fixed ``x0`` or, with ``x0=None``, random starts from ``inputs``.

    Returns ``(x0, z0, inputs, radius)``: the start and its reduced coordinates (None, None for
    random starts).
    """
    radius = check_positive("radius", radius)
    if x0 is None:
        return None, None, check_choice("inputs", inputs, INPUTS), radius
    x0 = np.array(check_finite_array("x0", x0, 1), copy=True)
    if x0.shape != (router.dim,):
        raise InputError(f"x0 must have length D={router.dim}, got shape {x0.shape}")
    _check_not_on_gamma(router, x0)
    return x0, router.to_reduced(x0), inputs, radius
