"""Study 'occupation' (see `discosim study list`): grid in, results/occupation/results.csv + JSON out.

    python studies/occupation.py [--grid grid.json|grid.toml] [--out DIR] [--n-jobs J]
        [--backend loky|dask] [--scheduler tcp://HOST:PORT] [--seed S] [--quiet]

Equivalent to `discosim study occupation ...`. Rerunning after an interruption skips the grid
points already saved in DIR/points/ and ends with the same results as an uninterrupted run.
"""

import sys

from discosim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["study", "occupation", *sys.argv[1:]]))
