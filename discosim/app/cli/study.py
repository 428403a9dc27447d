"""``discosim study NAME``: run a registered parameter study over its grid (or ``list`` them)."""

import json
import os
import time

from discosim._core.errors import InputError
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run", "BACKENDS"]

BACKENDS = ("loky", "threading", "dask")  # those discosim.app.studies.run_study accepts


def add_parser(sub):
    """Register ``study``."""
    p = c.new_command(sub, "study", "run a parameter study (NAME, or 'list' to name them)")
    p.add_argument("name", help="a study (see `discosim study list`), or list")
    p.add_argument("--grid", help="JSON or TOML file {param: [values]} overriding the defaults")
    p.add_argument("--set", action="append", nargs="+", type=c.listed(str),
                   metavar=("KEY=V1", "V2"),
                   help="grid values on the command line, e.g. --set eps=0.001 0.01 (repeatable, "
                        "one key each; overrides --grid)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: results/NAME)")
    p.add_argument("--backend", default="loky", choices=BACKENDS,
                   help="how grid points run in parallel")
    p.add_argument("--scheduler", help="dask scheduler address (default: a local cluster)")
    p.add_argument("--resume", action="store_true",
                   help="continue a run in --out; refuse if its saved points were made by another "
                        "study, seed, grid value or code version (default: recompute those)")
    c.add_seed(p, default=0)
    c.add_jobs(p)
    c.add_device(p, "cuda: every point's estimators on the GPU (the [cuda] extra)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def _parse_value(key, text):
    """A grid value from the command line: an integer (``100_000`` too), a JSON scalar (numbers
    such as ``1e5``, true/false) or else a word."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(value, (list, dict)):
        raise InputError(f"--set {key}: values are numbers, true/false or words separated by "
                         f"spaces, got {text!r}")
    return value


def parse_sets(groups):
    """``{key: value or [values]}`` from ``--set KEY=V1 V2 ...`` groups."""
    grid = {}
    for first, *more in groups or []:
        key, sep, text = first.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--set takes KEY=V1 V2 ...; got {first!r}")
        if any("=" in m for m in more):
            raise InputError(f"--set takes one key; repeat --set for another: --set {key}=... "
                             f"--set {next(m for m in more if '=' in m)}")
        values = [_parse_value(key, v) for v in [text, *more]]
        grid[key] = values if len(values) > 1 else values[0]
    return grid


def run(args):
    """Run ``discosim study``; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.app.studies import STUDIES, load_grid, run_study

    if args.name == "list":
        if args.json:
            print(dumps({"studies": {name: spec["doc"] for name, spec in STUDIES.items()}}))
        else:
            for name, spec in STUDIES.items():
                print(f"{name:<20} {spec['doc']}")
        return 0
    grid = load_grid(args.grid) if args.grid else {}
    grid.update(parse_sets(args.set))
    out = args.out or os.path.join("results", args.name)
    t0 = time.perf_counter()
    path = run_study(args.name, out, grid=grid, seed=args.seed, n_jobs=args.n_jobs,
                     backend=args.backend, scheduler=args.scheduler, resume=args.resume,
                     progress=False if (args.quiet or args.json) else None,
                     force_jobs=args.force_jobs, device=args.device)
    elapsed = time.perf_counter() - t0
    if args.json:
        print(dumps({"study": args.name, "out": out, "results_csv": path,
                     "results_json": os.path.join(out, "results.json"), "elapsed_s": elapsed}))
    else:
        print(f"{args.name}: {path} ({elapsed:.1f} s); figure and results.json beside it")
    return 0
