"""Studies: resume after an interruption, identical numbers for n_jobs 1, loky and dask."""

import csv
import math
import json
import os
import subprocess
import sys

import pytest

from discosim import InputError
from discosim.studies import expand_grid, load_grid, make_router, run_study

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


@pytest.mark.slow  # subprocesses or many samples; runs with -m slow
def test_same_numbers_for_n_jobs_1_loky_and_dask(tmp_path):
    pytest.importorskip("distributed")
    a = _rows(run_study("volume_ratios", str(tmp_path / "a"), grid=GRID, seed=2, n_jobs=1))
    b = _rows(run_study("volume_ratios", str(tmp_path / "b"), grid=GRID, seed=2, n_jobs=2))
    c = _rows(run_study("volume_ratios", str(tmp_path / "c"), grid=GRID, seed=2, n_jobs=2,
                        backend="dask"))
    assert a == b == c
    side = json.load(open(tmp_path / "c" / "results.json"))
    assert side["backend"] == "dask" and "numpy" in side["versions"] and len(side["points"]) == 3


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


@pytest.mark.slow  # subprocesses or many samples; runs with -m slow
def test_cli_study_and_figures(tmp_path):
    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({"dt_over_d2": [0.01], "bridge": [True], "n_paths": 500}))
    run = lambda *a: subprocess.run([sys.executable, "-m", "discosim", *a], capture_output=True,
                                    text=True, timeout=300)
    p = run("study", "first_hit", "--grid", str(grid), "--out", str(tmp_path / "fh"), "--quiet")
    assert p.returncode == 0, p.stderr
    os.remove(tmp_path / "fh" / "first_hit.png")
    p = run("figures", "--results", str(tmp_path), "--validation", str(tmp_path / "none"))
    assert p.returncode == 0 and os.path.exists(tmp_path / "fh" / "first_hit.png")
    p = run("study", "first_hit", "--backend", "spark")
    assert p.returncode == 2 and "backend" in p.stderr


@pytest.mark.slow  # subprocesses or many samples; runs with -m slow
def test_killed_study_process_resumes_to_the_same_results(tmp_path):
    """A real interruption: kill the CLI once some points are saved, rerun, compare."""
    import signal
    import time
    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({"eps": [0.002, 0.004, 0.008, 0.016, 0.032, 0.064], "n_samples": 8000}))
    full = run_study("volume_ratios", str(tmp_path / "full"), grid=load_grid(str(grid)), seed=9)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "discosim", "study", "volume_ratios", "--grid", str(grid), "--out",
           str(out), "--seed", "9", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        pts = out / "points"
        if pts.exists() and any(f.endswith(".json") for f in os.listdir(pts)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    saved = [f for f in os.listdir(out / "points") if f.endswith(".json")]
    assert 1 <= len(saved)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert _rows(full) == _rows(out / "results.csv")
