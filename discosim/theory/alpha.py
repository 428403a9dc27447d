"""The relative angular size ``alpha_J`` of a slice (THEORY §2, §5), in closed or quadrature form.

``alpha_J = lambda_d(Gamma_J cap B(0,R)) / (omega_d R^d)`` with ``d = D - r``, ``|J| = r + 1``.

Two deterministic routes live here (the Monte Carlo route is in :mod:`discosim.volumes.constants`):

- Gaussian orthants (derived): for ``Y ~ N(0, P_{S_J})`` the vector
  ``delta_i = (w_i - w_{j0}).Y`` (i not in J) is Gaussian with covariance ``V P_{S_J} V^T`` and
  ``alpha_J = sum_{A subset J^c, k-r <= |A| <= k-1} P(delta_A > 0, delta_{A^c} < 0)``,
  each orthant by Genz's algorithm (``scipy.stats.multivariate_normal.cdf``).
- Orthonormal rows (derived): every slice has the same alpha; the deltas are equicorrelated with
  ``rho = 1/(r+2)`` and, with ``n = M - r - 1``,
  ``alpha = sum_c int phi(z) C(n,c) p(z)^c (1-p(z))^(n-c) dz``, ``p(z) = Phi(z sqrt(rho/(1-rho)))``.
"""

import itertools
import math

import numpy as np

from discosim._core.seeding import as_generator, seed_or_rng

__all__ = ["orthonormal_alpha", "alpha_orthants", "slice_normal_basis", "orthant_terms",
           "genz_error_bound", "GENZ_ABS_EPS"]

# absolute error requested from Genz's algorithm for each orthant (scipy's default, made explicit)
GENZ_ABS_EPS = 1e-5


def orthonormal_alpha(n_experts, k, order):
    """alpha of every order-``order`` slice of a router with orthonormal rows (THEORY §5).

    Parameters
    ----------
    n_experts, k, order : int
        M, k and r. The straddle count c of experts above the tie runs over
        ``max(0, k-r) .. min(k-1, M-r-1)``.
    """
    M, r = n_experts, order
    n = M - r - 1
    rho = 1.0 / (r + 2)
    scale = math.sqrt(rho / (1.0 - rho))
    cs = np.arange(max(0, k - r), min(k - 1, n) + 1)
    if cs.size == 0:
        return 0.0

    from scipy import integrate, stats  # imported on use: scipy.stats alone costs 0.7 s

    def integrand(z):
        p = stats.norm.cdf(z * scale)
        return stats.norm.pdf(z) * stats.binom.pmf(cs, n, p).sum()

    val, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-11, limit=200)
    return float(val)


def slice_normal_basis(reduced_weights, J):
    """Orthonormal basis (r, M) of the normal space N_J in reduced coordinates and det G_J.

    ``G_J`` is the Gram matrix of ``w_j - w_{j0}``, j in J (independent of the choice of j0).
    """
    V = reduced_weights[list(J[1:])] - reduced_weights[J[0]]
    q, rr = np.linalg.qr(V.T)
    return q.T, float(np.prod(np.diag(rr)) ** 2)


def orthant_terms(n_experts, k, order):
    """Number of Gaussian orthant probabilities one slice needs: sum_c C(M-r-1, c)."""
    n = n_experts - order - 1
    return sum(math.comb(n, c) for c in range(max(0, k - order), min(k - 1, n) + 1))


def genz_error_bound(n_experts, k, order):
    """Stated absolute error of :func:`alpha_orthants`: one ``GENZ_ABS_EPS`` per orthant."""
    return orthant_terms(n_experts, k, order) * GENZ_ABS_EPS


def alpha_orthants(reduced_weights, k, J, seed=None, *, rng=None):
    """alpha_J of slice ``J`` by the Gaussian orthant sum (Genz), THEORY §5 (a).

    Parameters
    ----------
    reduced_weights : ndarray, shape (M, M)
        Tie weights in reduced coordinates (``Router.reduced_weights``).
    k : int
    J : sequence of int
        The tied experts, ``|J| = r + 1``.
    seed : None, int, SeedSequence or numpy Generator, optional
        Genz's algorithm is randomised quasi-Monte Carlo; give a seed to make it repeatable. A
        Generator is used as it is and advances (:func:`discosim._core.seeding.as_generator`).
    rng : numpy Generator, optional
        The same argument under scipy's name (give one of the two).

    Notes
    -----
    Each orthant is computed to absolute error ``GENZ_ABS_EPS``; the sum is within
    :func:`genz_error_bound`.
    """
    rng = as_generator(seed_or_rng(seed, rng, "alpha_orthants"))
    Wr = np.asarray(reduced_weights, dtype=float)
    M = Wr.shape[0]
    J = tuple(int(j) for j in J)
    r = len(J) - 1
    basis, _ = slice_normal_basis(Wr, J)
    proj_S = np.eye(M) - basis.T @ basis
    others = [i for i in range(M) if i not in J]
    V = Wr[others] - Wr[J[0]]
    cov = V @ proj_S @ V.T
    n = len(others)
    lo, hi = max(0, k - r), min(k - 1, n)
    if n == 0:
        return 1.0 if lo <= 0 <= hi else 0.0
    from scipy import stats  # imported on use: 0.7 s

    total = 0.0
    for c in range(lo, hi + 1):
        for above in itertools.combinations(range(n), c):
            sign = np.ones(n)
            sign[list(above)] = -1.0
            cov_s = cov * np.outer(sign, sign)
            if n == 1:
                total += 0.5
            else:
                total += float(stats.multivariate_normal.cdf(np.zeros(n), mean=np.zeros(n),
                                                             cov=cov_s, abseps=GENZ_ABS_EPS,
                                                             rng=rng))
    return total
