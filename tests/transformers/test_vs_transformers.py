"""discosim's routing against the transformers library's own modules (issue 22, items 3 and 4).

For each MoE family transformers implements, a TINY random model is built by transformers from
its own config class, its norm weights, norm biases and selection biases drawn away from their
initial values, saved sharded in bf16 and read back twice: by transformers in float64 and by
``discosim.open_checkpoint``. Then, per router discosim finds:

* the module in front of the router (the family registry's norm, or the router itself) is checked
  to be the one whose output the router receives in a whole-model forward pass (so the
  registry cannot name a wrong module and still agree with itself);
* 2000 hidden states, Gaussian rows times scales log-uniform in [1e-3, 1e2] (small scales make the
  norm's eps matter), go through that norm and the router module in torch, and the experts
  transformers selects (the router's own indices, or the block's routing where the router
  returns logits) are compared with ``discosim.open_checkpoint(dir)[i].select(h)``: 100% agreement
  on every row that is not a near tie (two choice scores, or two group scores, within
  ``TIE`` = 1e-5 of the row's largest: transformers computes some routers in float32);
* ``discosim capture`` on the same model writes the norm's *input* per router, row for row what
  the whole-model forward pass sees, and ``discosim audit --inputs`` reads the file.

Marker ``transformers``; skipped cleanly when transformers or torch is missing (CI installs
neither). Run it with them installed:
``python -m pytest -q -m transformers tests/transformers``.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

import discosim  # noqa: E402
from discosim.checkpoints.capture import _module_map, capture_states, hook_points  # noqa: E402
from tiny_transformers import MODEL_TYPES, load_float64, make_tiny, texts  # noqa: E402

pytestmark = pytest.mark.transformers

N_STATES = 2000
# float32 inside transformers' routers (the input cast, the matmul's sums): relative errors of
# a few 1e-7 of the row's scores; a gap below 1e-5 of them is a tie either side may break
TIE = 1e-5


@pytest.fixture(scope="module", params=MODEL_TYPES)
def tiny(request, tmp_path_factory):
    """(model_type, directory of a tiny bf16 sharded model with a tokenizer, float64 model)."""
    model_type = request.param
    path = str(tmp_path_factory.mktemp(model_type))
    if make_tiny(path, model_type) is None:
        pytest.skip(f"transformers {tf.__version__} has no model_type {model_type}")
    return model_type, path, load_float64(path)


# ---------------------------------------------------------------- transformers' own selection
def _selection(module, parent_of, x, n_experts):
    """(N, M) bool: the experts transformers selects for router-module input ``x`` (N, D)."""
    cls = type(module).__name__
    mask = torch.zeros((x.shape[0], n_experts), dtype=torch.bool)
    if cls.startswith("JetMoe"):
        sorted_idx, batch_index, _, expert_size, _ = module(x)
        experts = torch.repeat_interleave(torch.arange(n_experts), torch.tensor(expert_size))
        mask[batch_index, experts] = True
        return mask
    if cls.startswith("MiniMaxM2"):
        out = module(x, parent_of(module).e_score_correction_bias)
    elif cls.startswith("Dbrx"):
        _, idx = parent_of(module).route_tokens_to_experts(module(x))
        return mask.scatter_(1, idx, True)
    elif cls.startswith("SwitchTransformers"):
        one_hot, _, _ = module(x[None])  # (1, N, M), capacity far above N
        return one_hot[0].bool()
    else:
        out = module(x)
    if cls.startswith("Llama4"):
        scores, _ = out  # sigmoid of the top-k logits, sigmoid(-inf) = 0 elsewhere
        return scores > 0
    idx = next((t for t in out if torch.is_tensor(t) and not t.is_floating_point()), None) \
        if isinstance(out, tuple) else None
    assert idx is not None, f"{cls}: no expert indices in the router's output"
    return mask.scatter_(1, idx.reshape(x.shape[0], -1), True)


def _router_module(model, ckpt_name):
    """The module that decides (the router tensor's module, or its parent when that is a bare
    nn.Linear inside a router module: DBRX, HunYuan, JetMoE, Switch)."""
    find = _module_map(model)
    base = ckpt_name[:-len(".weight")]
    path, module = find(base)
    assert module is not None, f"no module {base} in the loaded model"
    modules = dict(model.named_modules())
    if type(module) is torch.nn.Linear and "." in path:
        path = path.rsplit(".", 1)[0]
        module = modules[path]
    return path, module, lambda m: modules[path.rsplit(".", 1)[0]]


def _near_tie(layer, h):
    """Rows whose choice scores, or group scores, come within TIE times the row's largest score
    of each other: float32 arithmetic inside transformers may order them either way.

    Choice scores: the logits for softmax without a selection bias (softmax is monotone), else
    the softmax or sigmoid scores plus the selection bias."""
    x = layer.logits(h)
    bias = getattr(layer, "selection_bias", None)
    if getattr(layer, "score_func", "softmax") == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
    elif bias is not None:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
    else:
        s = x
    if bias is not None:
        s = s + bias
    scale = np.abs(s).max(axis=1)
    gaps = [np.diff(np.sort(s, axis=1), axis=1).min(axis=1)]
    n_group = getattr(layer, "n_group", None)
    if n_group and n_group > 1:
        g = np.sort(s.reshape(len(s), n_group, -1), axis=2)
        for agg in (g[:, :, -1], g[:, :, -2:].sum(axis=2)):  # V2's max, V3's top-2 sum
            gaps.append(np.diff(np.sort(agg, axis=1), axis=1).min(axis=1))
    return np.min(gaps, axis=0) < TIE * scale


def _whole_model_inputs(model, points, n_tokens=300):
    """{router name: (state at the hook point, the router module's input)} from one forward
    pass on random tokens."""
    seen = {}
    handles = []
    find = _module_map(model)
    for name, hook_path, where in points:
        _, hook_mod = find(hook_path)
        path, router_mod, _ = _router_module(model, name)
        for key, mod in (("hook", hook_mod), ("router", router_mod)):
            def grab(m, args, kwargs, key=key, name=name):
                h = args[0] if args else kwargs["hidden_states"]
                seen.setdefault(name, {})[key] = h.detach().reshape(-1, h.shape[-1]).clone()
            handles.append(mod.register_forward_pre_hook(grab, with_kwargs=True))
        if where == "norm":
            def out(m, args, result, name=name):
                seen.setdefault(name, {})["norm_out"] = result.detach().reshape(
                    -1, result.shape[-1]).clone()
            handles.append(hook_mod.register_forward_hook(out))
    ids = torch.randint(4, 64, (3, n_tokens // 3), generator=torch.Generator().manual_seed(1))
    kw = {"input_ids": ids}
    if model.config.is_encoder_decoder:
        kw["decoder_input_ids"] = ids
    try:
        with torch.inference_mode():
            model(**kw, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_selects_as_transformers(tiny):
    model_type, path, model = tiny
    ckpt = discosim.open_checkpoint(path)
    points = hook_points(ckpt)
    assert len(points) >= 1
    seen = _whole_model_inputs(model, points)
    rng = np.random.default_rng(0)
    report = {"model_type": model_type, "family": ckpt.family, "routers": len(ckpt), "layers": []}
    for i, (name, hook_path, where) in enumerate(points):
        # the registry's module is the one whose output the router receives in the model
        got = seen[name]
        if where == "norm":
            assert torch.equal(got["norm_out"], got["router"]), (name, hook_path)
        else:
            assert torch.equal(got["hook"], got["router"]), (name, hook_path)
        _, hook_mod = _module_map(model)(hook_path)
        _, router_mod, parent_of = _router_module(model, name)
        g = rng.standard_normal((N_STATES, ckpt.D))
        h = g * np.exp(rng.uniform(np.log(1e-3), np.log(1e2), size=(N_STATES, 1)))
        with torch.inference_mode():
            x = torch.from_numpy(h)
            if where == "norm":
                x = hook_mod(x)
            theirs = _selection(router_mod, parent_of, x, ckpt.M).numpy()
        layer = ckpt[i]
        ours = layer.select(h)
        tie = _near_tie(layer, h)
        differ = np.any(ours != theirs, axis=1)
        report["layers"].append({"name": name, "agree": int((~differ & ~tie).sum()),
                                 "compared": int((~tie).sum()), "near_ties": int(tie.sum())})
        assert tie.mean() <= 0.01, f"{name}: {tie.sum()} near ties (TIE too coarse?)"
        assert not np.any(differ & ~tie), (f"{model_type} {name}: {int((differ & ~tie).sum())} "
                                             f"of {int((~tie).sum())} non-tied rows differ")
    print(json.dumps(report))


def test_capture_writes_what_the_model_sees(tiny, tmp_path):
    """``capture`` stores each hook point's input, row for row as a forward pass sees it, and
    the audit reads the file."""
    model_type, path, model = tiny
    if model_type == "glm4v_moe":
        pytest.skip("discosim capture loads AutoModelForCausalLM, which has no glm4v_moe class "
                    "(GLM-4.5V loads as image-text-to-text)")
    tok = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tok("w1 w2")["input_ids"]:
        pytest.skip(f"transformers {tf.__version__} loads its own tokenizer class for "
                    f"{model_type}, which reads no tokens from this test's vocabulary")
    ckpt = discosim.open_checkpoint(path)
    rng = np.random.default_rng(2)
    texts_ = texts(12, rng)
    out = tmp_path / "states.npz"
    res = capture_states(path, texts_, out, dtype="float64", batch_tokens=64, max_length=48,
                         max_tokens=10_000, progress=False)
    assert res.layers == tuple(ckpt.layer_names) and res.dtype == "float64"
    seqs = [tok(t, truncation=True, max_length=48)["input_ids"] for t in texts_]
    assert res.n_tokens == sum(map(len, seqs))
    # the same states, one text at a time (no padding), from hooks on the same modules
    find = _module_map(model)
    rows = {name: [] for name, _, _ in hook_points(ckpt)}
    handles = []
    for name, hook_path, _ in hook_points(ckpt):
        _, mod = find(hook_path)

        def grab(m, args, kwargs, name=name):
            h = args[0] if args else kwargs["hidden_states"]
            rows[name].append(h.detach().reshape(-1, h.shape[-1]).numpy().copy())
        handles.append(mod.register_forward_pre_hook(grab, with_kwargs=True))
    try:
        with torch.inference_mode():
            for s in seqs:
                ids = torch.tensor([s])
                kw = {"input_ids": ids}
                if model.config.is_encoder_decoder:
                    kw["decoder_input_ids"] = ids
                model(**kw, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    saved = np.load(out)
    for name in res.layers:
        want = np.concatenate(rows[name])
        # batched and one-by-one runs differ in summation order, and some routers compute their
        # expert weights in float32 (MiniMax-M2, DeepSeek), which the next layer's input
        # carries: 1e-6 relative at most; a row out of place or a padding row is O(1) off
        np.testing.assert_allclose(saved[name], want, rtol=1e-5, atol=1e-8)
    audit = discosim.audit_checkpoint(path, inputs=str(out), constants_samples=0, seed=0)
    assert [L.n_samples for L in audit.layers] == [res.n_tokens] * len(ckpt)


def test_cli_capture_then_audit(tmp_path, capsys):
    """README's two commands: ``discosim capture`` writes the file, ``discosim audit --inputs``
    audits every router on its rows (one JSON document each)."""
    from discosim.app.cli.main import main

    path = make_tiny(str(tmp_path / "model"), "mixtral")
    rng = np.random.default_rng(3)
    (tmp_path / "texts.txt").write_text("\n".join(texts(30, rng)) + "\n")
    states = str(tmp_path / "states.npz")
    assert main(["capture", path, "--texts", str(tmp_path / "texts.txt"), "--out", states,
                 "--max-tokens", "500", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ckpt = discosim.open_checkpoint(path)
    assert doc["n_tokens"] == 500 and doc["layers"] == ckpt.layer_names
    assert doc["model_dtype"] == "bfloat16" and doc["dtype"] == "float32"
    assert main(["audit", path, "--inputs", states, "--constants-samples", "0", "--seed", "0",
                 "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["inputs"] == states
    assert [L["n_samples"] for L in audit["layers"]] == [500] * len(ckpt)
