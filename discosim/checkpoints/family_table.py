"""The README's family table, generated from the family registry (issue 22).

``python -m discosim.checkpoints.family_table --readme README.md [--check]`` rewrites the table
between ``<!-- families:start -->`` and ``<!-- families:end -->`` (tests/unit/test_families.py checks
that the README matches). Decoder router keys may also start with ``model.language_model.`` or
``language_model.model.`` (multimodal wrappers), as the note under the table says.
"""

from discosim._core.errors import InputError
from discosim.checkpoints.families import _MLP, _MOE, _PFX, FAMILIES

__all__ = ["family_table_rows", "family_table_markdown", "update_readme", "FAMILY_TABLE_MARKERS"]

_NORM_TEXT = {"rmsnorm": "RMSNorm w·x̂", "rmsnorm_1p": "RMSNorm (1+w)·x̂", "layernorm": "LayerNorm",
              None: "none"}


# families whose config may name groups (n_group / topk_group), scored by their top-2 sum
_TOP2_GROUPS = ("deepseek_v3", "exaone_moe", "glm4_moe")


def _selection_text(fam):
    if fam.routing == "topk":
        return "top-k of logits" if fam.fixed_k is None else f"top-{fam.fixed_k} of logits"
    if fam.routing == "deepseek_v2":
        return "top-k (greedy) or group-limited, group max (group_limited_greedy)"
    text = "top-k of score + selection bias"
    if fam.name in _TOP2_GROUPS:
        text += ", groups (top-2 sum)"
    return text


_KEY_TEXT = ((_PFX, "model.layers.{i}."), (_MOE, "{block_sparse_moe,mlp}."), (_MLP, "mlp."),
             (r"(?P<blk>block_sparse_moe\.)", "block_sparse_moe."),
             (r"(?P<stack>encoder|decoder)", "{encoder,decoder}"), (r"(?P<layer>\d+)", "{i}"),
             (r"(?P<sub>\d+)", "{j}"), ("\\.", "."))


def _key_text(pattern):
    for regex, text in _KEY_TEXT:
        pattern = pattern.replace(regex, text)
    return pattern


def family_table_rows():
    """One row per family of the registry (the README table): family, model_types, router key,
    norm, score, selection, closed forms (§5) apply.

    Examples
    --------
    >>> rows = family_table_rows()
    >>> rows[0]["family"], rows[0]["closed forms (§5) apply"]
    ('mixtral', 'yes')
    """
    rows = []
    for fam in FAMILIES.values():
        key = _key_text(fam.router)
        norm = _NORM_TEXT[fam.norm_form]
        if fam.norm is not None:
            norm += " " + fam.norm.split("{layer}")[-1].lstrip(".").replace("{sub}", "{j}")
        if fam.name == "cohere2_moe":
            norm += " (LayerNorm when rms_norm_eps is null)"
        score = fam.score_func + (f" ({fam.score_field})" if fam.score_field else "")
        rows.append({"family": fam.name, "model_types": ", ".join(fam.model_types),
                     "router key": key, "norm": norm, "score": score,
                     "selection": _selection_text(fam),
                     "closed forms (§5) apply": fam.closed_forms})
    return rows


FAMILY_TABLE_MARKERS = ("<!-- families:start -->", "<!-- families:end -->")


def family_table_markdown():
    """The README's family table (between :data:`FAMILY_TABLE_MARKERS`), from the registry.

    Examples
    --------
    >>> print(family_table_markdown().splitlines()[0])
    | family | model_types | router key | norm | score | selection | closed forms (§5) apply |
    """
    rows = family_table_rows()
    cols = list(rows[0])

    def cell(v):
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) if c != "router key" else f"`{cell(r[c])}`"
                                for c in cols) + " |" for r in rows]
    lines.append("")
    lines.append("Decoder keys may also start with `model.language_model.` or "
                 "`language_model.model.` (multimodal wrappers' text models); Mixtral-style blocks "
                 "are `block_sparse_moe.` in released checkpoints and `mlp.` in transformers 5.")
    return "\n".join(lines) + "\n"




def update_readme(path, check=False):
    """Rewrite the family table of the README at ``path`` between :data:`FAMILY_TABLE_MARKERS`
    (with ``check``, only compare). Returns True iff the file already matched the registry."""
    from discosim._core.io import write_atomic

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    start, end = FAMILY_TABLE_MARKERS
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise InputError(f"{path} lacks the markers {start} ... {end}")
    new = text[:i + len(start)] + "\n" + family_table_markdown() + text[j:]
    if not check and new != text:
        write_atomic(path, new)
    return new == text


def main(argv=None):
    """``python -m discosim.checkpoints.family_table --readme README.md [--check]``."""
    from discosim._core.cli import ArgumentParser, HelpFormatter, run_guarded

    p = ArgumentParser(prog="python -m discosim.checkpoints.family_table",
                       formatter_class=HelpFormatter,
                       description="regenerate the README's family table from the registry")
    p.add_argument("--readme", metavar="README", required=True, help="README.md to rewrite")
    p.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")

    def run(parser, args):
        args = parser.parse_args(args)
        same = update_readme(args.readme, check=args.check)
        return 1 if (args.check and not same) else 0

    return run_guarded(run, p, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
