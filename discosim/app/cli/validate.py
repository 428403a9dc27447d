"""``discosim validate``: check every claim of THEORY.md; exit status 0 iff every row holds
(every counted row: a row derived from another is shown, not counted). Every row carries its
resolution and its measured power below / above the prediction (``power_low``, ``power_high``).

The numbers go to ``OUT/validate.json`` first (after each claim, marked incomplete until the
last), then the figures and ``OUT/REPORT.md``; ``--out`` defaults to ``./discosim-results/``.
The committed ``figures/`` of a checkout is regenerated only on request: ``discosim validate
--out figures``.
"""

from discosim.app.cli import _common as c

__all__ = ["add_parser", "run", "QUICK_SCALE", "DEVICE_SCALE"]

QUICK_SCALE = 0.25  # --quick: the claims' sample sizes times this
# estimator calls that run on the GPU get 100x the samples (issue 11): the resolution that buys;
# the claims' CPU work keeps its size
DEVICE_SCALE = 100.0


def add_parser(sub):
    """Register ``validate``."""
    p = c.new_command(sub, "validate", "check every claim of THEORY.md; exit 0 iff all hold",
                      "Check every claim of THEORY.md; exit status 0 iff every row holds (rows "
                      "derived from another are shown, not counted). Each row states its rule, "
                      "resolution and measured power below / above the prediction. The "
                      "numbers go to OUT/validate.json first (after each claim, marked incomplete "
                      "until the last), then the figures and OUT/REPORT.md. The committed "
                      "figures/ of a checkout is regenerated only on request: discosim validate "
                      "--out figures.")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SCALE:g}x the samples")
    p.add_argument("--claims", type=c.listed(str), nargs="+", metavar="NAME",
                   help="claims to run, as named in the README's table (default: all)")
    c.add_out(p, c.DEFAULT_OUT, "folder of validate.json, REPORT.md and the figures")
    c.add_seed(p, default=20260623)
    c.add_jobs(p, default=2)
    c.add_device(p, "cuda: every estimator call with a GPU path runs there, with 100x the samples "
                    "(the tube sampler keeps its size; the [cuda] extra)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def run(args):
    """Run ``discosim validate``; returns 0 iff every row holds, else 1."""
    from discosim._core.devices import check_device, cuda_module
    from discosim.validation import Context
    from discosim.validation.report import run_validation

    if check_device(args.device) == "cuda":
        cuda_module()  # one line and exit 2 before any claim runs when no GPU is usable
    ctx = Context(scale=QUICK_SCALE if args.quick else 1.0, seed=args.seed, n_jobs=args.n_jobs,
                  quick=args.quick, device=args.device,
                  device_scale=DEVICE_SCALE if args.device == "cuda" else 1.0)
    return run_validation(args.claims, ctx, args.out, as_json=args.json,
                          progress=False if (args.quiet or args.json) else None)
