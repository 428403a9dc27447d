"""Study 'tube_metrics' (see `discosim study list`): grid in, results/tube_metrics/results.csv + JSON out.

    python studies/tube_metrics.py [--grid grid.json|grid.toml] [--out DIR] [--n-jobs J]
        [--backend loky|dask] [--scheduler tcp://HOST:PORT] [--seed S] [--quiet]

Equivalent to `discosim study tube_metrics ...`. Rerunning after an interruption skips the grid
points already saved in DIR/points/ and ends with the same results as an uninterrupted run.
"""

import sys

from discosim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["study", "tube_metrics", *sys.argv[1:]]))
