"""Routing settings from ``config.json``, with keyword overrides (issue 10 item 1).

k comes from the family's own field (``num_experts_per_tok``; DBRX ``ffn_config.moe_top_k``;
gpt-oss ``experts_per_token``; Switch is top-1 by construction), then from the usual alternatives;
DeepSeek-V3's groups from ``n_group`` / ``topk_group`` and its score function from
``scoring_func``. A keyword argument wins over the config. The expert count and width named in the
config are checked against the router tensors' shape.
"""

from dataclasses import dataclass

from discosim._core.errors import InputError, check_int
from discosim.checkpoints.families import GENERIC_EXPERT_FIELDS, GENERIC_HIDDEN_FIELDS, GENERIC_K_FIELDS

__all__ = ["RoutingSettings", "lookup", "lookup_int", "check_identity", "resolve_settings"]


@dataclass(frozen=True)
class RoutingSettings:
    """k, groups and score function for every router of one checkpoint."""

    k: int
    routing: str
    score_func: str
    n_group: int = None
    topk_group: int = None


def lookup(config, fields):
    """The first of the dotted ``fields`` present (not None) in ``config``: ``(field, value)``."""
    for path in fields:
        node = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None:
            return path, node
    return None, None


def _as_int(name, value, source):
    """Every integer of config.json and of the overrides passes here: finite, whole, not a bool
    (JSON ``1e999`` is inf, ``NaN`` parses too), at most 2**62 (Python ints never overflow, but
    a count that large is a corrupt file)."""
    if isinstance(value, int) and abs(value) > 2 ** 62:  # not printed: it may have 4000 digits
        raise InputError(f"{name} is an integer of {len(str(abs(value)))} digits ({source})")
    try:
        return check_int(name, value, None, 2 ** 62)
    except InputError as exc:
        raise InputError(f"{exc} ({source})") from None


def lookup_int(config, fields, name):
    """``(field, int)`` of the first of ``fields`` present, checked by :func:`_as_int`."""
    field, value = lookup(config, fields)
    if field is None:
        return None, None
    return field, _as_int(name, value, f"config.json {field}")


def check_identity(config):
    """Check the config.json fields that name the model: ``model_type`` a string,
    ``architectures`` a string or a list of strings (both optional)."""
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise InputError(f"config.json model_type must be a string, got "
                         f"{type(model_type).__name__}")
    archs = config.get("architectures")
    if archs is not None and not isinstance(archs, str) and not (
            isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise InputError("config.json architectures must be a list of strings")


def check_shape_against_config(config, family, M, D, where):
    """Raise when config.json names an expert count or width other than the router's shape."""
    fields = (family.expert_fields if family else ()) + GENERIC_EXPERT_FIELDS
    field, value = lookup_int(config, fields, "the number of experts")
    if field is not None and value != M:
        raise InputError(f"router {where} has {M} experts but config.json {field} = {value}")
    fields = (family.hidden_fields if family else ()) + GENERIC_HIDDEN_FIELDS
    field, value = lookup_int(config, fields, "the hidden size")
    if field is not None and value != D:
        raise InputError(f"router {where} has width D = {D} but config.json {field} = {value}")


def resolve_settings(config, family, M, *, k=None, n_group=None, topk_group=None):
    """k, routing, score function and groups for a checkpoint whose routers have M experts.

    Parameters
    ----------
    config : dict
    family : Family or None
        None for a ``key_pattern`` router (plain top-k of logits).
    M : int
        Number of experts (rows of the router).
    k, n_group, topk_group : int, optional
        Overrides of the config values.
    """
    routing = family.routing if family else "topk"
    score_func = family.score_func if family else "softmax"
    if k is not None:
        k = _as_int("k", k, "argument")
    elif family is not None and family.fixed_k is not None:
        k = family.fixed_k
    else:
        field, k = lookup_int(config, (family.k_fields if family else ()) + GENERIC_K_FIELDS, "k")
        if field is None:
            what = family.name if family else "key_pattern"
            raise InputError(f"k is not in config.json for this {what} checkpoint; pass k")
    if routing != "deepseek_v3":
        if n_group is not None or topk_group is not None:
            raise InputError(f"n_group/topk_group apply to deepseek_v3 routing only, not to "
                             f"{family.name if family else 'key_pattern'} routers")
        _, groups = lookup_int(config, ("n_group",), "n_group")
        if groups is not None and groups != 1:
            # DeepSeek-V2-style group-limited routing under another model_type: refuse rather
            # than audit the wrong routing function.
            raise InputError(f"config.json has n_group = {groups}, but the "
                             f"{family.name if family else 'key_pattern'} family routes by plain "
                             f"top-k; pass family='deepseek_v3' if it routes like DeepSeek-V3")
        if not 1 <= k < M:
            raise InputError(f"k must be in [1, {M - 1}] for routers of {M} experts, got {k}")
        return RoutingSettings(k=k, routing=routing, score_func=score_func)

    field, value = lookup(config, ("scoring_func",))
    if value is not None:
        if not isinstance(value, str) or value not in ("sigmoid", "softmax"):
            raise InputError(f"config.json scoring_func must be 'sigmoid' or 'softmax', got "
                             f"{value!r}")
        score_func = value
    if n_group is None:
        n_group = lookup_int(config, ("n_group",), "n_group")[1]
    else:
        n_group = _as_int("n_group", n_group, "argument")
    if topk_group is None:
        topk_group = lookup_int(config, ("topk_group",), "topk_group")[1]
    else:
        topk_group = _as_int("topk_group", topk_group, "argument")
    n_group = 1 if n_group is None else n_group
    topk_group = n_group if topk_group is None else topk_group
    if n_group < 1 or M % n_group:
        raise InputError(f"n_group must divide the number of experts {M}, got {n_group}")
    if n_group > 1 and M // n_group < 2:
        raise InputError(f"n_group = {n_group} leaves groups of one expert; a group's score is "
                         f"the sum of its two largest")
    if not 1 <= topk_group <= n_group:
        raise InputError(f"topk_group must be in [1, n_group = {n_group}], got {topk_group}")
    kept = M if n_group == 1 else topk_group * (M // n_group)
    if not 1 <= k < M or k > kept:
        raise InputError(f"k must be in [1, {min(M - 1, kept)}] for {M} experts with "
                         f"topk_group = {topk_group} of n_group = {n_group}, got {k}")
    if n_group == 1 or topk_group == n_group:
        # every group is kept: selection is a plain top-k of the biased scores
        n_group = topk_group = None
    return RoutingSettings(k=k, routing=routing, score_func=score_func, n_group=n_group,
                           topk_group=topk_group)
