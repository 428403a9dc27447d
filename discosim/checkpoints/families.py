"""The router families of real MoE checkpoints, as data (THEORY §9, issues 10 and 22).

Each :class:`Family` says where a model keeps its routers (a regex over tensor names with a
``layer`` group), which norm sits in front of each router (a key template filled from the regex's
groups), of what form (RMSNorm ``w x̂``, RMSNorm ``(1 + w) x̂``, LayerNorm, or none) and with which
eps, how experts are selected (score function, selection bias, groups, top-k), and which
``config.json`` fields give k, the number of experts, the width and the eps. A field is looked up
in ``config.json`` first and then in its ``text_config`` (multimodal wrappers). Decoder families
accept the plain layout ``model.layers.{i}.`` and the multimodal ones
``model.language_model.layers.{i}.`` (transformers' internal layout) and
``language_model.model.layers.{i}.`` (Llama-4 and LLaVA-style checkpoints); Mixtral-style blocks
accept ``block_sparse_moe.`` (the released checkpoints) and ``mlp.`` (transformers >= 5 renames it).

Checked against the Hugging Face ``transformers`` modeling code (src/transformers/models/<name>/,
``modeling_<name>.py`` or the ``modular_<name>.py`` it is generated from):

* mixtral: ``MixtralDecoderLayer.block_sparse_moe.gate`` = ``nn.Linear(hidden, num_local_experts,
  bias=False)`` behind ``post_attention_layernorm`` (RMSNorm, ``rms_norm_eps``); k =
  ``num_experts_per_tok``.
* arctic (remote code, also vLLM ``arctic.py``): ``block_sparse_moe.gate`` behind
  ``post_attention_layernorm`` (``ArcticRMSNorm``); ``num_local_experts``, ``num_experts_per_tok``.
* phimoe: Mixtral's layout, but ``post_attention_layernorm = nn.LayerNorm(hidden,
  eps=rms_norm_eps, elementwise_affine=True)``, i.e. a LayerNorm *with a bias* (its
  ``sparsemixer`` selects the top-2 logits at inference).
* olmoe, qwen2_moe, qwen3_moe: ``mlp.gate = nn.Linear(hidden, num_experts, bias=False)`` behind
  ``post_attention_layernorm`` (RMSNorm); qwen2_moe also has ``mlp.shared_expert_gate`` (1 x D)
  and dense layers with ``mlp.gate_proj`` (look-alikes the regexes do not match).
* deepseek_v3 (also ``kimi_k2``): ``DeepseekV3TopkRouter`` (``mlp.gate.weight`` n_routed_experts
  x D, buffer ``mlp.gate.e_score_correction_bias``), sigmoid scores, bias for selection only,
  groups via ``n_group``/``topk_group`` (sum of each group's top-2), behind
  ``post_attention_layernorm`` (RMSNorm); the first ``first_k_dense_replace`` layers are dense,
  and ``model.layers.{num_hidden_layers}`` is the multi-token-prediction module that transformers
  ignores, so we drop it too. ``scoring_func`` is honoured (DeepSeek's remote code accepts only
  sigmoid; a config that says softmax gets softmax scores plus the bias).
* dbrx: ``DbrxRouter.layer = nn.Linear(d_model, moe_num_experts, bias=False)`` at
  ``transformer.blocks.{i}.ffn.router.layer``, behind ``norm_attn_norm.norm_2 =
  nn.LayerNorm(d_model, bias=False)`` (eps 1e-5, the nn.LayerNorm default); k =
  ``ffn_config.moe_top_k``.
* jamba: ``JambaSparseMoeBlock.router`` at ``feed_forward.router`` behind ``pre_ff_layernorm``
  (RMSNorm), only in layers with experts (``expert_layer_period``/``offset``).
* granite_moe: ``GraniteMoeTopKGating.layer`` at ``block_sparse_moe.router.layer`` behind
  ``post_attention_layernorm`` (RMSNorm).
* gpt_oss: ``GptOssTopKRouter`` (``mlp.router.weight`` and ``mlp.router.bias``; logits
  ``F.linear(h, W, b)``, top-k) behind ``post_attention_layernorm`` (RMSNorm).
* switch: ``SwitchTransformersTop1Router.classifier`` (bias only when ``router_bias``) inside
  ``{encoder,decoder}.block.{i}.layer.{j}`` (j = 1 in the encoder, 2 in the decoder), whose
  ``layer_norm`` (T5-style RMS norm, ``layer_norm_epsilon``) is applied in the *same*
  ``layer.{j}``; top-1.
* deepseek_v2 (modular_deepseek_v2.py, ``DeepseekV2Moe.route_tokens_to_experts``): ``mlp.gate =
  nn.Linear(hidden, n_routed_experts, bias=False)`` behind ``post_attention_layernorm``
  (``DeepseekV2RMSNorm`` = LlamaRMSNorm); softmax scores; ``topk_method == "greedy"``: top-k
  (linear); ``"group_limited_greedy"``: each of ``n_group`` groups scores the *max* of its
  softmax scores, the ``topk_group`` best groups are kept (the others filled with 0.0, below every
  softmax score) and the top-k of the kept scores selected.
* llama4 (modeling_llama4.py, ``Llama4Router(nn.Linear)``, ``Llama4TextMoe``):
  ``feed_forward.router.weight`` (num_local_experts x hidden, no bias) behind
  ``post_attention_layernorm`` (``Llama4TextRMSNorm``, ``rms_norm_eps``); ``torch.topk`` of the raw
  logits, the sigmoid applied to the selected logits only (weights): linear top-k (top-1 in the
  released models). Dense layers have ``feed_forward.gate_proj``; the fields live in
  ``text_config``; ``Llama4ForConditionalGeneration`` checkpoints keep the text model under
  ``language_model.model.layers``.
* cohere2_moe (modular_cohere2_moe.py, ``Cohere2MoeTopKRouter``): ``mlp.gate.weight``
  (num_experts x hidden, ``F.linear``), ``torch.topk`` of the logits, then softmax or sigmoid of
  the selected ones (``expert_selection_fn``: weights only, so linear top-k). Cohere's decoder is
  parallel: ``input_layernorm`` feeds attention and MLP alike, so it is the norm in front of the
  router: ``Cohere2MoeRMSNorm`` when ``rms_norm_eps`` is set, else ``Cohere2LayerNorm``
  (centring, no bias, ``layer_norm_eps``).
* jetmoe (modeling_jetmoe.py, ``JetMoeTopKGating``, ``JetMoeBlock``): ``mlp.router.layer =
  nn.Linear(hidden, num_local_experts, bias=False)``, top-k of the logits, behind
  ``post_attention_layernorm = JetMoeRMSNorm(hidden_size)`` with the *default* eps 1e-6 (no config
  field). The attention's mixture-of-heads router ``self_attention.experts.router.layer`` (behind
  ``input_layernorm``) is a second router this family does not audit.
* hunyuan_v1_moe (modular_hunyuan_v1_moe.py, ``HunYuanMoEV1Gate``, ``HunYuanMoEV1Moe``):
  ``mlp.gate.wg = nn.Linear(hidden, num_experts, bias=False, dtype=float32)``, softmax then top-k
  (``moe_topk``, an int or one per layer), behind ``post_attention_layernorm`` (RMSNorm).
* qwen3_next (modeling_qwen3_next.py, ``Qwen3NextSparseMoeBlock``, ``Qwen3NextRMSNorm``):
  ``mlp.gate.weight`` (num_experts x hidden), softmax top-k, behind ``post_attention_layernorm``
  whose RMSNorm multiplies by ``(1 + weight)`` (Gemma style; the weight is stored centred on 0).
* qwen3_5_moe (modular_qwen3_5_moe.py: ``Qwen3_5MoeRMSNorm(Qwen3NextRMSNorm)``,
  ``Qwen3_5MoeTopKRouter(Qwen3VLMoeTextTopKRouter)``): Qwen3-Next's MoE and ``(1 + w)`` norm under
  ``model.language_model.layers`` (a multimodal wrapper), fields in ``text_config``.
* qwen3_vl_moe (modeling_qwen3_vl_moe.py, ``Qwen3VLMoeTextTopKRouter``,
  ``Qwen3VLMoeTextRMSNorm``): softmax top-k of ``mlp.gate.weight`` behind a ``w x̂`` RMSNorm
  ``post_attention_layernorm``, under ``model.language_model.layers``; fields in ``text_config``.
* minimax_m2 (modular_minimax_m2.py, ``MiniMaxM2TopKRouter``, ``MiniMaxM2SparseMoeBlock``):
  ``gate.weight`` (num_local_experts x hidden) of the block, sigmoid scores plus the block's buffer
  ``e_score_correction_bias`` (selection only), top-k, no groups; behind
  ``post_attention_layernorm`` (MixtralRMSNorm). Released checkpoints name the block
  ``block_sparse_moe`` and keep the bias at ``block_sparse_moe.e_score_correction_bias``.
* exaone_moe (modeling_exaone_moe.py, ``ExaoneMoeTopkRouter(DeepseekV3TopkRouter)``,
  ``ExaoneMoeDecoderLayer``): DeepSeek-V3's router (``mlp.gate.weight`` num_experts x hidden,
  ``mlp.gate.e_score_correction_bias``, sigmoid, ``n_group``/``topk_group``) behind
  ``post_attention_layernorm`` (RMSNorm); dense layers from ``mlp_layer_types`` /
  ``first_k_dense_replace``; ``mtp.*`` ignored.
* ernie4_5_moe (modular_ernie4_5_moe.py, ``Ernie4_5_MoeSparseMoeBlock``, ``Ernie4_5_MoeStatics``):
  ``mlp.gate = nn.Linear(hidden, moe_num_experts, bias=False, dtype=float32)``; softmax scores plus
  ``mlp.moe_statics.e_score_correction_bias`` (shape 1 x M, selection only), top-``moe_k``; behind
  ``post_attention_layernorm`` (RMSNorm).
* flex_olmo (modular_flex_olmo.py, ``FlexOlmoDecoderLayer``): OLMoE's router (``mlp.gate``,
  softmax top-k), but the layer norms come *after* attention and MLP
  (``post_attention_layernorm``, ``post_feedforward_layernorm``): the router sees the residual
  stream itself, no norm in front of it.
* glm4_moe (modeling_glm4_moe.py, ``Glm4MoeTopkRouter``): DeepSeek-V3's router (``mlp.gate.weight``
  n_routed_experts x hidden, ``mlp.gate.e_score_correction_bias``, sigmoid, groups, top-2 sums)
  behind ``post_attention_layernorm`` (RMSNorm); the MTP layers ``model.layers.{num_hidden_layers}``
  and up are dropped.
* glm4v_moe (GLM-4.5V's text model; modeling_glm4v_moe.py: ``Glm4vMoeTextTopkRouter``,
  ``Glm4vMoeTextMoE``, ``Glm4vMoeTextDecoderLayer``, ``Glm4vMoeTextRMSNorm``; configuration
  ``Glm4vMoeTextConfig``): GLM-4-MoE's router (``mlp.gate.weight`` n_routed_experts x hidden,
  ``mlp.gate.e_score_correction_bias``, sigmoid, ``n_group``/``topk_group`` top-2 sums, dropped
  groups filled with -inf; ``Glm4vMoeTextConfig`` defaults n_group = topk_group = 1, so an n_group
  without topk_group keeps one group) behind ``post_attention_layernorm`` (``w x̂`` RMSNorm,
  ``rms_norm_eps``, default 1e-5); MoE where ``layer_idx >= first_k_dense_replace``. ``Glm4vMoeModel`` keeps the
  text model at ``model.language_model.layers`` and transformers renames no other prefix to it, so
  only that layout is read (another is refused); fields in ``text_config``. Layers
  ``>= num_hidden_layers`` (an MTP layer) are never built, so they are dropped. A bare
  ``glm4v_moe_text`` config is not matched: its layout was not checked.
* minimax (MiniMax-Text-01; modular_minimax.py, ``MiniMaxSparseMoeBlock(MixtralSparseMoeBlock)``,
  ``MiniMaxDecoderLayer``): Mixtral's router (softmax top-k of ``block_sparse_moe.gate``) applied to
  ``post_attention_layernorm`` of the (alpha/beta-scaled) residual stream.

Not added: a family whose modeling code could not be read is left out rather than guessed.
"""


