"""discosim.checkpoints: every family's routers found (and no look-alike), settings from config.json
and overrides, exact widening and folding, lazy reading, one-line errors (issue 10 items 1, 2, 6).

Expected values come from the factory's exact stored values (built with frexp/ldexp, not by the
reader's bit tricks) and from exact rational arithmetic (fractions), never from the code under test.
"""

import json
import os
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

from checkpoint_factory import FAMILY_NAMES, make_checkpoint, write_safetensors, encode
from discosim.checkpoints import FAMILIES, RouterLayer, open_checkpoint
from discosim._core.errors import InputError

# Independent statement of where each family keeps its routers and norms (from the transformers
# modeling files; see discosim/checkpoints/families.py for the citations).
ROUTER_SUFFIX = {
    "mixtral": "block_sparse_moe.gate.weight", "arctic": "block_sparse_moe.gate.weight",
    "phimoe": "block_sparse_moe.gate.weight", "olmoe": "mlp.gate.weight",
    "qwen2_moe": "mlp.gate.weight", "qwen3_moe": "mlp.gate.weight",
    "deepseek_v3": "mlp.gate.weight", "dbrx": "ffn.router.layer.weight",
    "jamba": "feed_forward.router.weight", "granite_moe": "block_sparse_moe.router.layer.weight",
    "gpt_oss": "mlp.router.weight", "switch": "mlp.router.classifier.weight",
}
EXPECTED_ROUTERS = {
    "deepseek_v3": ["model.layers.1.mlp.gate.weight", "model.layers.2.mlp.gate.weight"],
    "dbrx": ["transformer.blocks.0.ffn.router.layer.weight",
             "transformer.blocks.1.ffn.router.layer.weight"],
    "jamba": ["model.layers.1.feed_forward.router.weight",
              "model.layers.3.feed_forward.router.weight"],
    "switch": ["encoder.block.1.layer.1.mlp.router.classifier.weight",
               "decoder.block.1.layer.2.mlp.router.classifier.weight"],
}
KEY_ONLY_FAMILY = {"arctic": "mixtral", "qwen2_moe": "olmoe", "qwen3_moe": "olmoe"}
# issue 10's families; issue 22's are tested in tests/unit/test_families.py
ORIGINAL = FAMILY_NAMES[:12]


def expected_routers(family):
    if family in EXPECTED_ROUTERS:
        return EXPECTED_ROUTERS[family]
    return [f"model.layers.{i}.{ROUTER_SUFFIX[family]}" for i in range(2)]


def expected_norm(router):
    if router.startswith("transformer.blocks."):
        return router.replace("ffn.router.layer", "norm_attn_norm.norm_2")
    if router.endswith("feed_forward.router.weight"):
        return router.replace("feed_forward.router", "pre_ff_layernorm")
    if router.endswith("mlp.router.classifier.weight"):  # the same layer.{j} (T5 LayerFF)
        return router.replace("mlp.router.classifier", "layer_norm")
    layer = router.split(".")[2]
    return f"model.layers.{layer}.post_attention_layernorm.weight"


