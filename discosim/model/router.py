"""Routers: the gate matrix ``W``, bias ``b``, ``k`` and the kind of score (THEORY §1, §3).

A :class:`Router` validates its input once (THEORY §1 assumptions: ``M < D``, ``1 <= k < M``,
``W`` of full row rank, everything finite) and holds the exact dimension reduction of THEORY §3:
with the QR factorisation ``W^T = Q R``, ``Q`` of shape (D, M), a point ``x`` has reduced
coordinates ``z = Q^T x`` and scores ``s = R^T z + b``. Tie sets, normal spaces and distances to
them all live in the M-dimensional row space, so kernels work with ``R^T`` (lower triangular,
shape (M, M)) and never with D-dimensional points.

Cosine routers (scores ``w_i.x / (|w_i| |x|)``) have the tie sets of the linear router with
normalised rows; ``tie_weights`` is that normalised matrix and the reduction is built from it.
"""

from dataclasses import dataclass, field

import numpy as np

from discosim._core.errors import InputError, check_finite_array, check_int, check_choice
from discosim._core.memory import check_memory, max_entries
from discosim._core.seeding import as_seed_sequence

__all__ = ["Router", "KINDS", "check_router"]

KINDS = ("linear", "cosine")
# row norms of W outside this range make W W^T overflow or lose all precision in float64
ROW_NORM_RANGE = (1e-100, 1e100)


