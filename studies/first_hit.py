"""Study 'first_hit' (see `discosim study list`): grid in, results/first_hit/results.csv + JSON out.

    python studies/first_hit.py [--grid grid.json|grid.toml] [--out DIR] [--n-jobs J]
        [--backend loky|dask] [--scheduler tcp://HOST:PORT] [--seed S] [--quiet]

Equivalent to `discosim study first_hit ...`. Rerunning after an interruption skips the grid
points already saved in DIR/points/ and ends with the same results as an uninterrupted run.
"""

import sys

from discosim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["study", "first_hit", *sys.argv[1:]]))
