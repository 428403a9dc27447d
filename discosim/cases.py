"""The exact cases that the claims, the studies and users share (THEORY §5, §6).

A *case* is a router, a start point or a fixed set-up whose law THEORY gives exactly, or whose
numbers a claim of ``discosim validate`` checks. Each is built here once: the claims
(:mod:`discosim.validation`), the studies (:mod:`discosim.app.studies`), the benchmark scripts and
the tests call these functions, so a case cannot drift apart between them, and a user who wants
to reproduce a claim's number starts from the same router and start point.

Routers of random ensembles
---------------------------
random_router        -- a router of a named ensemble: gaussian, orthonormal or correlated rows
slice_router         -- the slice set-up (:data:`SLICE_SETUP`): orthonormal M=4, D=8, k=2
biased_router        -- the slice router with a bias ~ 0.15 N(0, 1): S_J affine, Gamma_J no cone
ratio_router         -- orthonormal M=6, D=10, k=2: the ratio theorem and the tube sampler
score_tube_router    -- Gaussian M=6, D=12, k=2: score tubes (linear or cosine scores)
apex_router          -- orthonormal M=5, D=9, k=2: occupation times from the apex
smoothing_router     -- Gaussian M=8, D=64, k=2: the smoothing gate
levy_router          -- Gaussian M=2, D=6, top-1: one hyperplane, Levy's law

Routers built for a closed form
-------------------------------
orthant_router       -- top-1, facet normals ``w_0 - w_j`` orthonormal: a product of Levy laws
wedge_router         -- top-1, M=3, the cell of expert 0 a wedge of opening theta: Spitzer's law

Start points
------------
orthant_start        -- at given distances from the facets of an :func:`orthant_router`
ridge_start          -- at distance rho from a ridge, on its bisector, every other facet far
widest_ridge         -- the ridge of a router's widest cell, for :func:`ridge_start`
bounds_start         -- one facet at distance d, the others far: the §6 bounds pinch

Each named random case also comes as a dict (``RATIO_CASE`` ...: M, D, k, ensemble), so that a
study's grid starts from the claim's router. Random starts ``x0 = scale G`` are
:func:`discosim.model.inputs.start_point`.
"""

import itertools
import math

import numpy as np

from discosim._core.errors import InputError, check_choice, check_finite_array
from discosim.model.router import Router

__all__ = ["ENSEMBLES", "random_router", "SLICE_SETUP", "slice_router", "biased_router",
           "RATIO_CASE", "ratio_router", "SCORE_TUBE_CASE", "score_tube_router", "APEX_CASE",
           "apex_router", "SMOOTHING_CASE", "smoothing_router", "LEVY_CASE", "levy_router",
           "orthant_router", "orthant_start", "ORTHANT_DISTANCES", "wedge_router", "ridge_start",
           "widest_ridge", "bounds_start"]

ENSEMBLES = ("gaussian", "orthonormal", "correlated")


# ------------------------------------------------------------------ routers of random ensembles
def random_router(ensemble, n_experts, dim, k, seed=None, rho=0.0, kind="linear"):
    """A router of a random ensemble.

    Parameters
    ----------
    ensemble : {"gaussian", "orthonormal", "correlated"}
        iid N(0, 1/D) entries (:meth:`Router.gaussian`), Haar orthonormal rows
        (:meth:`Router.orthonormal`), or rows of pairwise correlation ``rho``
        (:meth:`Router.correlated`).
    n_experts, dim, k : int
        M, D and the number of active experts.
    seed : int, SeedSequence, Generator or None
        Seed of the gate matrix.
    rho : float
        Pairwise row correlation of ``correlated`` (ignored otherwise), in ``(-1/(M-1), 1)``.
    kind : {"linear", "cosine"}
        Score type.

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import random_router
    >>> random_router("orthonormal", 6, 10, 2, seed=0)
    Router(M=6, D=10, k=2, kind='linear', bias=False)
    """
    ensemble = check_choice("ensemble", ensemble, ENSEMBLES)
    if ensemble == "gaussian":
        return Router.gaussian(n_experts, dim, k, seed=seed, kind=kind)
    if ensemble == "orthonormal":
        return Router.orthonormal(n_experts, dim, k, seed=seed, kind=kind)
    return Router.correlated(n_experts, dim, k, rho, seed=seed, kind=kind)


