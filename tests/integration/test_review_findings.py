"""Faults an outside new-user battery found after the hardening (issue 8's classes): each class of
bad input is one line and exit 2, and a saved point is never reused for changed inputs."""

import json
import os
import warnings

import numpy as np
import pytest

import discosim as ds
from checkpoint_factory import make_checkpoint
from discosim.audit.estimators import audit_checkpoint
from discosim.app.cli.main import main
from discosim._core.errors import InputError
from discosim.app.studies import point_identity, run_study


def _cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("rf") / "mix", "mixtral", n_layers=1,
                           n_experts=8, dim=32, k=2, dtype="float32", shards=1)


def _bad_states():
    good = np.random.default_rng(0).standard_normal((50, 32))
    return {"strings": np.array([["a"] * 32] * 5), "complex": good + 1j,
            "nan": np.where(np.arange(32) == 3, np.nan, good), "inf": np.where(np.arange(32) == 3, np.inf, good),
            "huge": np.full((5, 32), 1e300), "objects": np.array([[None] * 32] * 5, dtype=object)}


@pytest.mark.parametrize("kind", sorted(_bad_states()))
def test_bad_hidden_states_are_one_line(kind, ckpt, tmp_path, capsys):
    arr = _bad_states()[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cast or overflow warning may reach the user
        if arr.dtype != object:
            with pytest.raises(InputError):
                audit_checkpoint(ckpt, inputs=arr, n_samples=1000, constants_samples=0)
            path = str(tmp_path / f"{kind}.npy")
            np.save(path, arr)
            code, err = _cli(capsys, "audit", str(ckpt), "--inputs", path, "--quiet",
                             "--constants-samples", "0")
            assert code == 2 and len(err.strip().splitlines()) == 1, err
        else:  # pickled object arrays are refused when loaded (no unpickling)
            with pytest.raises(InputError):
                audit_checkpoint(ckpt, inputs=arr, n_samples=1000, constants_samples=0)


@pytest.mark.parametrize("argv", [
    ["volume", "--router", "gaussian", "--M", "6", "--D", "1000000000000", "--k", "2", "--eps", "0.01",
     "--no-predict"],
    ["volume", "--router", "orthonormal", "--M", "1000000", "--D", "1000001", "--k", "2", "--eps",
     "0.01", "--no-predict"],
])
def test_impossible_router_sizes_are_one_line(argv, capsys):
    code, err = _cli(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "M*D" in err


@pytest.mark.parametrize("make", [lambda: ds.Router.gaussian(6, 10 ** 12, 2),
                                  lambda: ds.Router.from_file(None, 2),
                                  lambda: ds.Router.from_file(123, 2),
                                  lambda: ds.Router([[1.0, 2.0, 3.0], [1.0, 2.0]], 1)])
def test_router_misuse_is_an_input_error(make):
    with pytest.raises(InputError):
        make()


def test_edited_study_point_is_recomputed_or_refused(tmp_path):
    out = str(tmp_path / "s")
    grid = {"eps": [0.1], "n_samples": [200]}
    run_study("volume_ratios", out, grid, seed=1, progress=False)
    before = open(os.path.join(out, "results.csv")).read()
    pdir = os.path.join(out, "points")
    name = os.listdir(pdir)[0]
    with open(os.path.join(pdir, name)) as fh:
        doc = json.load(fh)
    doc["rows"][0]["fraction"] = 12345.0  # identity untouched: only the content lies
    with open(os.path.join(pdir, name), "w") as fh:
        json.dump(doc, fh)
    with pytest.raises(InputError, match="digest"):
        run_study("volume_ratios", out, grid, seed=1, progress=False, resume=True)
    run_study("volume_ratios", out, grid, seed=1, progress=False)
    assert open(os.path.join(out, "results.csv")).read() == before


def test_rewritten_checkpoint_is_another_point(tmp_path):
    path = make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=32, k=2, seed=0)
    params = {"path": str(path), "inputs": "sphere"}
    a = point_identity("audit", params, 0)[1]
    make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=48, k=2, seed=1)
    assert point_identity("audit", params, 0)[1] != a


