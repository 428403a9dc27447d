"""Run one registered study: ``python studies/run_study.py NAME [options]``.

The same as ``discosim study NAME [options]`` (``discosim study list`` names the studies and
``discosim study --help`` lists the options: --grid, --set KEY=V1 V2, --out, --seed, --n-jobs,
--backend loky|dask|threading, --scheduler, --resume, --quiet). Results go to
``results/NAME/results.csv`` with ``results.json`` and the figure beside it; rerunning after an
interruption reuses the points saved under ``results/NAME/points/`` that this very run (study,
seed, parameters, code version, input files) made, and ends with the same numbers.

``python studies/run_study.py --smoke``: the ``volume_ratios`` study on a one-point grid of 200
samples into a temporary directory, seconds.
"""

import sys
import tempfile

from discosim.app.cli.main import main

SMOKE = ["volume_ratios", "--set", "eps=0.1", "--set", "n_samples=200", "--quiet"]

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1:] == ["--smoke"]:
        with tempfile.TemporaryDirectory() as tmp:
            raise SystemExit(main(["study", *SMOKE, "--out", tmp]))
    raise SystemExit(main(["study", *sys.argv[1:]]))
