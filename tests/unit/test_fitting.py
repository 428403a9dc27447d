"""Every least-squares fit goes through ``discosim._core.fitting`` (issue 20), with one result
type, and each route does the arithmetic its callers did before, to the last bit."""

import ast
import json
import math
import pathlib

import numpy as np
import pytest

from discosim import InputError
from discosim._core.fitting import LinearFit, LogLogFit, linear_fit, loglog_fit, row_slopes

PKG = pathlib.Path(__file__).resolve().parents[2] / "discosim"
RNG = np.random.default_rng(20)


def test_no_least_squares_outside_the_fitting_module():
    banned = {"lstsq", "polyfit", "curve_fit", "least_squares", "leastsq"}
    for path in PKG.rglob("*.py"):
        if path == PKG / "_core" / "fitting.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # np.linalg.inv: the normal equations written by hand (a local named inv is fine)
            name = node.attr if isinstance(node, ast.Attribute) else \
                node.id if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) else None
            assert name not in banned and not (name == "inv" and isinstance(node, ast.Attribute)), \
                f"{path.relative_to(PKG)}:{node.lineno}: {name}"


def _data(n=7):
    x = np.geomspace(1e-3, 1e-1, n)
    y = 3.0 * x ** 1.5 * (1 + 0.02 * RNG.standard_normal(n))
    se = 0.02 * y * (1 + RNG.random(n))
    return x, y, se


# ------------------------------------------------------------------ bit for bit, route by route
def test_loglog_fit_and_its_coefficient_map_are_the_former_arithmetic():
    x, y, se = _data()
    fit = loglog_fit(x, y, se)
    lx, ly, w = np.log(x), np.log(y), (y / se) ** 2
    X = np.vstack([np.ones_like(lx), lx]).T
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov @ (X.T @ (w * ly))
    assert (fit.slope, fit.slope_stderr, fit.intercept) == \
        (float(beta[1]), float(math.sqrt(cov[1, 1])), float(beta[0]))
    c = (np.linalg.inv(X.T @ (X * w[:, None])) @ (X.T * w))[1]  # validation's nested_slope
    assert np.array_equal(fit.coef_map()[1], c)
    assert np.allclose(fit.coef_map() @ ly, fit.coef, rtol=1e-12)
    assert LogLogFit is LinearFit and set(fit.to_dict()) >= {"slope", "slope_stderr", "intercept",
                                                             "n_points"}


def test_row_scaled_fit_is_the_former_lstsq():
    x, y, se = _data(9)
    w = y / se
    Xw = np.vstack([np.ones_like(x), np.log(x), x]).T * w[:, None]
    beta = np.linalg.lstsq(Xw, np.log(y) * w, rcond=None)[0]
    fit = linear_fit(np.vstack([np.ones_like(x), np.log(x), x]).T, np.log(y), row_scale=w)
    assert np.array_equal(fit.coef, beta)
    assert fit.slope_stderr == float(math.sqrt(np.linalg.inv(Xw.T @ Xw)[1, 1]))


def test_weighted_fit_is_the_former_normal_equations():
    x, y, se = _data()
    X = np.column_stack([np.ones_like(x), np.log(x), x])
    w = 1.0 / (se / y) ** 2
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    fit = linear_fit(X, np.log(y), weights=w)
    assert np.array_equal(fit.cov, cov)
    assert np.array_equal(fit.coef, cov @ (X.T @ (w * np.log(y))))


def test_generalised_fit_is_the_former_gls():
    x, y, se = _data(8)
    X = np.column_stack([np.ones_like(x), np.log(x), x, x * x])
    A0 = RNG.standard_normal((8, 8))
    C = A0 @ A0.T * 1e-4 + np.diag(se ** 2)
    fit = linear_fit(X, np.log(y), y_cov=C)
    cinv = np.linalg.inv(C)
    A = X.T @ cinv @ X
    coef = np.linalg.solve(A, X.T @ cinv @ np.log(y))
    res = np.log(y) - X @ coef
    assert np.array_equal(fit.coef, coef) and np.array_equal(fit.cov, np.linalg.inv(A))
    assert fit.chi2 == float(res @ cinv @ res)
    assert np.array_equal(fit.response(x ** 3), np.linalg.solve(A, X.T @ cinv @ x ** 3))
    assert np.allclose(fit.coef_map() @ x ** 3, fit.response(x ** 3), rtol=1e-9)


def test_row_slopes_are_the_former_per_point_slopes():
    ld = np.log(np.geomspace(1e-4, 1e-1, 6))
    lj = 0.5 * ld[None, :] + RNG.standard_normal((5, 6)) * 0.01
    x = ld - ld.mean()
    assert np.array_equal(row_slopes(ld, lj), (lj - lj.mean(axis=1, keepdims=True)) @ x / np.sum(x * x))


# ------------------------------------------------------------------ what the fits find
def test_fits_recover_an_exact_model_and_report_chi2():
    x = np.geomspace(0.01, 1.0, 6)
    X = np.column_stack([np.ones_like(x), np.log(x), x])
    y = X @ np.array([0.3, 2.0, -0.7])
    for kw in (dict(weights=np.full(6, 4.0)), dict(row_scale=np.full(6, 2.0)),
               dict(y_cov=np.eye(6) * 0.25)):
        fit = linear_fit(X, y, columns=("a", "s", "kappa"), **kw)
        assert np.allclose(fit.coef, [0.3, 2.0, -0.7], rtol=0, atol=1e-10), kw
        assert fit.chi2 < 1e-18 and fit.dof == 3
        d = json.loads(json.dumps(fit.to_dict()))
        assert d["coef"]["s"] == fit.slope and d["stderr"]["kappa"] == pytest.approx(math.sqrt(fit.cov[2, 2]))
        rows = fit.to_rows()
        assert [r["parameter"] for r in rows] == ["a", "s", "kappa"]
        assert all(not isinstance(v, (dict, list)) for r in rows for v in r.values())
    # the same errors stated three ways give the same covariance
    covs = [linear_fit(X, y, **kw).cov for kw in (dict(weights=np.full(6, 4.0)),
            dict(row_scale=np.full(6, 2.0)), dict(y_cov=np.eye(6) * 0.25))]
    assert np.allclose(covs[0], covs[1]) and np.allclose(covs[0], covs[2])


def test_bad_fits_are_one_line_input_errors():
    X = np.ones((3, 2))
    for kw, word in ((dict(), "exactly one"), (dict(weights=np.ones(3), row_scale=np.ones(3)), "exactly one"),
                     (dict(weights=np.ones(4)), "weights"), (dict(y_cov=np.eye(2)), "y_cov")):
        with pytest.raises(InputError, match=word):
            linear_fit(X, np.ones(3), **kw)
    with pytest.raises(InputError, match="design"):
        linear_fit(np.ones((1, 2)), np.ones(1), weights=np.ones(1))
    with pytest.raises(InputError, match="positive"):
        loglog_fit([1, 2], [1, -1], [1, 1])
