"""Slow tier of integration/test_studies.py (marked ``slow`` by directory: see tests/conftest.py)."""


import json
import os
import subprocess
import sys

import pytest
from discosim.app.studies import load_grid, run_study
from test_studies import GRID, _rows


def test_same_numbers_for_n_jobs_1_loky_and_dask(tmp_path):
    pytest.importorskip("distributed")
    a = _rows(run_study("volume_ratios", str(tmp_path / "a"), grid=GRID, seed=2, n_jobs=1))
    b = _rows(run_study("volume_ratios", str(tmp_path / "b"), grid=GRID, seed=2, n_jobs=2))
    c = _rows(run_study("volume_ratios", str(tmp_path / "c"), grid=GRID, seed=2, n_jobs=2,
                        backend="dask"))
    assert a == b == c
    side = json.load(open(tmp_path / "c" / "results.json"))
    assert side["backend"] == "dask" and "numpy" in side["versions"] and len(side["points"]) == 3


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
