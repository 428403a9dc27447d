"""``discosim capture`` without torch: the states writer, the texts reader, the batching, the hook
points, the budgets and the refusal without the [capture] extra.

The model-running half (transformers, torch) is tested by the transformers tier
(tests/transformers/test_vs_transformers.py); everything here runs in CI.
"""

import os
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import discosim as ds
from discosim._core.errors import InputError
from discosim._core.memory import AVAILABLE_BYTES
from discosim.app.cli.main import main
from discosim.checkpoints import capture as cap
from discosim.checkpoints.synthetic import make_checkpoint
from discosim.model.weights import NpzArrays


@pytest.fixture
def no_backend(monkeypatch):
    """As if torch and transformers were not installed (an import of either fails)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return make_checkpoint(str(tmp_path_factory.mktemp("ck")), "mixtral", n_layers=3, n_experts=4,
                           dim=16, k=2, shards=2)


# ------------------------------------------------------------------ the writer
def test_writer_streams_batches_into_one_member_per_router(tmp_path):
    rng = np.random.default_rng(0)
    names = ["model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"]
    batches = {n: [rng.standard_normal((r, 5)) for r in (3, 1, 7)] for n in names}
    path = tmp_path / "s.npz"
    with cap.StatesWriter(path, names, D=5) as w:
        for j in range(3):
            for n in names:
                w.add(n, batches[n][j])
    with np.load(path) as z:
        assert z.files == names  # the router tensor names, in order, nothing else
        for n in names:
            want = np.concatenate(batches[n]).astype(np.float32)
            assert z[n].dtype == np.float32 and np.array_equal(z[n], want)
    # uncompressed members, read by the audit's own reader (headers first)
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    arrays = NpzArrays(path, max_entries=None)
    assert arrays.shape(names[1]) == (11, 5) and arrays.dtype(names[1]) == np.float32


def test_writer_float64_is_exact(tmp_path):
    x = np.random.default_rng(1).standard_normal((4, 3))
    with cap.StatesWriter(tmp_path / "s.npz", ["a"], D=3, dtype="float64") as w:
        w.add("a", x)
    with np.load(tmp_path / "s.npz") as z:
        assert z["a"].dtype == np.float64 and np.array_equal(z["a"], x)


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "s.npz"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with cap.StatesWriter(path, ["a"], D=2) as w:
            w.add("a", np.ones((3, 2)))
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"  # the old file untouched
    assert os.listdir(tmp_path) == ["s.npz"]  # no scratch folder, no temporary file left
    # unequal rows across routers: refused at the end, nothing written
    with pytest.raises(InputError, match="different numbers of rows"):
        with cap.StatesWriter(path, ["a", "b"], D=2) as w:
            w.add("a", np.ones((3, 2)))
            w.add("b", np.ones((2, 2)))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["s.npz"]


def test_writer_refuses_bad_rows_and_names(tmp_path):
    with pytest.raises(InputError, match="distinct"):
        cap.StatesWriter(tmp_path / "s.npz", ["a", "a"], D=2)
    with pytest.raises(InputError, match="float32 or float64"):
        cap.StatesWriter(tmp_path / "s.npz", ["a"], D=2, dtype="float16")
    with pytest.raises(InputError, match=r"shape \(n, 2\)"):
        with cap.StatesWriter(tmp_path / "s.npz", ["a"], D=2) as w:
            w.add("a", np.ones((3, 4)))
    with pytest.raises(InputError, match="no member"):
        with cap.StatesWriter(tmp_path / "s.npz", ["a"], D=2) as w:
            w.add("b", np.ones((3, 2)))
    with pytest.raises(InputError, match="no rows"):
        with cap.StatesWriter(tmp_path / "s.npz", ["a"], D=2):
            pass
    assert not os.listdir(tmp_path)


def test_writer_memory_stays_one_batch(tmp_path):
    """Rows go to disk as they come: the writer's peak allocation is a batch plus the copy
    buffers of the final assembly, however many batches are written (here 40 MiB in all)."""
    batch = np.ones((4096, 64), dtype=np.float32)  # 1 MiB
    tracemalloc.start()
    try:
        with cap.StatesWriter(tmp_path / "s.npz", ["a"], D=64) as w:
            for _ in range(40):
                w.add("a", batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(tmp_path / "s.npz") > 40 * batch.nbytes
    bound = 3 * batch.nbytes + 3 * cap._COPY_BLOCK
    assert peak < bound < 40 * batch.nbytes


def test_states_written_for_a_checkpoint_are_what_the_audit_reads(ckpt_path, tmp_path):
    """Member names are the router tensor names: the audit finds every layer's rows."""
    ckpt = ds.open_checkpoint(ckpt_path)
    rng = np.random.default_rng(2)
    path = tmp_path / "states.npz"
    n = [0]
    with cap.StatesWriter(path, ckpt.layer_names, D=ckpt.D) as w:
        for rows in (300, 200):
            for name in ckpt.layer_names:
                w.add(name, rng.standard_normal((rows, ckpt.D)))
            n[0] += rows
    res = ds.audit_checkpoint(ckpt_path, inputs=str(path), constants_samples=0, seed=0)
    assert [L.n_samples for L in res.layers] == [n[0]] * len(ckpt)
    assert res.inputs == str(path)