def one_line_error(fn, *match):
    with pytest.raises(InputError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and msg
    for m in match:
        assert m in msg, msg
    return msg


def exact_product_ok(folded, w, g):
    """Every entry of folded equals w_ij * g_j exactly (rational arithmetic)."""
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            if Fraction(float(folded[i, j])) != Fraction(float(w[i, j])) * Fraction(float(g[j])):
                return False
    return True


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = {}
    for fam in ORIGINAL:
        d = tmp_path_factory.mktemp(fam)
        out[fam] = make_checkpoint(d, fam, n_layers=2, n_experts=8, dim=32, k=2, shards=2,
                                   return_tensors=True)
    return out


@pytest.mark.parametrize("family", ORIGINAL)
def test_family_routers_found_and_folded_exactly(built, family):
    path, truth = built[family]
    ckpt = open_checkpoint(path)
    assert ckpt.family == family and ckpt.detected_by == "config"
    assert ckpt.layer_names == expected_routers(family)
    assert len(ckpt) == 2 and ckpt.config["_name_or_path"] == ckpt.model_name
    # every other name that contains 'gate' or 'router' is a look-alike the reader must skip
    lookalikes = [n for n in truth if ("gate" in n or "router" in n) and n not in ckpt.layer_names
                  and not n.endswith(("router.bias", "e_score_correction_bias"))]
    if family in ("olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3", "jamba", "gpt_oss"):
        assert lookalikes, "the factory must plant the look-alikes these models have"
    for i, layer in enumerate(ckpt):
        assert isinstance(layer, RouterLayer)
        assert layer.index == i and layer.name == ckpt.layer_names[i]
        assert layer.family == family and layer.dtype == "bfloat16"
        assert layer.weight.shape == (8, 32) and layer.weight.dtype == np.float64
        assert not layer.weight.flags.writeable
        assert layer.k == (1 if family == "switch" else 2)
        assert layer.routing == ("deepseek_v3" if family == "deepseek_v3" else "topk")
        assert layer.score_func == ("sigmoid" if family == "deepseek_v3" else "softmax")
        assert layer.norm_folded and layer.norm_key == expected_norm(layer.name)
        assert layer.norm_type == ("layernorm" if family in ("phimoe", "dbrx") else "rmsnorm")
        w, g = truth[layer.name], truth[layer.norm_key]
        assert exact_product_ok(layer.weight, w, g)
        if family == "deepseek_v3":
            assert (layer.n_group, layer.topk_group) == (4, 2)
            sel = truth[layer.name.replace("weight", "e_score_correction_bias")]
            assert np.array_equal(layer.selection_bias, sel)
        else:
            assert layer.selection_bias is None and layer.n_group is None
        if family == "gpt_oss":
            assert np.array_equal(layer.bias, truth[layer.name.replace("weight", "bias")])
        elif family == "phimoe":
            beta = truth[layer.norm_key.replace("weight", "bias")]
            exact = [sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(row, beta))
                     for row in w]
            # float64 dot product: |error| <= D u sum|w_j beta_j| (u = 2^-53)
            bound = 32 * 2.0 ** -53 * np.abs(w) @ np.abs(beta)
            assert np.all(np.abs(layer.bias - np.array([float(e) for e in exact])) <= bound)
        else:
            assert layer.bias is None


@pytest.mark.parametrize("family", ORIGINAL)
def test_family_from_key_names_alone(tmp_path, family):
    path = make_checkpoint(tmp_path, family, write_config=False)
    ckpt = open_checkpoint(path, k=2)
    guess = KEY_ONLY_FAMILY.get(family, family)
    assert ckpt.family_name == guess and ckpt.detected_by == "keys" and ckpt.guessed
    assert ckpt.family == f"{guess} (guessed)" and ckpt[0].family == ckpt.family
    assert ckpt.layer_names[-1] in expected_routers(family) or family == "deepseek_v3"
    if family == "deepseek_v3":
        # no config: the MTP layer cannot be told apart, and groups are unknown
        assert ckpt.routing == "deepseek_v3" and ckpt.n_group is None
    assert ckpt.config == {}


def test_fold_norm_off_gives_stored_weight(built):
    path, truth = built["phimoe"]
    ckpt = open_checkpoint(path, fold_norm=False)
    layer = ckpt[1]
    assert not layer.norm_folded and layer.norm_key is None and layer.bias is None
    assert layer.norm_type is None
    assert np.array_equal(layer.weight, truth[layer.name])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_widening_exact_single_file(tmp_path, dtype):
    path, truth = make_checkpoint(tmp_path, "mixtral", dtype=dtype, shards=1, return_tensors=True)
    assert not os.path.exists(os.path.join(path, "model.safetensors.index.json"))
    for target in (path, os.path.join(path, "model.safetensors")):
        ckpt = open_checkpoint(target, fold_norm=False)
        for layer in ckpt:
            assert layer.dtype == dtype
            assert np.array_equal(layer.weight, truth[layer.name])
    folded = open_checkpoint(path)[0]
    assert exact_product_ok(folded.weight, truth[folded.name], truth[folded.norm_key])


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_factory_files_are_valid_safetensors(tmp_path, dtype):
    from safetensors import safe_open

    path, truth = make_checkpoint(tmp_path, "qwen2_moe", dtype=dtype, shards=2, return_tensors=True)
    with open(os.path.join(path, "model.safetensors.index.json")) as fh:
        index = json.load(fh)
    sizes = 0
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(os.path.join(path, shard), framework="numpy") as f:
            for name in f.keys():
                arr = f.get_tensor(name)
                sizes += arr.nbytes
                assert np.array_equal(arr.astype(np.float64), truth[name])
    assert sizes == index["metadata"]["total_size"]


def test_bf16_matches_weights_module(tmp_path):
    from discosim.model.weights import load_weights

    path = make_checkpoint(tmp_path, "olmoe", shards=1)
    layer = open_checkpoint(path, fold_norm=False)[1]
    assert np.array_equal(load_weights(os.path.join(path, "model.safetensors"), layer.name),
                          layer.weight)


