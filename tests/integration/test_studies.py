"""Studies: resume after an interruption, identical numbers for n_jobs 1, loky and dask."""

import csv
import math
import json
import os
import subprocess
import sys

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


