"""The router families of real MoE checkpoints, as data (THEORY §9, issue 10's table).

Each :class:`Family` says where a model keeps its routers (a regex over tensor names with a
``layer`` group), which norm sits in front of each router (a key template filled from the regex's
groups) and of what kind, how experts are selected, and which ``config.json`` fields give k, the
number of experts and the width.

Checked against the Hugging Face ``transformers`` modeling code (src/transformers/models/<name>/):

* mixtral: ``MixtralDecoderLayer.block_sparse_moe.gate`` = ``nn.Linear(hidden, num_local_experts,
  bias=False)`` behind ``post_attention_layernorm`` (RMSNorm); k = ``num_experts_per_tok``.
* arctic (remote code, also vLLM ``arctic.py``): ``block_sparse_moe.gate`` behind
  ``post_attention_layernorm`` (``ArcticRMSNorm``); ``num_local_experts``, ``num_experts_per_tok``.
* phimoe: Mixtral's layout, but ``post_attention_layernorm = nn.LayerNorm(hidden,
  elementwise_affine=True)``, i.e. a LayerNorm *with a bias* (its ``sparsemixer`` selects the top-2
  logits at inference).
* olmoe, qwen2_moe, qwen3_moe: ``mlp.gate = nn.Linear(hidden, num_experts, bias=False)`` behind
  ``post_attention_layernorm`` (RMSNorm); qwen2_moe also has ``mlp.shared_expert_gate`` (1 x D)
  and dense layers with ``mlp.gate_proj`` (look-alikes the regexes do not match).
* deepseek_v3: ``DeepseekV3TopkRouter`` (``mlp.gate.weight`` n_routed_experts x D, buffer
  ``mlp.gate.e_score_correction_bias``), sigmoid scores, bias for selection only, groups via
  ``n_group``/``topk_group`` (sum of each group's top-2), behind ``post_attention_layernorm``
  (RMSNorm); the first ``first_k_dense_replace`` layers are dense (``mlp.gate_proj``, no gate), and
  ``model.layers.{num_hidden_layers}`` is the multi-token-prediction module that transformers
  ignores (``_keys_to_ignore_on_load_unexpected = [r"model\\.layers\\.61.*"]``), so we drop it too.
* dbrx: ``DbrxRouter.layer = nn.Linear(d_model, moe_num_experts, bias=False)`` at
  ``transformer.blocks.{i}.ffn.router.layer``, behind ``norm_attn_norm.norm_2 =
  nn.LayerNorm(d_model, bias=False)``; k = ``ffn_config.moe_top_k``.
* jamba: ``JambaSparseMoeBlock.router`` at ``feed_forward.router`` behind ``pre_ff_layernorm``
  (RMSNorm), only in layers with experts (``expert_layer_period``/``offset``).
* granite_moe: ``GraniteMoeTopKGating.layer`` at ``block_sparse_moe.router.layer`` behind
  ``post_attention_layernorm`` (RMSNorm).
* gpt_oss: ``GptOssTopKRouter`` (``mlp.router.weight`` and ``mlp.router.bias``; logits
  ``F.linear(h, W, b)``, top-k) behind ``post_attention_layernorm`` (RMSNorm).
* switch: ``SwitchTransformersTop1Router.classifier`` (bias only when ``router_bias``) inside
  ``{encoder,decoder}.block.{i}.layer.{j}`` (j = 1 in the encoder, 2 in the decoder), whose
  ``layer_norm`` (T5-style RMS norm, no mean, no bias) is applied in the *same* ``layer.{j}``
  (``SwitchTransformersLayerFF.forward``: ``self.mlp(self.layer_norm(h))``); top-1.
"""

import re
import types
from dataclasses import dataclass

from discosim._core.errors import InputError

__all__ = ["Family", "FAMILIES", "KEY_ONLY_ORDER", "UNSUPPORTED_MODEL_TYPES", "family_from_config",
           "template_regex", "layer_number", "GENERIC_LAYER"]


