"""discosim's routing of every family against independent references (issue 22 item 3).

The references (``_reference_routing.py``) are transcribed from each family's public modeling code,
the checkpoints (``_reference_build.py``) are written with the ``safetensors`` package under the
hub's tensor names and config fields; neither imports discosim. For each synthetic checkpoint,
``discosim.open_checkpoint(path)`` must find exactly the routers the model builds, and
``RouterLayer.select(h)`` must select the same experts as the reference on every hidden state whose
reference scores are not tied (``TIE_RTOL``); ties are counted, not compared.

Hidden states: Gaussian rows with a common mean offset (so LayerNorm's centring matters) and row
scales log-uniform from 1e-4 to 30 (so the norm's eps matters wherever a bias follows the norm:
about a third of the rows have ``mean(h^2)`` within a factor 100 of eps 1e-6..1e-5).

Run against discosim before issue 22, the ``select`` tests fail (no ``RouterLayer.select``, new
families unknown); ``test_todays_routing_matches_reference_without_eps`` checks the references
themselves against the routing discosim already had.
"""

import json
import os
from dataclasses import replace

import numpy as np
import pytest

import _reference_build as B
import _reference_routing as R
import discosim
from discosim.checkpoints.families import FAMILIES as DS_FAMILIES
from discosim.model.selection import Routing

N = 2000

# cases whose family discosim supported before issue 22 (pre-issue names via R.ALIASES); the
# eps-free "today" path is checked on these; the rest waits for RouterLayer.select
_TODAY = ("mixtral", "arctic", "phimoe", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3",
          "kimi_k2", "dbrx", "jamba", "granitemoe", "granitemoeshared", "gpt_oss",
          "switch_transformers")

# families with an additive term after the norm (router bias, folded LayerNorm bias, selection
# bias): the eps of the norm changes their selection, so the test can see a wrong eps
_EPS_SENSITIVE = ("phimoe", "deepseek_v3", "gpt_oss", "minimax_m2", "exaone_moe", "ernie4_5_moe",
                  "glm4_moe", "glm4v_moe")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("family_refs")
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = B.build(case, root)
        return cache[case]
    return get


def hidden(seed, n=N, d=B.D):
    rng = np.random.default_rng(seed)
    offset = 1.0 + 0.5 * rng.standard_normal(d)
    scale = 10.0 ** rng.uniform(-4.0, 1.5, n)
    return scale[:, None] * (rng.standard_normal((n, d)) + offset)


def _model_type(config):
    return config["model_type"]


# ------------------------------------------------------------------------------- the files
def _decode(raw, dtype, shape):
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    kind = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "U8": "u1"}[dtype]
    return np.frombuffer(raw, kind).reshape(shape)


@pytest.mark.parametrize("case", sorted(B.CASES))
def test_written_files_hold_the_values(built, case):
    """The two shards, read back byte by byte, hold the values the reference routes with."""
    path, config, values = built(case)
    index = json.load(open(os.path.join(path, "model.safetensors.index.json")))
    assert sorted(set(index["weight_map"].values())) == ["model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors"]
    assert set(index["weight_map"]) == set(values)
    seen = 0
    for fname in sorted(set(index["weight_map"].values())):
        blob = open(os.path.join(path, fname), "rb").read()
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + n])
        header.pop("__metadata__", None)
        for name, meta in header.items():
            a, b = meta["data_offsets"]
            got = _decode(blob[8 + n + a: 8 + n + b], meta["dtype"], meta["shape"])
            np.testing.assert_array_equal(got.astype(np.float64), values[name], err_msg=name)
            seen += 1
    assert seen == len(values)
    assert json.load(open(os.path.join(path, "config.json"))) == config
    # every tensor the reference routes with is in the checkpoint
    for r in R.routers(B.CASES[case][0], values, config):
        for name in (r.key, r.norm[1], r.norm[2]) + tuple(r.extra):
            assert name is None or name in values, (case, name)


