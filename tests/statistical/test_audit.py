"""The checkpoint audit (discosim.audit.estimators, discosim audit): THEORY §9 claims, twins and shapes."""

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

from checkpoint_factory import FAMILY_NAMES, make_checkpoint
from discosim._kernels.audit import flip_indicator as _flip_indicator
from discosim.audit.estimators import (AGREEMENT_SE, audit_checkpoint, audit_layers,
                            flip_agreement)
from discosim.checkpoints import open_checkpoint
from discosim._core.errors import InputError
from discosim.model.router import Router
from discosim.model.selection import Routing, round_to_format, sigmoid, sigmoid_slope, ulp


def gaussian_layer(M=8, D=64, k=2, seed=0, scale=1.0, **extra):
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((M, D)) / math.sqrt(D)
    fields = dict(name=f"toy{seed}", index=0, family="toy", weight=W, bias=None, selection_bias=None,
                  k=k, routing="topk", n_group=None, topk_group=None, norm_folded=True,
                  norm_type="rmsnorm")
    fields.update(extra)
    return SimpleNamespace(**fields)


def deepseek_layer(M=32, D=96, k=4, G=4, T=2, seed=0):
    rng = np.random.default_rng(seed)
    return gaussian_layer(M, D, k, seed, routing="deepseek_v3", n_group=G, topk_group=T,
                          selection_bias=rng.standard_normal(M) * 0.05, family="deepseek_v3")


# --------------------------------------------------------------------------- the THEORY §9 claim
@pytest.fixture(scope="module")
def toy_audit():
    """M = 8, D = 64, sphere inputs (the setting THEORY §9 names)."""
    return audit_layers([gaussian_layer()], n_samples=400_000, seed=11, constants_samples=20_000)


def test_flip_prediction_one_quarter_matches(toy_audit):
    for f in toy_audit.layers[0].flips:
        assert f.claim
        assert f.n_flips >= 20  # enough flips for a normal error bar
        assert flip_agreement(f, 1.0), (f.format, f.measured, f.predicted, f.difference_stderr)
        assert abs(f.measured - f.predicted) <= AGREEMENT_SE * f.difference_stderr
        assert f.leading_order_ok  # the window's first-order correction is below the error


def test_planted_one_sixth_fails_the_same_rule(toy_audit):
    """Independent rounding errors would give 1/6 instead of 1/4 (THEORY §9): the rule rejects it."""
    bf16 = toy_audit.layers[0].flip("bf16")
    assert not flip_agreement(bf16, (1 / 6) / (1 / 4))


def test_margin_fraction_matches_sphere_leading_order(toy_audit):
    """P(g <= eps) at the smallest eps against (B_1/2)(eps/R) Gamma(D/2)/(Gamma(3/2)Gamma((D-1)/2))."""
    L = toy_audit.layers[0]
    B1, B1_se = L.constants[1]["B"]
    pred = L.margin_fraction_predicted[0]
    se = math.hypot(L.margin_fraction_stderr[0], pred * B1_se / B1)
    assert abs(L.margin_fraction[0] - pred) <= 4 * se


def test_flip_prefilter_equals_full_rounding():
    """Slow twin: round every row and compare selections; the audit rounds only rows it must."""
    rng = np.random.default_rng(5)
    for layer in (gaussian_layer(M=16, D=40, k=3), deepseek_layer()):
        routing = Routing.of(layer)
        x = rng.standard_normal((20000, layer.weight.shape[1]))
        logits = x @ layer.weight.T * 2.0
        parts = routing.parts(logits)
        for fmt in ("bf16", "fp16"):
            full = np.any(routing.select(round_to_format(logits, fmt)) != routing.select(logits), axis=1)
            widths = None if routing.linear else sigmoid_slope(logits) * ulp(logits, fmt)
            assert np.array_equal(_flip_indicator(routing, logits, parts, fmt, widths), full)
            assert full.sum() > (10 if fmt == "bf16" else 2)


def test_reduced_sphere_matches_full_dimensional_sampling():
    """Margin fractions from full-D sphere points (slow twin) and from reduced coordinates agree."""
    layer = gaussian_layer(M=6, D=30, k=2, seed=3)
    eps = 0.05
    res = audit_layers([layer], eps=[eps], n_samples=60_000, seed=2, formats=["bf16"],
                       constants_samples=0)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((60_000, 30))
    x *= math.sqrt(30) / np.linalg.norm(x, axis=1, keepdims=True)
    g = np.sort(x @ layer.weight.T, axis=1)
    p_full = np.mean(g[:, -2] - g[:, -3] <= eps)
    L = res.layers[0]
    se = math.hypot(L.margin_fraction_stderr[0], math.sqrt(p_full * (1 - p_full) / 60_000))
    assert abs(L.margin_fraction[0] - p_full) <= 4 * se


