"""Routing settings from ``config.json``, with keyword overrides (issue 10 item 1).

k comes from the family's own field (``num_experts_per_tok``; DBRX ``ffn_config.moe_top_k``;
gpt-oss ``experts_per_token``; Switch is top-1 by construction), then from the usual alternatives;
groups from ``n_group`` / ``topk_group`` (DeepSeek-V2's only with ``topk_method =
group_limited_greedy``), the score function from the family's field (``scoring_func``,
``expert_selection_fn``), the norm's eps from its field; every field is also looked up in
``text_config``. A keyword argument wins over the config. The expert count and width named in the
config are checked against the router tensors' shape.
"""

from dataclasses import dataclass

from discosim._core.errors import InputError, check_int
from discosim.checkpoints.families import GENERIC_EXPERT_FIELDS, GENERIC_HIDDEN_FIELDS, GENERIC_K_FIELDS

__all__ = ["RoutingSettings", "lookup", "lookup_int", "lookup_eps", "check_identity",
           "resolve_settings"]


@dataclass(frozen=True)
class RoutingSettings:
    """k, groups and score function for every router of one checkpoint."""

    k: int
    routing: str
    score_func: str
    n_group: int = None
    topk_group: int = None


def _get(config, path):
    node = config
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            break
    return node


def lookup(config, fields):
    """The first of the dotted ``fields`` present (not None) in ``config``, then in its
    ``text_config`` (multimodal wrappers: Llama-4, Qwen3.5-MoE, Qwen3-VL-MoE): ``(field,
    value)``, the field as found (``text_config.`` prefixed when it came from there)."""
    for path in fields:
        node = _get(config, path)
        if node is not None:
            return path, node
    if isinstance(config.get("text_config"), dict):
        for path in fields:
            node = _get(config["text_config"], path)
            if node is not None:
                return "text_config." + path, node
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


# fields a modeling file reads per layer when given a list (HunYuanMoEV1Moe: config.moe_topk)
_PER_LAYER_FIELDS = ("moe_topk",)


def lookup_int(config, fields, name):
    """``(field, int)`` of the first of ``fields`` present, checked by :func:`_as_int`. A list of
    a per-layer field (HunYuan's ``moe_topk``) is accepted when all its entries agree."""
    field, value = lookup(config, fields)
    if field is None:
        return None, None
    if isinstance(value, list) and value and field.split(".")[-1] in _PER_LAYER_FIELDS:
        values = {_as_int(name, v, f"config.json {field}") for v in value}
        if len(values) > 1:
            raise InputError(f"config.json {field} differs between layers ({sorted(values)[:4]}); "
                             f"discosim audits one {name} for every router")
        return field, values.pop()
    return field, _as_int(name, value, f"config.json {field}")


def lookup_eps(config, fields, default):
    """``(field or None, eps)``: the norm's eps from the first of ``fields`` present, else
    ``default`` (what the modeling code uses without the field)."""
    field, value = lookup(config, fields)
    if field is None:
        return None, float(default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < 1):
        raise InputError(f"config.json {field} must be a number in [0, 1), got {value!r}")
    return field, float(value)


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
    name = family.name if family else "key_pattern"
    if family is not None and family.score_field is not None:
        field, value = lookup(config, (family.score_field,))
        if value is not None:
            if not isinstance(value, str) or value not in ("sigmoid", "softmax"):
                raise InputError(f"config.json {field} must be 'sigmoid' or 'softmax', got "
                                 f"{value!r}")
            score_func = value
    if routing == "deepseek_v2":
        # DeepseekV2Moe.route_tokens_to_experts: 'greedy' is top-k of the softmax (linear),
        # 'group_limited_greedy' keeps the topk_group groups with the largest member first
        field, method = lookup(config, ("topk_method",))
        method = "greedy" if method is None else method
        if method not in ("greedy", "group_limited_greedy"):
            raise InputError(f"config.json topk_method = {method!r}: DeepSeek-V2 routes by "
                             f"'greedy' or 'group_limited_greedy' only")
        if method == "greedy":
            routing = "topk"
            if n_group is not None or topk_group is not None:
                raise InputError("n_group/topk_group apply to DeepSeek-V2's "
                                 "group_limited_greedy routing, not to topk_method 'greedy'")
    if k is not None:
        k = _as_int("k", k, "argument")
    elif family is not None and family.fixed_k is not None:
        k = family.fixed_k
    else:
        field, k = lookup_int(config, (family.k_fields if family else ()) + GENERIC_K_FIELDS, "k")
        if field is None:
            raise InputError(f"k is not in config.json for this {name} checkpoint; pass k")
    if routing == "topk":
        if n_group is not None or topk_group is not None:
            raise InputError(f"n_group/topk_group apply to group-limited routing only, not to "
                             f"{name} routers")
        if family is None or family.routing == "topk":
            _, groups = lookup_int(config, ("n_group",), "n_group")
            if groups is not None and groups != 1:
                # group-limited routing under a model_type that routes by plain top-k: refuse
                # rather than audit a routing function the model does not use
                raise InputError(f"config.json has n_group = {groups}, but {name} routers select "
                                 f"by plain top-k in their modeling code; refusing to ignore the "
                                 f"groups")
        if not 1 <= k < M:
            raise InputError(f"k must be in [1, {M - 1}] for routers of {M} experts, got {k}")
        return RoutingSettings(k=k, routing=routing, score_func=score_func)

    # a field config.json lacks takes the config class's default where the family records it
    # (Glm4vMoeTextConfig: topk_group 1, not "every group")
    defaults = family.group_defaults if family is not None else None
    if n_group is None:
        n_group = lookup_int(config, ("n_group",), "n_group")[1]
        if n_group is None and defaults is not None:
            n_group = defaults[0]
    else:
        n_group = _as_int("n_group", n_group, "argument")
    if topk_group is None:
        topk_group = lookup_int(config, ("topk_group",), "topk_group")[1]
        if topk_group is None and defaults is not None:
            topk_group = defaults[1]
    else:
        topk_group = _as_int("topk_group", topk_group, "argument")
    n_group = 1 if n_group is None else n_group
    topk_group = n_group if topk_group is None else topk_group
    if n_group < 1 or M % n_group:
        raise InputError(f"n_group must divide the number of experts {M}, got {n_group}")
    if routing == "deepseek_v3" and n_group > 1 and M // n_group < 2:
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
    if routing == "deepseek_v2" and n_group is None:
        routing = "topk"  # every group kept: the top-k of the softmax, linear
    return RoutingSettings(k=k, routing=routing, score_func=score_func, n_group=n_group,
                           topk_group=topk_group)