def test_checkpoint_and_layer_pickle(built):
    # workers of a parallel audit receive these
    import pickle

    path, _ = built["deepseek_v3"]
    ckpt = pickle.loads(pickle.dumps(open_checkpoint(path)))
    layer = pickle.loads(pickle.dumps(ckpt[1]))
    assert np.array_equal(layer.weight, open_checkpoint(path)[1].weight)
    assert layer.to_dict()["M"] == 8 and json.dumps(layer.to_dict())
    assert {layer: 1}[layer] == 1


def test_index_json_path_and_layer_order(tmp_path):
    path = make_checkpoint(tmp_path, "mixtral", n_layers=12, shards=3)
    ckpt = open_checkpoint(os.path.join(path, "model.safetensors.index.json"))
    assert ckpt.layer_names == [f"model.layers.{i}.block_sparse_moe.gate.weight" for i in range(12)]
    assert [layer.layer for layer in ckpt[2:5]] == [2, 3, 4]
    assert ckpt[-1].index == 11
    one_line_error(lambda: ckpt[12], "router index")


def test_overrides_and_groups(tmp_path):
    path = make_checkpoint(tmp_path / "ds", "deepseek_v3", n_experts=16, dim=64, k=4, n_group=4,
                           topk_group=2)
    ckpt = open_checkpoint(path)
    assert (ckpt.k, ckpt.n_group, ckpt.topk_group) == (4, 4, 2)
    ckpt = open_checkpoint(path, k=3, n_group=8, topk_group=3)
    assert (ckpt[0].k, ckpt[0].n_group, ckpt[0].topk_group) == (3, 8, 3)
    ungrouped = open_checkpoint(path, n_group=1, topk_group=1)
    assert ungrouped.n_group is None and ungrouped.topk_group is None
    one_line_error(lambda: open_checkpoint(path, n_group=3), "n_group")
    one_line_error(lambda: open_checkpoint(path, n_group=16), "groups of one expert")
    one_line_error(lambda: open_checkpoint(path, topk_group=5), "topk_group")
    one_line_error(lambda: open_checkpoint(path, k=9, topk_group=2), "k must be")
    mix = make_checkpoint(tmp_path / "mx", "mixtral")
    assert open_checkpoint(mix, k=5).k == 5
    one_line_error(lambda: open_checkpoint(mix, k=8), "k must be in [1, 7]")
    one_line_error(lambda: open_checkpoint(mix, k=0), "k must be")
    one_line_error(lambda: open_checkpoint(mix, k=2.5), "integer")
    one_line_error(lambda: open_checkpoint(mix, n_group=2), "group-limited routing only")
    one_line_error(lambda: open_checkpoint(mix, family="nope"), "unknown family")
    assert open_checkpoint(mix, family="granite_moe" if False else "mixtral").family == "mixtral"
    one_line_error(lambda: open_checkpoint(mix, family="dbrx"), "no dbrx router")


def test_switch_router_bias_when_configured(tmp_path):
    name = "decoder.block.1.layer.2.mlp.router.classifier.bias"
    b = np.arange(8) / 8.0 - 0.5
    path = make_checkpoint(tmp_path, "switch", overrides={name: b},
                           config_overrides={"router_bias": True})
    layer = open_checkpoint(path)[1]
    assert layer.name == name.replace("bias", "weight") and np.array_equal(layer.bias, b)
    assert open_checkpoint(path)[0].bias is None


def test_config_fields_per_family(tmp_path):
    dbrx = make_checkpoint(tmp_path / "dbrx", "dbrx", k=3)
    assert open_checkpoint(dbrx).k == 3  # ffn_config.moe_top_k
    oss = make_checkpoint(tmp_path / "oss", "gpt_oss", k=4, config_overrides={
        "num_experts_per_tok": None})
    assert open_checkpoint(oss).k == 4  # experts_per_token
    sw = make_checkpoint(tmp_path / "sw", "switch", k=3)
    assert open_checkpoint(sw).k == 1
    nok = make_checkpoint(tmp_path / "nok", "olmoe", config_overrides={"num_experts_per_tok": None})
    one_line_error(lambda: open_checkpoint(nok), "pass k")
    assert open_checkpoint(nok, k=3).k == 3
    soft = make_checkpoint(tmp_path / "soft", "deepseek_v3", config_overrides={
        "scoring_func": "softmax"})
    assert open_checkpoint(soft).score_func == "softmax"
    unknown = make_checkpoint(tmp_path / "unknown", "qwen3_moe", config_overrides={
        "model_type": "qwen9_moe", "architectures": ["Qwen3MoeForCausalLM"]})
    msg = one_line_error(lambda: open_checkpoint(unknown), "qwen9_moe", "not a known",
                         "mlp.gate.weight")
    assert "deepseek" not in msg and "no-fold-norm" not in msg
    assert open_checkpoint(unknown, family="qwen3_moe").detected_by == "argument"
    grouped_qwen = make_checkpoint(tmp_path / "gq", "qwen3_moe", config_overrides={"n_group": 2})
    msg = one_line_error(lambda: open_checkpoint(grouped_qwen), "n_group = 2")
    assert "family=" not in msg


