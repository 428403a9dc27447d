"""Every result class of the public API inherits ResultMixin (issue 20): ``to_dict()`` is plain
JSON that ``json.dumps`` accepts (strictly: no NaN), ``to_rows()`` a list of flat dicts with one
shape per kind of quantity, and the keys other tools read are still there."""

import dataclasses
import inspect
import json
from types import SimpleNamespace

import numpy as np
import pytest

import discosim
from discosim import Router
from discosim._core.fitting import loglog_fit
from discosim._core.results import Estimate, ResultMixin, dumps, proportion_estimate, to_jsonable

R4 = Router.gaussian(4, 8, 2, seed=0)
X0 = np.random.default_rng(0).standard_normal(8) * 0.3
NOT_RESULTS = {"RunOptions", "PathOptions", "Router", "RouterLayer"}  # inputs, not results
ESTIMATE_COLUMNS = {"quantity", "value", "stderr", "n_samples", "n_hits", "interval",
                    "seed_entropy", "ci_low", "ci_high", "ci_level", "reliable"}


def _layer(index):
    W = np.random.default_rng(index).standard_normal((6, 16))
    return SimpleNamespace(name=f"model.layers.{index}.mlp.gate.weight", index=index,
                           family="test", weight=W, bias=None, selection_bias=None, k=2,
                           routing="topk", n_group=None, topk_group=None, norm_folded=False)


@pytest.fixture(scope="module")
def results():
    from discosim.diffusion import (estimate_first_hit, estimate_occupation, hit_order_wos,
                                    simulate_first_exit)
    from discosim.smoothing import (SMoE, calibrate_eta, estimate_overhead, mean_pointwise_slope,
                                    measure_continuity)
    from discosim.volumes import estimate_volumes, slice_alpha, slice_constants

    vol = estimate_volumes(R4, 1.0, [0.05, 0.1], n_samples=20_000, seed=1)
    cont = measure_continuity(SMoE(R4, seed=0), [1e-3, 1e-2], 0.05, n_points=10, seed=1)
    audit = discosim.audit_layers([_layer(0), _layer(2)], eps=[0.01, 0.1], n_samples=5000,
                                  constants_samples=2000, seed=1)
    out = [
        vol, vol.order_result(0, 1),
        estimate_volumes(R4, 1.0, [0.1], method="tube", n_samples=5000, seed=1).order_result(0, 2),
        slice_constants(R4, 1, seed=1), slice_alpha(R4, [0, 1], "mc", n_samples=2000, seed=1),
        estimate_first_hit(R4, X0, 1.0, 0.5, 0.01, 300, [0.25, 0.5], deltas=[0.02, 0.2], seed=1),
        simulate_first_exit(R4, None, 1.0, 0.05, 0.01, 20, seed=1),  # most never exit: NaN, inf
        estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 50, [0.05, 0.1], n_checkpoints=3, seed=1),
        hit_order_wos(R4, X0, [0.02, 0.2], 100, seed=1),
        estimate_overhead(R4, 1.0, [0.01, 0.1], n_samples=5000, seed=1),
        calibrate_eta(R4, 0.3, n_samples=5000, seed=1),
        cont, cont.exponents["topk"], mean_pointwise_slope([1e-3, 1e-2], np.zeros((3, 2))),
        audit, audit.layers[0], audit.layers[0].flips[0],
        proportion_estimate(3, 10, 5), loglog_fit([1, 2, 4], [1, 2.1, 3.9], [0.1, 0.1, 0.2]),
    ]
    return out


def test_every_public_result_class_has_the_mixin_and_is_covered(results):
    covered = {type(r) for r in results}
    for name in sorted(discosim._API):
        obj = getattr(discosim, name)
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and name not in NOT_RESULTS:
            assert issubclass(obj, ResultMixin), name
            assert obj in covered, f"{name}: no instance in this test"