def _case_router(case, seed, kind="linear"):
    return random_router(case["ensemble"], case["M"], case["D"], case["k"], seed=seed, kind=kind)


SLICE_SETUP = {"M": 4, "D": 8, "k": 2, "eps": 0.1, "radius": 1.0}
"""The slice claims' set-up: an orthonormal router M=4, D=8, k=2 (large alpha_J), eps=0.1, R=1."""


def slice_router(seed):
    """The router of the slice set-up :data:`SLICE_SETUP`: orthonormal, M=4, D=8, k=2.

    Its slices have large ``alpha_J`` (so their tubes are resolved by few samples) and the
    closed forms ``alpha_J I_{eps^2/R^2}(r/2, d/2+1)`` (THEORY §5) are exact for them; with M = 4
    the order-3 slice is the whole subspace ``{s_0 = .. = s_3}``.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import slice_router
    >>> router = slice_router(0)
    >>> router.n_experts, router.dim, router.k
    (4, 8, 2)
    """
    s = SLICE_SETUP
    return Router.orthonormal(s["M"], s["D"], s["k"], seed=seed)


def biased_router(seed, bias_scale=0.15):
    """The slice router with a bias ``b = bias_scale N(0, I_M)`` (THEORY §2, §5 at finite R).

    With a bias the slices ``S_J`` are affine and ``Gamma_J`` is no cone, so the per-slice tube is
    the finite-R integral (:func:`discosim.volumes.integrals.slice_fibre_fraction`), not
    ``alpha_J V_r``. The bias is drawn from ``default_rng([seed, 101])``.

    Parameters
    ----------
    seed : int
        Seed of the gate rows (:func:`slice_router`) and of the bias.
    bias_scale : float
        Standard deviation of the bias entries.

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import biased_router
    >>> biased_router(0)
    Router(M=4, D=8, k=2, kind='linear', bias=True)
    """
    base = slice_router(seed)
    b = bias_scale * np.random.default_rng([seed, 101]).standard_normal(base.n_experts)
    return Router(base.weights, base.k, bias=b)


RATIO_CASE = {"M": 6, "D": 10, "k": 2, "ensemble": "orthonormal"}


def ratio_router(seed):
    """Orthonormal M=6, D=10, k=2 (:data:`RATIO_CASE`): the ratio theorem's router.

    Orders 1..3 all have tubes the samplers resolve at eps/R down to 1e-3; the ``ratio_theorem``,
    ``scaling_law`` and ``importance_sampler`` claims and the ``volume_ratios`` and
    ``sampler_efficiency`` studies use it.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import ratio_router
    >>> ratio_router(1)
    Router(M=6, D=10, k=2, kind='linear', bias=False)
    """
    return _case_router(RATIO_CASE, seed)


SCORE_TUBE_CASE = {"M": 6, "D": 12, "k": 2, "ensemble": "gaussian"}


def score_tube_router(seed, kind="linear"):
    """Gaussian M=6, D=12, k=2 (:data:`SCORE_TUBE_CASE`): score tubes, linear or cosine.

    The ``score_tube_constant`` claim checks ``(r+1) det(G_J)^{-1/2} alpha_J`` on it (and the
    cosine router of the same gate), the ``tube_metrics`` study compares the three metrics on it.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None
    kind : {"linear", "cosine"}

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import score_tube_router
    >>> score_tube_router(0, kind="cosine")
    Router(M=6, D=12, k=2, kind='cosine', bias=False)
    """
    return _case_router(SCORE_TUBE_CASE, seed, kind)