# ------------------------------------------------------------------ texts, batches, tokens
def test_read_texts(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("first text\n\n  \nsecond, with ünïcode\n", encoding="utf-8")
    assert cap.read_texts(p) == ["first text", "second, with ünïcode"]
    j = tmp_path / "t.jsonl"
    j.write_text('{"text": "a b"}\n\n{"text": "c", "id": 3}\n')
    assert cap.read_texts(j) == ["a b", "c"]
    for body, match in ((b"\xff\xfe bad", "not UTF-8"), (b"\n \n", "no text")):
        p.write_bytes(body)
        with pytest.raises(InputError, match=match):
            cap.read_texts(p)
    j.write_text('{"txt": "a"}\n')
    with pytest.raises(InputError, match="line 1"):
        cap.read_texts(j)
    with pytest.raises(InputError, match="not found"):
        cap.read_texts(tmp_path / "none.txt")


def _padded_batches_slow(seqs, batch_tokens):
    """The slow twin of ``_batches``: greedily extend a batch while (texts x longest) fits."""
    out, cur = [], []
    for s in seqs:
        trial = cur + [s]
        if cur and len(trial) * max(map(len, trial)) > batch_tokens:
            out.append(cur)
            cur = [s]
        else:
            cur = trial
    return out + ([cur] if cur else [])


def test_batches_respect_batch_tokens_and_order():
    rng = np.random.default_rng(3)
    for _ in range(50):
        seqs = [list(range(int(n))) for n in rng.integers(1, 30, size=rng.integers(1, 40))]
        bt = int(rng.integers(30, 200))
        got = list(cap._batches(seqs, bt))
        assert got == _padded_batches_slow(seqs, bt)
        assert [s for b in got for s in b] == seqs  # every text once, in order
        assert all(len(b) * max(map(len, b)) <= bt for b in got)


class _WordTokenizer:
    """A stand-in tokenizer: one id per word, cut at max_length."""

    def __call__(self, text, truncation, max_length):
        return {"input_ids": list(range(len(text.split())))[:max_length]}


def test_tokenize_stops_at_max_tokens():
    texts = ["a b c d e", "f g h", "i j k l"]
    seqs, total = cap._tokenize(_WordTokenizer(), texts, max_tokens=7, max_length=4)
    assert [len(s) for s in seqs] == [4, 3] and total == 7
    seqs, total = cap._tokenize(_WordTokenizer(), texts, max_tokens=9, max_length=100)
    assert [len(s) for s in seqs] == [5, 3, 1] and total == 9


# ------------------------------------------------------------------ hook points, budgets
def test_hook_points_name_the_norm_in_front_of_each_router(tmp_path):
    for family, norm in (("mixtral", "model.layers.{i}.post_attention_layernorm"),
                         ("dbrx", "transformer.blocks.{i}.norm_attn_norm.norm_2"),
                         ("jamba", "model.layers.{i}.pre_ff_layernorm")):
        path = make_checkpoint(str(tmp_path / family), family, n_layers=2, n_experts=4, dim=16,
                               k=2)
        ckpt = ds.open_checkpoint(path)
        points = cap.hook_points(ckpt)
        assert [p[0] for p in points] == ckpt.layer_names
        for (name, module, where), layer in zip(points, ckpt):
            assert where == "norm" and module == norm.format(i=layer.layer)
            assert module + ".weight" == layer.norm_key  # the norm the reader folds
    with pytest.raises(InputError, match="router position"):
        cap.hook_points(ckpt, [5])


def test_audit_rows_limit_matches_the_audit_budget():
    D, M = 7168, 256
    n = cap.audit_rows_limit(D, M)
    from discosim._core.memory import COST, check_memory

    def parts(rows):
        return [("h", rows * D * 4, "bytes"), ("m", rows, "audit_sample"),
                ("r", M * D, "audit_router")]
    check_memory(parts(n), "")  # the limit passes the audit's own check
    with pytest.raises(InputError):
        check_memory(parts(n + 1), "")  # and one more row does not
    assert n * D * 4 <= AVAILABLE_BYTES and COST["bytes"] == 1


def test_requests_over_the_budget_are_refused_before_any_model_runs(ckpt_path, tmp_path,
                                                                     no_backend):
    texts = ["a b c"]
    out = tmp_path / "s.npz"
    with pytest.raises(InputError, match="rows of width 16 the audit reads"):
        cap.capture_states(ckpt_path, texts, out, max_tokens=10 ** 9)
    with pytest.raises(InputError, match="lower --batch-tokens"):
        cap.capture_states(ckpt_path, texts, out, batch_tokens=10 ** 9, max_length=8)
    with pytest.raises(InputError, match="fit one batch"):
        cap.capture_states(ckpt_path, texts, out, batch_tokens=8, max_length=16)
    with pytest.raises(InputError, match="end in .npz"):
        cap.capture_states(ckpt_path, texts, tmp_path / "s.npy")
    with pytest.raises(InputError, match="model directory not found"):
        cap.capture_states(tmp_path / "none", texts, out)
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------ without the extra
def test_refusal_without_the_extra_is_one_line(ckpt_path, tmp_path, no_backend):
    with pytest.raises(InputError) as exc:
        cap.capture_states(ckpt_path, ["a b"], tmp_path / "s.npz")
    assert "pip install 'discosim[capture]'" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_cli_refusal_without_the_extra(ckpt_path, tmp_path, capsys, no_backend):
    texts = tmp_path / "t.txt"
    texts.write_text("a b c\n")
    code = main(["capture", ckpt_path, "--texts", str(texts), "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("discosim: error: ")
    assert "pip install 'discosim[capture]'" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["t.txt"]


class _FakeModel:
    """named_modules() of a model, and transformers 4's renaming at load."""

    def __init__(self, names, mapping=None):
        self._names = names
        if mapping is not None:
            self._checkpoint_conversion_mapping = mapping

    def named_modules(self):
        return [(n, object()) for n in self._names]


def test_module_map_follows_renamings_and_wrappers(no_backend):
    m = _FakeModel(["", "model", "model.layers.0.post_attention_layernorm",
                    "model.language_model.layers.3.post_attention_layernorm",
                    "encoder.block.1.layer.1.layer_norm", "decoder.block.1.layer.1.layer_norm"],
                   mapping={r"^language_model\.model": "model.language_model"})
    find = cap._module_map(m)
    assert find("model.layers.0.post_attention_layernorm")[0] == \
        "model.layers.0.post_attention_layernorm"  # as named
    assert find("language_model.model.layers.3.post_attention_layernorm")[0] == \
        "model.language_model.layers.3.post_attention_layernorm"  # transformers 4's mapping
    plain = cap._module_map(_FakeModel(m._names))
    assert plain("language_model.model.layers.3.post_attention_layernorm")[0] == \
        "model.language_model.layers.3.post_attention_layernorm"  # the one module from layers.3
    assert plain("x.block.1.layer.1.layer_norm") == (None, None)  # encoder or decoder: refused
    assert plain("model.layers.9.post_attention_layernorm") == (None, None)
