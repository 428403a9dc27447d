"""What every ``discosim`` command shares: option types, the common options, the router options,
the checks made before any work, and the table of conventions the README's "CLI conventions"
block is generated from (:func:`conventions_markdown`; ``tests/integration/test_cli_conventions.py``
checks every row on every command it names).
"""

import argparse
import contextlib
import decimal
import os

from discosim._core.cli import HelpFormatter
from discosim._core.errors import InputError

__all__ = ["DEFAULT_OUT", "count", "listed", "new_command", "add_json", "add_quiet", "add_seed",
           "add_jobs", "add_device", "add_out", "add_router", "router_from_args", "check_common",
           "run_options", "CONVENTIONS", "conventions_markdown", "option", "has_out_dir", "PROCESSES",
           "EXPERTS"]

# where `validate` and `figures` write unless told: never a tracked folder of a checkout (the
# committed figures/ is regenerated only by `discosim validate --out figures`)
DEFAULT_OUT = "discosim-results"

# the choices of the two families whose modules take seconds to import (numba kernels); a unit
# test holds them equal to discosim.diffusion.estimators.PROCESSES and smoothing's EXPERTS
PROCESSES = ("bm", "ou")
EXPERTS = ("linear", "mlp")

_MAX_COUNT_DIGITS = 30  # 1e30: far above any count an estimator accepts, far below a slow int()


def count(text):
    """A count: ``100000``, ``100_000`` or ``1e5``, a whole number >= 0 (exact: no float)."""
    try:
        d = decimal.Decimal(text.strip())
    except (decimal.InvalidOperation, ValueError):
        raise argparse.ArgumentTypeError(
            f"not a count: {text!r} (write 100000, 100_000 or 1e5)") from None
    if not d.is_finite() or d != d.to_integral_value() or d.adjusted() > _MAX_COUNT_DIGITS:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r} (write 100000, 100_000 or 1e5)")
    if d < 0:
        raise argparse.ArgumentTypeError(f"a count is >= 0, got {text!r}")
    return int(d)


def listed(convert):
    """The type of one value of a list option (``nargs="+"``): ``convert``, after refusing the
    comma form, so ``--eps 0.01,0.1`` is one line naming the space form, not a confusing
    "invalid float"."""

    def parse(text):
        if "," in text:
            parts = " ".join(p.strip() for p in text.split(",") if p.strip())
            raise argparse.ArgumentTypeError(
                f"separate the values by spaces ({parts}), not commas")
        return convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in its messages
    parse.listed = True
    return parse


def new_command(sub, name, help, description=None):
    """A subcommand whose ``--help`` shows every default."""
    return sub.add_parser(name, help=help, description=description or help,
                          formatter_class=HelpFormatter)


def add_json(p):
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON document on stdout and nothing else (no progress "
                        "bar)")


def add_quiet(p, has_bar=True):
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar" if has_bar else
                   "no progress bar (no effect: this command draws none)")


def add_seed(p, default=None):
    p.add_argument("--seed", type=int, default=default,
                   help="seed of the run: the same numbers for any --n-jobs"
                        + (" (default: fresh entropy, printed)" if default is None else ""))


def add_jobs(p, default=1):
    p.add_argument("--n-jobs", type=int, default=default,
                   help="workers (-1: all cores); capped at the cores unless --force-jobs")
    p.add_argument("--force-jobs", action="store_true",
                   help="allow --n-jobs above the cores (also DISCOSIM_FORCE_JOBS=1)")


def add_device(p, help):
    from discosim._core.devices import DEVICES

    p.add_argument("--device", default="cpu", choices=DEVICES, help=help)


def add_out(p, default, help):
    p.add_argument("--out", metavar="DIR", default=default, help=help)


def add_router(p):
    """The router options of ``volume``, ``hit`` and ``smooth``."""
    p.add_argument("--router", default="gaussian",
                   help="gaussian | orthonormal (random gate matrices) | PATH to "
                        ".npy/.npz/.safetensors gate weights")
    p.add_argument("--key", help="array name inside an .npz/.safetensors file")
    p.add_argument("--M", type=count, help="number of experts (random routers)")
    p.add_argument("--D", type=count, help="input dimension (random routers)")
    p.add_argument("--k", type=count, help="active experts per token")
    p.add_argument("--router-seed", type=int, default=0, help="seed of a random gate matrix")


def router_from_args(args):
    """The :class:`~discosim.model.router.Router` that ``--router/--M/--D/--k/--key`` name."""
    from discosim.model.router import Router

    if args.router in ("gaussian", "orthonormal"):
        missing = [n for n in ("M", "D", "k") if getattr(args, n) is None]
        if missing:
            raise InputError(f"--router {args.router} needs --{' --'.join(missing)}")
        make = Router.gaussian if args.router == "gaussian" else Router.orthonormal
        return make(args.M, args.D, args.k, seed=args.router_seed)
    if args.k is None:
        raise InputError("--k is required with a weights file")
    router = Router.from_file(args.router, args.k, key=args.key)
    for name, value in (("M", router.n_experts), ("D", router.dim)):
        given = getattr(args, name)
        if given is not None and given != value:
            raise InputError(f"--{name} {given} does not match the file's {name}={value}")
    return router


