"""Slow tier of statistical/test_smoothing.py (marked ``slow`` by directory: see tests/conftest.py)."""


import json
import subprocess
import sys


def test_cli_smooth_json_and_errors():
    base = [sys.executable, "-m", "discosim", "smooth", "--M", "6", "--D", "16", "--k", "2"]
    p = subprocess.run(base + ["--etas", "0.01", "0.02", "--deltas", "1e-5", "1e-4", "--n-samples",
                               "20000", "--n-points", "20", "--seed", "1", "--target-overhead", "0.2",
                               "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) >= {"router", "radius", "n_samples", "seed", "elapsed_s", "overhead", "continuity",
                        "calibration"}
    assert doc["continuity"]["eta"] == 0.02
    assert len(doc["continuity"]["across_discontinuity"]["jump_topk"]) == 2
    assert doc["calibration"]["target"] == 0.2
    for bad, word in ((["--etas", "0", "--deltas", "1e-5"], "eta"),
                      (["--etas", "0.1", "--deltas", "1e-5", "--a-s", "0"], "a_s")):
        p = subprocess.run(base + bad, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and word in p.stderr and "Traceback" not in p.stderr
