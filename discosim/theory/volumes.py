"""Closed forms for tube volumes (THEORY §5); numpy/scipy only.

Raw volumes of D-balls under- and overflow at real sizes (``Gamma(D/2+1)`` overflows near
D = 340, ``omega_D`` underflows near D = 440), so everything here is a *fraction of the ball*
``B_D(0, R)`` or a *log-volume*.

Formulas
--------
- ``omega_n = pi^(n/2) / Gamma(n/2 + 1)``, the volume of the unit n-ball.
- Full-subspace tube, codimension r, ``d = D - r`` (THEORY §5, derived; r = 1 is the paper's
  hyperplane formula):
  ``V_r(eps, R) / (omega_D R^D) = I_{eps^2/R^2}(r/2, d/2 + 1)`` (regularised incomplete beta).
- Leading order (paper): ``V_r ~ omega_r omega_{D-r} eps^r R^(D-r)``.
- Slice J, normal metric, b = 0: ``alpha_J V_r``; union ``U_r = A_r V_r + O(eps^(r+1))``.
- Ratio theorem (paper Thm A.18, constants derived):
  ``U_n / U_m -> (omega_n omega_{D-n} A_n) / (omega_m omega_{D-m} A_m) (eps/R)^(n-m)``.
- Score metric: per slice ``(r+1) eps^r det(G_J)^(-1/2) alpha_J omega_{D-r} R^(D-r)``.
- Inputs uniform on the sphere ``S^{D-1}(R)`` (THEORY §9), b = 0: per slice exactly
  ``alpha_J I_{eps^2/R^2}(r/2, d/2)`` (the ball has ``d/2 + 1``).
- With a bias (THEORY §2, §5): ``S_J`` is affine, ``Gamma_J`` is no cone, and the per-slice constant
  at finite R is ``alpha_J(R) = lambda_d(Gamma_J cap B_R) / (omega_d R^d)``; the fibre tube's
  fraction of the ball is the integral of :func:`discosim.volumes.integrals.slice_fibre_fraction`
  (a Monte Carlo integral, so it lives with the estimators; leading order
  ``alpha_J(R) omega_r omega_d (eps/R)^r / omega_D``).
"""

import numpy as np
from scipy import special


__all__ = [
    "log_unit_ball_volume", "unit_ball_volume", "tube_fraction", "log_tube_fraction",
    "log_tube_volume", "leading_tube_fraction", "log_leading_tube_fraction",
    "leading_score_fraction", "slice_sum_fraction", "predicted_union_fraction",
    "ratio_constant", "predicted_ratio", "relative_correction", "score_polytope_volume",
    "inverse_tube_fraction", "sphere_tube_fraction", "exact_relative_correction",
    "slice_geometry",
]


def log_unit_ball_volume(n):
    """``log omega_n``, stable for any n >= 0 (array-friendly)."""
    n = np.asarray(n, dtype=float)
    return 0.5 * n * np.log(np.pi) - special.gammaln(0.5 * n + 1.0)


def unit_ball_volume(n):
    """``omega_n = pi^(n/2) / Gamma(n/2 + 1)``; underflows to 0 for n beyond ~440 (use the log)."""
    return np.exp(log_unit_ball_volume(n))


def _ratio(eps, radius):
    return np.minimum(np.asarray(eps, dtype=float) / float(radius), 1.0)


def tube_fraction(eps, radius, dim, order):
    """Fraction of ``B_D(0,R)`` within distance eps of a codimension-``order`` subspace.

    ``I_{eps^2/R^2}(r/2, (D-r)/2 + 1)`` (THEORY §5); exact for every eps (1 when eps >= R).
    """
    x = _ratio(eps, radius) ** 2
    return special.betainc(0.5 * order, 0.5 * (dim - order) + 1.0, x)


def log_tube_fraction(eps, radius, dim, order):
    """Natural log of :func:`tube_fraction`, finite even where the fraction underflows.

    Uses ``I_x(a,b) = x^a (1-x)^b 2F1(a+b, 1; a+1; x) / (a B(a,b))`` where betainc underflows.
    """
    a, b = 0.5 * order, 0.5 * (dim - order) + 1.0
    ratio = np.atleast_1d(_ratio(eps, radius))
    x = ratio ** 2
    with np.errstate(divide="ignore"):
        out = np.log(special.betainc(a, b, x))
    bad = ~np.isfinite(out) | (out < -600)
    if np.any(bad):
        xb = x[bad]
        # log x from the ratio itself: x = ratio^2 may underflow where the ratio does not.
        out[bad] = (2 * a * np.log(ratio[bad]) + b * np.log1p(-xb) - np.log(a) - special.betaln(a, b)
                    + np.log(special.hyp2f1(a + b, 1.0, a + 1.0, xb)))
    return out if np.ndim(eps) else float(out[0])


def log_tube_volume(eps, radius, dim, order):
    """Natural log of the tube volume ``V_r(eps, R)`` itself (never the raw volume)."""
    return log_tube_fraction(eps, radius, dim, order) + log_unit_ball_volume(dim) + dim * np.log(radius)