def test_deepseek_reported_not_claimed():
    res = audit_layers([deepseek_layer()], n_samples=20_000, seed=1)
    L = res.layers[0]
    assert not L.closed_forms_apply and L.constants == {} and L.margin_fraction_predicted is None
    assert all(not f.claim for f in L.flips)
    assert "§5" in L.note and res.notes
    d = L.to_dict()
    assert d["flip"]["bf16"]["predicted"] > 0 and d["A"] == {}


# --------------------------------------------------------------------------- reproducibility, shape
def test_n_jobs_invariance():
    layers = [gaussian_layer(M=8, D=64, seed=1), deepseek_layer(seed=2)]
    a = audit_layers(layers, n_samples=20_000, seed=4, n_jobs=1, constants_samples=2000).to_dict()
    b = audit_layers(layers, n_samples=20_000, seed=4, n_jobs=2, constants_samples=2000).to_dict()
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def factory_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_ckpt")


def test_json_shape_acceptance(factory_dir):
    path = make_checkpoint(factory_dir / "mix", "mixtral", n_layers=2, n_experts=8, dim=32, k=2)
    doc = json.loads(json.dumps(audit_checkpoint(path, n_samples=5000, seed=0,
                                                 constants_samples=500).to_dict()))
    assert {"model", "family", "inputs", "layers", "seed_entropy"} <= set(doc)
    assert doc["family"] == "mixtral" and doc["inputs"] == "sphere" and len(doc["layers"]) == 2
    for L in doc["layers"]:
        assert {"name", "M", "k", "D", "A", "eps", "margin_fraction", "margin_quantiles",
                "flip"} <= set(L)
        assert set(L["A"]) == {"1", "2", "3"} and all(len(v) == 2 for v in L["A"].values())
        assert len(L["margin_fraction"]["1"]) == len(L["eps"])
        for fmt in ("bf16", "fp16"):
            assert {"measured", "stderr", "predicted"} <= set(L["flip"][fmt])