APEX_CASE = {"M": 5, "D": 9, "k": 2, "ensemble": "orthonormal"}


def apex_router(seed):
    """Orthonormal M=5, D=9, k=2 (:data:`APEX_CASE`): occupation times from the apex.

    Without bias and with orthonormal rows, ``A_r = C(M, r+1) alpha_r`` is exact
    (:func:`discosim.theory.alpha.orthonormal_alpha`), so the apex occupation
    ``A_r int F_{chi^2_r}(eps^2/(sigma^2 s)) ds`` (THEORY §6) is a sharp prediction.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import apex_router
    >>> apex_router(0).n_experts
    5
    """
    return _case_router(APEX_CASE, seed)


SMOOTHING_CASE = {"M": 8, "D": 64, "k": 2, "ensemble": "gaussian"}


def smoothing_router(seed):
    """Gaussian M=8, D=64, k=2 (:data:`SMOOTHING_CASE`): the smoothing gate's router (THEORY §7).

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import smoothing_router
    >>> smoothing_router(0)
    Router(M=8, D=64, k=2, kind='linear', bias=False)
    """
    return _case_router(SMOOTHING_CASE, seed)


LEVY_CASE = {"M": 2, "D": 6, "k": 1, "ensemble": "gaussian"}


def levy_router(seed):
    """Gaussian M=2, D=6, top-1 (:data:`LEVY_CASE`): one hyperplane, the first hit is Levy's law.

    ``P(tau <= t) = 2 Phibar(d / (sigma sqrt t))`` with d the distance of the start to the
    hyperplane (:func:`discosim.theory.diffusion.levy_cdf`), exact for any start point.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import levy_router
    >>> levy_router(0)
    Router(M=2, D=6, k=1, kind='linear', bias=False)
    """
    return _case_router(LEVY_CASE, seed)


# ------------------------------------------------------------------ routers for a closed form
def orthant_router(n_experts, dim, lead=1.0):
    """A top-1 router whose facet normals ``w_0 - w_j`` are orthonormal: the cell is an orthant.

    ``w_0 = lead e_0`` and ``w_j = lead e_0 - e_j`` (j = 1..M-1), so ``w_0 - w_j = e_j``; the
    path's components along the normals are independent Brownian motions and
    ``P(tau > t) = prod_j erf(d_j / (sigma sqrt(2t)))``
    (:func:`discosim.theory.diffusion.orthant_survival`). Full row rank for ``lead != 0``.

    Parameters
    ----------
    n_experts, dim : int
        M and D (``M < D``).
    lead : float
        The common first coordinate of the rows.

    Returns
    -------
    Router

    Examples
    --------
    >>> from discosim.cases import orthant_router
    >>> router = orthant_router(4, 8)
    >>> (router.weights[0] - router.weights[1:]) @ (router.weights[0] - router.weights[1:]).T
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    W = np.zeros((n_experts, dim))
    W[:, 0] = lead
    for j in range(1, n_experts):
        W[j, j] = -1.0
    return Router(W, 1)


ORTHANT_DISTANCES = (0.1, 0.13, 0.17)
"""Facet distances of the ``first_hit_exact`` claim's orthant start (M = 4)."""


def orthant_start(router, distances):
    """The start at distances ``d_j`` from the facets of an :func:`orthant_router`.

    ``x0 = sum_j d_j e_j``: the score gaps are ``s_0 - s_j = d_j`` and the normals are unit
    vectors, so ``d_j`` is the distance to facet j.

    Parameters
    ----------
    router : Router
        An :func:`orthant_router`.
    distances : array_like, shape (M - 1,)
        Positive distances, one per facet.

    Returns
    -------
    ndarray, shape (D,)

    Examples
    --------
    >>> from discosim.cases import ORTHANT_DISTANCES, orthant_router, orthant_start
    >>> from discosim.theory.diffusion import facet_distances
    >>> router = orthant_router(4, 8)
    >>> x0 = orthant_start(router, ORTHANT_DISTANCES)
    >>> facet_distances(router, x0).ravel().round(12).tolist()
    [0.1, 0.13, 0.17]
    """
    d = np.asarray(check_finite_array("distances", distances, 1), dtype=float)
    if d.size != router.n_experts - 1 or np.any(d <= 0):
        raise InputError(f"an orthant start needs {router.n_experts - 1} positive distances, got "
                         f"{d.tolist()}")
    x0 = np.zeros(router.dim)
    x0[1:1 + d.size] = d
    return x0