def inverse_tube_fraction(fraction, radius, dim, order):
    """The eps whose full-subspace tube covers ``fraction`` of the ball (inverse of betainc)."""
    x = special.betaincinv(0.5 * order, 0.5 * (dim - order) + 1.0, fraction)
    return radius * np.sqrt(x)


def log_leading_tube_fraction(eps, radius, dim, order):
    """log of ``omega_r omega_{D-r} (eps/R)^r / omega_D``, the leading order of the fraction."""
    r = order
    return (log_unit_ball_volume(r) + log_unit_ball_volume(dim - r) - log_unit_ball_volume(dim)
            + r * np.log(np.asarray(eps, dtype=float) / radius))


def leading_tube_fraction(eps, radius, dim, order):
    """Leading order ``omega_r omega_{D-r} eps^r R^(D-r) / (omega_D R^D)`` (paper)."""
    return np.exp(log_leading_tube_fraction(eps, radius, dim, order))


def score_polytope_volume(eps, order, det_gram):
    """Volume ``(r+1) eps^r / sqrt(det G_J)`` of the score fibre {spread of s_J <= eps} (§5)."""
    return (order + 1) * np.asarray(eps, dtype=float) ** order / np.sqrt(det_gram)


def leading_score_fraction(eps, radius, dim, order, score_weight_sum):
    """Leading-order fraction of the order-r score tube.

    ``sum_J (r+1) det(G_J)^(-1/2) alpha_J * omega_{D-r} eps^r R^(D-r) / (omega_D R^D)``; pass the
    sum over slices as ``score_weight_sum`` (see :func:`discosim.volumes.constants.slice_constants`).
    """
    r = order
    log_f = (log_unit_ball_volume(dim - r) - log_unit_ball_volume(dim)
             + r * np.log(np.asarray(eps, dtype=float) / radius))
    return score_weight_sum * np.exp(log_f)


def slice_sum_fraction(alpha_sum, eps, radius, dim, order):
    """``sum_J alpha_J V_r(eps, R)`` as a fraction of the ball (exact slice sum, b = 0)."""
    return alpha_sum * tube_fraction(eps, radius, dim, order)


def predicted_union_fraction(alpha_sum, eps, radius, dim, order):
    """Leading-order ``U_r / (omega_D R^D) = A_r omega_r omega_{D-r} (eps/R)^r / omega_D``."""
    return alpha_sum * leading_tube_fraction(eps, radius, dim, order)


def ratio_constant(alpha_sum_n, alpha_sum_m, n, m, dim):
    """``(omega_n omega_{D-n} A_n) / (omega_m omega_{D-m} A_m)`` of the ratio theorem."""
    log_c = (log_unit_ball_volume(n) + log_unit_ball_volume(dim - n)
             - log_unit_ball_volume(m) - log_unit_ball_volume(dim - m))
    return alpha_sum_n / alpha_sum_m * np.exp(log_c)


def predicted_ratio(alpha_sum_n, alpha_sum_m, n, m, dim, eps, radius):
    """Ratio theorem: ``U_n / U_m ~ ratio_constant * (eps/R)^(n-m)``."""
    return ratio_constant(alpha_sum_n, alpha_sum_m, n, m, dim) * (np.asarray(eps, float) / radius) ** (n - m)


def relative_correction(eps, radius, dim, order):
    """First relative correction of the exact tube to its leading order, ``-r d eps^2/(2(r+2)R^2)``."""
    d = dim - order
    return -order * d * (np.asarray(eps, dtype=float) / radius) ** 2 / (2.0 * (order + 2))


def sphere_tube_fraction(eps, radius, dim, order):
    """Fraction of the sphere ``S^{D-1}(R)`` within eps of a codimension-r subspace (THEORY §9).

    ``|P_N u|^2 / R^2 ~ Beta(r/2, (D-r)/2)`` for u uniform on the sphere, so the fraction is
    ``I_{eps^2/R^2}(r/2, d/2)`` (the ball's is ``I(r/2, d/2 + 1)``).
    """
    x = _ratio(eps, radius) ** 2
    return special.betainc(0.5 * order, 0.5 * (dim - order), x)


def exact_relative_correction(eps, radius, dim, order):
    """``V_r / leading - 1`` exactly, from the closed form (first term: :func:`relative_correction`)."""
    return np.expm1(log_tube_fraction(eps, radius, dim, order)
                    - log_leading_tube_fraction(eps, radius, dim, order))


def slice_geometry(reduced_weights, bias, J):
    """Orthonormal bases of N_J (r, M) and of its complement L (M - r, M), and the foot point p.

    ``S_J = {z : (w_j - w_j0).z + b_j - b_j0 = 0}`` in reduced coordinates; ``p`` is its point of
    least norm (it lies in N_J).
    """
    Wr = np.asarray(reduced_weights, dtype=float)
    b = np.zeros(Wr.shape[0]) if bias is None else np.asarray(bias, dtype=float)
    J = [int(j) for j in J]
    V = Wr[J[1:]] - Wr[J[0]]
    c = -(b[J[1:]] - b[J[0]])
    p = V.T @ np.linalg.solve(V @ V.T, c)
    q, _ = np.linalg.qr(V.T, mode="complete")
    r = len(J) - 1
    return q[:, :r].T, q[:, r:].T, p