def check_common(args):
    """The options commands share, checked before any work: --out, --seed, --n-jobs."""
    from discosim._core.runtime import check_n_jobs
    from discosim._core.seeding import as_seed_sequence

    out = getattr(args, "out", None)
    if out and os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out} exists and is not a directory")
    if getattr(args, "seed", None) is not None:
        as_seed_sequence(args.seed)
    if hasattr(args, "n_jobs"):
        check_n_jobs(args.n_jobs, getattr(args, "force_jobs", False))


@contextlib.contextmanager
def run_options(args):
    """--json/--quiet (no progress bars) and --force-jobs for the length of one command.

    --force-jobs is passed on as ``DISCOSIM_FORCE_JOBS=1``, which every worker count check reads
    (the estimators that take no ``force_jobs`` argument and worker processes included); both
    settings are restored afterwards, so a second ``main()`` in the same process starts clean.
    """
    from discosim._core import runtime

    saved_env = os.environ.get(runtime.FORCE_JOBS_ENV)
    # --json output stays the only thing printed; the setting ends with this command
    quiet = getattr(args, "json", False) or getattr(args, "quiet", False)
    try:
        if getattr(args, "force_jobs", False):
            os.environ[runtime.FORCE_JOBS_ENV] = "1"
        with runtime.progress(False) if quiet else contextlib.nullcontext():
            yield
    finally:
        if saved_env is None:
            os.environ.pop(runtime.FORCE_JOBS_ENV, None)
        else:
            os.environ[runtime.FORCE_JOBS_ENV] = saved_env


# ------------------------------------------------------------------ the conventions table
def option(parser, flag):
    """The action of ``flag`` in ``parser``, or None."""
    return next((a for a in parser._actions if flag in a.option_strings), None)


def _has(flag):
    return lambda p: option(p, flag) is not None


def has_out_dir(p):
    """Whether command ``p`` takes ``--out DIR`` (``capture``'s ``--out`` names a file)."""
    action = option(p, "--out")
    return action is not None and action.dest == "out"


def _counts(p):
    return [a for a in p._actions if a.option_strings and a.type is count]


def _lists(p):
    return [a for a in p._actions if a.option_strings and getattr(a.type, "listed", False)]


# (key, what the README states, which commands it applies to: None = every command)
CONVENTIONS = (
    ("help", "`--help` lists every option with its default and its choices.", None),
    ("errors", "Bad input prints one line, `discosim: error: ...`, on stderr and exits with "
               "status 2 without a traceback, before any work wherever it can be checked first; "
               "so do unreadable or unwritable files (an `--out` that is a file, a read-only or "
               "full folder), a corrupted JSON file and more threads than the system allows. "
               "Names read from files (tensor names, config fields, "
               "figure and claim names) are printed escaped (`\\n`, `\\x1b`). Ctrl-C stops at "
               "once with one line and status 130; a closed pipe (`| head`) exits quietly "
               "(141). Otherwise the status is 0 (`validate` and `report merge`: 0 iff every row "
               "holds, else 1).", None),
    ("json", "`--json` prints exactly one JSON document on stdout and nothing else.",
     _has("--json")),
    ("quiet", "`--quiet` turns the progress bar off (`--json` does too); bars show only on a "
              "terminal.", _has("--quiet")),
    ("counts", "Counts (`--n-samples`, `--n-paths`, `--n-points`, `--prediction-samples`, "
               "`--constants-samples`, `--M`, `--D`, ...) take `100000`, `100_000` or `1e5`; "
               "memory does not grow with them (chunks are streamed).",
     lambda p: bool(_counts(p))),
    ("lists", "A list takes its values separated by spaces (`--eps 0.01 0.1`, `--claims "
              "slice_exact hit_order`, `--set eps=0.01 0.1`); a comma-separated list is "
              "refused in one line that shows the space form.", lambda p: bool(_lists(p))),
    ("seed", "`--seed N` replays a run: the same numbers for any `--n-jobs`.", _has("--seed")),
    ("jobs", "`--n-jobs N` (-1: all cores) is capped at the cores unless `--force-jobs` (or "
             "`DISCOSIM_FORCE_JOBS=1`); the default parallel backend is a persistent thread "
             "pool over the nogil numba kernels.", _has("--force-jobs")),
    ("out", "`--out DIR` is where files go; `validate` and `figures` write to "
            f"`./{DEFAULT_OUT}/` unless told, never into the checkout's `figures/`.",
     has_out_dir),
    ("version", "`discosim --version` prints the version.", "top"),
)


def conventions_markdown(commands):
    """The README's "CLI conventions" table for ``commands`` (``{"volume": parser, ...}``)."""
    lines = ["| convention | commands |", "|---|---|"]
    for _, text, applies in CONVENTIONS:
        if applies is None:
            where = "every command"
        elif applies == "top":
            where = "`discosim`"
        else:
            where = " ".join(f"`{name}`" for name, p in commands.items() if applies(p))
        lines.append(f"| {text.replace('|', chr(92) + '|')} | {where} |")  # \| keeps a cell whole
    return "\n".join(lines)