def wedge_router(theta, dim=6):
    """A top-1 router with M = 3 whose cell of expert 0 is a wedge of opening ``theta``.

    The inward facet normals ``n_a = w_0 - w_1`` and ``n_b = w_0 - w_2`` are unit vectors at angle
    ``pi - theta``; ``w_0 = e_2`` keeps the rows independent. The first hit from a start at polar
    coordinates (r0, phi0) in the wedge follows Spitzer's law
    (:func:`discosim.theory.diffusion.wedge_survival`) and the hit order near its ridge the
    exponent ``pi/theta`` (:func:`discosim.theory.diffusion.wedge_hit_profile`).

    Parameters
    ----------
    theta : float
        The opening, in ``(0, pi)``.
    dim : int
        D (at least 3).

    Returns
    -------
    Router

    Examples
    --------
    >>> import math
    >>> from discosim.cases import ridge_start, wedge_router
    >>> from discosim.theory.diffusion import hit_order_exponent
    >>> router = wedge_router(0.8 * math.pi)
    >>> round(float(hit_order_exponent(router, ridge_start(router, 0, 1, 2, 0.3))), 12)
    1.25
    """
    W = np.zeros((3, dim))
    W[0, 2] = 1.0
    ang = math.pi - theta
    na = np.zeros(dim)
    na[0] = 1.0
    nb = np.zeros(dim)
    nb[0], nb[1] = math.cos(ang), math.sin(ang)
    W[1] = W[0] - na
    W[2] = W[0] - nb
    return Router(W, 1)


# ------------------------------------------------------------------ start points
def ridge_start(router, i, j, j2, rho, spread=10.0):
    """A start at distance ``rho`` from the ridge of facets (i, j) and (i, j2), on its bisector.

    A point y of the ridge is placed where the tied experts i, j, j2 score 0, the other top-k
    experts ``+c * spread * rho * max|w|`` and the rest ``-c * spread * rho * max|w|``
    (c = 1, 2, ...: distinct, so no far ridge sits near the far facets), so every other facet is
    far; then ``x0 = y + rho u`` with u the unit bisector of the two inward normals. With the
    other facets far, the distance to the two facets is ``rho sin(theta/2)`` and the path near
    the ridge sees a planar wedge of opening theta (THEORY §6, hit order).

    Parameters
    ----------
    router : Router
    i : int
        The expert at rank k, on both facets.
    j, j2 : int
        The experts just below it, one per facet.
    rho : float
        Distance of the start from the ridge.
    spread : float
        How far, in units of ``rho max|w|``, the other experts' scores are put.

    Returns
    -------
    ndarray, shape (D,)

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from discosim.cases import ridge_start
    >>> from discosim.model.router import Router
    >>> from discosim.theory.diffusion import facet_distances
    >>> router = Router.orthonormal(6, 10, 2, seed=5)
    >>> d = np.sort(facet_distances(router, ridge_start(router, 0, 1, 2, 0.1)).ravel())
    >>> bool(np.allclose(d[:2], 0.1 * math.sin(math.pi / 3)))
    True
    """
    W = router.tie_weights
    M = router.n_experts
    # an order-k ranking with i at rank k, j and j2 just below
    top = [m for m in range(M) if m not in (i, j, j2)]
    n_above = router.k - 1
    target = np.empty(M)
    L = spread * rho * router.max_row_norm
    for c, m in enumerate(top):
        # distinct far scores: two far experts tied with each other would put a far ridge
        # {s_i = s_m = s_m'} right where the far facets are met
        target[m] = L * (c + 1) if c < n_above else -L * (c - n_above + 1)
    target[[i, j, j2]] = 0.0
    z = np.linalg.solve(router.reduced_weights, target - router.bias)
    y = router.basis @ z
    n1 = (W[i] - W[j]) / np.linalg.norm(W[i] - W[j])
    n2 = (W[i] - W[j2]) / np.linalg.norm(W[i] - W[j2])
    u = n1 + n2
    u /= np.linalg.norm(u)
    return y + rho * u


