"""Study 'volume_ratios' (see `discosim study list`): grid in, results/volume_ratios/results.csv + JSON out.

    python studies/volume_ratios.py [--grid grid.json|grid.toml] [--out DIR] [--n-jobs J]
        [--backend loky|dask] [--scheduler tcp://HOST:PORT] [--seed S] [--quiet]

Equivalent to `discosim study volume_ratios ...`. Rerunning after an interruption skips the grid
points already saved in DIR/points/ and ends with the same results as an uninterrupted run.
"""

import sys

from discosim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["study", "volume_ratios", *sys.argv[1:]]))