@dataclass(frozen=True)
class Family:
    """One router family.

    Attributes
    ----------
    name : str
    model_types, architectures : tuple of str
        ``config.json`` values that identify the family.
    router : str
        Regex (full match) over tensor names with a named group ``layer`` (and more groups
        that ``norm`` may use).
    norm : str or None
        Key template (``str.format`` with the regex groups) of the norm module in front of the
        router; ``.weight`` / ``.bias`` are appended.
    norm_type : {'rmsnorm', 'layernorm'} or None
        'layernorm' centres its input (the normalised input lies in the hyperplane orthogonal to
        the all-ones vector) and may carry a bias β, folded into a router bias Wβ.
    routing : {'topk', 'deepseek_v3'}
    score_func : {'softmax', 'sigmoid'}
    k_fields, expert_fields, hidden_fields : tuple of str
        Dotted ``config.json`` paths, first present wins.
    fixed_k : int or None
        k by construction (Switch: top-1).
    selection_bias : str or None
        Suffix replacing ``weight`` in the router key for a selection-only bias (DeepSeek-V3).
    tell : str or None
        Which extra tensor tells this family apart from another with the same router key when
        there is no config: 'selection_bias' or 'norm_bias'.
    layer_limit_field : str or None
        Config field; router layers with index >= its value are dropped (DeepSeek-V3's MTP layer).
    """

    name: str
    model_types: tuple
    architectures: tuple
    router: str
    norm: str
    norm_type: str
    routing: str = "topk"
    score_func: str = "softmax"
    k_fields: tuple = ("num_experts_per_tok",)
    expert_fields: tuple = ("num_local_experts",)
    hidden_fields: tuple = ("hidden_size",)
    fixed_k: int = None
    selection_bias: str = None
    tell: str = None
    layer_limit_field: str = None

    @property
    def router_regex(self):
        return re.compile(self.router)


_L = r"model\.layers\.(?P<layer>\d+)\."
_POST = "model.layers.{layer}.post_attention_layernorm"

_TABLE = (
    Family("mixtral", ("mixtral",), ("MixtralForCausalLM",),
           _L + r"block_sparse_moe\.gate\.weight", _POST, "rmsnorm"),
    Family("arctic", ("arctic",), ("ArcticForCausalLM",),
           _L + r"block_sparse_moe\.gate\.weight", _POST, "rmsnorm"),
    Family("phimoe", ("phimoe",), ("PhimoeForCausalLM", "PhiMoEForCausalLM"),
           _L + r"block_sparse_moe\.gate\.weight", _POST, "layernorm", tell="norm_bias"),
    Family("olmoe", ("olmoe",), ("OlmoeForCausalLM",),
           _L + r"mlp\.gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",)),
    Family("qwen2_moe", ("qwen2_moe",), ("Qwen2MoeForCausalLM",),
           _L + r"mlp\.gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",)),
    Family("qwen3_moe", ("qwen3_moe",), ("Qwen3MoeForCausalLM",),
           _L + r"mlp\.gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",)),
    Family("deepseek_v3", ("deepseek_v3", "kimi_k2"), ("DeepseekV3ForCausalLM",),
           _L + r"mlp\.gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", expert_fields=("n_routed_experts",),
           selection_bias="e_score_correction_bias", tell="selection_bias",
           layer_limit_field="num_hidden_layers"),
    Family("dbrx", ("dbrx",), ("DbrxForCausalLM",),
           r"transformer\.blocks\.(?P<layer>\d+)\.ffn\.router\.layer\.weight",
           "transformer.blocks.{layer}.norm_attn_norm.norm_2", "layernorm",
           k_fields=("ffn_config.moe_top_k",), expert_fields=("ffn_config.moe_num_experts",),
           hidden_fields=("d_model",)),
    Family("jamba", ("jamba",), ("JambaForCausalLM",),
           _L + r"feed_forward\.router\.weight", "model.layers.{layer}.pre_ff_layernorm",
           "rmsnorm", expert_fields=("num_experts",)),
    Family("granite_moe", ("granitemoe", "granitemoeshared"),
           ("GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM"),
           _L + r"block_sparse_moe\.router\.layer\.weight", _POST, "rmsnorm"),
    Family("gpt_oss", ("gpt_oss",), ("GptOssForCausalLM",),
           _L + r"mlp\.router\.weight", _POST, "rmsnorm",
           k_fields=("num_experts_per_tok", "experts_per_token"),
           expert_fields=("num_local_experts", "num_experts")),
    Family("switch", ("switch_transformers",),
           ("SwitchTransformersForConditionalGeneration", "SwitchTransformersEncoderModel",
            "SwitchTransformersModel"),
           r"(?P<stack>encoder|decoder)\.block\.(?P<layer>\d+)\.layer\.(?P<sub>\d+)"
           r"\.mlp\.router\.classifier\.weight",
           "{stack}.block.{layer}.layer.{sub}.layer_norm", "rmsnorm", k_fields=(),
           expert_fields=("num_experts",), hidden_fields=("d_model",), fixed_k=1),
)

