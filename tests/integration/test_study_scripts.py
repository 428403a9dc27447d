"""Every script of ``studies/`` runs in its ``--smoke`` mode and prints its expected line.

The scripts are found by glob, so a new one cannot escape: it needs a ``--smoke`` mode (seconds,
no GPU needed: GPU parts are skipped with a printed line) and its expected output in
:data:`EXPECTED`. Each runs as a user runs it, in a fresh process, against this tree's discosim;
two at a time (the CI machine has two cores).
"""

import glob
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "studies", "*.py")))

# script -> regular expressions that must each match a whole line of its output
EXPECTED = {
    "benchmark_audit.py": [r"mixtral +2 routers of 8x64, k=2: .*\(smoke run, no target\).*",
                           r"deepseek +2 routers of 16x64, k=4: .*\(smoke run, no target\).*",
                           r" +layer 0 flips: bf16 .*, fp16 .*"],
    # the old and the new DeepSeek-V3 audit paths give the same document (issue 22)
    "benchmark_audit_speed.py": [r" +speed-up old/new: .*old and new documents identical: True",
                                 r" +layer 0: bf16 .*, bf16-router .*"],
    # both end-to-end rows: the numbers of n_jobs 1 and 2 are bit-identical
    "benchmark_cpu_latency.py": [r" +2e\+04 +False +(\S+ +){5}True", r" +2e\+04 +True +(\S+ +){5}True",
                                 r" +2e\+04( +\S+){5} +True"],
    # without a GPU the script says so and runs the CPU sides; with one it ends with the ratios
    "benchmark_memory.py": [r"router \(volume, random\) +router +.* B/entry, fixed .*",
                            r"audit margins +audit_sample +.* B/entry, fixed .*"],
    "benchmark_gpu.py": [r"(benchmark_gpu: no usable GPU: the GPU sections are skipped.*|ratios: .*)",
                         r"cpu reference: \S+ steps/s"],
    "benchmark_paths.py": [r" +8 +4096 +2 +\S+ +\S+ +\S+x"],
    "benchmark_volume.py": [r" +8 +64 +2 +\S+ +\S+ +\S+x"],
    # the seed study of validate's family-wise false-alarm rate, on 2 seeds of one claim
    "familywise.py": [r"familywise: \d of 2 seeds of `validate --quick --claims slice_exact` had a "
                      r"failing counted row: measured rate .* full run's rate predicted .*familywise\.json"],
    "run_study.py": [r"volume_ratios: .*results\.csv \(\S+ s\); figure and results\.json beside it"],
}


def test_every_script_has_an_expected_line():
    assert SCRIPTS, "no scripts found in studies/"
    assert set(SCRIPTS) == set(EXPECTED), (
        f"scripts without an expected smoke line: {sorted(set(SCRIPTS) - set(EXPECTED))}; "
        f"expected lines without a script: {sorted(set(EXPECTED) - set(SCRIPTS))}")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every script's ``--smoke`` run: ``{script: CompletedProcess}``."""
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "DISCOSIM_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}

    def run(script):
        return subprocess.run([sys.executable, os.path.join("studies", script), "--smoke"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(SCRIPTS, pool.map(run, SCRIPTS)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_in_smoke_mode(script, smoke_runs):
    proc = smoke_runs[script]
    assert proc.returncode == 0, f"{script} --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    for pattern in EXPECTED.get(script, []):
        assert any(re.fullmatch(pattern, line) for line in lines), (
            f"{script} --smoke printed no line matching {pattern!r}:\n{proc.stdout[-3000:]}")
