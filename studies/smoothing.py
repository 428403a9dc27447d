"""Study 'smoothing' (see `discosim study list`): grid in, results/smoothing/results.csv + JSON out.

    python studies/smoothing.py [--grid grid.json|grid.toml] [--out DIR] [--n-jobs J]
        [--backend loky|dask] [--scheduler tcp://HOST:PORT] [--seed S] [--quiet]

Equivalent to `discosim study smoothing ...`. Rerunning after an interruption skips the grid
points already saved in DIR/points/ and ends with the same results as an uninterrupted run.
"""

import sys

from discosim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["study", "smoothing", *sys.argv[1:]]))