# issue 10's twelve families; every family's routing is checked against its own NumPy reference
# in tests/unit/test_family_references.py and tests/unit/test_families.py (issue 22)
@pytest.mark.parametrize("family", FAMILY_NAMES[:12])
def test_selection_matches_direct_numpy_per_family(family, factory_dir):
    """Each family's selection on random inputs equals a direct NumPy implementation of its
    routing, and the reduced coordinates of THEORY §3 give the same logits as W x + b."""
    kw = dict(n_experts=16, dim=48, k=2)
    if family == "deepseek_v3":
        kw.update(k=4, n_group=4, topk_group=2)
    path = make_checkpoint(factory_dir / f"sel_{family}", family, **kw)
    layer = open_checkpoint(path)[0]
    W, b = layer.weight, layer.bias
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, W.shape[1]))
    logits = x @ W.T + (0 if b is None else b)
    got = Routing.of(layer).select(logits)
    if layer.routing == "deepseek_v3":
        M, G, T = W.shape[0], layer.n_group, layer.topk_group
        s = sigmoid(logits) + layer.selection_bias
        gs = np.sort(s.reshape(-1, G, M // G), axis=2)[:, :, -2:].sum(axis=2)
        keep = np.zeros(gs.shape, dtype=bool)
        np.put_along_axis(keep, np.argsort(-gs, axis=1, kind="stable")[:, :T], True, axis=1)
        s = np.where(np.repeat(keep, M // G, axis=1), s, -np.inf)
        idx = np.argsort(-s, axis=1, kind="stable")[:, :layer.k]
    else:
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))  # softmax is monotone
        idx = np.argsort(-probs, axis=1, kind="stable")[:, :layer.k]
    want = np.zeros_like(got)
    np.put_along_axis(want, idx, True, axis=1)
    assert np.array_equal(got, want)
    if family == "switch":
        assert layer.k == 1
    router = Router(W, layer.k, bias=b)
    z = x @ router.basis
    assert np.allclose(z @ router.reduced_weights.T + router.bias, logits, atol=1e-12, rtol=1e-10)


# --------------------------------------------------------------------------- inputs
def test_npz_hidden_states_binomial(factory_dir, tmp_path):
    path = make_checkpoint(factory_dir / "npz", "qwen3_moe", n_layers=2, n_experts=8, dim=32, k=2)
    ckpt = open_checkpoint(path)
    rng = np.random.default_rng(3)
    states = {name: rng.standard_normal((3000, 32)) * 7.0 for name in ckpt.layer_names}
    np.savez(tmp_path / "h.npz", **states)
    eps = [0.01, 0.1]
    res = audit_checkpoint(path, inputs=str(tmp_path / "h.npz"), eps=eps, seed=0,
                           constants_samples=500)
    for L, layer in zip(res.layers, ckpt):
        h = states[layer.name]
        # the router sees h / sqrt(mean(h^2) + eps) with the model's eps (rms_norm_eps)
        x = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + ckpt.config["rms_norm_eps"])
        g = np.sort(x @ layer.weight.T, axis=1)
        for j, e in enumerate(eps):
            p = np.mean(g[:, -2] - g[:, -3] <= e)
            assert L.margin_fraction[j] == p
            assert L.margin_fraction_stderr[j] == pytest.approx(math.sqrt(p * (1 - p) / 3000))
        assert L.n_samples == 3000 and L.margin_fraction_predicted is None
        assert set(L.constants) == {1, 2, 3}  # properties of W, whatever the inputs
    with pytest.raises(InputError, match="no key"):
        np.savez(tmp_path / "bad.npz", a=states[ckpt.layer_names[0]], b=states[ckpt.layer_names[0]])
        audit_checkpoint(path, inputs=str(tmp_path / "bad.npz"))
    np.save(tmp_path / "wrong.npy", np.ones((10, 31)))
    with pytest.raises(InputError, match="shape"):
        audit_checkpoint(path, inputs=str(tmp_path / "wrong.npy"))


def test_bad_arguments_are_one_line_errors(factory_dir):
    path = make_checkpoint(factory_dir / "bad", "olmoe", n_layers=1, n_experts=8, dim=32, k=2)
    for kw, word in ((dict(eps=[-1]), "eps"), (dict(formats=["bf8"]), "format"),
                     (dict(n_samples=0), "n_samples"), (dict(layers=[5]), "layers"),
                     (dict(inputs="cube"), "inputs"), (dict(n_jobs=0), "n_jobs")):
        with pytest.raises(InputError, match=word) as e:
            audit_checkpoint(path, **kw)
        assert "\n" not in str(e.value)
    big = gaussian_layer(scale=3e5)
    with pytest.raises(InputError, match="fp16"):
        audit_layers([big], n_samples=1000, seed=0, constants_samples=0)


# --------------------------------------------------------------------------- CLI
def _cli(capsys, *args):
    from discosim.app.cli.main import main

    try:
        rc = main(["audit", *args])
    except SystemExit as e:  # argparse errors
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_json_csv_out_and_exit_codes(factory_dir, tmp_path, capsys):
    path = make_checkpoint(factory_dir / "cli", "deepseek_v3", n_layers=1, n_experts=16, dim=32,
                           k=2)
    rc, out, err = _cli(capsys, str(path), "--json", "--n-samples", "2000", "--seed", "1", "--csv",
                        str(tmp_path / "a.csv"), "--out", str(tmp_path / "out"))
    assert rc == 0, err
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert doc["family"] == "deepseek_v3" and doc["layers"][0]["M"] == 16
    assert os.path.isfile(tmp_path / "a.csv") and os.path.isfile(tmp_path / "out" / "audit.png")
    header = open(tmp_path / "a.csv").readline().strip().split(",")
    assert {"model", "layer", "quantity", "parameter", "value", "stderr", "predicted"} <= set(header)
    for bad in ([str(tmp_path / "missing")], [str(path), "--formats", "bf8"],
                [str(path), "--eps", "x"], [str(path), "--layers", "9"],
                [str(path), "--n-samples", "many"]):
        rc, out, err = _cli(capsys, *bad)
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and "Traceback" not in err


def test_study_audit_lands_several_checkpoints_in_one_csv(factory_dir, tmp_path):
    import csv

    from discosim.app.studies import run_study

    a = make_checkpoint(factory_dir / "st_a", "mixtral", n_layers=1, n_experts=8, dim=32, k=2)
    b = make_checkpoint(factory_dir / "st_b", "gpt_oss", n_layers=2, n_experts=8, dim=32, k=2)
    csv_path = run_study("audit", str(tmp_path / "st"), grid={"path": [str(a), str(b)],
                                                              "n_samples": 2000}, progress=False)
    rows = list(csv.DictReader(open(csv_path)))
    assert {r["family"] for r in rows} == {"mixtral", "gpt_oss"}
    # three layers x (bf16, fp16, bf16-router, fp16-router, margin fraction)
    assert len(rows) == 3 * 5
    assert {r["parameter"] for r in rows if r["quantity"] == "flip_rate"} == {
        "bf16", "fp16", "bf16-router", "fp16-router"}
    assert os.path.isfile(tmp_path / "st" / "audit.png")


def test_layer_subset_reproduces_numbers(factory_dir):
    path = make_checkpoint(factory_dir / "subset", "olmoe", n_layers=3, n_experts=8, dim=32, k=2)
    full = audit_checkpoint(path, n_samples=3000, seed=5, constants_samples=300).to_dict()
    one = audit_checkpoint(path, n_samples=3000, seed=5, constants_samples=300, layers=[2]).to_dict()
    assert one["layers"][0] == full["layers"][2]


# --------------------------------------------------------------------------- whole router (issue 22)
def _bf16(a):
    return round_to_format(a, "bf16")


def whole_router_layer(M=8, D=512, k=2, seed=0, layernorm=False, router_bias=False):
    """A layer as a bf16 checkpoint gives it: stored W and gamma in bf16, W diag(gamma) folded."""
    rng = np.random.default_rng(seed)
    stored = _bf16(rng.standard_normal((M, D)) / math.sqrt(D))
    gamma = _bf16(1.0 + 0.3 * rng.standard_normal(D))
    extra = dict(stored_weight=stored, norm_type="layernorm" if layernorm else "rmsnorm")
    bias = _bf16(0.1 * rng.standard_normal(M)) if router_bias else None
    if layernorm:
        beta = _bf16(0.05 * rng.standard_normal(D))
        extra["norm_bias"] = beta
        extra["router_bias"] = bias
        bias = stored @ beta + (0 if bias is None else bias)
    layer = gaussian_layer(M, D, k, seed, **extra)
    layer.weight = stored * gamma
    layer.bias = bias
    return layer


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["rmsnorm", "layernorm+bias", "router_bias"])
def test_whole_router_logits_equal_the_slow_twin(fmt, kind):
    """``model_logits`` (float32 sgemm of the rounded operands) against the slow twin's
    left-to-right float32 sums, logit by logit. The accumulation order moves an fp32 sum by
    ~2^-24 of the sum of its terms' sizes: the rounded logits agree exactly except where a
    sum lies that close to a rounding boundary of the format, which happens for logits near 0
    (cancelling terms, small spacing): there they differ by one spacing. Measured here: at most
    1 logit in 900."""
    from discosim.audit import whole_router as WR

    layer = whole_router_layer(M=6, D=48, seed=3, layernorm=kind == "layernorm+bias",
                               router_bias=kind != "rmsnorm")
    ops = WR.router_operands(layer)
    assert np.array_equal(ops.stored * ops.gamma, layer.weight)  # gamma recovered exactly
    x = WR._inputs(np.random.default_rng(1), 150, 48, ops.centred, "sphere")
    fast, _ = WR.model_logits(x, ops, fmt)
    slow, flips = WR.router_flips_slow(x, ops, Routing.of(layer), fmt)
    differ = fast != slow
    assert differ.sum() <= 2, (fmt, kind, np.nonzero(differ))
    assert np.all(np.abs(fast - slow) <= ulp(slow, fmt))
    routing = Routing.of(layer)
    fast_flips = np.any(routing.select(fast) != routing.select(WR.exact_logits(x, ops)), axis=1)
    rows = ~np.any(differ, axis=1)
    assert np.array_equal(flips[rows], fast_flips[rows])
    if kind == "layernorm+bias":
        assert np.allclose(x.sum(axis=1), 0, atol=1e-9)  # centred inputs
    assert np.allclose(np.linalg.norm(x, axis=1), math.sqrt(48))


