"""Run one registered study: ``python studies/run_study.py NAME [options]``.

The same as ``discosim study NAME [options]`` (``discosim study list`` names the studies and
``discosim study --help`` lists the options: --grid, --set KEY=V1 V2, --out, --seed, --n-jobs,
--backend loky|dask|threading, --scheduler, --resume, --quiet). Results go to
``results/NAME/results.csv`` with ``results.json`` and the figure beside it; rerunning after an
interruption reuses the points saved under ``results/NAME/points/`` that this very run (study,
seed, parameters, code version) made, and ends with the same numbers.
"""

import sys

from discosim.app.cli.main import main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    raise SystemExit(main(["study", *sys.argv[1:]]))
