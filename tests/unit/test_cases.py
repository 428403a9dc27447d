"""discosim.cases: every case's docstring example runs, and the cases are what they say."""

import doctest
import math

import numpy as np
import pytest

from discosim import InputError, cases
from discosim.theory import diffusion as td


def test_every_docstring_example_runs():
    result = doctest.testmod(cases, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 16 and result.failed == 0
    # every public function shows an example
    for name in cases.__all__:
        obj = getattr(cases, name)
        if callable(obj):
            assert ">>>" in (obj.__doc__ or ""), name


def test_named_routers_have_their_cases_shape_and_ensemble():
    for make, case in ((cases.ratio_router, cases.RATIO_CASE), (cases.apex_router, cases.APEX_CASE),
                       (cases.smoothing_router, cases.SMOOTHING_CASE),
                       (cases.score_tube_router, cases.SCORE_TUBE_CASE),
                       (cases.levy_router, cases.LEVY_CASE)):
        r = make(3)
        assert (r.n_experts, r.dim, r.k) == (case["M"], case["D"], case["k"])
        assert np.array_equal(r.weights, cases.random_router(case["ensemble"], case["M"], case["D"],
                                                             case["k"], seed=3).weights)
    s = cases.slice_router(3)
    assert np.allclose(s.gram, np.eye(4), atol=1e-12)  # orthonormal rows


def test_biased_router_keeps_the_slice_rows_and_adds_a_seeded_bias():
    a, b = cases.biased_router(5), cases.biased_router(5)
    assert np.array_equal(a.weights, cases.slice_router(5).weights)
    assert np.array_equal(a.bias, b.bias) and a.has_bias
    assert not np.array_equal(a.bias, cases.biased_router(6).bias)


def test_orthant_start_refuses_a_wrong_number_of_distances():
    router = cases.orthant_router(4, 8)
    for bad in ([0.1, 0.2], [0.1, 0.2, 0.3, 0.4], [0.1, -0.2, 0.3]):
        with pytest.raises(InputError, match="3 positive distances"):
            cases.orthant_start(router, bad)


def test_wedge_router_opening_and_bounds_start_distances():
    theta = 0.7 * math.pi
    router = cases.wedge_router(theta)
    x0 = cases.ridge_start(router, 0, 1, 2, 0.2)
    r0, phi0, th = td.wedge_geometry(router, x0)
    assert th == pytest.approx(theta, rel=1e-12) and r0 == pytest.approx(0.2, rel=1e-9)
    from discosim.model.router import Router

    router = Router.gaussian(6, 10, 2, seed=1)
    d = np.sort(td.facet_distances(router, cases.bounds_start(router, 0.1, far=4.0)).ravel())
    assert d[0] == pytest.approx(0.1, rel=1e-9) and d[1] > 3 * d[0]