@pytest.fixture(scope="module")
def router_audit():
    """M = 8, D = 512, bf16 checkpoint-like layer, 300k full-D inputs of the whole-router mode."""
    return audit_layers([whole_router_layer()], n_samples=400_000, router_samples=300_000, seed=21,
                        constants_samples=0, formats=["bf16"]).layers[0]


def test_whole_router_prediction_matches(router_audit):
    f = router_audit.flip("bf16-router")
    a = router_audit.flip("bf16")
    assert f.claim and f.n_samples == 300_000 and f.n_flips >= 300
    assert flip_agreement(f, 1.0), (f.measured, f.predicted, f.difference_stderr)
    assert f.leading_order_ok, f.window_correction
    # the input rounding matters here: the whole router flips clearly more often than the
    # logits alone, and THEORY §9's u/4 rule alone would not predict it
    assert f.measured - a.measured > 4 * math.hypot(f.stderr, a.stderr)


def test_whole_router_planted_errors_fail(router_audit):
    """The prediction off by its resolution fails the same rule: the test resolves 25%
    (4 paired standard errors are below 20% of the prediction), so a prediction 25% high or
    low is rejected."""
    f = router_audit.flip("bf16-router")
    assert AGREEMENT_SE * f.difference_stderr < 0.2 * f.predicted
    assert not flip_agreement(f, 1.25)
    assert not flip_agreement(f, 0.75)


