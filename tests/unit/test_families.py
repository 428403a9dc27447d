"""Issue 22's router families: each read from its config fields and real key names, its norm
(w, 1 + w, LayerNorm, none) folded exactly with its own eps, its routing (score function,
selection bias, groups) selected as a slow per-row reference says; unknown model types refused;
families guessed from tensor names labelled "guessed" in every report; the README's table generated.

The expectations below are written from the modeling code (see discosim/checkpoints/families.py for
the files), independently of the reader; the synthetic checkpoints' exact stored values come from
the factory (frexp/ldexp), and the slow twin of ``RouterLayer.select`` is a per-row loop.
"""

import json
import math
import os
from fractions import Fraction

import numpy as np
import pytest

from checkpoint_factory import FAMILY_NAMES, make_checkpoint
from discosim._core.errors import InputError
from discosim.checkpoints import FAMILIES, open_checkpoint
from discosim.model.selection import Routing

NEW = ("deepseek_v2", "llama4", "cohere2_moe", "jetmoe", "hunyuan_v1_moe", "qwen3_next",
       "qwen3_5_moe", "qwen3_vl_moe", "minimax_m2", "exaone_moe", "ernie4_5_moe", "flex_olmo",
       "glm4_moe", "glm4v_moe", "minimax")
LM = "model.language_model.layers."
# family: (first router, its norm or None, norm form, eps, routing, score, selection bias or None,
# n_group) for make_checkpoint's defaults (2 routers, M = 8, D = 32, k = 2, groups 4 keep 2)
EXPECT = {
    "deepseek_v2": ("model.layers.1.mlp.gate.weight",
                    "model.layers.1.post_attention_layernorm.weight", "rmsnorm", 1e-5,
                    "deepseek_v2", "softmax", None, 4),
    "llama4": ("language_model.model.layers.1.feed_forward.router.weight",
               "language_model.model.layers.1.post_attention_layernorm.weight", "rmsnorm", 1e-5,
               "topk", "sigmoid", None, None),
    "cohere2_moe": ("model.layers.0.mlp.gate.weight", "model.layers.0.input_layernorm.weight",
                    "rmsnorm", 1e-5, "topk", "softmax", None, None),
    # JetMoeRMSNorm(config.hidden_size): its default eps 1e-6, not the config's 1e-5
    "jetmoe": ("model.layers.0.mlp.router.layer.weight",
               "model.layers.0.post_attention_layernorm.weight", "rmsnorm", 1e-6, "topk",
               "softmax", None, None),
    "hunyuan_v1_moe": ("model.layers.0.mlp.gate.wg.weight",
                       "model.layers.0.post_attention_layernorm.weight", "rmsnorm", 1e-5, "topk",
                       "softmax", None, None),
    "qwen3_next": ("model.layers.0.mlp.gate.weight",
                   "model.layers.0.post_attention_layernorm.weight", "rmsnorm_1p", 1e-6, "topk",
                   "softmax", None, None),
    "qwen3_5_moe": (LM + "0.mlp.gate.weight", LM + "0.post_attention_layernorm.weight",
                    "rmsnorm_1p", 1e-6, "topk", "softmax", None, None),
    "qwen3_vl_moe": (LM + "0.mlp.gate.weight", LM + "0.post_attention_layernorm.weight",
                     "rmsnorm", 1e-6, "topk", "softmax", None, None),
    "minimax_m2": ("model.layers.0.block_sparse_moe.gate.weight",
                   "model.layers.0.post_attention_layernorm.weight", "rmsnorm", 1e-6,
                   "deepseek_v3", "sigmoid", "model.layers.0.block_sparse_moe.e_score_correction_bias",
                   None),
    "exaone_moe": ("model.layers.1.mlp.gate.weight",
                   "model.layers.1.post_attention_layernorm.weight", "rmsnorm", 1e-5,
                   "deepseek_v3", "sigmoid", "model.layers.1.mlp.gate.e_score_correction_bias", 4),
    "ernie4_5_moe": ("model.layers.1.mlp.gate.weight",
                     "model.layers.1.post_attention_layernorm.weight", "rmsnorm", 1e-5,
                     "deepseek_v3", "softmax",
                     "model.layers.1.mlp.moe_statics.e_score_correction_bias", None),
    "flex_olmo": ("model.layers.0.mlp.gate.weight", None, None, None, "topk", "softmax", None,
                  None),
    "glm4_moe": ("model.layers.1.mlp.gate.weight",
                 "model.layers.1.post_attention_layernorm.weight", "rmsnorm", 1e-5, "deepseek_v3",
                 "sigmoid", "model.layers.1.mlp.gate.e_score_correction_bias", 4),
    # GLM-4.5V: layer 0 dense (first_k_dense_replace 1), fields under text_config
    "glm4v_moe": (LM + "1.mlp.gate.weight", LM + "1.post_attention_layernorm.weight", "rmsnorm",
                  1e-5, "deepseek_v3", "sigmoid", LM + "1.mlp.gate.e_score_correction_bias", 4),
    "minimax": ("model.layers.0.block_sparse_moe.gate.weight",
                "model.layers.0.post_attention_layernorm.weight", "rmsnorm", 1e-5, "topk",
                "softmax", None, None),
}