FAMILIES = types.MappingProxyType({f.name: f for f in _TABLE})

# Detection from tensor names alone (no config.json): families with a telling extra tensor first,
# then one representative per router key. Keys cannot tell Mixtral from Arctic, or OLMoE from
# Qwen2/3-MoE; their routing and norms are identical, so the representative audits them correctly.
KEY_ONLY_ORDER = ("deepseek_v3", "phimoe", "mixtral", "olmoe", "dbrx", "jamba", "granite_moe",
                  "gpt_oss", "switch")

# Models whose router keys look like a family's but whose gate differs: refused when only the keys
# would identify them (naming a family or a key_pattern explicitly still works).
UNSUPPORTED_MODEL_TYPES = {
    # transformers qwen3_next: Qwen3NextRMSNorm(Gemma3RMSNorm) multiplies by (1 + weight)
    "qwen3_next": "its RMSNorm multiplies by (1 + weight), so folding weight would be wrong",
}

# Config fields tried when the family's own are absent (and for key_pattern routers).
GENERIC_K_FIELDS = ("num_experts_per_tok", "moe_top_k", "top_k", "experts_per_token",
                    "num_selected_experts", "ffn_config.moe_top_k", "moe_k")
GENERIC_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
                         "ffn_config.moe_num_experts")
GENERIC_HIDDEN_FIELDS = ("hidden_size", "d_model", "n_embd")


def family_from_config(config):
    """The family named by ``config['model_type']`` or ``config['architectures']``, else None.

    The two fields must have been checked (:func:`discosim.checkpoints.config.check_identity`):
    a string, and a string or list of strings.
    """
    model_type = config.get("model_type")
    archs = config.get("architectures") or ()
    if isinstance(archs, str):
        archs = (archs,)
    for fam in _TABLE:
        if model_type in fam.model_types:
            return fam
    for fam in _TABLE:
        if any(a in fam.architectures for a in archs):
            return fam
    return None


# Where a tensor name says its block when no family regex does: ``...layers.3.``, ``blocks.3.``
GENERIC_LAYER = re.compile(r"(?:layers|blocks|block)\.(?P<layer>[0-9]{1,9})\.")
# a model's layer number: at most 9 digits (the largest models have about 100 layers)
_MAX_LAYER_DIGITS = 9


def layer_number(match, key):
    """The model's layer number from a router regex ``match`` of tensor ``key`` (its ``layer``
    group), or None when there is no match or no ``layer`` group.

    The one parser of layer numbers: checkpoints (family regexes and key patterns) and the audit
    of routers that come without one (:data:`GENERIC_LAYER`) all read them here.

    Raises
    ------
    InputError
        When the ``layer`` group matched something other than a plain number of at most 9 digits
        (a user's ``key_pattern`` such as ``(?P<layer>\\w+)``).
    """
    text = match.groupdict().get("layer") if match is not None else None
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_LAYER_DIGITS:
        raise InputError(f"the layer group of the router pattern matched {text[:40]!r} in tensor "
                         f"{key[:200]!r}: a layer number is at most {_MAX_LAYER_DIGITS} digits "
                         f"0-9")
    return int(text)


def template_regex(pattern):
    """Compile a user's ``key_pattern``: a ``'{i}'`` template (the rest literal) or a regex."""
    if "{i}" in pattern:
        parts = pattern.split("{i}")
        return re.compile(r"(?P<layer>\d+)".join(re.escape(p) for p in parts))
    return re.compile(pattern)