def test_to_dict_is_plain_json_and_to_rows_flat_dicts(results):
    for res in results:
        d = res.to_dict()
        json.dumps(d)  # no ndarray or numpy scalar left
        assert json.loads(dumps(d)) == to_jsonable(d), type(res).__name__  # strict: NaN -> null
        rows = res.to_rows()
        assert isinstance(rows, list) and rows, type(res).__name__
        for row in rows:
            assert isinstance(row, dict) and "quantity" in row, (type(res).__name__, row)
            for key, value in row.items():
                assert isinstance(key, str)
                assert value is None or isinstance(value, (str, int, float, bool)), \
                    (type(res).__name__, key, value)
        json.dumps(rows, allow_nan=False)


def test_estimates_have_one_row_shape_everywhere(results):
    shapes = {}
    for res in results:
        for row in res.to_rows():
            if "interval" in row:  # a Monte Carlo estimate
                assert ESTIMATE_COLUMNS <= set(row), (type(res).__name__, sorted(row))
                shapes.setdefault(type(res).__name__, row["quantity"])
            else:
                assert {"quantity", "value", "stderr"} <= set(row) or "parameter" in row, \
                    (type(res).__name__, sorted(row))
    # estimates appear in volumes, first hit, walk on spheres and overhead rows
    assert {"VolumeResult", "OrderResult", "HitResult", "WosResult", "OverheadResult",
            "Estimate"} <= set(shapes)


def test_the_keys_other_tools_read_are_kept(results):
    by_type = {type(r).__name__: r for r in results}
    keys = {
        "VolumeResult": {"router", "radius", "metric", "method", "n_samples", "seed",
                         "seed_entropy", "elapsed_s", "constants", "results"},
        "HitResult": {"first_hit", "hit_order", "n_paths", "seed_entropy"},
        "OccupationResult": {"metric", "eps", "times", "n_paths", "seed_entropy", "orders"},
        "WosResult": {"deltas", "q", "stderr", "mean_steps", "n_truncated", "n_paths",
                      "seed_entropy"},
        "OverheadResult": {"etas", "mean_extra", "stderr", "predicted_leading", "c1",
                           "c1_rel_stderr", "inputs", "n_samples", "seed_entropy"},
        "ContinuityResult": {"deltas", "eta", "a_s", "b_s", "seed_entropy", "jumps"},
        "Calibration": {"eta", "eta_first_guess", "target", "inputs", "n_samples", "seed_entropy"},
        "FirstExitResult": {"tau", "exit_points", "t_max", "n_steps", "seed_entropy"},
        "AuditResult": {"model", "family", "inputs", "n_samples", "formats", "eps",
                        "seed_entropy", "notes", "layers"},
        "LinearFit": {"slope", "slope_stderr", "intercept", "n_points"},
        "Estimate": {"value", "stderr", "n_samples", "n_hits", "interval", "seed_entropy",
                     "ci_low", "ci_high", "ci_level", "reliable"},
    }
    for name, want in keys.items():
        assert want <= set(by_type[name].to_dict()), name


def test_rows_carry_the_numbers_of_the_result(results):
    vol = results[0]
    rows = vol.to_rows()
    assert len(rows) == len(vol.eps) * len(vol.orders)
    for row in rows:
        i, j = vol.eps.index(row["eps"]), vol.orders.index(row["order"])
        assert row["value"] == vol.fraction[i, j] and row["stderr"] == vol.stderr[i, j]
        assert row["predicted"] == vol.predicted_leading[i, j]
    hit = next(r for r in results if type(r).__name__ == "HitResult")
    cdf = [r for r in hit.to_rows() if r["quantity"] == "cdf"]
    assert [r["value"] for r in cdf] == [e.value for e in hit.cdf]
    assert [r["upper_bound"] for r in cdf] == hit.upper_bound.tolist()
    exit_ = next(r for r in results if type(r).__name__ == "FirstExitResult")
    assert [r["value"] for r in exit_.to_rows()] == [None if not np.isfinite(t) else t
                                                     for t in exit_.tau.tolist()]


def test_to_frame_when_pandas_is_there(results):
    pd = pytest.importorskip("pandas")
    frame = results[0].to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(results[0].to_rows())
    assert isinstance(Estimate(0.5, 0.1, 10, 5).to_frame(), pd.DataFrame)
