"""Random input points in reduced coordinates (THEORY §3), vectorised NumPy.

``ball``: uniform in ``B_D(0, R)``: the first D coordinates of a uniform point of
``S^{D+1} subset R^{D+2}`` are uniform in the D-ball, so the reduced point is
``R G / sqrt(|G|^2 + chi^2_{D+2-M})`` with ``G ~ N(0, I_M)`` (the numba kernels use the same law).
``gaussian``: ``x ~ N(0, R^2/D I_D)`` (|x| is about R), i.e. ``z = (R/sqrt(D)) G``.
``sphere``: uniform on ``S^{D-1}(R)`` (THEORY §9), ``z = R G / sqrt(|G|^2 + chi^2_{D-M})``.
"""

import math

import numpy as np

__all__ = ["reduced_points", "DISTRIBUTIONS"]

DISTRIBUTIONS = ("ball", "gaussian", "sphere")


def reduced_points(rng, n, n_experts, dim, radius, distribution="ball"):
    """(n, M) reduced coordinates of n random inputs; draws G first, then the chi-square."""
    g = rng.standard_normal((n, n_experts))
    if distribution == "ball":
        c = rng.chisquare(dim + 2 - n_experts, size=n)
        return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]
    if distribution == "sphere":
        c = rng.chisquare(dim - n_experts, size=n) if dim > n_experts else np.zeros(n)
        return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]
    return g * (radius / math.sqrt(dim))
