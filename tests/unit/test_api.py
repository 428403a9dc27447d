"""The Python API under misuse and its one result shape (issue 8).

Every public estimator rejects bad input with an InputError that names the parameter, before
any Monte Carlo chunk runs; results are frozen dataclasses with ``to_dict`` and ``seed_entropy``;
``seed`` takes None, an int, a SeedSequence or a Generator; the numbers are bit-identical for
any ``n_jobs``.
"""

import dataclasses
import json

import numpy as np
import pytest

from discosim import InputError, Router
from discosim.volumes.constants import slice_alpha, slice_constants
from discosim._core.results import dumps
from discosim.diffusion.estimators import (estimate_first_hit, estimate_occupation, hit_order_wos,
                              simulate_first_exit)
from discosim.smoothing.estimators import SMoE, calibrate_eta, estimate_overhead, measure_continuity
from discosim.app.studies import run_study
from discosim.volumes.estimators import estimate_slice_volume, estimate_volumes

R4 = Router.gaussian(4, 8, 2, seed=0)
X0 = np.random.default_rng(0).standard_normal(8) * 0.3


def _vol(**kw):
    args = dict(router=R4, radius=1.0, eps=[0.1], n_samples=1000)
    args.update(kw)
    return estimate_volumes(**args)


def _hit(**kw):
    args = dict(router=R4, x0=X0, sigma=1.0, t_max=1.0, dt=0.01, n_paths=100, times=[0.5])
    args.update(kw)
    return estimate_first_hit(**args)


def _occ(**kw):
    args = dict(router=R4, x0=X0, sigma=1.0, t_max=1.0, dt=0.01, n_paths=100, eps=[0.1])
    args.update(kw)
    return estimate_occupation(**args)


def _wos(**kw):
    args = dict(router=R4, x0=X0, deltas=[0.01], n_paths=100)
    args.update(kw)
    return hit_order_wos(**args)


def _over(**kw):
    args = dict(router=R4, radius=1.0, etas=[0.01], n_samples=1000)
    args.update(kw)
    return estimate_overhead(**args)


def _cal(**kw):
    args = dict(router=R4, target=0.3, n_samples=1000)
    args.update(kw)
    return calibrate_eta(**args)


def _cont(**kw):
    args = dict(model=SMoE(R4, seed=0), deltas=[1e-4], eta=0.05, n_points=10)
    args.update(kw)
    return measure_continuity(**args)


def _router(**kw):
    args = dict(weights=np.random.default_rng(0).standard_normal((4, 8)), k=2)
    args.update(kw)
    return Router(**args)


COMMON_BAD = [("seed", -1), ("seed", "x"), ("seed", 1.5), ("n_jobs", 0), ("n_jobs", -3),
              ("n_jobs", "2"), ("backend", "foo"), ("backend", None)]

