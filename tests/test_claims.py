import json
import os
import subprocess
import sys

from discosim.claims import CLAIMS


def test_registry_names_sections():
    assert len({c.name for c in CLAIMS}) == len(CLAIMS)
    assert all(c.section.startswith("§") for c in CLAIMS)


def test_validate_quick_writes_numbers_and_figures(tmp_path):
    p = subprocess.run([sys.executable, "-m", "discosim", "validate", "--quick", "--out", str(tmp_path),
                        "--n-jobs", "1"], capture_output=True, text=True, timeout=600)
    doc = json.load(open(tmp_path / "validate.json"))
    assert p.returncode == (0 if doc["all_passed"] else 1)
    assert doc["all_passed"], [c for c in doc["claims"] if not c["passed"]]
    for c in doc["claims"]:
        assert c["ci_low"] <= c["measured"] <= c["ci_high"]
    for name in ("volume_fraction_vs_eps.png", "volume_ratios_vs_eps.svg"):
        assert os.path.getsize(tmp_path / name) > 1000