def test_whole_router_mode_rows_and_checkpoint(factory_dir):
    """A bf16 checkpoint: gamma and the stored weight read from the files; every output names
    both modes; the default sample size; hidden-state inputs leave the mode out."""
    from discosim.audit.whole_router import default_router_samples

    path = make_checkpoint(factory_dir / "whole", "mixtral", n_layers=1, n_experts=8, dim=64, k=2)
    res = audit_checkpoint(path, n_samples=5000, seed=0, constants_samples=0)
    L = res.layers[0]
    assert [f.format for f in L.flips] == ["bf16", "fp16", "bf16-router", "fp16-router"]
    assert L.flip("bf16-router").n_samples == default_router_samples(8, 64) == 20_000
    assert L.flip("bf16-router").claim
    rows = [r for r in res.tidy_rows() if r["quantity"] == "flip_rate"]
    assert [r["parameter"] for r in rows] == ["bf16", "fp16", "bf16-router", "fp16-router"]
    assert set(L.to_dict()["flip"]) == {"bf16", "fp16", "bf16-router", "fp16-router"}
    off = audit_checkpoint(path, n_samples=5000, seed=0, constants_samples=0, router_samples=0)
    assert [f.format for f in off.layers[0].flips] == ["bf16", "fp16"]
    # the logits-only numbers do not change when the whole-router mode is added
    assert off.layers[0].flip("bf16") == L.flip("bf16")
    assert default_router_samples(256, 7168) == 585  # 2^30 / (M D)


def test_whole_router_curved_is_reported_without_prediction():
    layer = deepseek_layer()
    layer.stored_weight = layer.weight
    layer.norm_folded = False
    res = audit_layers([layer], n_samples=5000, router_samples=3000, seed=2, formats=["bf16"],
                       constants_samples=0)
    f = res.layers[0].flip("bf16-router")
    assert not f.claim and math.isnan(f.predicted) and not f.agrees
    row = [r for r in res.tidy_rows() if r["parameter"] == "bf16-router"][0]
    assert row["predicted"] is None


def test_whole_router_n_jobs_invariance_and_cli(factory_dir, capsys):
    layer = whole_router_layer(M=8, D=96, seed=4, router_bias=True)
    kw = dict(n_samples=5000, router_samples=3000, seed=4, constants_samples=0)
    a = audit_layers([layer], n_jobs=1, **kw).to_dict()
    b = audit_layers([layer], n_jobs=2, **kw).to_dict()
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    path = make_checkpoint(factory_dir / "cli_router", "olmoe", n_layers=1, n_experts=8, dim=32,
                           k=2)
    rc, out, err = _cli(capsys, str(path), "--n-samples", "2000", "--router-samples", "1000",
                        "--formats", "bf16", "--seed", "1")
    assert rc == 0, err
    assert "bf16-router flips" in out and "serving stack" in out
    rc, out, err = _cli(capsys, str(path), "--n-samples", "2000", "--router-samples", "0",
                        "--json", "--formats", "bf16")
    assert rc == 0 and set(json.loads(out)["layers"][0]["flip"]) == {"bf16"}