BAD = [
    (_vol, dict(router="R"), "router"),
    (_vol, dict(radius="abc"), "radius"), (_vol, dict(radius=None), "radius"),
    (_vol, dict(radius=-1), "radius"), (_vol, dict(eps=None), "eps"), (_vol, dict(eps="x"), "eps"),
    (_vol, dict(eps=[]), "eps"), (_vol, dict(eps=[0.1 + 1j]), "eps"), (_vol, dict(eps=[np.inf]), "eps"),
    (_vol, dict(orders=[]), "orders"), (_vol, dict(orders=[0]), "order"),
    (_vol, dict(orders=["a"]), "order"), (_vol, dict(orders="12"), "orders"),
    (_vol, dict(orders=[4]), "order"), (_vol, dict(metric=None), "metric"),
    (_vol, dict(method=5), "method"), (_vol, dict(n_samples=None), "n_samples"),
    (_vol, dict(n_samples="x"), "n_samples"), (_vol, dict(n_samples=1), "n_samples"),
    (_vol, dict(prediction_samples=1), "prediction_samples"), (_vol, dict(predict="yes"), "predict"),
    (_vol, dict(constants={9: None}), "constants"),
    *[(_vol, {k: v}, k) for k, v in COMMON_BAD],
    (_hit, dict(x0=np.ones(5)), "x0"), (_hit, dict(x0=np.ones(8) * (1 + 1j)), "x0"),
    (_hit, dict(x0="abc"), "x0"), (_hit, dict(sigma=None), "sigma"),
    (_hit, dict(dt=1e-300), "t_max/dt"), (_hit, dict(dt=2.0), "dt"),
    (_hit, dict(times=[2.0]), "times"), (_hit, dict(times=[]), "times"),
    (_hit, dict(deltas=[-1.0]), "deltas"), (_hit, dict(metric="foo"), "metric"),
    (_hit, dict(depth=-1), "depth"), (_hit, dict(bridge="yes"), "bridge"),
    (_hit, dict(process="foo"), "process"), (_hit, dict(process="ou", theta=0), "theta"),
    (_hit, dict(x0=None, inputs="cube"), "inputs"), (_hit, dict(x0=None, radius=0), "radius"),
    (_hit, dict(n_paths=1), "n_paths"),
    *[(_hit, {k: v}, k) for k, v in COMMON_BAD],
    (_occ, dict(orders=[4]), "order"), (_occ, dict(eps=[]), "eps"),
    (_occ, dict(n_checkpoints=0), "n_checkpoints"), (_occ, dict(metric="x"), "metric"),
    *[(_occ, {k: v}, k) for k, v in COMMON_BAD],
    (_wos, dict(max_steps=0), "max_steps"), (_wos, dict(max_steps=-5), "max_steps"),
    (_wos, dict(tol=-1.0), "tol"), (_wos, dict(deltas=[]), "deltas"),
    (_wos, dict(router=None), "router"),
    *[(_wos, {k: v}, k) for k, v in COMMON_BAD],
    (_over, dict(etas=[]), "eta"), (_over, dict(inputs="cube"), "inputs"),
    (_over, dict(radius=0), "radius"), (_over, dict(router="R"), "router"),
    *[(_over, {k: v}, k) for k, v in COMMON_BAD],
    (_cal, dict(target=0), "target"), (_cal, dict(target=None), "target"),
    (_cal, dict(target="x"), "target"), (_cal, dict(target=2), "target"),
    (_cal, dict(n_samples=1), "n_samples"), (_cal, dict(inputs="cube"), "inputs"),
    (_cal, dict(radius=-1), "radius"), (_cal, dict(constants="x"), "constants"),
    (_cal, dict(router=np.eye(4)), "router"),
    *[(_cal, {k: v}, k) for k, v in COMMON_BAD],
    (_cont, dict(model=R4), "model"), (_cont, dict(where=["foo"]), "where"),
    (_cont, dict(where="band_edge"), "where"), (_cont, dict(n_points=10 ** 9), "n_points"),
    (_cont, dict(deltas=[0]), "deltas"), (_cont, dict(eta=None), "eta"),
    (_router, dict(weights=np.ones((4, 8)) * (1 + 1j)), "W"),
    (_router, dict(weights=np.full((4, 8), np.nan)), "W"),
    (_router, dict(weights=np.random.default_rng(0).standard_normal((4, 8)) * 1e200), "W"),
    (_router, dict(weights=np.random.default_rng(0).standard_normal((4, 8)) * 1e-300), "W"),
    (_router, dict(weights="abc"), "W"), (_router, dict(k=None), "k"), (_router, dict(k="2"), "k"),
    (_router, dict(k=0), "k"), (_router, dict(k=4), "k"), (_router, dict(bias=np.ones(3)), "bias"),
    (_router, dict(kind="foo"), "kind"),
    (lambda **kw: slice_constants(R4, 0), {}, "order"),
    (lambda **kw: slice_constants(R4, 1, "foo"), {}, "method"),
    (lambda **kw: slice_alpha(R4, [0]), {}, "slice"),
    (lambda **kw: slice_alpha(R4, ["a", "b"]), {}, "slice"),
    (lambda **kw: estimate_slice_volume(R4, [0, 9], 1.0, 0.1, 100), {}, "slice expert"),
    (lambda **kw: Router.correlated(4, 8, 2, rho=1.0), {}, "rho"),
    (lambda **kw: Router.correlated(4, 8, 2, rho="x"), {}, "rho"),
]


