"""One weighted log-log fit for every power law the toolkit measures.

Exponents (hit-order ``q(delta) ~ delta^(pi/theta*)``, tube ratios ``~ eps^(n-m)``, jump exponents,
remainder slopes) are slopes of ``log y`` on ``log x``. Each point is weighted by the inverse variance
of ``log y``, ``(y / se)^2`` to first order, so a point measured to 1% counts as much as it should.
"""

import math
from dataclasses import dataclass

import numpy as np

from discosim._core.errors import InputError

__all__ = ["LogLogFit", "loglog_fit"]


@dataclass(frozen=True)
class LogLogFit:
    """Weighted least-squares fit ``log y = intercept + slope * log x``."""

    slope: float
    slope_stderr: float
    intercept: float
    n_points: int

    def to_dict(self):
        return {"slope": self.slope, "slope_stderr": self.slope_stderr,
                "intercept": self.intercept, "n_points": self.n_points}


def loglog_fit(x, y, se):
    """Fit ``log y`` against ``log x`` with weights ``(y/se)^2``.

    Parameters
    ----------
    x, y, se : array_like, shape (n,)
        Abscissae (> 0), values (> 0) and their standard errors (> 0). n >= 2.

    Returns
    -------
    LogLogFit
        Slope with its standard error (from the weights, i.e. the stated errors), intercept.
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
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov @ (X.T @ (w * ly))
    return LogLogFit(float(beta[1]), float(math.sqrt(cov[1, 1])), float(beta[0]), int(x.size))