@dataclass(frozen=True, eq=False)
class Router:
    """A top-k router with gate matrix ``weights`` (M, D), optional ``bias`` (M,) and ``kind``.

    Parameters
    ----------
    weights : array_like, shape (M, D)
        Gate matrix W; rows are the experts' gate vectors.
    k : int
        Number of active experts, ``1 <= k < M``.
    bias : array_like, shape (M,), optional
        Score bias b (default zero). Not allowed for cosine routers.
    kind : {"linear", "cosine"}
        Score type.

    Attributes
    ----------
    reduced_weights : ndarray, shape (M, M)
        ``R^T`` of THEORY §3: scores are ``reduced_weights @ z + bias`` for reduced ``z``.
    gram : ndarray, shape (M, M)
        ``W W^T`` of the tie weights (inner products of gate vectors).
    basis : ndarray, shape (D, M)
        Orthonormal basis ``Q`` of the row space.
    n_experts, dim : int
        M and D.

    Notes
    -----
    THEORY §1 assumes ``M < D``, ``1 <= k < M`` and ``W`` of full row rank; all three are
    checked here (with finiteness and the scale of the rows), each with a one-line
    :class:`InputError`. THEORY §3: with ``W^T = Q R`` every tie set lives in the row space, so
    a point ``x`` enters only through ``z = Q^T x`` and the scores ``s = R^T z + b``. The
    constructors :meth:`gaussian`, :meth:`orthonormal`, :meth:`correlated` and
    :meth:`from_file` make the usual gate ensembles and read real gate weights.

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(8, 64, k=2, seed=0)
    >>> router
    Router(M=8, D=64, k=2, kind='linear', bias=False)
    >>> x = np.random.default_rng(1).standard_normal(64)
    >>> router.scores(x).shape
    (8,)

    The scores depend on ``x`` only through its reduced coordinates (THEORY §3):

    >>> z = router.to_reduced(x)
    >>> z.shape
    (8,)
    >>> bool(np.allclose(router.reduced_weights @ z, router.scores(x)))
    True

    A gate matrix of your own, with a bias:

    >>> ds.Router(np.eye(3, 5), k=1, bias=[0.0, 0.5, 0.0]).scores(np.ones(5))
    array([1. , 1.5, 1. ])
    """

    weights: np.ndarray
    k: int
    bias: np.ndarray = None
    kind: str = "linear"
    tie_weights: np.ndarray = field(init=False, repr=False)
    reduced_weights: np.ndarray = field(init=False, repr=False)
    gram: np.ndarray = field(init=False, repr=False)
    basis: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # a private, read-only copy: mutating the caller's array must not change this router
        if isinstance(self.weights, np.ndarray) and self.weights.ndim == 2:
            _check_entries(*self.weights.shape)  # before any copy is made
        W = check_finite_array("W", self.weights, 2)
        _check_entries(*W.shape)
        W = np.array(W, dtype=np.float64, copy=True)
        M, D = W.shape
        if M < 2:
            raise InputError(f"W must have at least 2 rows (experts), got {M}")
        if M >= D:
            raise InputError(f"need M < D (THEORY §1), got M={M}, D={D}")
        k = check_int("k", self.k, 1, M - 1)
        kind = check_choice("router kind", self.kind, KINDS)
        if self.bias is None:
            b = np.zeros(M)
        else:
            b = check_finite_array("bias", self.bias, 1)
            if b.shape != (M,):
                raise InputError(f"bias must have shape ({M},) to match W, got {b.shape}")
            if kind == "cosine" and np.any(b != 0):
                raise InputError("a cosine router takes no bias")
        amax = np.max(np.abs(W), axis=1, keepdims=True)
        # row norms without over- or underflow: scale each row by its largest entry first
        norms = amax[:, 0] * np.linalg.norm(np.divide(W, amax, out=np.zeros_like(W), where=amax > 0),
                                            axis=1)
        if np.any(norms > ROW_NORM_RANGE[1]) or np.any((norms < ROW_NORM_RANGE[0]) & (norms > 0)):
            # W W^T over- or underflows in float64 beyond this; tie sets are invariant under one
            # common scale of W and b, so the user can rescale without changing the geometry
            raise InputError(f"W has row norms {norms.min():.3g}..{norms.max():.3g}, outside "
                             f"[{ROW_NORM_RANGE[0]:g}, {ROW_NORM_RANGE[1]:g}]: rescale W (and b) "
                             "by one common factor")
        tie = W
        if kind == "cosine":
            if np.any(norms == 0):
                raise InputError("W has a zero row: cosine scores are undefined for it")
            tie = W / norms[:, None]
        q, r = np.linalg.qr(tie.T)
        # W^T = Q R with orthonormal Q: R (M, M) has the singular values of W, at a fraction of
        # the cost of an SVD of W (D up to 8192)
        sv = np.linalg.svd(r, compute_uv=False)
        tol = sv[0] * max(M, D) * np.finfo(float).eps
        if sv[-1] <= tol:
            rank = int(np.sum(sv > tol))
            raise InputError(f"W is rank-deficient (rank {rank} < M={M}); THEORY §1 needs full row rank")
        # Make the diagonal of R positive so the reduction is unique (QR is up to signs).
        signs = np.where(np.diag(r) < 0, -1.0, 1.0)
        q = q * signs
        r = r * signs[:, None]
        b = np.array(b, dtype=np.float64, copy=True)
        for name, value in (("weights", W), ("k", k), ("bias", b), ("kind", kind),
                            ("tie_weights", tie), ("reduced_weights", np.ascontiguousarray(r.T)),
                            ("gram", np.ascontiguousarray(tie @ tie.T)),
                            ("basis", np.ascontiguousarray(q))):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ shape and summary
    @property
    def n_experts(self):
        """M, the number of experts."""
        return self.weights.shape[0]

    @property
    def dim(self):
        """D, the input dimension."""
        return self.weights.shape[1]

    @property
    def has_bias(self):
        return bool(np.any(self.bias != 0))

    @property
    def max_row_norm(self):
        """``max_i |w_i|`` of the tie weights (bounds how fast a score moves with x)."""
        return float(np.sqrt(np.max(np.diag(self.gram))))

    def summary(self):
        """JSON-ready description: M, D, k, kind and whether a bias is present."""
        return {"M": self.n_experts, "D": self.dim, "k": self.k, "kind": self.kind,
                "bias": self.has_bias}

    def __repr__(self):
        return (f"Router(M={self.n_experts}, D={self.dim}, k={self.k}, kind={self.kind!r}, "
                f"bias={self.has_bias})")

    # ------------------------------------------------------------------ scores
    def scores(self, x):
        """Scores of points ``x`` (shape (D,) or (n, D)); cosine scores for cosine routers."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.dim:
            raise InputError(f"points must have length D={self.dim}, got shape {x.shape}")
        s = x @ self.tie_weights.T + self.bias
        if self.kind == "cosine":
            s = s / np.linalg.norm(x, axis=-1, keepdims=True)
        return s

    def to_reduced(self, x):
        """Reduced coordinates ``z = Q^T x`` (THEORY §3) of points of shape (D,) or (n, D)."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.dim:
            raise InputError(f"points must have length D={self.dim}, got shape {x.shape}")
        return x @ self.basis

    # ------------------------------------------------------------------ constructors
    @classmethod
    def gaussian(cls, n_experts, dim, k, seed=None, kind="linear"):
        """Router with iid N(0, 1/D) gate entries, drawn from ``seed``."""
        M, D = _check_shape(n_experts, dim)
        rng = np.random.default_rng(as_seed_sequence(seed))
        return cls(rng.standard_normal((M, D)) / np.sqrt(D), k, kind=kind)

    @classmethod
    def orthonormal(cls, n_experts, dim, k, seed=None, kind="linear"):
        """Router with random orthonormal gate rows (``W W^T = I``), drawn from ``seed``."""
        M, D = _check_shape(n_experts, dim)
        rng = np.random.default_rng(as_seed_sequence(seed))
        q, r = np.linalg.qr(rng.standard_normal((D, M)))
        # Sign fix makes Q Haar-distributed, not just orthonormal.
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        W = np.ascontiguousarray(q.T)
        del q  # one D x M array alive while the Router is built (its cost, 48 bytes per entry)
        return cls(W, k, kind=kind)

    @classmethod
    def correlated(cls, n_experts, dim, k, rho, seed=None, kind="linear"):
        """Router whose gate rows have pairwise correlation ``rho``: ``W = L G / sqrt(D)``.

        ``G`` has iid N(0, 1) entries and ``L L^T = (1 - rho) I + rho 1 1^T``, which is positive
        definite exactly for ``-1/(M-1) < rho < 1``.
        """
        M, D = _check_shape(n_experts, dim)
        try:
            rho = float(rho)
        except (TypeError, ValueError):
            raise InputError(f"rho must be a number, got {rho!r}") from None
        if not -1.0 / (M - 1) < rho < 1.0:
            raise InputError(f"rho must lie in (-1/(M-1), 1) = ({-1.0 / (M - 1):.4g}, 1), got {rho}")
        rng = np.random.default_rng(as_seed_sequence(seed))
        C = np.full((M, M), rho) + (1 - rho) * np.eye(M)
        L = np.linalg.cholesky(C)
        return cls(L @ rng.standard_normal((M, D)) / np.sqrt(D), k, kind=kind)

    @classmethod
    def from_file(cls, path, k, key=None, kind="linear", bias_key=None):
        """Router from gate weights stored in a ``.npy``, ``.npz`` or ``.safetensors`` file.

        See :func:`discosim.model.weights.load_weights`. A checkpoint's gate (e.g.
        ``model.layers.3.mlp.gate.weight``, shape (M, D)) is read by ``key``.
        """
        from discosim.model.weights import load_weights

        # a width declared in the file's header is refused before its data are read
        W = load_weights(path, key, max_entries=MAX_ROUTER_ENTRIES)
        b = load_weights(path, bias_key) if bias_key is not None else None
        return cls(W, k, bias=b, kind=kind)


