"""The README's family table, generated from the family registry (issue 22).

``python -m discosim.checkpoints.family_table --readme README.md [--check]`` rewrites the table
between ``<!-- families:start -->`` and ``<!-- families:end -->`` (tests/unit/test_families.py checks
that the README matches). Decoder router keys may also start with ``model.language_model.`` or
``language_model.model.`` (multimodal wrappers), as the note under the table says.
"""

from discosim._core.errors import InputError
from discosim.checkpoints.families import _LM_PFX, _MLP, _MOE, _PFX, FAMILIES

__all__ = ["family_table_rows", "family_table_markdown", "update_readme", "FAMILY_TABLE_MARKERS"]

_NORM_TEXT = {"rmsnorm": "RMSNorm w·x̂", "rmsnorm_1p": "RMSNorm (1+w)·x̂", "layernorm": "LayerNorm",
              None: "none"}


# families whose config may name groups (n_group / topk_group), scored by their top-2 sum
_TOP2_GROUPS = ("deepseek_v3", "exaone_moe", "glm4_moe", "glm4v_moe")


def _selection_text(fam):
    if fam.routing == "topk":
        return "top-k of logits" if fam.fixed_k is None else f"top-{fam.fixed_k} of logits"
    if fam.routing == "deepseek_v2":
        return "top-k (greedy) or group-limited, group max (group_limited_greedy)"
    text = "top-k of score + selection bias"
    if fam.name in _TOP2_GROUPS:
        text += ", groups (top-2 sum)"
    return text


_KEY_TEXT = ((_PFX, "model.layers.{i}."), (_LM_PFX, "model.language_model.layers.{i}."),
             (_MOE, "{block_sparse_moe,mlp}."), (_MLP, "mlp."),
             (r"(?P<blk>block_sparse_moe\.)", "block_sparse_moe."),
             (r"(?P<stack>encoder|decoder)", "{encoder,decoder}"), (r"(?P<layer>\d+)", "{i}"),
             (r"(?P<sub>\d+)", "{j}"), ("\\.", "."))


def _key_text(pattern):
    for regex, text in _KEY_TEXT:
        pattern = pattern.replace(regex, text)
    return pattern


def family_table_rows():
    """One row per family of the registry (the README table), in the order of
    :data:`discosim.checkpoints.families.FAMILIES`.

    Returns
    -------
    list of dict
        One dict per family with the keys ``family``, ``model_types``, ``router key``,
        ``norm``, ``score``, ``selection`` and ``closed forms (§5) apply`` (the table's columns,
        in order), every value a string.

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
    """The README's family table (between :data:`FAMILY_TABLE_MARKERS`): the rows of
    :func:`family_table_rows` as Markdown.

    Returns
    -------
    str
        The Markdown table (a header, a rule, one line per family; ``|`` in a cell escaped,
        router keys as code) and the note on key prefixes under it, ending in a newline.

    Examples
    --------
    >>> lines = family_table_markdown().splitlines()
    >>> print(lines[0])
    | family | model_types | router key | norm | score | selection | closed forms (§5) apply |
    >>> len(lines) == len(family_table_rows()) + 4  # header, rule, blank line, note
    True
    """
    rows = family_table_rows()
    cols = list(rows[0])

    def cell(v):
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) if c != "router key" else f"`{cell(r[c])}`"
                                for c in cols) + " |" for r in rows]
    lines.append("")
    lines.append("Decoder keys shown as `model.layers.{i}.` may also start with "
                 "`model.language_model.` or `language_model.model.` (multimodal wrappers' text "
                 "models); Mixtral-style blocks "
                 "are `block_sparse_moe.` in released checkpoints and `mlp.` in transformers 5.")
    return "\n".join(lines) + "\n"




def update_readme(path, check=False):
    """Rewrite the family table of the README at ``path`` between :data:`FAMILY_TABLE_MARKERS`.

    Parameters
    ----------
    path : str or path-like
        The README (UTF-8). Its text outside the markers is kept; the new file is written
        atomically, and only where it changes.
    check : bool, optional
        Only compare; never write.

    Returns
    -------
    bool
        True iff the file already matched the registry.

    Raises
    ------
    InputError
        The file lacks the start marker, or the end marker before it.
    OSError
        The file cannot be read or written.

    Examples
    --------
    >>> import os, tempfile
    >>> start, end = FAMILY_TABLE_MARKERS
    >>> readme = os.path.join(tempfile.mkdtemp(), "README.md")
    >>> _ = open(readme, "w", encoding="utf-8").write(f"# Models\\n{start}\\nold\\n{end}\\n")
    >>> update_readme(readme, check=True), update_readme(readme), update_readme(readme)
    (False, False, True)
    >>> text = open(readme, encoding="utf-8").read()
    >>> text.startswith("# Models") and family_table_markdown() in text
    True
    """
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
    """``python -m discosim.checkpoints.family_table --readme README.md [--check]``.

    Parameters
    ----------
    argv : list of str, optional
        The command's arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 when the table is (now) up to date, 1 with ``--check`` when it is not,
        2 for bad input (one ``discosim: error:`` line on stderr).

    Raises
    ------
    SystemExit
        For ``--help`` (status 0) and usage errors (status 2), as argparse does.

    Examples
    --------
    >>> import os, tempfile
    >>> start, end = FAMILY_TABLE_MARKERS
    >>> readme = os.path.join(tempfile.mkdtemp(), "README.md")
    >>> _ = open(readme, "w", encoding="utf-8").write(f"{start}\\n{end}\\n")
    >>> main(["--readme", readme, "--check"]), main(["--readme", readme]), \\
    ...     main(["--readme", readme, "--check"])
    (1, 0, 0)
    """
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
