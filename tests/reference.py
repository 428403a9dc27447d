"""Slow, obviously correct full-dimensional twins of the fast kernels (plain NumPy / SciPy).

Nothing here uses reduced coordinates: points live in R^D, scores are ``W x + b``, distances are
found by projecting in R^D or by a generic constrained optimiser.
"""

import itertools

import numpy as np
from scipy import optimize


def uniform_ball_points(rng, n, dim, radius):
    """Uniform points of B_D(0, R): Gaussian direction times R U^(1/D)."""
    g = rng.standard_normal((n, dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * radius * rng.random(n)[:, None] ** (1.0 / dim)


def scores(W, b, X):
    return X @ W.T + b


def score_window_stat(s, k, r):
    """min over windows of r+1 consecutive sorted scores holding ranks k, k+1 of the spread."""
    g = np.sort(s)[::-1]
    M = len(g)
    spreads = [g[p - 1] - g[p + r - 1] for p in range(1, M - r + 1) if p <= k and p + r >= k + 1]
    return min(spreads) if spreads else np.inf


def straddles(s, J, k, tol=1e-9):
    """Whether the experts J (tied in s) sit across ranks k and k+1."""
    v = np.mean(s[list(J)])
    others = np.array([i for i in range(len(s)) if i not in J])
    above = int(np.sum(s[others] > v + tol)) if others.size else 0
    ties = int(np.sum(np.abs(s[others] - v) <= tol)) if others.size else 0
    return above <= k - 1 and above + len(J) + ties >= k + 1


def project_on_tie_subspace(W, b, x, J):
    """Projection of x on S_J = {s_j = s_j0, j in J} in R^D, by least squares."""
    J = list(J)
    A = W[J[1:]] - W[J[0]]
    c = b[J[1:]] - b[J[0]]
    # y = x - A^T lam with A y + c = 0
    lam = np.linalg.lstsq(A @ A.T, A @ x + c, rcond=None)[0]
    return x - A.T @ lam


def normal_fibre_distance(W, b, k, x, r):
    """min over |J| = r+1 whose projection of x straddles, of |x - proj|: the normal tube stat."""
    best = np.inf
    for J in itertools.combinations(range(W.shape[0]), r + 1):
        y = project_on_tie_subspace(W, b, x, J)
        if straddles(W @ y + b, J, k):
            best = min(best, np.linalg.norm(x - y))
    return best


def euclidean_distance_bruteforce(W, b, k, x, r, only_within=np.inf):
    """dist(x, cl Gamma^(r)) = min over J, |J| = r+1, and admissible above-sets A of the distance
    to the convex cone {s_J equal, s_A >= v, s_rest <= v} (THEORY §4.1), each by SLSQP.

    ``only_within``: skip slices whose subspace is already farther (a lower bound) — exactness
    is kept since dist to the cone >= dist to S_J.
    """
    M = W.shape[0]
    best = np.inf
    for J in itertools.combinations(range(M), r + 1):
        J = list(J)
        y0 = project_on_tie_subspace(W, b, x, J)
        if np.linalg.norm(x - y0) > min(best, only_within):
            continue
        rest = [i for i in range(M) if i not in J]
        for c in range(max(0, k - r), min(k - 1, len(rest)) + 1):
            for A in itertools.combinations(rest, c):
                cons = [{"type": "eq", "fun": (lambda y, j=j: (W[j] - W[J[0]]) @ y + b[j] - b[J[0]])}
                        for j in J[1:]]
                for a in rest:
                    sign = 1.0 if a in A else -1.0
                    cons.append({"type": "ineq",
                                 "fun": (lambda y, a=a, sg=sign: sg * ((W[a] - W[J[0]]) @ y + b[a] - b[J[0]]))})
                res = optimize.minimize(lambda y: 0.5 * np.sum((y - x) ** 2), y0,
                                        jac=lambda y: y - x, constraints=cons, method="SLSQP",
                                        options={"ftol": 1e-14, "maxiter": 500})
                y = res.x
                ok = all(cn["fun"](y) >= -1e-7 if cn["type"] == "ineq" else abs(cn["fun"](y)) <= 1e-7
                         for cn in cons)
                if ok:
                    best = min(best, np.linalg.norm(y - x))
    return best


def order1_facet_distance(W, b, k, x):
    """THEORY §4.1: dist(x, Gamma) = min_{i in K, j not in K} (s_i - s_j) / |w_i - w_j|."""
    s = W @ x + b
    order = np.argsort(-s)
    K, rest = order[:k], order[k:]
    return min((s[i] - s[j]) / np.linalg.norm(W[i] - W[j]) for i in K for j in rest)