# ------------------------------------------------------------------------------- reference parts
def test_reference_parts():
    """The reference's building blocks on hand-made inputs."""
    # top-k ties go to the lower index and are flagged
    mask, tie = R.topk_select(np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 2.0, 1.0, 0.0]]), 1)
    assert mask.tolist() == [[False, True, False, False], [True, False, False, False]]
    assert tie.tolist() == [True, False]
    # RMSNorm with (1 + w) is RMSNorm with weight 1 + w; LayerNorm centres
    rng = np.random.default_rng(0)
    h, w = rng.standard_normal((5, 8)), rng.standard_normal(8)
    np.testing.assert_allclose(R.rms_norm_1p(h, w, 1e-6), R.rms_norm(h, 1.0 + w, 1e-6), rtol=1e-15)
    np.testing.assert_allclose(R.layer_norm(h + 3.0, np.ones(8), None, 0.0).mean(axis=1), 0.0,
                               atol=1e-14)
    # group-limited selection, groups (0,1) (2,3) (4,5), one kept, then top-2: V3's top-2 sum
    # keeps group 1 (0.5 + 0.5 > 0.9 + 0.0), V2's max keeps group 0 (0.9)
    s = np.array([[0.9, 0.0, 0.5, 0.5, 0.1, 0.1]])
    mask, _, _ = R._group_select(s, 3, 1, 2, "top2sum", -np.inf)
    assert mask.tolist() == [[False, False, True, True, False, False]]
    mask, _, _ = R._group_select(s, 3, 1, 2, "max", 0.0)
    assert mask.tolist() == [[True, True, False, False, False, False]]
    # transformers' 0.0 fill of dropped experts picks a dropped expert over a negative kept score;
    # the reference flags such rows as ties (two published variants disagree)
    t = {"w": np.eye(4), "b": np.array([-0.9, -0.9, 0.0, 0.0])}
    x = np.array([[4.0, 3.0, -9.0, -9.0]])   # sigmoid + bias: ~0.08, ~0.05, ~1e-4, ~1e-4
    sel = R._deepseek_v3_like("w", "b", 2, 2, 1, fill=0.0)
    mask, _, tie = sel(t, x)
    assert tie.tolist() == [False]             # both fills keep group 0 and its two experts
    t["b"] = np.full(4, -1.0)                  # kept group's scores negative: 0.0 fill picks the
    mask, _, tie = sel(t, np.array([[4.0, 3.0, -30.0, -30.0]]))   # dropped experts 2, 3
    assert mask.tolist() == [[False, False, True, True]] and tie.tolist() == [True]


# ------------------------------------------------------------------------------- coverage
@pytest.mark.parametrize("name", sorted(set(DS_FAMILIES) | set(R.FAMILIES)))
def test_every_family_has_a_reference_and_a_checkpoint(name):
    """Every family of discosim's registry has an independent reference and a synthetic case,
    and every reference family is in the registry (the new ones arrive with issue 22)."""
    fam = R.canonical(name)
    assert fam in R.FAMILIES, f"no reference for discosim family {name!r}"
    cases = [c for c, (f, _) in B.CASES.items() if f == fam]
    assert cases, f"no synthetic checkpoint for {fam!r}"
    registry = {R.canonical(f) for f in DS_FAMILIES}
    registry |= {R.canonical(t) for f in DS_FAMILIES.values() for t in f.model_types}
    assert fam in registry, f"discosim has no family for {fam!r}"


# ------------------------------------------------------------------------------- the references
@pytest.mark.parametrize("case", sorted(c for c in B.CASES if B.CASES[c][0] in _EPS_SENSITIVE))
def test_hidden_states_make_eps_matter(built, case):
    """Power: for families with a bias after the norm, the norm's eps changes the selected set on
    some of the test's hidden states (an eps-free reader would be caught)."""
    path, config, values = built(case)
    fam = B.CASES[case][0]
    h = hidden(1)
    changed = 0
    for r in R.routers(fam, values, config):
        a, ia = R.route(fam, values, config, r.key, h)
        b, ib = R.route(fam, values, config, r.key, h, eps=0.0)
        ok = ~(ia["tie"] | ib["tie"])
        changed += int(np.sum(np.any(a != b, axis=1) & ok))
    assert changed > 0