@pytest.mark.parametrize("func,kw,word", BAD,
                         ids=[f"{getattr(f, '__name__', 'f')}-{sorted(k.items())!r:.40}-{i}"
                              for i, (f, k, _) in enumerate(BAD)])
def test_bad_input_names_the_parameter_before_any_work(func, kw, word, no_work):
    with pytest.raises(InputError, match=word) as info:
        func(**kw)
    assert "\n" not in str(info.value)


def test_run_study_validates_the_whole_grid_first(tmp_path, monkeypatch):
    import discosim.app.studies.runner as st

    monkeypatch.setattr(st, "_run_point", lambda *a: (_ for _ in ()).throw(AssertionError("ran")))
    for grid, word in (({"eps": [0.1, "abc"]}, "eps"), ({"M": [6, 11]}, "M < D"),
                       ({"eps": []}, "no values"), ({"eps": {"a": 1}}, "eps"),
                       ({"n_samples": [100, 1.5]}, "n_samples")):
        with pytest.raises(InputError, match=word):
            run_study("volume_ratios", tmp_path / "o", grid=grid)
    for kw, word in ((dict(seed=-1), "seed"), (dict(backend="foo"), "backend"),
                     (dict(resume="yes"), "resume"), (dict(n_jobs=0), "n_jobs")):
        with pytest.raises(InputError, match=word):
            run_study("volume_ratios", tmp_path / "o", **kw)


# ------------------------------------------------------------------ the result shape
def _results():
    cheap = dict(n_jobs=1, seed=3)
    model = SMoE(R4, seed=1)
    return [
        _vol(**cheap), _vol(method="tube", **cheap),
        simulate_first_exit(R4, X0, 1.0, 0.5, 0.01, 64, **cheap),
        _hit(deltas=[0.01, 0.1], **cheap), _occ(**cheap), _wos(**cheap), _over(**cheap),
        _cal(**cheap), measure_continuity(model, [1e-4, 1e-3], 0.05, n_points=10, seed=3),
        slice_alpha(R4, [0, 1], seed=3), slice_alpha(R4, [0, 1], "mc", n_samples=1000, seed=3),
    ]


def test_every_result_is_a_frozen_dataclass_with_to_dict_and_seed_entropy():
    for res in _results():
        assert dataclasses.is_dataclass(res) and res.__dataclass_params__.frozen, type(res)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, dataclasses.fields(res)[0].name, None)
        d = res.to_dict()
        assert d["seed_entropy"] == res.seed_entropy
        assert res.seed_entropy == np.random.SeedSequence(3).entropy, type(res)
        json.loads(dumps(d))  # strict JSON
        for f in dataclasses.fields(res):
            assert not isinstance(getattr(res, f.name), list), (type(res), f.name)


def test_volume_result_cells_and_columns_agree():
    res = _vol(eps=[0.3, 0.1], n_samples=20000, seed=1)
    for i in range(2):
        for j, r in enumerate(res.orders):
            o = res.order_result(i, r)
            assert o.estimate.value == res.fraction[i, j] == res.series(r)[i]
            assert o.estimate.stderr == res.stderr[i, j] == res.series(r, "stderr")[i]
            assert o.predicted_leading == res.predicted_leading[i, j]
    with pytest.raises(InputError, match="order"):
        res.order_result(0, 9)