def test_key_pattern(tmp_path):
    path = make_checkpoint(tmp_path, "granite_moe", n_layers=3)
    tmpl = open_checkpoint(path,
                           key_pattern="model.layers.{i}.block_sparse_moe.router.layer.weight")
    assert tmpl.family == "custom" and len(tmpl) == 3 and tmpl.k == 2
    layer = tmpl[2]
    assert layer.family == "custom" and not layer.norm_folded and layer.layer == 2
    rx = open_checkpoint(path, key_pattern=r"model\.layers\.(?P<layer>\d+)\.block_sparse_moe"
                                           r"\.router\.layer\.weight", k=3)
    assert rx.layer_names == tmpl.layer_names and rx.k == 3
    one_line_error(lambda: open_checkpoint(path, key_pattern="x.{i}.y"), "matches key_pattern",
                   "block_sparse_moe.router.layer.weight")
    one_line_error(lambda: open_checkpoint(path, key_pattern="(", k=2), "not a valid regex")
    one_line_error(lambda: open_checkpoint(path, key_pattern="a{i}", family="mixtral"), "not both")
    bare = make_checkpoint(tmp_path / "bare", "granite_moe", write_config=False)
    one_line_error(lambda: open_checkpoint(
        bare, key_pattern="model.layers.{i}.block_sparse_moe.router.layer.weight"), "pass k")