def check_router(router, name="router"):
    """Return ``router`` if it is a :class:`Router`; else raise a one-line InputError.

    Every estimator entry calls it first, so a list, an array or None fails with the
    parameter's name instead of an AttributeError deep inside.
    """
    if not isinstance(router, Router):
        raise InputError(f"{name} must be a discosim.Router (e.g. Router(W, k)), got "
                         f"{type(router).__name__}")
    return router


def _check_shape(n_experts, dim):
    M = check_int("M", n_experts, 2)
    D = check_int("D", dim, 1)
    if M >= D:
        raise InputError(f"need M < D (THEORY §1), got M={M}, D={D}")
    # a random gate matrix is drawn in full before it is reduced: refuse before allocating
    _check_entries(M, D)
    return M, D


def _check_entries(M, D):
    check_memory([(f"a gate matrix of M={M} x D={D}", M * D, "router")],
                 f"at most {MAX_ROUTER_ENTRIES} entries (M*D) fit")


# Building a Router holds about 48 bytes per entry of W (measured, _core.memory.COST): about 3.4e7
# entries fit the budget, 19x DeepSeek-V3's router (256 x 7168 = 1.8e6).
MAX_ROUTER_ENTRIES = max_entries("router")
MAX_RANDOM_ENTRIES = MAX_ROUTER_ENTRIES  # its old name
