"""``discosim capture MODEL_DIR --texts FILE --out STATES.npz``: hidden states from real text.

Runs a local transformers model on texts and saves every router's input (the hidden state entering
the norm in front of it) per layer, for ``discosim audit MODEL_DIR --inputs STATES.npz``
(:func:`discosim.checkpoints.capture.capture_states`). Needs the ``[capture]`` extra
(transformers and torch); without it, one line names the extra and the status is 2.
"""

import os

from discosim._core.errors import InputError, printable
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Register the ``capture`` subcommand."""
    from discosim.checkpoints.capture import (DEFAULT_BATCH_TOKENS, DEFAULT_MAX_LENGTH,
                                              DEFAULT_MAX_TOKENS, DTYPES)
    from discosim.checkpoints.families import FAMILIES

    p = c.new_command(
        sub, "capture", "save every router's input on real text, for audit --inputs",
        "Run a local transformers model (config.json, safetensors weights and tokenizer files; "
        "nothing is downloaded) on texts and save, for every router, the hidden state of each "
        "token entering the norm in front of it (the audit applies the model's own norm) to an "
        ".npz whose members are the router tensor names: `discosim audit MODEL_DIR --inputs "
        "STATES.npz` reads it. Needs the [capture] extra: pip install 'discosim[capture]'.")
    p.add_argument("model", help="local model directory")
    p.add_argument("--texts", required=True, metavar="FILE",
                   help="UTF-8 texts, one per line (.jsonl: one {\"text\": ...} per line)")
    # a file, not a folder: dest 'states' keeps it apart from the --out DIR convention
    p.add_argument("--out", dest="states", required=True, metavar="STATES.npz",
                   help="the .npz to write (atomically; replaced if present)")
    p.add_argument("--max-tokens", type=c.count, default=DEFAULT_MAX_TOKENS,
                   help="tokens captured per router, in all (the last text is cut there)")
    p.add_argument("--max-length", type=c.count, default=DEFAULT_MAX_LENGTH,
                   help="tokens per text (longer texts are cut)")
    p.add_argument("--batch-tokens", type=c.count, default=DEFAULT_BATCH_TOKENS,
                   help="tokens per forward pass, padding included (memory grows with it)")
    p.add_argument("--layers", type=c.listed(int), nargs="+", metavar="I",
                   help="router positions to capture, as audit --layers (default: all)")
    p.add_argument("--family", choices=tuple(FAMILIES), help="override the detected router family")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="dtype the model runs in (auto: as stored)")
    c.add_device(p, "where the model runs (cuda: torch's CUDA device)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def run(args):
    """Run ``discosim capture`` from parsed arguments; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.checkpoints.capture import capture_states

    if os.path.isdir(args.states):
        raise InputError(f"--out {args.states} is a directory; name the .npz file to write")
    res = capture_states(args.model, args.texts, args.states, max_tokens=args.max_tokens,
                         max_length=args.max_length, batch_tokens=args.batch_tokens,
                         layers=args.layers, family=args.family, dtype=args.dtype,
                         device=args.device,
                         progress=False if (args.json or args.quiet) else None)
    doc = res.to_dict()
    if args.json:
        print(dumps(doc))
        return 0
    print(f"model: {printable(res.model)}  family: {printable(res.family)}  "
          f"routers: {len(res.layers)}  texts: {res.n_texts}  tokens: {res.n_tokens} per router  "
          f"({res.elapsed_s:.1f} s)")
    print(f"wrote {printable(res.path)}: {len(res.layers)} x ({res.n_tokens}, {res.D}) {res.dtype} "
          f"(model ran in {res.model_dtype}), {res.bytes / 2 ** 20:.1f} MiB; "
          f"next: discosim audit {printable(res.model)} --inputs {printable(res.path)}")
    return 0