def widest_ridge(router):
    """(i, j, j2) whose ridge is the widest of the cell that :func:`ridge_start` builds around it.

    Only ridges that are the largest of their own cell qualify (so ``pi/theta*`` of the cell is
    the local exponent); among those the widest is taken.

    Parameters
    ----------
    router : Router

    Returns
    -------
    tuple of int
        ``(i, j, j2)`` for :func:`ridge_start`.

    Examples
    --------
    >>> from discosim.cases import ridge_start, widest_ridge
    >>> from discosim.model.router import Router
    >>> from discosim.theory.diffusion import hit_order_exponent
    >>> router = Router.gaussian(6, 10, 2, seed=0)
    >>> x0 = ridge_start(router, *widest_ridge(router), 1.0, spread=30.0)
    >>> bool(1.0 < hit_order_exponent(router, x0) < 2.0)
    True
    """
    from discosim.theory.diffusion import ridge_angles

    W = router.tie_weights
    best = None
    for i in range(router.n_experts):
        for j, j2 in itertools.combinations([m for m in range(router.n_experts) if m != i], 2):
            n1, n2 = W[i] - W[j], W[i] - W[j2]
            ang = math.pi - math.acos(np.clip(n1 @ n2 / np.linalg.norm(n1) / np.linalg.norm(n2), -1, 1))
            x0 = ridge_start(router, i, j, j2, 1.0)
            if abs(ridge_angles(router, x0).max() - ang) < 1e-12 and (best is None or ang > best[0]):
                best = (ang, (i, j, j2))
    return best[1]


def bounds_start(router, d, far=5.0):
    """A start with one facet at distance ``d`` and every other facet at about ``far * d`` or more.

    Expert 0 at rank k scores 0, expert 1 just below at ``-d |w_0 - w_1|``; the others are spread
    at ``+-far * d * max|w_i - w_j| * c`` (c = 1, 2, ...), so the lower and upper bounds of
    THEORY §6 (:func:`discosim.theory.diffusion.hitting_bounds`) pinch at times ~ d^2.

    Parameters
    ----------
    router : Router
    d : float
        Distance to the near facet (experts 0 and 1).
    far : float
        The other facets' distances in units of ``d`` (about).

    Returns
    -------
    ndarray, shape (D,)

    Examples
    --------
    >>> from discosim.cases import bounds_start
    >>> from discosim.model.router import Router
    >>> from discosim.theory.diffusion import hitting_bounds
    >>> router = Router.gaussian(6, 10, 2, seed=0)
    >>> lo, hi = hitting_bounds(router, bounds_start(router, 0.1, far=4.0), 1.0, [0.01])
    >>> bool(hi[0] / lo[0] - 1 < 0.1)
    True
    """
    W = router.tie_weights
    M, k = router.n_experts, router.k
    maxd = max(np.linalg.norm(W[a] - W[b]) for a in range(M) for b in range(M))
    L = far * d * maxd
    target = np.zeros(M)
    target[1] = -d * np.linalg.norm(W[0] - W[1])
    others = list(range(2, M))
    for c, m in enumerate(others):
        target[m] = L * (c + 1) if c < k - 1 else -L * (c - (k - 1) + 1) - d * maxd
    z = np.linalg.solve(router.reduced_weights, target - router.bias)
    return router.basis @ z