import re
import types
from dataclasses import dataclass

from discosim._core.errors import InputError

__all__ = ["Family", "FAMILIES", "KEY_ONLY_ORDER", "NORM_FORMS", "family_from_config",
           "template_regex", "layer_number", "GENERIC_LAYER"]

# How a norm in front of a router maps its input h to the router's input (THEORY §9):
# 'rmsnorm'    w ⊙ h / sqrt(mean(h²) + eps)
# 'rmsnorm_1p' (1 + w) ⊙ h / sqrt(mean(h²) + eps)       (Gemma / Qwen3-Next style)
# 'layernorm'  w ⊙ c / sqrt(mean(c²) + eps) (+ β), c = h - mean(h)
# None         no norm: the router sees the residual stream itself
NORM_FORMS = ("rmsnorm", "rmsnorm_1p", "layernorm", None)


@dataclass(frozen=True)
class Family:
    """One router family.

    Attributes
    ----------
    name : str
        transformers' ``model_type`` where it has one (older names kept: ``granite_moe``,
        ``switch``).
    model_types, architectures : tuple of str
        ``config.json`` values that identify the family.
    router : str
        Regex (full match) over tensor names with a named group ``layer`` (and more groups that
        ``norm`` and ``selection_bias`` may use).
    norm : str or None
        Key template (``str.format`` with the regex groups) of the norm module in front of the
        router; ``.weight`` / ``.bias`` are appended. None: no norm in front of the router.
    norm_form : {'rmsnorm', 'rmsnorm_1p', 'layernorm'} or None
        See :data:`NORM_FORMS`. A LayerNorm's bias β is folded into a router bias Wβ.
    eps_fields : tuple of str
        Config fields of the norm's eps, first present wins; ``eps_default`` when none is (the
        value the modeling code uses then).
    routing : {'topk', 'deepseek_v3', 'deepseek_v2'}
        'topk': the k largest logits (any monotone score). 'deepseek_v3': scores (sigmoid or
        softmax) plus a selection bias, groups scored by the sum of their two largest.
        'deepseek_v2': softmax scores, groups scored by their largest (``topk_method``
        ``group_limited_greedy``; ``greedy`` is plain top-k).
    score_func : {'softmax', 'sigmoid'}
        The score transform; ``score_field`` names a config field that overrides it.
    k_fields, expert_fields, hidden_fields : tuple of str
        Dotted ``config.json`` paths, first present wins.
    fixed_k : int or None
        k by construction (Switch: top-1).
    selection_bias : tuple of str
        Key templates (regex groups) of a selection-only bias, first present wins.
    tell : str or None
        Which extra tensor tells this family apart from another with the same router key when
        there is no config: 'selection_bias' or 'norm_bias'.
    layer_limit_field : str or None
        Config field; router layers with index >= its value are dropped (MTP layers).
    group_defaults : tuple of int or None
        ``(n_group, topk_group)`` that the family's config class uses when config.json lacks the
        field; None: n_group 1 and topk_group = n_group (every group kept).
    source : str
        The modeling file the description was checked against.
    """

    name: str
    model_types: tuple
    architectures: tuple
    router: str
    norm: str
    norm_form: str
    routing: str = "topk"
    score_func: str = "softmax"
    score_field: str = None
    k_fields: tuple = ("num_experts_per_tok",)
    expert_fields: tuple = ("num_local_experts",)
    hidden_fields: tuple = ("hidden_size",)
    eps_fields: tuple = ("rms_norm_eps",)
    eps_default: float = 1e-6
    fixed_k: int = None
    selection_bias: tuple = ()
    tell: str = None
    layer_limit_field: str = None
    group_defaults: tuple = None
    source: str = ""

    @property
    def router_regex(self):
        return re.compile(self.router)

    @property
    def norm_type(self):
        """'rmsnorm' (either RMSNorm form), 'layernorm' or None: what the audit's input model
        needs (a LayerNorm output is centred)."""
        return "rmsnorm" if self.norm_form == "rmsnorm_1p" else self.norm_form

    def resolve_norm(self, config):
        """``(norm_form, eps_fields, eps_default)`` for this config: Cohere2-MoE's norm is an
        RMSNorm when ``rms_norm_eps`` is set, else a LayerNorm with ``layer_norm_eps``."""
        if self.name == "cohere2_moe":
            text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
            if config.get("rms_norm_eps", text.get("rms_norm_eps")) is None:
                return "layernorm", ("layer_norm_eps",), 1e-5
        return self.norm_form, self.eps_fields, self.eps_default

    @property
    def closed_forms(self):
        """Whether THEORY §5's closed forms can apply: linear top-k of a monotone transform of
        ``w·x + b``. 'depends' for families whose config decides (DeepSeek-V2's ``topk_method``)."""
        if self.routing == "topk":
            return "yes"
        if self.routing == "deepseek_v2":
            return "greedy: yes; group_limited_greedy: no"
        return "no"