# ------------------------------------------------------------------------------- discosim
def _compare(case, ckpt, values, config, h, select, eps=None):
    """Routers found and experts selected; returns (compared rows, tied rows). ``eps`` overrides
    the reference norm's eps."""
    fam = B.CASES[case][0]
    refs = R.routers(fam, values, config)
    ref_keys = {r.key for r in refs}
    mlp_keys = {r.key for r in refs if r.kind == "mlp"}
    found = list(ckpt.layer_names)
    extra = sorted(set(found) - ref_keys)
    assert not extra, f"{case}: discosim takes non-routers for routers: {extra[:4]}"
    missing = sorted(mlp_keys - set(found))
    assert not missing, f"{case}: discosim misses routers: {missing[:4]}"
    compared = tied = 0
    for layer in ckpt:
        ref, info = R.route(fam, values, config, layer.name, h, eps=eps)
        got = np.asarray(select(layer))
        assert got.shape == ref.shape and got.dtype == bool
        ok = ~info["tie"]
        bad = np.nonzero(np.any(got != ref, axis=1) & ok)[0]
        assert bad.size == 0, (f"{case} {layer.name}: {bad.size} of {ok.sum()} non-tied rows "
                               f"select other experts (first row {bad[0]}: discosim "
                               f"{np.nonzero(got[bad[0]])[0]}, reference "
                               f"{np.nonzero(ref[bad[0]])[0]})")
        compared += int(ok.sum())
        tied += int((~ok).sum())
    return compared, tied


@pytest.mark.parametrize("case", sorted(B.CASES))
def test_select_matches_reference(built, case, record_property):
    """The contract of issue 22: ``RouterLayer.select(h)`` is the model's own routing, on every
    family, from config.json alone; ``norm_eps`` is the eps the model's norm uses."""
    path, config, values = built(case)
    ckpt = discosim.open_checkpoint(path)
    fam = B.CASES[case][0]
    assert ckpt.detected_by == "config"
    assert R.canonical(ckpt.family) in (fam, _model_type(config))
    h = hidden(2)
    compared, tied = _compare(case, ckpt, values, config, h, lambda layer: layer.select(h))
    assert compared >= 0.99 * N * len(ckpt), (compared, tied)
    record_property("rows_compared", compared)
    record_property("rows_tied", tied)
    refs = {r.key: r for r in R.routers(fam, values, config)}
    for layer in ckpt:
        eps = refs[layer.name].norm[3]
        if eps is not None:
            assert layer.norm_eps == eps, (layer.name, layer.norm_eps, eps)
        # logits: W n(h) + b in float64; rounding bound (D + 1) 2^-52 (sum_j |w_ij n_j| + |b_i|)
        # for any summation order, times 10 for the norm's own roundings
        r = refs[layer.name]
        want = R.logits(fam, values, config, layer.name, h)
        x = R.normed(fam, values, config, layer.name, h)
        mag = np.abs(x) @ np.abs(values[layer.name]).T
        if r.router_bias:
            mag = mag + np.abs(values[r.router_bias])
        bound = 10 * (B.D + 1) * 2.0 ** -52 * mag + 1e-300
        got = np.asarray(layer.logits(h))
        assert got.shape == want.shape
        assert np.all(np.abs(got - want) <= bound), layer.name


# Plausible misreadings of GLM-4.5V's modeling code, each planted on top of discosim's own reading
# (the other parts right): the comparison must catch every one.
def _glm4v_no_selection_bias(layer, h):
    return Routing.of(replace(layer, selection_bias=None)).select(layer.logits(h))


def _glm4v_every_group_kept(layer, h):
    return Routing.of(replace(layer, n_group=None, topk_group=None)).select(layer.logits(h))