def one_line_error(fn, *match):
    with pytest.raises(InputError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and msg
    for m in match:
        assert m in msg, msg
    return msg


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return {fam: make_checkpoint(tmp_path_factory.mktemp(fam), fam, return_tensors=True)
            for fam in NEW}


def test_registry_reaches_25_families_each_with_source_and_builder():
    assert len(FAMILIES) >= 25 and set(FAMILIES) == set(FAMILY_NAMES)
    for name, fam in FAMILIES.items():
        assert fam.source, name
        assert fam.norm_form in ("rmsnorm", "rmsnorm_1p", "layernorm", None)
        assert (fam.norm is None) == (fam.norm_form is None)


@pytest.mark.parametrize("family", NEW)
def test_new_family_read_from_its_config_and_keys(built, family):
    path, truth = built[family]
    router, norm, form, eps, routing, score, sel, groups = EXPECT[family]
    ckpt = open_checkpoint(path)
    assert ckpt.family == family and ckpt.detected_by == "config" and not ckpt.guessed
    assert ckpt.layer_names[0] == router and len(ckpt) == 2
    layer = ckpt[0]
    assert (layer.norm_key, layer.norm_form, layer.norm_eps) == (norm, form, eps)
    assert (layer.routing, layer.score_func, layer.n_group) == (routing, score, groups)
    assert layer.k == 2 and layer.M == 8 and layer.D == 32
    # THEORY §5's closed forms: only linear top-k of a monotone transform of w.x + b
    assert Routing.of(layer).linear == (routing == "topk")
    w = truth[router]
    if sel is None:
        assert layer.selection_bias is None
    else:
        assert np.array_equal(layer.selection_bias, truth[sel].reshape(-1))
    if norm is None:
        assert not layer.norm_folded and np.array_equal(layer.weight, w)
        return
    g = truth[norm]
    scale = [Fraction(float(x)) + (1 if form == "rmsnorm_1p" else 0) for x in g]
    assert all(Fraction(float(layer.weight[i, j])) == Fraction(float(w[i, j])) * scale[j]
               for i in range(8) for j in range(32)), "norm folded exactly"


def test_one_plus_w_norm_is_not_w(built):
    """Folding (1 + w) is what Qwen3-Next's norm does; folding w alone would route differently."""
    path, truth = built["qwen3_next"]
    layer = open_checkpoint(path)[0]
    w, g = truth[layer.name], truth[layer.norm_key]
    assert np.max(np.abs(g)) < 1  # stored centred on 0, as the model initialises it
    assert np.array_equal(layer.weight, w * (1.0 + g))
    x = np.random.default_rng(0).standard_normal((2000, 32))
    wrong = Routing("topk", 2).select(x @ (w * g).T)
    assert np.mean(np.all(layer.select(x) == wrong, axis=1)) < 0.9


# --------------------------------------------------------------------------- slow twin of select
def _scores(logits, score):
    if score == "sigmoid":
        return [1.0 / (1.0 + math.exp(-v)) for v in logits]
    top = max(logits)
    e = [math.exp(v - top) for v in logits]
    return [v / sum(e) for v in e]


def slow_select(h, w, gamma, form, eps, rbias, routing, score, sel, groups, k):
    """One row at a time, in plain Python, from the modeling code's description."""
    D = len(h)
    if form == "layernorm":
        mean = sum(h) / D
        h = [v - mean for v in h]
    if form is not None:
        r = math.sqrt(sum(v * v for v in h) / D + eps)
        scale = [1 + gv if form == "rmsnorm_1p" else gv for gv in gamma]
        h = [h[j] / r * scale[j] for j in range(D)]
    logits = [sum(w[i][j] * h[j] for j in range(D)) + (rbias[i] if rbias is not None else 0.0)
              for i in range(len(w))]
    M = len(logits)
    if routing == "topk":
        s = logits
    else:
        s = _scores(logits, score)
        if sel is not None:
            s = [s[i] + sel[i] for i in range(M)]
    keep = set(range(M))
    if routing != "topk" and groups is not None:
        G, T = groups
        size = M // G
        gs = []
        for g in range(G):
            member = sorted(s[g * size:(g + 1) * size], reverse=True)
            gs.append(member[0] if routing == "deepseek_v2" else member[0] + member[1])
        best = sorted(range(G), key=lambda g: (-gs[g], g))[:T]
        keep = {g * size + i for g in best for i in range(size)}
    ranked = sorted(keep, key=lambda i: (-s[i], i))
    chosen = set(ranked[:k])
    margin = s[ranked[k - 1]] - s[ranked[k]] if len(ranked) > k else float("inf")
    return [i in chosen for i in range(M)], margin


@pytest.mark.parametrize("family", NEW + ("deepseek_v3", "phimoe", "dbrx", "gpt_oss"))
def test_select_equals_slow_twin(tmp_path, family):
    path, truth = make_checkpoint(tmp_path, family, n_experts=8, dim=24, k=3, seed=5,
                                  return_tensors=True)
    ckpt = open_checkpoint(path)
    cfg = json.load(open(os.path.join(path, "config.json")))
    rng = np.random.default_rng(7)
    # ordinary rows and rows of small norm, where the eps of the norm moves the scores
    h = np.concatenate([rng.standard_normal((150, 24)), 1e-3 * rng.standard_normal((150, 24))])
    for layer in ckpt:
        got = layer.select(h)
        w = truth[layer.name]
        gamma = truth[layer.norm_key] if layer.norm_key else None
        beta_key = layer.norm_key.replace("weight", "bias") if layer.norm_key else None
        rbias = truth.get(layer.name.replace("weight", "bias"))
        if beta_key in truth:  # a LayerNorm's bias acts through the router: W (x + beta)
            extra = w @ truth[beta_key]
            rbias = extra if rbias is None else rbias + extra
        eps = layer.norm_eps if layer.norm_form else None
        if layer.norm_form is not None:
            # the eps the config says (JetMoE's norm ignores its config and uses 1e-6; dbrx
            # nn.LayerNorm's default 1e-5; Switch layer_norm_epsilon)
            want_eps = {"jetmoe": 1e-6, "dbrx": 1e-5}.get(family, cfg.get("rms_norm_eps") or
                                                          cfg.get("text_config", {}).get(
                                                              "rms_norm_eps"))
            assert eps == want_eps
        sel = None
        if layer.selection_bias is not None:
            sel = list(layer.selection_bias)
        groups = (layer.n_group, layer.topk_group) if layer.n_group else None
        skipped = 0
        for n in range(h.shape[0]):
            want, margin = slow_select(list(h[n]), w.tolist(), gamma, layer.norm_form, eps,
                                       rbias, layer.routing, layer.score_func, sel, groups, 3)
            if margin < 1e-9:  # a tie to rounding: either answer is the model's
                skipped += 1
                continue
            assert got[n].tolist() == want, (family, n)
        assert skipped <= 2


def test_scoring_func_softmax_is_honoured(tmp_path):
    """DeepSeek-V3 with ``scoring_func: softmax`` selects by softmax + bias, not sigmoid + bias."""
    path = make_checkpoint(tmp_path, "deepseek_v3", n_experts=8, dim=24, k=2, n_group=1,
                           config_overrides={"scoring_func": "softmax"})
    layer = open_checkpoint(path)[0]
    assert layer.score_func == "softmax"
    x = np.random.default_rng(2).standard_normal((4000, 24))
    logits = layer.logits(x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    soft = Routing("topk", 2).select(p + layer.selection_bias)
    sig = Routing("topk", 2).select(1 / (1 + np.exp(-logits)) + layer.selection_bias)
    assert np.array_equal(layer.select(x), soft) and not np.array_equal(soft, sig)


def test_deepseek_v2_topk_method(tmp_path):
    greedy = make_checkpoint(tmp_path / "g", "deepseek_v2", n_group=1)
    layer = open_checkpoint(greedy)[0]
    assert layer.routing == "topk" and Routing.of(layer).linear
    grouped = open_checkpoint(make_checkpoint(tmp_path / "gl", "deepseek_v2"))[0]
    assert grouped.routing == "deepseek_v2" and not Routing.of(grouped).linear
    odd = make_checkpoint(tmp_path / "o", "deepseek_v2", config_overrides={"topk_method": "noaux"})
    one_line_error(lambda: open_checkpoint(odd), "topk_method", "noaux")


def test_config_fields_of_new_families(tmp_path):
    # Cohere2-MoE without rms_norm_eps: a LayerNorm (centring) with layer_norm_eps
    ln = make_checkpoint(tmp_path / "ln", "cohere2_moe",
                         config_overrides={"rms_norm_eps": None, "layer_norm_eps": 3e-4})
    layer = open_checkpoint(ln)[0]
    assert (layer.norm_form, layer.norm_type, layer.norm_eps) == ("layernorm", "layernorm", 3e-4)
    # HunYuan's moe_topk per layer: one value
    hy = make_checkpoint(tmp_path / "hy", "hunyuan_v1_moe", k=3)
    assert open_checkpoint(hy).k == 3
    bad = make_checkpoint(tmp_path / "hyb", "hunyuan_v1_moe", config_overrides={"moe_topk": [2, 3]})
    one_line_error(lambda: open_checkpoint(bad), "moe_topk", "differs between layers")
    # ERNIE's k is moe_k; Llama-4's fields live in text_config
    assert open_checkpoint(make_checkpoint(tmp_path / "er", "ernie4_5_moe", k=3)).k == 3
    l4 = open_checkpoint(make_checkpoint(tmp_path / "l4", "llama4", k=1))
    assert l4.k == 1 and l4.norm_eps == 1e-5
    big_eps = make_checkpoint(tmp_path / "eps", "qwen3_next", config_overrides={"rms_norm_eps": 0.25})
    assert open_checkpoint(big_eps)[0].norm_eps == 0.25
    jet = make_checkpoint(tmp_path / "jet", "jetmoe", config_overrides={"rms_norm_eps": 0.25})
    assert open_checkpoint(jet)[0].norm_eps == 1e-6
    one_line_error(lambda: open_checkpoint(make_checkpoint(
        tmp_path / "neg", "minimax", config_overrides={"rms_norm_eps": -1})), "rms_norm_eps")


def test_glm4_moe_mtp_layer_dropped_and_multimodal_lookalikes_skipped(built):
    path, truth = built["glm4_moe"]
    ckpt = open_checkpoint(path)
    assert ckpt.layer_names == ["model.layers.1.mlp.gate.weight", "model.layers.2.mlp.gate.weight"]
    assert "model.layers.3.mlp.gate.weight" in truth  # the MTP layer is in the files
    for fam in ("qwen3_5_moe", "ernie4_5_moe", "exaone_moe"):
        names = open_checkpoint(built[fam][0]).layer_names
        assert not any(n.startswith(("mtp", "model.visual")) for n in names)
    jet = open_checkpoint(built["jetmoe"][0]).layer_names
    assert not any("self_attention" in n for n in jet)  # MoA's router is not the MLP's


def test_glm4v_moe_text_config_layout_and_mtp(tmp_path, built):
    """GLM-4.5V: the MTP-like layer past text_config.num_hidden_layers is dropped, the vision
    tower is skipped, topk_group defaults to Glm4vMoeTextConfig's 1 (not "every group"), and the
    plain ``model.layers.`` layout, which Glm4vMoeForConditionalGeneration does not read, is
    refused."""
    path, truth = built["glm4v_moe"]
    ckpt = open_checkpoint(path)
    assert ckpt.layer_names == [LM + "1.mlp.gate.weight", LM + "2.mlp.gate.weight"]
    assert LM + "3.mlp.gate.weight" in truth and any(n.startswith("model.visual") for n in truth)
    assert (ckpt[0].n_group, ckpt[0].topk_group) == (4, 2)
    text = json.load(open(os.path.join(path, "config.json")))["text_config"]
    # n_group without topk_group: one group kept, as transformers' config class defaults it
    one = make_checkpoint(tmp_path / "one", "glm4v_moe", config_overrides={
        "text_config": {k: v for k, v in text.items() if k != "topk_group"}})
    layer = open_checkpoint(one)[0]
    assert (layer.n_group, layer.topk_group) == (4, 1)
    # neither field: no groups (n_group 1)
    none = make_checkpoint(tmp_path / "none", "glm4v_moe", config_overrides={
        "text_config": {k: v for k, v in text.items() if k not in ("n_group", "topk_group")}})
    assert open_checkpoint(none)[0].n_group is None
    # the GLM-4-MoE layout under GLM-4.5V's config: not what the model loads, refused
    plain = make_checkpoint(tmp_path / "plain", "glm4_moe",
                            config_overrides={"model_type": "glm4v_moe"})
    one_line_error(lambda: open_checkpoint(plain), "names a glm4v_moe model", "no tensor")


# --------------------------------------------------------------------------- eps of --inputs
def test_hidden_states_normalised_with_the_models_eps(tmp_path):
    from discosim.audit.estimators import _check_points, _point_logits
    from discosim import audit_checkpoint

    path = make_checkpoint(tmp_path, "qwen3_next", n_layers=1, config_overrides={
        "rms_norm_eps": 1e-2})
    layer = open_checkpoint(path)[0]
    h = 0.05 * np.random.default_rng(4).standard_normal((3000, 32))  # mean(h^2) ~ eps/4
    x = h / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + 1e-2)
    want = x @ layer.weight.T
    got = _point_logits(_check_points(layer, {None: h}), 0, 3000, np.asarray(layer.weight),
                        None, layer.name, True, False)
    assert np.allclose(got, want, rtol=1e-12, atol=0)
    assert np.allclose(layer.logits(h), want, rtol=1e-12, atol=0)
    res = audit_checkpoint(path, inputs=h, eps=[0.01], seed=0, constants_samples=0)
    g = np.sort(want, axis=1)
    assert res.layers[0].margin_fraction[0] == np.mean(g[:, -2] - g[:, -3] <= 0.01)


# --------------------------------------------------------------------------- refusals, labels
def _cli(capsys, *args):
    from discosim.app.cli.main import main

    try:
        rc = main(["audit", *args])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_unknown_model_type_refused_unless_family_named(tmp_path, capsys):
    path = make_checkpoint(tmp_path, "minimax_m2", config_overrides={
        "model_type": "minimax_m9", "architectures": ["MiniMaxM2ForCausalLM"]})
    msg = one_line_error(lambda: open_checkpoint(path), "minimax_m9", "not a known router family",
                         "model.layers.{i}.block_sparse_moe.gate.weight",
                         "block_sparse_moe.e_score_correction_bias")
    assert "--no-fold-norm" not in msg and "family='" not in msg  # no routing suggested blindly
    assert open_checkpoint(path, family="minimax_m2").detected_by == "argument"
    rc, out, err = _cli(capsys, str(path), "--n-samples", "200", "--constants-samples", "0")
    assert rc == 2 and out == "" and err.count("\n") == 1 and "minimax_m9" in err
    rc, out, err = _cli(capsys, str(path), "--family", "minimax_m2", "--n-samples", "200",
                        "--constants-samples", "0", "--json")
    assert rc == 0, err
    assert json.loads(out)["family"] == "minimax_m2"


def test_guessed_family_labelled_everywhere(tmp_path, capsys):
    path = make_checkpoint(tmp_path, "llama4", write_config=False)
    ckpt = open_checkpoint(path, k=1)
    # keys alone: post_attention_layernorm in front of feed_forward.router is Llama-4, not Jamba
    assert ckpt.family_name == "llama4" and ckpt.guessed and ckpt.family == "llama4 (guessed)"
    assert ckpt[0].to_dict()["family"] == "llama4 (guessed)"
    rc, out, err = _cli(capsys, str(path), "--k", "1", "--n-samples", "200",
                        "--constants-samples", "0")
    assert rc == 0, err
    assert "family: llama4 (guessed)" in out
    rc, out, err = _cli(capsys, str(path), "--k", "1", "--n-samples", "200",
                        "--constants-samples", "0", "--json", "--csv", str(tmp_path / "a.csv"))
    doc = json.loads(out)
    assert doc["family"] == "llama4 (guessed)"
    assert all(L["family"] == "llama4 (guessed)" for L in doc["layers"])
    assert "llama4 (guessed)" in open(tmp_path / "a.csv").read()
    # a config without model_type: guessed as well
    nomt = make_checkpoint(tmp_path / "nomt", "olmoe", config_overrides={
        "model_type": None, "architectures": None})
    assert open_checkpoint(nomt).family == "olmoe (guessed)"
    # naming the family is not a guess
    assert open_checkpoint(path, k=1, family="llama4").family == "llama4"


# --------------------------------------------------------------------------- README
def test_readme_family_table_is_generated_from_the_registry():
    from discosim.checkpoints.family_table import (FAMILY_TABLE_MARKERS, family_table_markdown,
                                                   family_table_rows)

    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    text = open(readme, encoding="utf-8").read()
    start, end = FAMILY_TABLE_MARKERS
    block = text[text.index(start) + len(start):text.index(end)]
    assert block == "\n" + family_table_markdown()
    rows = {r["family"]: r for r in family_table_rows()}
    assert set(rows) == set(FAMILIES)
    for name, fam in FAMILIES.items():
        assert rows[name]["closed forms (§5) apply"] == (
            "yes" if fam.routing == "topk" else
            "greedy: yes; group_limited_greedy: no" if fam.routing == "deepseek_v2" else "no")


@pytest.mark.parametrize("family", ["glm4_moe", "exaone_moe"])
def test_missing_topk_group_takes_the_config_class_default(tmp_path, family):
    """Glm4MoeConfig and ExaoneMoeConfig default topk_group to 1: a config.json with n_group 4
    and no topk_group keeps one group in the model, not every group."""
    path = make_checkpoint(tmp_path / family, family,
                           config_overrides={"n_group": 4, "topk_group": None})
    layer = open_checkpoint(path)[0]
    assert (layer.n_group, layer.topk_group) == (4, 1)