# Decoder layers: the plain layout and the multimodal wrappers' (see the module docstring).
_PFX = r"(?P<prefix>model\.language_model\.|language_model\.model\.|model\.)layers\.(?P<layer>\d+)\."
_MOE = r"(?P<blk>block_sparse_moe\.|mlp\.)"   # Mixtral-style blocks: released and transformers 5
_MLP = r"(?P<blk>mlp\.)"
# The text model of a wrapper whose modeling code reads no other layout (GLM-4.5V)
_LM_PFX = r"(?P<prefix>model\.language_model\.)layers\.(?P<layer>\d+)\."
_POST = "{prefix}layers.{layer}.post_attention_layernorm"
_V3_BIAS = ("{prefix}layers.{layer}.{blk}gate.e_score_correction_bias",
            "{prefix}layers.{layer}.{blk}e_score_correction_bias")
_TF = "transformers src/transformers/models/"

_TABLE = (
    Family("mixtral", ("mixtral",), ("MixtralForCausalLM",),
           _PFX + _MOE + r"gate\.weight", _POST, "rmsnorm", eps_default=1e-5,
           source=_TF + "mixtral/modeling_mixtral.py"),
    Family("arctic", ("arctic",), ("ArcticForCausalLM",),
           _PFX + r"(?P<blk>block_sparse_moe\.)gate\.weight", _POST, "rmsnorm", eps_default=1e-5,
           source="Snowflake/snowflake-arctic-instruct modeling_arctic.py (remote code)"),
    Family("phimoe", ("phimoe",), ("PhimoeForCausalLM", "PhiMoEForCausalLM"),
           _PFX + _MOE + r"gate\.weight", _POST, "layernorm", tell="norm_bias", eps_default=1e-5,
           source=_TF + "phimoe/modeling_phimoe.py"),
    Family("olmoe", ("olmoe",), ("OlmoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",),
           eps_default=1e-5, source=_TF + "olmoe/modeling_olmoe.py"),
    Family("qwen2_moe", ("qwen2_moe",), ("Qwen2MoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",),
           source=_TF + "qwen2_moe/modeling_qwen2_moe.py"),
    Family("qwen3_moe", ("qwen3_moe",), ("Qwen3MoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",),
           source=_TF + "qwen3_moe/modeling_qwen3_moe.py"),
    Family("deepseek_v3", ("deepseek_v3", "kimi_k2"), ("DeepseekV3ForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", score_field="scoring_func", expert_fields=("n_routed_experts",),
           selection_bias=_V3_BIAS, tell="selection_bias", layer_limit_field="num_hidden_layers",
           source=_TF + "deepseek_v3/modeling_deepseek_v3.py"),
    Family("dbrx", ("dbrx",), ("DbrxForCausalLM",),
           r"transformer\.blocks\.(?P<layer>\d+)\.ffn\.router\.layer\.weight",
           "transformer.blocks.{layer}.norm_attn_norm.norm_2", "layernorm",
           k_fields=("ffn_config.moe_top_k",), expert_fields=("ffn_config.moe_num_experts",),
           hidden_fields=("d_model",), eps_fields=(), eps_default=1e-5,
           source=_TF + "dbrx/modeling_dbrx.py"),
    Family("jamba", ("jamba",), ("JambaForCausalLM",),
           _PFX + r"feed_forward\.router\.weight", "{prefix}layers.{layer}.pre_ff_layernorm",
           "rmsnorm", expert_fields=("num_experts",), source=_TF + "jamba/modeling_jamba.py"),
    Family("granite_moe", ("granitemoe", "granitemoeshared"),
           ("GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM"),
           _PFX + r"block_sparse_moe\.router\.layer\.weight", _POST, "rmsnorm",
           source=_TF + "granitemoe/modeling_granitemoe.py"),
    Family("gpt_oss", ("gpt_oss",), ("GptOssForCausalLM",),
           _PFX + r"mlp\.router\.weight", _POST, "rmsnorm",
           k_fields=("num_experts_per_tok", "experts_per_token"),
           expert_fields=("num_local_experts", "num_experts"),
           source=_TF + "gpt_oss/modeling_gpt_oss.py"),
    Family("switch", ("switch_transformers",),
           ("SwitchTransformersForConditionalGeneration", "SwitchTransformersEncoderModel",
            "SwitchTransformersModel"),
           r"(?P<stack>encoder|decoder)\.block\.(?P<layer>\d+)\.layer\.(?P<sub>\d+)"
           r"\.mlp\.router\.classifier\.weight",
           "{stack}.block.{layer}.layer.{sub}.layer_norm", "rmsnorm", k_fields=(),
           expert_fields=("num_experts",), hidden_fields=("d_model",),
           eps_fields=("layer_norm_epsilon",), fixed_k=1,
           source=_TF + "switch_transformers/modeling_switch_transformers.py"),
    Family("deepseek_v2", ("deepseek_v2",), ("DeepseekV2ForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v2",
           score_field="scoring_func", expert_fields=("n_routed_experts",),
           source=_TF + "deepseek_v2/modular_deepseek_v2.py (DeepseekV2Moe)"),
    Family("llama4", ("llama4", "llama4_text"),
           ("Llama4ForConditionalGeneration", "Llama4ForCausalLM"),
           _PFX + r"feed_forward\.router\.weight", _POST, "rmsnorm", score_func="sigmoid",
           eps_default=1e-5, source=_TF + "llama4/modeling_llama4.py (Llama4Router)"),
    Family("cohere2_moe", ("cohere2_moe",), ("Cohere2MoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", "{prefix}layers.{layer}.input_layernorm", "rmsnorm",
           score_field="expert_selection_fn", expert_fields=("num_experts",),
           source=_TF + "cohere2_moe/modular_cohere2_moe.py (Cohere2MoeTopKRouter)"),
    Family("jetmoe", ("jetmoe",), ("JetMoeForCausalLM",),
           _PFX + r"mlp\.router\.layer\.weight", _POST, "rmsnorm", eps_fields=(),
           source=_TF + "jetmoe/modeling_jetmoe.py (JetMoeTopKGating)"),
    Family("hunyuan_v1_moe", ("hunyuan_v1_moe",), ("HunYuanMoEV1ForCausalLM",),
           _PFX + _MLP + r"gate\.wg\.weight", _POST, "rmsnorm",
           k_fields=("moe_topk", "num_experts_per_tok"), expert_fields=("num_experts",),
           eps_default=1e-5,
           source=_TF + "hunyuan_v1_moe/modular_hunyuan_v1_moe.py (HunYuanMoEV1Gate)"),
    Family("qwen3_next", ("qwen3_next",), ("Qwen3NextForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm_1p", expert_fields=("num_experts",),
           source=_TF + "qwen3_next/modeling_qwen3_next.py (Qwen3NextRMSNorm)"),
    Family("qwen3_5_moe", ("qwen3_5_moe", "qwen3_5_moe_text"),
           ("Qwen3_5MoeForConditionalGeneration", "Qwen3_5MoeForCausalLM"),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm_1p", expert_fields=("num_experts",),
           source=_TF + "qwen3_5_moe/modular_qwen3_5_moe.py"),
    Family("qwen3_vl_moe", ("qwen3_vl_moe", "qwen3_vl_moe_text"),
           ("Qwen3VLMoeForConditionalGeneration",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", expert_fields=("num_experts",),
           source=_TF + "qwen3_vl_moe/modular_qwen3_vl_moe.py (Qwen3VLMoeTextTopKRouter)"),
    Family("minimax_m2", ("minimax_m2",), ("MiniMaxM2ForCausalLM",),
           _PFX + _MOE + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", selection_bias=_V3_BIAS[1:], tell="selection_bias",
           source=_TF + "minimax_m2/modular_minimax_m2.py (MiniMaxM2TopKRouter)"),
    Family("exaone_moe", ("exaone_moe",), ("ExaoneMoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", expert_fields=("num_experts",), selection_bias=_V3_BIAS,
           tell="selection_bias", eps_default=1e-5, group_defaults=(1, 1),
           source=_TF + "exaone_moe/modeling_exaone_moe.py (ExaoneMoeTopkRouter)"),
    Family("ernie4_5_moe", ("ernie4_5_moe",), ("Ernie4_5_MoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="softmax", k_fields=("moe_k", "num_experts_per_tok"),
           expert_fields=("moe_num_experts",),
           selection_bias=("{prefix}layers.{layer}.{blk}moe_statics.e_score_correction_bias",),
           tell="selection_bias", eps_default=1e-5,
           source=_TF + "ernie4_5_moe/modular_ernie4_5_moe.py (Ernie4_5_MoeSparseMoeBlock)"),
    Family("flex_olmo", ("flex_olmo",), ("FlexOlmoForCausalLM",),
           _PFX + _MLP + r"gate\.weight", None, None, expert_fields=("num_experts",),
           source=_TF + "flex_olmo/modular_flex_olmo.py (FlexOlmoDecoderLayer)"),
    Family("glm4_moe", ("glm4_moe",), ("Glm4MoeForCausalLM",),
           _PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", expert_fields=("n_routed_experts",), selection_bias=_V3_BIAS,
           tell="selection_bias", layer_limit_field="num_hidden_layers", eps_default=1e-5,
           group_defaults=(1, 1), source=_TF + "glm4_moe/modeling_glm4_moe.py (Glm4MoeTopkRouter)"),
    Family("glm4v_moe", ("glm4v_moe",), ("Glm4vMoeForConditionalGeneration",),
           _LM_PFX + _MLP + r"gate\.weight", _POST, "rmsnorm", routing="deepseek_v3",
           score_func="sigmoid", expert_fields=("n_routed_experts",), selection_bias=_V3_BIAS[:1],
           tell="selection_bias", layer_limit_field="num_hidden_layers", eps_default=1e-5,
           group_defaults=(1, 1),
           source=_TF + "glm4v_moe/modeling_glm4v_moe.py (Glm4vMoeTextTopkRouter, "
                        "Glm4vMoeTextDecoderLayer)"),
    Family("minimax", ("minimax",), ("MiniMaxForCausalLM",),
           _PFX + _MOE + r"gate\.weight", _POST, "rmsnorm", eps_default=1e-5,
           source=_TF + "minimax/modular_minimax.py (MiniMaxDecoderLayer)"),
)

FAMILIES = types.MappingProxyType({f.name: f for f in _TABLE})

# Detection from tensor names alone (no config.json, or one without model_type): always reported
# as *guessed*. Families with a telling extra tensor first, then one representative per router
# key whose norm is present. Keys cannot tell Mixtral from Arctic or MiniMax-Text-01, OLMoE from
# Qwen2/3-MoE (their routing is the same), nor OLMoE from FlexOlmo, Qwen3-Next or DeepSeek-V2
# (whose routing differs): hence the label.
KEY_ONLY_ORDER = ("ernie4_5_moe", "minimax_m2", "deepseek_v3", "phimoe", "olmoe", "mixtral",
                  "cohere2_moe", "dbrx", "jamba", "llama4", "granite_moe", "gpt_oss", "jetmoe",
                  "hunyuan_v1_moe", "switch")

# Config fields tried when the family's own are absent (and for key_pattern routers).
GENERIC_K_FIELDS = ("num_experts_per_tok", "moe_top_k", "top_k", "experts_per_token",
                    "num_selected_experts", "ffn_config.moe_top_k", "moe_k")
GENERIC_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts",
                         "ffn_config.moe_num_experts")
GENERIC_HIDDEN_FIELDS = ("hidden_size", "d_model", "n_embd")


def family_from_config(config):
    """The family named by ``config['model_type']`` (or, without one, ``architectures``), else
    None.

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
    if model_type is not None:
        return None  # a model_type we do not know: never matched by its architecture name
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

