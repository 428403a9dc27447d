"""Every least-squares fit of the toolkit, with one result type, :class:`LinearFit`.

Exponents (hit-order ``q(delta) ~ delta^(pi/theta*)``, tube ratios ``~ eps^(n-m)``, jump exponents,
remainder slopes) are slopes of ``log y`` on ``log x``, sometimes with next-order terms. Three ways
to weigh the points, one function, :func:`linear_fit`:

- ``weights`` (inverse variances of independent points): the normal equations,
  ``cov = (X^T W X)^-1``, ``beta = cov X^T W y``. :func:`loglog_fit` weights ``log y`` by
  ``(y / se)^2``, its inverse variance to first order, so a point measured to 1% counts as much
  as it should;
- ``row_scale`` (1 / standard deviation of each point): the whitened problem by ``lstsq`` (an
  SVD; steadier when columns are nearly collinear, e.g. ``log u`` and ``u``);
- ``y_cov`` (the covariance of correlated points): generalised least squares,
  ``A = X^T C^-1 X``, ``beta = A^-1 X^T C^-1 y``.

:func:`gls_coefs`, :func:`weighted_coefs` and :func:`whitened_coefs` fit many right-hand sides
at once by the ``y_cov``, ``weights`` and ``row_scale`` routes (the power draws of the validation
rows refit 10^4 simulated measurements per detection rate), each row to the bit of its own fit.
:func:`row_slopes` fits many rows against one abscissa (a slope per point, e.g. per point of a
discontinuity). The arithmetic of each route is the one its callers used before it moved here,
operation for operation, so every number is unchanged.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from discosim._core.errors import InputError
from discosim._core.results import ResultMixin

__all__ = ["LinearFit", "LogLogFit", "linear_fit", "loglog_fit", "row_slopes", "gls_coefs",
           "weighted_coefs", "whitened_coefs"]


@dataclass(frozen=True, eq=False)
class LinearFit(ResultMixin):
    """A least-squares fit ``y ~ X coef``.

    Attributes
    ----------
    coef : ndarray, shape (p,)
        The fitted coefficients, in the order of the design's columns.
    cov : ndarray, shape (p, p)
        Their covariance from the stated errors (weights, row scales or ``y_cov``).
    n_points : int
    chi2 : float
        Weighted residual sum of squares (the generalised one for ``y_cov``).
    columns : tuple of str
        Names of the design's columns (for the rows of :meth:`to_rows`).

    For a line or a power law (columns intercept, slope, ...) ``intercept``, ``slope`` and
    ``slope_stderr`` name the first two coefficients.
    """

    coef: np.ndarray
    cov: np.ndarray
    n_points: int
    chi2: float
    columns: tuple = ()
    # what the linear map from y to coef needs (see coef_map and response)
    _design: np.ndarray = field(default=None, repr=False)
    _weights: np.ndarray = field(default=None, repr=False)
    _y_cov_inv: np.ndarray = field(default=None, repr=False)
    _normal: np.ndarray = field(default=None, repr=False)

    @property
    def stderr(self):
        """Standard errors of the coefficients, ``sqrt(diag(cov))``."""
        return np.sqrt(np.diag(self.cov))

    @property
    def dof(self):
        return int(self.n_points - self.coef.size)

    @property
    def intercept(self):
        return float(self.coef[0])

    @property
    def slope(self):
        return float(self.coef[1])

    @property
    def slope_stderr(self):
        return float(math.sqrt(self.cov[1, 1]))

    def coef_map(self):
        """The matrix L (p, n) with ``coef = L y``: how each point moves each coefficient.

        A linear combination ``c . y`` of correlated points has variance ``c^T C c``; the
        coefficient ``coef[j] = L[j] . y`` is one (see :func:`discosim.validation.diffusion.nested_slope`).
        """
        X = self._design
        if self._y_cov_inv is not None:
            return np.linalg.solve(self._normal, X.T @ self._y_cov_inv)
        return self.cov @ (X.T * self._weights)

    def response(self, v):
        """``coef_map() @ v``: the coefficients' change when y moves by ``v`` (shape (n,)).

        Used to size a bias: the shift of the slope that an unfitted next-order term ``v`` in
        ``y`` would cause.
        """
        X = self._design
        if self._y_cov_inv is not None:
            return np.linalg.solve(self._normal, X.T @ self._y_cov_inv @ v)
        return self.cov @ (X.T @ (self._weights * v))

    def to_dict(self):
        names = self.columns or tuple(f"c{j}" for j in range(self.coef.size))
        d = {"coef": {n: float(c) for n, c in zip(names, self.coef)},
             "stderr": {n: float(s) for n, s in zip(names, self.stderr)},
             "n_points": self.n_points, "chi2": self.chi2, "dof": self.dof}
        if self.coef.size >= 2:  # the keys of the former LogLogFit
            d.update(slope=self.slope, slope_stderr=self.slope_stderr, intercept=self.intercept)
        return d

    def to_rows(self):
        names = self.columns or tuple(f"c{j}" for j in range(self.coef.size))
        return [{"quantity": "coefficient", "parameter": n, "value": float(c), "stderr": float(s),
                 "n_points": self.n_points} for n, c, s in zip(names, self.coef, self.stderr)]


LogLogFit = LinearFit  # the name of the 0.1 result (the fields it had are properties here)


def _vector(name, a, n):
    a = np.asarray(a, dtype=float)
    if a.shape != (n,):
        raise InputError(f"linear_fit: {name} must have shape ({n},), got {a.shape}")
    return a


def linear_fit(design, y, *, weights=None, row_scale=None, y_cov=None, columns=()):
    """Least squares ``y ~ design @ coef``, weighted one of three ways (see the module docstring).

    Parameters
    ----------
    design : ndarray, shape (n, p)
        One column per term (e.g. ones, ``log x``, ``x``).
    y : ndarray, shape (n,)
    weights : ndarray, shape (n,), optional
        Inverse variances of independent points (normal equations).
    row_scale : ndarray, shape (n,), optional
        1 / standard deviation of each point (the whitened problem, by ``lstsq``).
    y_cov : ndarray, shape (n, n), optional
        Covariance of the points (generalised least squares).
    columns : sequence of str
        Names of the columns.

    Exactly one of ``weights``, ``row_scale`` and ``y_cov`` is given.

    Returns
    -------
    LinearFit
    """
    X = np.asarray(design, dtype=float)
    if X.ndim != 2 or X.shape[0] < X.shape[1]:
        raise InputError(f"linear_fit needs a design of shape (n, p) with n >= p, got {X.shape}")
    n = X.shape[0]
    y = _vector("y", y, n)
    if sum(a is not None for a in (weights, row_scale, y_cov)) != 1:
        raise InputError("linear_fit takes exactly one of weights, row_scale and y_cov")
    columns = tuple(columns)
    if weights is not None:
        w = _vector("weights", weights, n)
        cov = np.linalg.inv(X.T @ (X * w[:, None]))
        coef = cov @ (X.T @ (w * y))
        res = y - X @ coef
        return LinearFit(coef, cov, n, float(np.sum(w * res * res)), columns, X, w)
    if row_scale is not None:
        s = _vector("row_scale", row_scale, n)
        A = X * s[:, None]
        b = y * s
        coef = np.linalg.lstsq(A, b, rcond=None)[0]
        cov = np.linalg.inv(A.T @ A)
        res = b - A @ coef
        return LinearFit(coef, cov, n, float(res @ res), columns, X, s * s)
    C = np.asarray(y_cov, dtype=float)
    if C.shape != (n, n):
        raise InputError(f"linear_fit: y_cov must have shape ({n}, {n}), got {C.shape}")
    cinv = np.linalg.inv(C)
    A = X.T @ cinv @ X
    coef = np.linalg.solve(A, X.T @ cinv @ y)
    res = y - X @ coef
    return LinearFit(coef, np.linalg.inv(A), n, float(res @ cinv @ res), columns, X, None, cinv, A)


def loglog_fit(x, y, se):
    """Fit ``log y`` against ``log x`` with weights ``(y/se)^2``.

    Parameters
    ----------
    x, y, se : array_like, shape (n,)
        Abscissae (> 0), values (> 0) and their standard errors (> 0). n >= 2.

    Returns
    -------
    LinearFit
        Columns ``intercept`` and ``slope``: the slope with its standard error (from the
        weights, i.e. the stated errors) and the intercept.
    """
    x, y, se = (np.asarray(a, dtype=float).ravel() for a in (x, y, se))
    if not (x.size == y.size == se.size):
        raise InputError(f"loglog_fit needs x, y, se of one length, got {x.size}, {y.size}, {se.size}")
    if x.size < 2:
        raise InputError(f"loglog_fit needs at least 2 points, got {x.size}")
    if np.any(x <= 0) or np.any(y <= 0) or np.any(se <= 0) or not np.all(np.isfinite([x, y, se])):
        raise InputError("loglog_fit needs finite positive x, y and se")
    lx, ly = np.log(x), np.log(y)
    w = (y / se) ** 2
    X = np.vstack([np.ones_like(lx), lx]).T
    return linear_fit(X, ly, weights=w, columns=("intercept", "slope"))


def row_slopes(x, Y):
    """Ordinary least-squares slope of every row of ``Y`` (m, n) against ``x`` (n,).

    One fit per row with its own intercept, sharing the abscissae: ``(Y_i - mean Y_i) . (x -
    mean x) / |x - mean x|^2``. Returns shape (m,).
    """
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    xc = x - x.mean()
    return (Y - Y.mean(axis=1, keepdims=True)) @ xc / np.sum(xc * xc)


def gls_coefs(design, Y, y_cov):
    """Generalised least-squares coefficients of every row of ``Y`` at once.

    ``(X^T C^-1 X)^-1 X^T C^-1 y`` for each row ``y``, with ``X^T C^-1`` formed once and the
    solves stacked, so a row's coefficients are those a fit of that row alone computes this way:
    the same LAPACK inverse and solve and the same BLAS products on the same operands (the
    validation tests compare the power draws built on it with single fits, draw by draw).

    Parameters
    ----------
    design : ndarray, shape (n, p)
        One column per term.
    Y : ndarray, shape (m, n)
        One set of points per row.
    y_cov : ndarray, shape (n, n) or (m, n, n)
        Covariance of the points: one for every row, or one per row.

    Returns
    -------
    ndarray, shape (m, p)
        The coefficients of each row.

    Examples
    --------
    >>> import numpy as np
    >>> from discosim._core.fitting import gls_coefs
    >>> X = np.vstack([np.ones(4), np.arange(4.0)]).T
    >>> Y = np.array([[1.0, 3.0, 5.0, 7.0], [0.0, -1.0, -2.0, -3.0]])
    >>> np.round(gls_coefs(X, Y, np.eye(4)), 12) + 0.0
    array([[ 1.,  2.],
           [ 0., -1.]])
    """
    X = np.asarray(design, dtype=float)
    xc = X.T @ np.linalg.inv(np.asarray(y_cov, dtype=float))
    return np.linalg.solve(xc @ X, xc @ np.asarray(Y, dtype=float)[:, :, None])[:, :, 0]


def weighted_coefs(design, Y, W):
    """Weighted least-squares coefficients of every row of ``Y``, row ``i`` weighted by ``W[i]``.

    The normal equations of :func:`linear_fit`'s ``weights`` route, ``(X^T W X)^-1 X^T W y``,
    stacked: each row's coefficients are those of its own fit, bit for bit (the same LAPACK
    inverse per matrix and BLAS products on the same operands).

    Parameters
    ----------
    design : ndarray, shape (n, p)
        One column per term.
    Y : ndarray, shape (m, n)
        One set of points per row.
    W : ndarray, shape (m, n)
        Inverse variances of the points of each row.

    Returns
    -------
    ndarray, shape (m, p)

    Examples
    --------
    >>> import numpy as np
    >>> from discosim._core.fitting import linear_fit, weighted_coefs
    >>> X = np.vstack([np.ones(3), [0.0, 1.0, 2.0]]).T
    >>> Y, W = np.array([[1.0, 2.5, 5.0]]), np.array([[1.0, 4.0, 2.0]])
    >>> bool(np.all(weighted_coefs(X, Y, W)[0] == linear_fit(X, Y[0], weights=W[0]).coef))
    True
    """
    X = np.asarray(design, dtype=float)
    Y, W = np.asarray(Y, dtype=float), np.asarray(W, dtype=float)
    cov = np.linalg.inv(X.T @ (X * W[:, :, None]))
    return (cov @ (X.T @ (W * Y)[:, :, None]))[:, :, 0]


def whitened_coefs(design, Y, row_scale):
    """Coefficients of :func:`linear_fit`'s ``row_scale`` route for every row of ``Y``.

    The whitened problem ``(X * s) coef ~ y * s`` of each row by ``lstsq``, one call per row
    (numpy's ``lstsq`` is not stacked), with the same operands as the single fit.

    Parameters
    ----------
    design : ndarray, shape (n, p)
        One column per term.
    Y : ndarray, shape (m, n)
        One set of points per row.
    row_scale : ndarray, shape (m, n)
        1 / standard deviation of each point of each row.

    Returns
    -------
    ndarray, shape (m, p)

    Examples
    --------
    >>> import numpy as np
    >>> from discosim._core.fitting import linear_fit, whitened_coefs
    >>> X = np.vstack([np.ones(3), [0.0, 1.0, 2.0]]).T
    >>> Y, S = np.array([[1.0, 2.5, 5.0]]), np.array([[1.0, 2.0, 1.5]])
    >>> bool(np.all(whitened_coefs(X, Y, S)[0] == linear_fit(X, Y[0], row_scale=S[0]).coef))
    True
    """
    X = np.asarray(design, dtype=float)
    Y, S = np.asarray(Y, dtype=float), np.asarray(row_scale, dtype=float)
    if Y.shape[0] == 0:
        return np.empty((0, X.shape[1]))
    return np.array([np.linalg.lstsq(X * s[:, None], y * s, rcond=None)[0] for s, y in zip(S, Y)])
