"""Monte Carlo integrals of the volume family (THEORY §5): the fibre tube of one slice with a bias,
at finite R, and its eps -> 0 constant ``alpha_J(R)``.

They have no closed form with a bias (``S_J`` is affine and ``Gamma_J`` no cone), so they are
integrated by Monte Carlo here, beside the estimators, and :mod:`discosim.theory.volumes` keeps
closed forms only. The integrand is smooth (an independent route from the hit-or-miss samplers).
"""

import numpy as np

from discosim._core.seeding import as_generator, seed_or_rng
from discosim.model.selection import tie_straddles_cut
from discosim.theory.volumes import log_leading_tube_fraction, log_unit_ball_volume, slice_geometry

__all__ = ["slice_fibre_fraction", "finite_radius_alpha"]


def _fibre_weights(reduced_weights, bias, k, J, eps, radius, dim, n, rng):
    """Per-sample integrand of :func:`slice_fibre_fraction` (see there) and its log prefactor."""
    Wr = np.asarray(reduced_weights, dtype=float)
    M = Wr.shape[0]
    b = np.zeros(M) if bias is None else np.asarray(bias, dtype=float)
    J = [int(j) for j in J]
    r = len(J) - 1
    N, L, p = slice_geometry(Wr, b, J)
    m = M - r

    def ball(n_, d_):
        g = rng.standard_normal((n_, d_))
        g /= np.linalg.norm(g, axis=1)[:, None]
        return g * rng.random(n_)[:, None] ** (1.0 / d_)

    s = ball(n, m) * radius  # uniform in the (M - r)-ball of L
    nn = ball(n, r) * eps  # uniform in the r-ball of N_J
    y = p + s @ L
    sy = y @ Wr.T + b
    others = [i for i in range(M) if i not in J]
    v = sy[:, J[0]]
    above = np.sum(sy[:, others] > v[:, None], axis=1)
    inside = tie_straddles_cut(above, r + 1, k)
    pn = p + nn @ N
    t = 1.0 - (np.sum(pn * pn, axis=1) + np.sum(s * s, axis=1)) / radius ** 2
    w = np.where(inside & (t > 0), np.maximum(t, 0.0) ** (0.5 * (dim - M)), 0.0)
    log_pref = (log_unit_ball_volume(r) + log_unit_ball_volume(m) + log_unit_ball_volume(dim - M)
                - log_unit_ball_volume(dim) + r * np.log(eps / radius))
    return w, float(log_pref)


def slice_fibre_fraction(reduced_weights, bias, k, J, eps, radius, dim, n_samples=400_000,
                         seed=None, *, rng=None):
    """Fraction of ``B_D(0,R)`` in the normal fibre tube of slice J, any bias (THEORY §5).

    Writing a point as ``p + s + n + u`` (``p`` the foot of the affine ``S_J``, ``s`` in its direction
    space L within the row space, ``n in N_J`` with ``|n| <= eps``, ``u`` in the (D-M)-dim
    complement of the row space),

    ``lambda_D = int_{|n|<=eps} int_L 1{p+s in Gamma_J} omega_{D-M} (R^2 - |p+n|^2 - |s|^2)_+^{(D-M)/2} ds dn``,

    integrated by Monte Carlo with n uniform in the r-ball of radius eps and s uniform in the
    (M-r)-ball of radius R (a smooth integrand: an independent route from hit-or-miss sampling
    of the ball). With b = 0 it equals ``alpha_J I_{eps^2/R^2}(r/2, d/2+1)``.

    ``seed`` (or ``rng``, scipy's name): None, an int, a SeedSequence or a Generator (used as
    it is; :func:`discosim._core.seeding.as_generator`).

    Returns
    -------
    (value, stderr) : tuple of float
    """
    rng = as_generator(seed_or_rng(seed, rng, "slice_fibre_fraction"))
    w, log_pref = _fibre_weights(reduced_weights, bias, k, J, eps, radius, dim, n_samples, rng)
    scale = np.exp(log_pref)
    return float(scale * w.mean()), float(scale * w.std(ddof=1) / np.sqrt(w.size))


def finite_radius_alpha(reduced_weights, bias, k, J, radius, dim, n_samples=400_000, seed=None,
                        *, rng=None):
    """``alpha_J(R) = lambda_d(Gamma_J cap B_R) / (omega_d R^d)`` with affine ``S_J`` (THEORY §2).

    The eps -> 0 limit of :func:`slice_fibre_fraction` divided by the full-subspace leading order;
    equals ``alpha_J`` for b = 0 and tends to it as R -> infinity. Returns ``(value, stderr)``;
    ``seed`` as for :func:`slice_fibre_fraction`.
    """
    rng = as_generator(seed_or_rng(seed, rng, "finite_radius_alpha"))
    r = len(J) - 1
    tiny = 1e-9 * radius  # the n-integral shrinks to the point p: weights at |p+n| = |p|
    w, log_pref = _fibre_weights(reduced_weights, bias, k, J, tiny, radius, dim, n_samples, rng)
    # divide by the leading full-subspace fraction omega_r omega_d (eps/R)^r / omega_D
    log_lead = float(log_leading_tube_fraction(tiny, radius, dim, r))
    scale = np.exp(log_pref - log_lead)
    return float(scale * w.mean()), float(scale * w.std(ddof=1) / np.sqrt(w.size))