def test_figures_use_only_known_study_names(tmp_path, capsys):
    out = tmp_path / "r" / "volume_ratios"
    run_study("volume_ratios", str(out), {"eps": [0.1], "n_samples": [200]}, seed=1, progress=False)
    side = json.loads((out / "results.json").read_text())
    side["study"] = "../../escape"
    (out / "results.json").write_text(json.dumps(side))
    code, err = _cli(capsys, "figures", "--results", str(tmp_path / "r"))
    assert code == 2 and "unknown study" in err and len(err.strip().splitlines()) == 1
    assert not any(p.startswith("escape") for p in os.listdir(tmp_path))


def test_figures_with_results_alone_ignore_the_default_validation_dir(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r" / "volume_ratios"
    run_study("volume_ratios", str(out), {"eps": [0.1], "n_samples": [200]}, seed=1, progress=False)
    monkeypatch.chdir(tmp_path)
    os.makedirs("discosim-results")  # where `discosim figures` reads validate.json by default
    with open("discosim-results/validate.json", "w") as fh:
        fh.write('{"an": "older format"}')
    code, err = _cli(capsys, "figures", "--results", "r")
    assert code == 0, err
    code, err = _cli(capsys, "figures")
    assert code == 2 and "rerun discosim validate" in err and len(err.strip().splitlines()) == 1


HIT = ["hit", "--router", "orthonormal", "--M", "4", "--D", "8", "--k", "2", "--n-paths", "100",
       "--sigma", "1", "--t-max", "1", "--dt", "0.01", "--times", "0.5"]


@pytest.mark.parametrize("extra, needle", [
    (["--deltas", "0.01", "--process", "ou", "--wos"], "--wos needs --process bm"),
    (["--orders", "4"], "--orders needs --eps"),
    (["--x0", "/no/such/x0.npy"], "start-point file not found"),
])
def test_hit_options_that_cannot_apply_are_refused(extra, needle, capsys):
    code, err = _cli(capsys, *HIT, *extra)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kw", [dict(formats=None), dict(formats=["bf16", "bf16"]), dict(layers=0),
                                dict(layers=[0, 0]), dict(n_samples=10 ** 18)])
def test_audit_arguments_are_input_errors(kw, ckpt):
    with pytest.raises(InputError):
        audit_checkpoint(ckpt, constants_samples=0, **kw)


@pytest.mark.parametrize("path", [None, 123])
def test_audit_path_types_are_input_errors(path):
    with pytest.raises(InputError):
        audit_checkpoint(path)


def test_a_router_missing_from_a_layer_is_never_silent(tmp_path):
    from discosim.model.safetensors import read_header  # noqa: F401 (the reader in use)

    path = make_checkpoint(tmp_path / "gap", "mixtral", n_layers=3, n_experts=8, dim=32, k=2,
                           dtype="float32", shards=1)
    # rewrite the single file without layer 1's router (the other tensors unchanged)
    import struct

    f = os.path.join(path, "model.safetensors")
    raw = open(f, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("model.layers.1.block_sparse_moe.gate.weight")
    text = json.dumps(header).encode()
    with open(f, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    res = audit_checkpoint(path, n_samples=1000, constants_samples=0, seed=0)
    assert [l.model_layer for l in res.layers] == [0, 2]
    assert any("layers [1] have none" in note for note in res.notes)


@pytest.mark.parametrize("value", ["1", b"1", True, np.bool_(True)])
def test_positive_reals_refuse_strings_and_booleans_like_integers(value, no_work):
    # F14: radius="1" used to be taken as 1.0 while n_samples="1000" was refused
    r = ds.Router(np.random.default_rng(0).standard_normal((4, 8)), 2)
    with pytest.raises(InputError, match="radius must be a number") as exc:
        ds.estimate_volumes(r, value, 0.1, n_samples=1000)
    assert "\n" not in str(exc.value)