def test_seed_takes_a_generator_and_the_entropy_replays_it():
    a = _vol(seed=np.random.default_rng(11), n_samples=5000)
    b = _vol(seed=np.random.default_rng(11), n_samples=5000)
    c = _vol(seed=a.seed_entropy, n_samples=5000)
    assert np.array_equal(a.fraction, b.fraction) and np.array_equal(a.fraction, c.fraction)
    d = _vol(seed=np.random.SeedSequence(a.seed_entropy), n_samples=5000)
    assert np.array_equal(a.fraction, d.fraction)


def test_predictions_are_seeded_from_the_users_seed():
    """Monte Carlo slice constants (M=24: too many slices for Genz) follow the run's seed."""
    router = Router.gaussian(24, 32, 4, seed=1)
    kw = dict(eps=[0.01], orders=(2,), n_samples=100, prediction_samples=2000)
    a = estimate_volumes(router, 1.0, seed=1, **kw)
    b = estimate_volumes(router, 1.0, seed=1, **kw)
    c = estimate_volumes(router, 1.0, seed=2, **kw)
    assert a.constants[2].method == "mc"
    assert a.predicted_leading[0, 0] == b.predicted_leading[0, 0] != c.predicted_leading[0, 0]
    assert _vol(predict=False).constants == {} and np.isnan(_vol(predict=False).predicted_leading).all()


def test_router_keeps_its_own_copy_of_w():
    W = np.random.default_rng(0).standard_normal((4, 8))
    b = np.zeros(4)
    r = Router(W, 2, bias=b)
    before = (r.scores(X0).copy(), r.reduced_weights.copy())
    W[:] = 0.0
    b[:] = 5.0
    assert np.array_equal(r.scores(X0), before[0])
    assert np.array_equal(r.reduced_weights, before[1])


def test_random_starts_need_no_start_argument():
    res = _hit(x0=None, n_paths=64, seed=1)
    assert res.lower_bound is None and len(res.cdf) == 1


def test_default_orders_for_small_routers():
    for M, orders in ((2, (1,)), (3, (1, 2)), (6, (1, 2, 3))):
        router = Router.gaussian(M, 8, 1, seed=0)
        assert estimate_volumes(router, 1.0, [0.1], n_samples=100, seed=0).orders == orders


# ------------------------------------------------------------------ n_jobs invariance
def _same(a, b):
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("elapsed_s", None)
    assert dumps(da) == dumps(db)


@pytest.mark.parametrize("make", [
    lambda n_jobs: _occ(n_paths=200, seed=4, n_jobs=n_jobs),
    lambda n_jobs: _over(n_samples=100_000, seed=4, n_jobs=n_jobs),
    lambda n_jobs: _wos(n_paths=600, seed=4, n_jobs=n_jobs),
    lambda n_jobs: _hit(n_paths=600, deltas=[0.01, 0.1], seed=4, n_jobs=n_jobs),
    lambda n_jobs: _vol(n_samples=200_000, eps=[0.05, 0.1], seed=4, n_jobs=n_jobs),
    lambda n_jobs: _cal(n_samples=50_000, seed=4, n_jobs=n_jobs),
    lambda n_jobs: slice_constants(Router.gaussian(24, 32, 4, seed=1), 2, n_samples=70_000, seed=4,
                                   n_jobs=n_jobs),
    lambda n_jobs: slice_constants(Router.gaussian(40, 48, 4, seed=1), 1, n_samples=70_000, seed=4,
                                   n_jobs=n_jobs),
], ids=["occupation", "overhead", "walk_on_spheres", "first_hit", "volume", "calibration",
        "slice_constants_mc", "slice_constants_pairs"])
def test_bit_identical_for_any_n_jobs(make):
    from discosim.volumes import constants

    constants._CACHE.clear()  # the second run must compute, not look up
    one = make(1)
    constants._CACHE.clear()
    _same(one, make(2))
