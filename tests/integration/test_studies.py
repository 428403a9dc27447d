"""Studies: resume after an interruption, identical numbers for n_jobs 1, loky and dask."""

import csv
import math
import json
import os

import pytest

from discosim import InputError
from discosim.app.studies import expand_grid, load_grid, make_router, run_study

GRID = {"eps": [0.01, 0.03, 0.1], "n_samples": 3000}


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_interrupted_study_resumes_to_the_same_results(tmp_path):
    full = run_study("volume_ratios", str(tmp_path / "full"), grid=GRID, seed=5)
    part = tmp_path / "part"
    assert run_study("volume_ratios", str(part), grid=GRID, seed=5, stop_after=1) is None
    assert len(os.listdir(part / "points")) == 1
    # a half-written temporary file from a killed run must not count as a finished point
    (part / "points" / "junk.json.tmp123").write_text("{")
    resumed = run_study("volume_ratios", str(part), grid=GRID, seed=5)
    assert _rows(full) == _rows(resumed)


def test_grid_files_and_errors(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('eps = [0.01, 0.1]\nM = 5\n')
    assert load_grid(str(p)) == {"eps": [0.01, 0.1], "M": 5}
    pts = expand_grid({"eps": [1, 2], "M": 6, "D": 9}, {"M": [4, 5]})
    assert len(pts) == 4 and {q["M"] for q in pts} == {4, 5}
    with pytest.raises(InputError, match="unknown grid parameter"):
        expand_grid({"eps": [1]}, {"bogus": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(InputError, match="cannot parse"):
        load_grid(str(bad))


def test_correlated_ensemble_rows_have_the_asked_correlation():
    import numpy as np
    r = make_router("correlated", 6, 4000, 2, seed=1, rho=0.5)
    W = r.weights / np.linalg.norm(r.weights, axis=1, keepdims=True)
    off = (W @ W.T)[~np.eye(6, dtype=bool)]
    # a sample correlation of D-dim Gaussian rows has sd (1 - rho^2)/sqrt(D); the mean of
    # several is no more spread than one
    assert abs(off.mean() - 0.5) <= 4 * (1 - 0.5 ** 2) / math.sqrt(4000)
    with pytest.raises(InputError, match="rho"):
        make_router("correlated", 6, 100, 2, seed=1, rho=1.5)


def test_ensemble_mean_and_spread(tmp_path):
    import numpy as np

    rows = _rows(run_study("smoothing", str(tmp_path), grid={"eta": 0.01, "n_routers": 3, "M": 6,
                                                               "D": 16, "n_samples": 20000}, seed=1))
    per = [r for r in rows if r["router_index"] != "mean"]
    mean = [r for r in rows if r["router_index"] == "mean"]
    assert len(per) == 3 and len(mean) == 1
    vals = [float(r["mean_extra"]) for r in per]
    assert float(mean[0]["mean_extra"]) == pytest.approx(sum(vals) / 3)
    assert float(mean[0]["mean_extra_spread"]) == pytest.approx(float(np.std(vals, ddof=1)))




# ------------------------------------------------------------------ registry and definitions
def test_every_default_grid_point_has_type_rules_and_every_text_parameter_a_file_reader():
    from discosim.app.studies import STUDIES, check_point
    from discosim.app.studies.identity import INPUT_FILES
    from discosim.app.studies.registry import TEXT_PARAMETERS

    for name, spec in STUDIES.items():
        for p in expand_grid(spec["grid"], {}):
            assert set(check_point(p)) == set(p), name
    # a text parameter may name a file: without a reader its content would escape the identity
    assert set(INPUT_FILES) == set(TEXT_PARAMETERS)


def test_study_grids_start_from_the_claims_cases():
    from discosim import cases
    from discosim.app.studies import STUDIES

    for name, case in (("volume_ratios", cases.RATIO_CASE), ("sampler_efficiency", cases.RATIO_CASE),
                       ("tube_metrics", cases.SCORE_TUBE_CASE), ("occupation", cases.APEX_CASE),
                       ("smoothing", cases.SMOOTHING_CASE)):
        assert {k: STUDIES[name]["grid"][k] for k in case} == case, name


# ------------------------------------------------------------------ identity of a saved point
@pytest.fixture
def point_runs(monkeypatch):
    """The grid points the runner computes (not reused from disk), in order."""
    import discosim.app.studies.runner as runner

    computed = []
    real = runner._run_point

    def counting(name, params, *a, **k):
        computed.append(params)
        return real(name, params, *a, **k)

    monkeypatch.setattr(runner, "_run_point", counting)
    return computed


def _flip_one_byte(path, offset=-2):
    """Change one byte in place, keeping the size and the modification time (content only)."""
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(offset, os.SEEK_END)
        b = fh.read(1)
        fh.seek(offset, os.SEEK_END)
        fh.write(bytes([b[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size


def _edit_json(path, key, value):
    """Set one key of a JSON file in place, keeping its modification time."""
    st = os.stat(path)
    with open(path) as fh:
        doc = json.load(fh)
    doc[key] = value
    with open(path, "w") as fh:
        json.dump(doc, fh)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# 200 inputs per layer see no flips: the study's log-scaled figure has nothing to draw there
NO_FLIPS = pytest.mark.filterwarnings("ignore:Data has no positive values:UserWarning")


def _audit(out, grid, **kw):
    return run_study("audit", str(out), grid={"n_samples": 200, **grid}, seed=4, progress=False,
                     **kw)


@NO_FLIPS
@pytest.mark.parametrize("what", ["config", "shard", "index"])
def test_changed_checkpoint_file_recomputes_the_point(tmp_path, point_runs, what):
    from discosim.checkpoints.synthetic import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=32, k=2, shards=2)
    grid = {"path": str(ckpt)}
    first = _rows(_audit(tmp_path / "s", grid))
    assert len(point_runs) == 1
    _audit(tmp_path / "s", grid)
    assert len(point_runs) == 1  # unchanged files: reused
    if what == "config":
        _edit_json(os.path.join(ckpt, "config.json"), "num_experts_per_tok", 3)
    elif what == "shard":
        _flip_one_byte(os.path.join(ckpt, "model-00002-of-00002.safetensors"))
    else:  # the same weight map: only the metadata, which the audit ignores, differs
        _edit_json(os.path.join(ckpt, "model.safetensors.index.json"), "metadata", {"note": 1})
    name = {"config": "config.json", "shard": "model-00002-of-00002.safetensors",
            "index": "model.safetensors.index.json"}[what]
    with pytest.raises(InputError, match=f"other input files \\(path: {name} changed\\)") as info:
        _audit(tmp_path / "s", grid, resume=True)
    assert "\n" not in str(info.value)
    second = _rows(_audit(tmp_path / "s", grid))
    assert len(point_runs) == 2  # recomputed
    if what == "config":  # the new k reaches the rows
        assert {r["k"] for r in first} == {"2"} and {r["k"] for r in second} == {"3"}


@NO_FLIPS
@pytest.mark.parametrize("what", ["config", "weights"])
def test_changed_weights_file_or_its_config_recomputes_the_point(tmp_path, point_runs, what):
    """``path=DIR/model.safetensors`` reads the config.json beside it: both are inputs."""
    from discosim.checkpoints.synthetic import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=32, k=2, shards=1)
    weights = os.path.join(ckpt, "model.safetensors")
    grid = {"path": weights}
    _audit(tmp_path / "s", grid)
    _audit(tmp_path / "s", grid)
    assert len(point_runs) == 1
    if what == "config":
        _edit_json(os.path.join(ckpt, "config.json"), "num_experts_per_tok", 3)
    else:
        _flip_one_byte(weights)
    _audit(tmp_path / "s", grid)
    assert len(point_runs) == 2


@NO_FLIPS
def test_changed_hidden_states_file_recomputes_the_point(tmp_path, point_runs):
    import numpy as np

    from discosim.checkpoints.synthetic import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=32, k=2)
    states = tmp_path / "h.npy"
    np.save(states, np.random.default_rng(0).standard_normal((300, 32)))
    grid = {"path": str(ckpt), "inputs": ["sphere", str(states)]}
    _audit(tmp_path / "s", grid)
    assert len(point_runs) == 2
    _flip_one_byte(states)
    with pytest.raises(InputError, match="inputs: h.npy changed"):
        _audit(tmp_path / "s", grid, resume=True)
    _audit(tmp_path / "s", grid)
    # only the hidden-states point is recomputed; the sphere point reads no such file
    assert len(point_runs) == 3 and point_runs[-1]["inputs"] == str(states)


def test_each_input_file_is_hashed_once_per_run(tmp_path, monkeypatch):
    import hashlib

    from discosim.app.studies import FileHasher, point_identity
    from discosim.checkpoints.synthetic import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "m", "mixtral", n_layers=1, n_experts=8, dim=32, k=2, shards=2)
    reads = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda fh, d: reads.append(fh.name) or real(fh, d))
    hasher = FileHasher()
    ids = {point_identity("audit", {"path": str(ckpt), "eps": e}, 0, hasher=hasher)[0]["files"]["path"]
           == point_identity("audit", {"path": str(ckpt), "eps": e}, 0)[0]["files"]["path"]
           for e in (0.01, 0.02)}
    assert ids == {True}
    # index, two shards and config.json: once each with the run's hasher, and once more for
    # each of the two calls without one
    assert len(reads) == 4 + 2 * 4 and len(set(reads)) == 4