def test_lazy_reading_skips_big_tensor(tmp_path):
    big_mb = 200
    path = make_checkpoint(tmp_path, "mixtral", dim=64, big_tensor_mb=big_mb)
    assert sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) > big_mb * 2 ** 20
    tracemalloc.start()
    try:
        ckpt = open_checkpoint(path)
        layers = list(ckpt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(layers) == 2
    # everything that is read: two 8x64 routers and their norms, headers, config
    assert peak < big_mb * 2 ** 20 / 100, peak


def _edit_index(path, fn):
    index_path = os.path.join(path, "model.safetensors.index.json")
    with open(index_path) as fh:
        index = json.load(fh)
    fn(index["weight_map"])
    with open(index_path, "w") as fh:
        json.dump(index, fh)


def test_broken_checkpoints_one_line(tmp_path):
    def fresh(name, family="mixtral", **kw):
        return make_checkpoint(tmp_path / name, family, **kw)

    p = fresh("shard")
    os.remove(os.path.join(p, "model-00002-of-00002.safetensors"))
    one_line_error(lambda: open_checkpoint(p), "missing shard model-00002-of-00002.safetensors")

    p = fresh("index")
    _edit_index(p, lambda wm: wm.update({"model.layers.7.block_sparse_moe.gate.weight":
                                         "model-00001-of-00002.safetensors"}))
    one_line_error(lambda: open_checkpoint(p), "model.layers.7.block_sparse_moe.gate.weight",
                   "does not hold it")

    r0 = "model.layers.0.block_sparse_moe.gate.weight"
    p = fresh("3d", overrides={r0: np.ones((8, 32, 1))})
    one_line_error(lambda: open_checkpoint(p), "must be 2-D")
    p = fresh("shapes", overrides={r0: np.ones((8, 16))})
    one_line_error(lambda: open_checkpoint(p), "different shapes")
    p = fresh("norm", overrides={"model.layers.1.post_attention_layernorm.weight": np.ones(31)})
    one_line_error(lambda: open_checkpoint(p), "norm weight", "expected [32]")
    assert len(open_checkpoint(p, fold_norm=False)) == 2  # the bad norm is not needed then
    p = fresh("nonorm", overrides={"model.layers.0.post_attention_layernorm.weight": None})
    one_line_error(lambda: open_checkpoint(p), "fold_norm=False")
    p = fresh("lnbias", family="phimoe",
              overrides={"model.layers.0.post_attention_layernorm.bias": np.ones(33)})
    one_line_error(lambda: open_checkpoint(p), "norm bias", "expected [32]")
    p = fresh("bias", family="gpt_oss", overrides={"model.layers.1.mlp.router.bias": np.ones(9)})
    one_line_error(lambda: open_checkpoint(p), "router bias", "expected [8]")
    p = fresh("selbias", family="deepseek_v3",
              overrides={"model.layers.1.mlp.gate.e_score_correction_bias": np.ones(7)})
    one_line_error(lambda: open_checkpoint(p), "selection bias", "expected [8]")

    w = np.full((8, 32), 0.25)
    w[3, 5] = np.nan
    p = fresh("nan", overrides={r0: w})
    ckpt = open_checkpoint(p)  # headers are fine; the NaN is found when the layer is read
    one_line_error(lambda: ckpt[0], "non-finite", r0)
    assert np.all(np.isfinite(ckpt[1].weight))
    g = np.ones(32)
    g[0] = np.inf
    p = fresh("inf", overrides={"model.layers.1.post_attention_layernorm.weight": g})
    one_line_error(lambda: open_checkpoint(p)[1], "non-finite")

    p = fresh("wide", n_experts=8, dim=8)
    one_line_error(lambda: open_checkpoint(p), "M = 8 experts >= width D = 8")
    p = fresh("cfgM", config_overrides={"num_local_experts": 16})
    one_line_error(lambda: open_checkpoint(p), "num_local_experts = 16")
    p = fresh("cfgD", config_overrides={"hidden_size": 64})
    one_line_error(lambda: open_checkpoint(p), "hidden_size = 64")
    p = fresh("wrongfam", family="olmoe", config_overrides={"model_type": "jamba",
                                                           "architectures": None})
    one_line_error(lambda: open_checkpoint(p), "jamba model", "mlp.gate.weight")


def test_no_router_and_bad_files(tmp_path):
    f = tmp_path / "plain.safetensors"
    tensors = {"model.layers.0.mlp.gate_proj.weight": ("BF16", (4, 8), encode(np.ones((4, 8)),
                                                                              "bfloat16")),
               "model.layers.0.moe.w_router": ("BF16", (4, 8), encode(np.ones((4, 8)), "bfloat16")),
               "model.layers.1.moe.w_router": ("BF16", (4, 8), encode(np.ones((4, 8)), "bfloat16"))}
    write_safetensors(f, tensors)
    msg = one_line_error(lambda: open_checkpoint(f), "no router found",
                         "model.layers.{i}.moe.w_router")
    assert "gate_proj" not in msg
    ck = open_checkpoint(f, key_pattern=r"model\.layers\.(?P<layer>\d+)\.moe\.w_router", k=1,
                         fold_norm=True)
    assert len(ck) == 2 and ck[1].layer == 1

    ints = tmp_path / "int.safetensors"
    write_safetensors(ints, {"model.layers.0.mlp.gate.weight": ("I8", (4, 8), bytes(32))})
    one_line_error(lambda: open_checkpoint(ints, k=1), "stored as I8")

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    one_line_error(lambda: open_checkpoint(junk), "corrupt safetensors header")
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\xff" * 8 + b"{}")
    one_line_error(lambda: open_checkpoint(short), "header length")
    trunc = tmp_path / "trunc"
    make_checkpoint(trunc, "olmoe", shards=1)
    full = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(full[:-100])
    one_line_error(lambda: open_checkpoint(trunc), "does not fit")
    one_line_error(lambda: open_checkpoint(tmp_path / "nowhere"), "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(lambda: open_checkpoint(empty), "no model.safetensors.index.json")
    one_line_error(lambda: open_checkpoint(f, fold_norm="yes"), "fold_norm")


def test_synthetic_command_line(tmp_path, capsys):
    from discosim.checkpoints.synthetic import main

    out = tmp_path / "cli"
    assert main([str(out), "--family", "qwen3_moe", "--layers", "3", "--dim", "16"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert open_checkpoint(out).layer_names[-1] == "model.layers.2.mlp.gate.weight"
    assert main([str(tmp_path / "bad"), "--layers", "0"]) == 2
    assert "n_layers must be" in capsys.readouterr().err


def test_family_table_is_consistent():
    for name, fam in FAMILIES.items():
        assert fam.name == name
        assert "layer" in fam.router_regex.groupindex
        assert fam.routing in ("topk", "deepseek_v3", "deepseek_v2")
        assert fam.norm_form in ("rmsnorm", "rmsnorm_1p", "layernorm", None)
        if name in ROUTER_SUFFIX:
            assert fam.router_regex.fullmatch(
                expected_routers(name)[0] if name in EXPECTED_ROUTERS or name == "switch" else
                f"model.layers.3.{ROUTER_SUFFIX[name]}")
        for lookalike in ("model.layers.3.mlp.gate_proj.weight",
                          "model.layers.3.mlp.shared_expert_gate.weight",
                          "model.layers.3.mlp.experts.0.gate_proj.weight"):
            assert not fam.router_regex.fullmatch(lookalike)