def _glm4v_softmax_scores(layer, h):
    return Routing.of(replace(layer, score_func="softmax")).select(layer.logits(h))


def _glm4v_eps_1e_6(layer, h):
    """Glm4vMoeTextRMSNorm's class default eps instead of the config's rms_norm_eps 1e-5."""
    x = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + 1e-6)
    return Routing.of(layer).select(x @ layer.weight.T)


_GLM4V_MISTAKES = {"no selection bias": _glm4v_no_selection_bias,
                   "every group kept": _glm4v_every_group_kept,
                   "softmax scores": _glm4v_softmax_scores,
                   "eps 1e-6": _glm4v_eps_1e_6}


@pytest.mark.parametrize("mistake", sorted(_GLM4V_MISTAKES))
@pytest.mark.parametrize("case", ["glm4v_moe", "glm4v_moe_default_topk_group"])
def test_glm4v_moe_planted_mistakes_are_caught(built, case, mistake):
    """Power of the comparison for GLM-4.5V: every planted misreading selects other experts on
    some non-tied row of every case, so test_select_matches_reference would fail on it."""
    path, config, values = built(case)
    ckpt = discosim.open_checkpoint(path)
    h = hidden(2)
    wrong = _GLM4V_MISTAKES[mistake]
    with pytest.raises(AssertionError, match="non-tied rows select other experts"):
        _compare(case, ckpt, values, config, h, lambda layer: wrong(layer, h))


def test_glm4v_moe_planted_layout_mistakes_are_caught(built):
    """Routers read from every ``mlp.gate.weight`` under the text model (the MTP-like layer past
    num_hidden_layers kept), or the post_attention_layernorm weight left out of the gate: both
    caught."""
    case = "glm4v_moe_converter_config"   # n_group 1: a key_pattern's plain top-k may read it
    path, config, values = built(case)
    h = hidden(2)
    assert len(discosim.open_checkpoint(path)) == config["text_config"]["num_hidden_layers"] - 1
    every = discosim.open_checkpoint(
        path, key_pattern=r"model\.language_model\.layers\.(?P<layer>\d+)\.mlp\.gate\.weight")
    assert len(every) == config["text_config"]["num_hidden_layers"]
    with pytest.raises(AssertionError, match="takes non-routers for routers"):
        _compare(case, every, values, config, h, lambda layer: layer.select(h))
    unfolded = discosim.open_checkpoint(path, fold_norm=False)

    def rms_only(layer):
        x = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + 1e-5)
        return Routing.of(layer).select(x @ layer.weight.T)
    with pytest.raises(AssertionError, match="non-tied rows select other experts"):
        _compare(case, unfolded, values, config, h, rms_only)


def _today_select(layer, h):
    """discosim's routing before issue 22: the stored gate with the norm weight folded, on
    ``h / rms(h)`` (centred first for a LayerNorm), no eps, through Routing."""
    from discosim.model.selection import Routing
    x = h - h.mean(axis=1, keepdims=True) if layer.norm_type == "layernorm" else h
    x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True))
    logits = x @ layer.weight.T
    if layer.bias is not None:
        logits = logits + layer.bias
    return Routing.of(layer).select(logits)


@pytest.mark.parametrize("case", _TODAY)
def test_todays_routing_matches_reference_without_eps(built, case, record_property):
    """The references agree with discosim's pre-issue-22 routing (eps set to 0 on both sides)
    for the families discosim already supported: a check of the references themselves."""
    path, config, values = built(case)
    ckpt = discosim.open_checkpoint(path)
    fam = B.CASES[case][0]
    assert R.canonical(ckpt.family) == fam
    h = hidden(3)
    compared, tied = _compare(case, ckpt, values, config, h,
                              lambda layer: _today_select(layer, h), eps=0.0)
    record_property("rows_compared", compared)
    record_property("rows_tied", tied)
    assert compared >= 0.99 * N * len(ckpt), (compared, tied)
