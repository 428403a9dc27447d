"""Slow tier of statistical/test_diffusion.py (marked ``slow`` by directory: see tests/conftest.py)."""



import numpy as np


def test_cli_hit_json(tmp_path):
    import json
    import subprocess
    import sys
    x0 = np.random.default_rng(0).standard_normal(8) * 0.3
    np.save(tmp_path / "x0.npy", x0)
    base = [sys.executable, "-m", "discosim", "hit", "--M", "4", "--D", "8", "--k", "2", "--sigma", "1",
            "--t-max", "1", "--dt", "0.01", "--times", "0.1", "1", "--n-paths", "500", "--seed", "3"]
    p = subprocess.run(base + ["--x0", str(tmp_path / "x0.npy"), "--deltas", "0.01", "0.1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["seed"] == 3 and len(doc["first_hit"]["cdf"]) == 2
    assert len(doc["first_hit"]["lower_bound"]) == 2 and doc["hit_order"]["exponent_predicted"] > 0
    np.save(tmp_path / "bad.npy", np.zeros(5))
    p = subprocess.run(base + ["--x0", str(tmp_path / "bad.npy")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "length" in p.stderr and "Traceback" not in p.stderr
