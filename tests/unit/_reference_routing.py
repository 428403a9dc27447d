"""Independent NumPy references of how each MoE family routes, from its public modeling code.

Written from the Hugging Face ``transformers`` sources (``src/transformers/models/<name>/``,
``modeling_*.py`` / ``modular_*.py`` / ``configuration_*.py``, 2025-2026 main branch) and
``conversion_mapping.py`` for the names that hub checkpoints give tensors, and from the Snowflake
Arctic remote code; never from discosim. Each family's function says which classes it transcribes.
Everything is float64: the norm, the router's linear map, the score function, the selection bias,
group-limited selection and top-k (ties broken by the lower expert index, what a stable sort does;
``torch.topk`` leaves ties unspecified). ``norm_topk_prob``, ``routed_scaling_factor`` and the
softmax over the selected logits change the gate *weights* only, never the selected set, so they
are not modelled.

Public entry points:

* :func:`routers` -- the router tensors a model of ``family`` with ``config`` builds modules for, in
  layer order, found the way the model constructs its layers (which layers are sparse comes from the
  config, not from the tensor names), each as a :class:`Router`.
* :func:`route` -- ``route(family, tensors, config, layer, hidden)``: the (N, M) bool mask of the
  experts the model selects for hidden states ``hidden`` given as the input of the norm in front of
  the router (the residual stream), plus the pre-selection scores and a per-row ``tie`` flag
  (top-k margin, or group margin, below ``TIE_RTOL`` relative; also rows where two documented
  variants of the code disagree, e.g. 0.0 vs -inf fill of dropped groups). ``layer`` is the
  router's tensor name (``Router.key``) or its position in :func:`routers`.

Sources (transformers ``src/transformers/models/...`` unless stated; read through the stored
GitHub snapshots of huggingface/transformers, late 2025 / 2026 main):

* mixtral: mixtral/modeling_mixtral.py: MixtralDecoderLayer, MixtralTopKRouter;
  conversion_mapping.py ("mixtral": block_sparse_moe.gate -> mlp.gate)
* arctic: Snowflake/snowflake-arctic-instruct modeling_arctic.py (remote code) and
  vllm/model_executor/models/arctic.py: ArcticDecoderLayer (moe_layer_frequency)
* phimoe: phimoe/modeling_phimoe.py: PhimoeDecoderLayer (nn.LayerNorm, eps=rms_norm_eps),
  sparsemixer (top-2 of logits at inference)
* olmoe: olmoe/modeling_olmoe.py: OlmoeDecoderLayer, OlmoeTopKRouter
* qwen2_moe, qwen3_moe: qwen2_moe/modeling_qwen2_moe.py, qwen3_moe/modeling_qwen3_moe.py:
  *DecoderLayer (mlp_only_layers, decoder_sparse_step), *SparseMoeBlock / TopKRouter
* deepseek_v3 (kimi_k2): deepseek_v3/modeling_deepseek_v3.py: DeepseekV3TopkRouter,
  DeepseekV3MoE.route_tokens_to_experts, DeepseekV3DecoderLayer
* dbrx: dbrx/modeling_dbrx.py: DbrxNormAttentionNorm (nn.LayerNorm(d_model, bias=False)),
  DbrxRouter
* jamba: jamba/configuration_jamba.py: layers_num_experts; modeling_jamba.py: JambaDecoderLayer
  (pre_ff_layernorm), JambaSparseMoeBlock
* granitemoe(+shared): granitemoe/modeling_granitemoe.py, granitemoeshared/...:
  GraniteMoeTopKGating
* gpt_oss: gpt_oss/modeling_gpt_oss.py: GptOssTopKRouter (weight + bias)
* switch_transformers: switch_transformers/modeling_switch_transformers.py: SwitchTransformersStack
  (is_sparse), SwitchTransformersLayerFF, SwitchTransformersTop1Router
* deepseek_v2: deepseek_v2/modeling_deepseek_v2.py: DeepseekV2Moe.route_tokens_to_experts
* llama4: llama4/modeling_llama4.py: Llama4Router, Llama4TextMoe, Llama4TextDecoderLayer
  (moe_layers); conversion_mapping.py (llava-style language_model.model -> model.language_model)
* cohere2_moe: cohere2_moe/modeling_cohere2_moe.py: Cohere2MoeDecoderLayer, Cohere2MoeLayerNorm,
  Cohere2MoeTopKRouter; configuration_cohere2_moe.py (rms_norm_eps None default)
* jetmoe: jetmoe/modular_jetmoe.py: JetMoeDecoderLayer, JetMoeMoA, JetMoeMoE, JetMoeTopKGating,
  JetMoeRMSNorm(MixtralRMSNorm)
* hunyuan_v1_moe: hunyuan_v1_moe/modular_hunyuan_v1_moe.py: HunYuanMoEV1Gate (wg, fp32),
  HunYuanMoEV1Moe.route_tokens_to_experts
* qwen3_next: qwen3_next/modular_qwen3_next.py: Qwen3NextRMSNorm(Gemma3RMSNorm),
  Qwen3NextDecoderLayer, Qwen3NextSparseMoeBlock
* qwen3_5_moe: qwen3_5_moe/modular_qwen3_5_moe.py: Qwen3_5MoeDecoderLayer, Qwen3_5MoeRMSNorm,
  Qwen3_5MoeTopKRouter(Qwen3VLMoeTextTopKRouter)
* qwen3_vl_moe: qwen3_vl_moe/modular_qwen3_vl_moe.py: Qwen3VLMoeTextRMSNorm(Qwen3MoeRMSNorm),
  Qwen3VLMoeTextTopKRouter
* minimax_m2: minimax_m2/modular_minimax_m2.py: MiniMaxM2TopKRouter, MiniMaxM2SparseMoeBlock;
  conversion_mapping.py (.block_sparse_moe.e_score_correction_bias)
* exaone_moe: exaone_moe/modular_exaone_moe.py and modeling_exaone_moe.py: ExaoneMoeTopkRouter
  (fill -inf), ExaoneMoeDecoderLayer; conversion_mapping.py (mlp.e_score_correction_bias ->
  mlp.gate.e_score_correction_bias)
* ernie4_5_moe: ernie4_5_moe/modular_ernie4_5_moe.py: Ernie4_5_MoeStatics, Ernie4_5_MoeTopKRouter,
  Ernie4_5_MoeDecoderLayer; conversion_mapping.py (mlp.moe_statics.e_score_correction_bias)
* flex_olmo: flex_olmo/modular_flex_olmo.py: FlexOlmoDecoderLayer (post-norm, no input_layernorm)
* glm4_moe: glm4_moe/modeling_glm4_moe.py: Glm4MoeTopkRouter, Glm4MoeMoE (DeepSeek-V3's
  route_tokens_to_experts)
* glm4v_moe: glm4v_moe/modeling_glm4v_moe.py (transformers 5.25): Glm4vMoeTextTopkRouter (its own
  forward: sigmoid, bias, groups, masked_fill -inf), Glm4vMoeTextDecoderLayer
  (first_k_dense_replace), Glm4vMoeTextModel (layers[:num_hidden_layers]), Glm4vMoeModel
  (language_model); configuration_glm4v_moe.py: Glm4vMoeTextConfig defaults (rms_norm_eps 1e-5,
  n_group 1, topk_group 1, first_k_dense_replace 1); convert_glm4v_moe_mgt_weights_to_hf.py for
  the hub's tensor names (model.language_model.layers.{i}.mlp.gate.weight and
  .mlp.gate.e_score_correction_bias)
* minimax: minimax/modular_minimax.py: MiniMaxDecoderLayer.forward (post_attention_layernorm before
  the MoE block), MiniMaxSparseMoeBlock(MixtralSparseMoeBlock)

Tensor names follow the *hub* checkpoints (what ``from_pretrained`` reads, before
``conversion_mapping`` renames them); where transformers' newer internal layout differs
(``block_sparse_moe.gate`` -> ``mlp.gate``), both are accepted, as the loader does.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FAMILIES", "ALIASES", "MODEL_TYPES", "Router", "routers", "route", "normed", "logits",
           "TIE_RTOL", "canonical"]

TIE_RTOL = 1e-9

# discosim's pre-issue-22 family names -> transformers model_type names used here
ALIASES = {"granite_moe": "granitemoe", "switch": "switch_transformers"}


# model types that route exactly as another family's (same modeling classes)
MODEL_TYPES = {"kimi_k2": "deepseek_v3", "granitemoeshared": "granitemoe"}


def canonical(name):
    name = ALIASES.get(name, name)
    return MODEL_TYPES.get(name, name)


# ------------------------------------------------------------------------------- numerics
def rms_norm(h, w, eps):
    """LlamaRMSNorm / MixtralRMSNorm / Qwen*RMSNorm / DeepseekV*RMSNorm / T5LayerNorm:
    ``w * h * rsqrt(mean(h^2) + eps)``."""
    return w * (h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + eps))


def rms_norm_1p(h, w, eps):
    """Gemma3RMSNorm = Qwen3NextRMSNorm = Qwen3_5MoeRMSNorm:
    ``h * rsqrt(mean(h^2) + eps) * (1 + w)``."""
    return (h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + eps)) * (1.0 + w)


def layer_norm(h, w, b, eps):
    """torch.nn.LayerNorm (biased variance) and Cohere2MoeLayerNorm (no bias)."""
    mu = np.mean(h, axis=-1, keepdims=True)
    var = np.mean((h - mu) ** 2, axis=-1, keepdims=True)
    out = (h - mu) / np.sqrt(var + eps) * w
    return out if b is None else out + b


def softmax(x):
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def topk_index(scores, k):
    """Indices of the k largest per row, ties to the lower index (a stable descending sort)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def to_mask(idx, M):
    mask = np.zeros((idx.shape[0], M), dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def near_tie(scores, k):
    """Rows whose k-th and (k+1)-th largest scores are within TIE_RTOL (relative)."""
    if k >= scores.shape[1]:
        return np.zeros(scores.shape[0], dtype=bool)
    s = -np.sort(-scores, axis=1)
    a, b = s[:, k - 1], s[:, k]
    # a -inf (dropped group) below a finite k-th score is no tie: the scale is the finite one's
    scale = np.maximum(np.abs(a), np.abs(np.where(np.isfinite(b), b, 0.0)))
    with np.errstate(invalid="ignore"):
        return ~((a - b) > TIE_RTOL * scale)


def topk_select(scores, k):
    """(mask, tie): ``torch.topk(scores, k)`` with ties to the lower index."""
    return to_mask(topk_index(scores, k), scores.shape[1]), near_tie(scores, k)


# ------------------------------------------------------------------------------- routers
@dataclass
class Router:
    """One router module of a model.

    key : router weight tensor name; norm : ('rms' | 'rms1p' | 'layer' | None, weight key, bias
    key, eps); select : f(tensors, normed hidden) -> (mask, scores, tie); kind : 'mlp' or
    'attention' (JetMoE's mixture-of-attention router); layer : the model's layer number.
    """

    key: str
    layer: int
    norm: tuple
    select: object = field(repr=False)
    kind: str = "mlp"
    extra: tuple = ()   # other tensors the router reads (bias, selection bias)
    router_bias: str = None   # the router's own Linear bias (gpt-oss, Switch with router_bias)


def _first(keys, *names):
    for n in names:
        if n in keys:
            return n
    return names[0]


def _text(config):
    """Multimodal wrappers keep the language model's fields under ``text_config``."""
    return config.get("text_config") or config


def _norm_apply(norm, tensors, h):
    kind, wkey, bkey, eps = norm
    if kind is None:
        return h
    w = tensors[wkey]
    if kind == "rms":
        return rms_norm(h, w, eps)
    if kind == "rms1p":
        return rms_norm_1p(h, w, eps)
    if kind == "layer":
        return layer_norm(h, w, tensors[bkey] if bkey else None, eps)
    raise ValueError(kind)


# --- score functions, each a transcription of one router forward ----------------------------
def _softmax_topk(wkey, k):
    """MixtralTopKRouter / OlmoeTopKRouter / Qwen2MoeTopKRouter / Qwen3VLMoeTextTopKRouter /
    HunYuanMoEV1Moe.route_tokens_to_experts / DbrxRouter: ``softmax(h W^T)`` then ``topk``."""
    def select(t, x):
        probs = softmax(x @ t[wkey].T)
        mask, tie = topk_select(probs, k)
        return mask, probs, tie
    return select


def _logit_topk(wkey, k, bkey=None):
    """GraniteMoeTopKGating / JetMoeTopKGating / Llama4Router / Cohere2MoeTopKRouter /
    GptOssTopKRouter (``F.linear(h, W, b)``): ``topk`` of the logits themselves."""
    def select(t, x):
        logits = x @ t[wkey].T
        if bkey is not None:
            logits = logits + t[bkey]
        mask, tie = topk_select(logits, k)
        return mask, logits, tie
    return select


def _sigmoid_bias_topk(wkey, bkey, k):
    """MiniMaxM2TopKRouter: ``scores_for_choice = sigmoid(logits) + e_score_correction_bias``,
    ``topk`` (no groups)."""
    def select(t, x):
        s = sigmoid(x @ t[wkey].T) + t[bkey].reshape(-1)
        mask, tie = topk_select(s, k)
        return mask, s, tie
    return select


def _softmax_bias_topk(wkey, bkey, k):
    """Ernie4_5_MoeTopKRouter: ``topk(moe_statics(softmax(logits)))`` with
    ``moe_statics(p) = p + e_score_correction_bias.squeeze()`` (bias stored (1, M))."""
    def select(t, x):
        s = softmax(x @ t[wkey].T) + t[bkey].reshape(-1)
        mask, tie = topk_select(s, k)
        return mask, s, tie
    return select


def _group_select(s, n_group, topk_group, k, group_score, fill):
    """The group-limited selection of DeepseekV3TopkRouter / DeepseekV2Moe: group scores, the
    topk_group best groups kept (ties to the lower group index), other experts' scores replaced by
    ``fill``, then topk."""
    N, M = s.shape
    size = M // n_group
    g = s.reshape(N, n_group, size)
    if group_score == "top2sum":
        gs = -np.sort(-g, axis=2)[:, :, :2].sum(axis=2)
    else:  # "max"
        gs = g.max(axis=2)
    gidx = topk_index(gs, topk_group)
    gmask = to_mask(gidx, n_group)
    score_mask = np.repeat(gmask, size, axis=1)
    masked = np.where(score_mask, s, fill)
    mask, tie = topk_select(masked, k)
    return mask, masked, tie | near_tie(gs, topk_group)


def _deepseek_v3_like(wkey, bkey, k, n_group, topk_group, fill=0.0):
    """DeepseekV3TopkRouter + DeepseekV3MoE.route_tokens_to_experts (also Glm4Moe, ExaoneMoe):
    ``scores = sigmoid(logits)``; ``scores_for_choice = scores + e_score_correction_bias``; group
    score = sum of the group's top-2; ``topk_group`` groups kept; the rest
    ``masked_fill(..., fill)``
    (0.0 in DeepseekV3/Glm4Moe, -inf in ExaoneMoeTopkRouter); ``topk(k)``. Rows where the other
    fill value selects differently are flagged as ties (the two published variants disagree)."""
    def select(t, x):
        s = sigmoid(x @ t[wkey].T) + t[bkey].reshape(-1)
        if n_group in (None, 1):
            mask, tie = topk_select(s, k)
            return mask, s, tie
        mask, masked, tie = _group_select(s, n_group, topk_group, k, "top2sum", fill)
        other = -np.inf if fill == 0.0 else 0.0
        alt, _, _ = _group_select(s, n_group, topk_group, k, "top2sum", other)
        return mask, masked, tie | np.any(alt != mask, axis=1)
    return select


def _deepseek_v2_select(wkey, k, method, n_group, topk_group):
    """DeepseekV2Moe.route_tokens_to_experts: ``softmax(logits)``; 'greedy': topk; or
    'group_limited_greedy': group score = max of the group's probabilities, ``topk_group`` groups,
    others ``masked_fill(0.0)``, topk."""
    def select(t, x):
        p = softmax(x @ t[wkey].T)
        if method == "greedy":
            mask, tie = topk_select(p, k)
            return mask, p, tie
        mask, masked, tie = _group_select(p, n_group, topk_group, k, "max", 0.0)
        return mask, masked, tie
    return select


# --- families: which layers, which norm, which selection -------------------------------------
def _decoder(keys, config, n_layers, sparse, key_templates, norm_template, norm_kind, eps,
             make_select, prefix="model.layers.", extra=()):
    out = []
    for i in range(n_layers):
        if not sparse(i):
            continue
        p = f"{prefix}{i}."
        key = _first(keys, *(p + t for t in key_templates))
        base = key[: -len("weight")]
        ex = tuple(_first(keys, *(base + e if not e.startswith(".") else p + e[1:]
                                  for e in alts)) for alts in extra)
        norm = (norm_kind, p + norm_template + ".weight" if norm_kind else None,
                p + norm_template + ".bias" if norm_kind == "layer" and
                (p + norm_template + ".bias") in keys else None, eps)
        out.append(Router(key, i, norm, make_select(key, *ex), extra=ex))
    return out


def _mixtral(keys, c):
    """MixtralDecoderLayer: ``post_attention_layernorm`` (MixtralRMSNorm, ``rms_norm_eps``) ->
    ``block_sparse_moe.gate`` (nn.Linear(hidden, num_local_experts, bias=False); transformers' own
    layout calls it ``mlp.gate``) -> MixtralTopKRouter: softmax, topk(num_experts_per_tok).
    Every layer is sparse."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True,
                    ("block_sparse_moe.gate.weight", "mlp.gate.weight"),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k))


def _minimax(keys, c):
    """MiniMaxDecoderLayer (MiniMax-Text-01): ``hidden = post_attention_layernorm(hidden)`` ->
    MiniMaxSparseMoeBlock(MixtralSparseMoeBlock), hub key ``block_sparse_moe.gate``; softmax topk.
    (The residual it adds back is the *normed* state, which changes the residual stream, not the
    router's input.)"""
    return _mixtral(keys, c)


def _arctic(keys, c):
    """Snowflake Arctic remote code ``ArcticDecoderLayer`` (also vLLM arctic.py): MoE where
    ``(layer_idx + 1) % moe_layer_frequency == 0``; ``post_attention_layernorm`` (ArcticRMSNorm,
    ``rms_norm_eps``) -> ``block_sparse_moe.gate``; softmax topk. The parallel residual MLP has its
    own ``residual_layernorm`` (not in front of the router)."""
    k, f = c["num_experts_per_tok"], c.get("moe_layer_frequency", 2)
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: (i + 1) % f == 0,
                    ("block_sparse_moe.gate.weight",), "post_attention_layernorm", "rms",
                    c["rms_norm_eps"], lambda w: _softmax_topk(w, k))


def _phimoe(keys, c):
    """PhimoeDecoderLayer: ``post_attention_layernorm = nn.LayerNorm(hidden, eps=rms_norm_eps,
    elementwise_affine=True)`` (centring, with bias) -> ``block_sparse_moe.gate``; sparsemixer at
    inference takes the argmax, masks it and takes the argmax of the rest = top-2 of the logits."""
    k = c.get("num_experts_per_tok", 2)
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True,
                    ("block_sparse_moe.gate.weight", "mlp.gate.weight"),
                    "post_attention_layernorm", "layer", c["rms_norm_eps"],
                    lambda w: _logit_topk(w, k))


def _olmoe(keys, c):
    """OlmoeDecoderLayer: ``post_attention_layernorm`` (OlmoeRMSNorm, ``rms_norm_eps``) ->
    ``mlp.gate`` -> softmax, topk(num_experts_per_tok); every layer sparse."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True, ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k))


def _qwen_sparse(c):
    step, only = c.get("decoder_sparse_step", 1), set(c.get("mlp_only_layers") or ())
    return lambda i: (i not in only) and c["num_experts"] > 0 and (i + 1) % step == 0


def _qwen2_moe(keys, c):
    """Qwen2MoeDecoderLayer: sparse where ``layer_idx not in mlp_only_layers and num_experts > 0
    and (layer_idx + 1) % decoder_sparse_step == 0``; ``post_attention_layernorm``
    (Qwen2MoeRMSNorm, ``rms_norm_eps``) -> ``mlp.gate`` -> softmax topk. ``mlp.shared_expert_gate``
    (1 x D, a sigmoid gate of the shared expert) is no router."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], _qwen_sparse(c), ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k))


def _qwen3_moe(keys, c):
    """Qwen3MoeDecoderLayer: as Qwen2-MoE without the shared expert."""
    return _qwen2_moe(keys, c)


def _qwen3_next(keys, c):
    """Qwen3NextDecoderLayer: sparse as Qwen2-MoE (mlp_only_layers, decoder_sparse_step);
    ``post_attention_layernorm = Qwen3NextRMSNorm`` (= Gemma3RMSNorm: weight initialised to 0,
    ``output * (1 + weight)``, eps ``rms_norm_eps``) -> ``mlp.gate`` -> softmax topk."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], _qwen_sparse(c), ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms1p", c["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k))


def _qwen3_5_moe(keys, c):
    """Qwen3_5MoeDecoderLayer (every layer ``Qwen3_5MoeSparseMoeBlock``): ``post_attention_layernorm
    = Qwen3_5MoeRMSNorm(Qwen3NextRMSNorm)`` (1 + w) -> ``mlp.gate`` (Qwen3VLMoeTextTopKRouter:
    softmax, topk). Qwen3_5MoeForConditionalGeneration keeps the text model at
    ``model.language_model.layers.*``; fields under ``text_config``."""
    t = _text(c)
    k = t["num_experts_per_tok"]
    prefix = ("model.language_model.layers." if any(x.startswith("model.language_model.")
                                                     for x in keys) else "model.layers.")
    return _decoder(keys, t, t["num_hidden_layers"], lambda i: True, ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms1p", t["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k), prefix=prefix)


def _qwen3_vl_moe(keys, c):
    """Qwen3VLMoeTextDecoderLayer (Qwen3MoeDecoderLayer): sparse as Qwen3-MoE;
    ``post_attention_layernorm = Qwen3VLMoeTextRMSNorm(Qwen3MoeRMSNorm)`` (w, not 1 + w) ->
    ``mlp.gate`` (Qwen3VLMoeTextTopKRouter: softmax, topk). Layers at
    ``model.language_model.layers.*``; fields under ``text_config``."""
    t = _text(c)
    k = t["num_experts_per_tok"]
    return _decoder(keys, t, t["num_hidden_layers"], _qwen_sparse(t), ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", t["rms_norm_eps"],
                    lambda w: _softmax_topk(w, k), prefix="model.language_model.layers.")


def _deepseek_v3(keys, c):
    """DeepseekV3DecoderLayer: ``DeepseekV3MoE`` where ``layer_idx >= first_k_dense_replace``
    (earlier layers DeepseekV3MLP with ``mlp.gate_proj``); ``post_attention_layernorm``
    (DeepseekV3RMSNorm, ``rms_norm_eps``) -> DeepseekV3TopkRouter (``mlp.gate.weight``, buffer
    ``mlp.gate.e_score_correction_bias``) -> sigmoid + bias, groups (n_group, topk_group, top-2
    sum), masked_fill 0.0, topk(num_experts_per_tok). Always sigmoid in transformers (config
    ``scoring_func`` is not read). ``model.layers.{num_hidden_layers}`` is the MTP module, not built
    (``_keys_to_ignore_on_load_unexpected``). Also model_type kimi_k2."""
    k, first = c["num_experts_per_tok"], c.get("first_k_dense_replace", 0)
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: i >= first, ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w, b: _deepseek_v3_like(w, b, k, c.get("n_group"), c.get("topk_group")),
                    extra=(("e_score_correction_bias",),))


def _glm4_moe(keys, c):
    """Glm4MoeDecoderLayer: ``Glm4MoeMoE`` where ``layer_idx >= first_k_dense_replace``;
    ``post_attention_layernorm`` (Glm4MoeRMSNorm, ``rms_norm_eps``) -> Glm4MoeTopkRouter
    (``mlp.gate.weight``, ``mlp.gate.e_score_correction_bias``): DeepSeek-V3's routing (sigmoid +
    bias, n_group/topk_group top-2 sums, masked_fill 0.0). The MTP layer
    ``model.layers.{num_hidden_layers}`` (num_nextn_predict_layers) is not built."""
    return _deepseek_v3(keys, c)


def _glm4v_moe(keys, c):
    """Glm4vMoeForConditionalGeneration -> Glm4vMoeModel.language_model = Glm4vMoeTextModel, whose
    ``layers`` are ``Glm4vMoeTextDecoderLayer(config.text_config, i)`` for i < num_hidden_layers
    (hub names ``model.language_model.layers.{i}.``; nothing at or past num_hidden_layers is built).
    Layer i has ``mlp = Glm4vMoeTextMoE`` iff ``i >= first_k_dense_replace`` (default 1), else a
    dense Glm4vMoeTextMLP. Its input is ``post_attention_layernorm(h)``, a Glm4vMoeTextRMSNorm
    (``weight * h * rsqrt(mean(h^2) + rms_norm_eps)``, rms_norm_eps default 1e-5).
    Glm4vMoeTextTopkRouter.forward: ``scores = sigmoid(F.linear(x, weight))``;
    ``scores_for_choice = scores + e_score_correction_bias``; group score = sum of the top-2 of
    each of ``n_group`` groups; ``topk_group`` groups kept; the other experts
    ``masked_fill(-inf)``; ``topk(num_experts_per_tok)``. ``norm_topk_prob`` and
    ``routed_scaling_factor`` scale the weights only. Defaults n_group = topk_group = 1."""
    t = _text(c)
    k, n = t["num_experts_per_tok"], t["num_hidden_layers"]
    first = t.get("first_k_dense_replace", 1)
    return _decoder(keys, t, n, lambda i: i >= first, ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", t.get("rms_norm_eps", 1e-5),
                    lambda w, b: _deepseek_v3_like(w, b, k, t.get("n_group", 1),
                                                   t.get("topk_group", 1), fill=-np.inf),
                    prefix="model.language_model.layers.", extra=(("e_score_correction_bias",),))


def _exaone_moe(keys, c):
    """ExaoneMoeDecoderLayer (OlmoeDecoderLayer, pre-norm): ``ExaoneMoeSparseMoEBlock`` where
    ``mlp_layer_types[i] == 'sparse'`` (default: dense below ``first_k_dense_replace``);
    ``post_attention_layernorm`` (``rms_norm_eps``) -> ExaoneMoeTopkRouter(DeepseekV3TopkRouter):
    sigmoid + ``e_score_correction_bias``, groups (top-2 sums), masked_fill -inf, topk. The hub
    checkpoint stores the bias as ``mlp.e_score_correction_bias`` (conversion_mapping renames it to
    ``mlp.gate.e_score_correction_bias``). ``mtp.*`` is ignored on load."""
    k, n = c["num_experts_per_tok"], c["num_hidden_layers"]
    types = c.get("mlp_layer_types") or ["dense" if i < c.get("first_k_dense_replace", 1)
                                         else "sparse" for i in range(n)]
    return _decoder(keys, c, n, lambda i: types[i] == "sparse", ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w, b: _deepseek_v3_like(w, b, k, c.get("n_group", 1),
                                                   c.get("topk_group", 1), fill=-np.inf),
                    extra=((".mlp.e_score_correction_bias", "e_score_correction_bias"),))


def _deepseek_v2(keys, c):
    """DeepseekV2DecoderLayer: ``DeepseekV2Moe`` where ``layer_idx >= first_k_dense_replace``;
    ``post_attention_layernorm`` (DeepseekV2RMSNorm, ``rms_norm_eps``) -> ``mlp.gate``
    (nn.Linear, no bias) -> softmax; ``topk_method`` 'greedy' (topk) or 'group_limited_greedy'
    (group score = max probability, topk_group groups, masked_fill 0.0, topk)."""
    k, first = c["num_experts_per_tok"], c.get("first_k_dense_replace", 0)
    method = c.get("topk_method", "greedy")
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: i >= first, ("mlp.gate.weight",),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w: _deepseek_v2_select(w, k, method, c.get("n_group"),
                                                  c.get("topk_group")))


def _dbrx(keys, c):
    """DbrxBlock: ``norm_attn_norm.norm_2 = nn.LayerNorm(d_model, bias=False)`` (eps: the torch
    default 1e-5; DbrxConfig has no eps field) -> ``ffn.router.layer`` (DbrxRouter: softmax,
    topk(ffn_config.moe_top_k)); every block sparse."""
    k = c["ffn_config"]["moe_top_k"]
    return _decoder(keys, c, c["n_layers"], lambda i: True, ("ffn.router.layer.weight",),
                    "norm_attn_norm.norm_2", "layer", 1e-5, lambda w: _softmax_topk(w, k),
                    prefix="transformer.blocks.")


def _jamba(keys, c):
    """JambaConfig.layers_num_experts: ``num_experts if i % expert_layer_period ==
    expert_layer_offset else 1``; those layers' ``feed_forward`` is JambaSparseMoeBlock behind
    ``pre_ff_layernorm`` (JambaRMSNorm, ``rms_norm_eps``); ``feed_forward.router`` -> softmax
    topk."""
    k, per, off = c["num_experts_per_tok"], c["expert_layer_period"], c["expert_layer_offset"]
    return _decoder(keys, c, c["num_hidden_layers"],
                    lambda i: c["num_experts"] > 1 and i % per == off,
                    ("feed_forward.router.weight",), "pre_ff_layernorm", "rms",
                    c["rms_norm_eps"], lambda w: _softmax_topk(w, k))


def _granitemoe(keys, c):
    """GraniteMoeDecoderLayer / GraniteMoeSharedDecoderLayer: ``post_attention_layernorm``
    (GraniteMoeRMSNorm, ``rms_norm_eps``) -> ``block_sparse_moe.router.layer``
    (GraniteMoeTopKGating:
    topk of the logits, softmax of the top-k)."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True,
                    ("block_sparse_moe.router.layer.weight",), "post_attention_layernorm", "rms",
                    c["rms_norm_eps"], lambda w: _logit_topk(w, k))


def _gpt_oss(keys, c):
    """GptOssDecoderLayer: ``post_attention_layernorm`` (GptOssRMSNorm, ``rms_norm_eps``) ->
    GptOssTopKRouter: ``F.linear(h, mlp.router.weight, mlp.router.bias)``, topk of the logits
    (softmax over the top-k only)."""
    k = c.get("num_experts_per_tok", c.get("experts_per_token"))
    out = _decoder(keys, c, c["num_hidden_layers"], lambda i: True, ("mlp.router.weight",),
                   "post_attention_layernorm", "rms", c["rms_norm_eps"],
                   lambda w, b: _logit_topk(w, k, b), extra=(("bias",),))
    for r in out:
        r.router_bias = r.extra[0]
    return out


def _switch(keys, c):
    """SwitchTransformersStack: block i sparse iff ``(i % sparse_step == 1 or sparse_step == 1)
    if sparse_step > 0`` (encoder_sparse_step / decoder_sparse_step); its
    SwitchTransformersLayerFF (``layer.1`` in the encoder, ``layer.2`` in the decoder) applies
    ``layer_norm`` (T5-style RMS, ``layer_norm_epsilon``) then the Top1Router ``classifier``
    (bias iff ``router_bias``): softmax, argmax (first maximum). Capacity dropping depends on the
    batch, not on the token: not modelled."""
    out = []
    eps = c.get("layer_norm_epsilon", 1e-6)
    for stack, n, step, sub in (("encoder", c["num_layers"], c["encoder_sparse_step"], 1),
                                ("decoder", c.get("num_decoder_layers", c["num_layers"]),
                                 c["decoder_sparse_step"], 2)):
        for i in range(n):
            if not ((i % step == 1 or step == 1) if step > 0 else False):
                continue
            p = f"{stack}.block.{i}.layer.{sub}."
            key = p + "mlp.router.classifier.weight"
            bkey = p + "mlp.router.classifier.bias"
            bkey = bkey if bkey in keys else None
            norm = ("rms", p + "layer_norm.weight", None, eps)

            def select(t, x, key=key, bkey=bkey):
                logits = x @ t[key].T + (t[bkey] if bkey else 0.0)
                probs = softmax(logits)
                mask, tie = topk_select(probs, 1)
                return mask, probs, tie
            out.append(Router(key, i, norm, select, extra=(bkey,) if bkey else (),
                              router_bias=bkey))
    return out


def _llama4(keys, c):
    """Llama4TextDecoderLayer: ``feed_forward = Llama4TextMoe`` iff ``layer_idx in moe_layers``
    (default ``range(interleave_moe_layer_step - 1, num_hidden_layers,
    interleave_moe_layer_step)``);
    ``post_attention_layernorm`` (Llama4TextRMSNorm, ``rms_norm_eps``) -> Llama4Router
    (``feed_forward.router``, nn.Linear no bias): topk of the logits, sigmoid of the top values
    only. Hub checkpoints of Llama4ForConditionalGeneration: ``language_model.model.layers.*``
    (transformers' own layout: ``model.language_model.layers.*``)."""
    t = _text(c)
    k, n = t["num_experts_per_tok"], t["num_hidden_layers"]
    step = t.get("interleave_moe_layer_step", 1)
    moe = t.get("moe_layers")
    moe = set(moe if moe is not None else range(step - 1, n, step))
    if any(x.startswith("language_model.model.layers.") for x in keys):
        prefix = "language_model.model.layers."
    elif any(x.startswith("model.language_model.layers.") for x in keys):
        prefix = "model.language_model.layers."
    else:
        prefix = "model.layers."
    return _decoder(keys, t, n, lambda i: i in moe, ("feed_forward.router.weight",),
                    "post_attention_layernorm", "rms", t["rms_norm_eps"],
                    lambda w: _logit_topk(w, k), prefix=prefix)


def _cohere2_moe(keys, c):
    """Cohere2MoeDecoderLayer (parallel block): ``input_layernorm`` = Cohere2MoeRMSNorm(eps
    ``rms_norm_eps``) if ``rms_norm_eps is not None`` else Cohere2MoeLayerNorm(eps
    ``layer_norm_eps``: centring, weight only, no bias); its output feeds attention *and* the MLP;
    sparse where ``mlp_layer_types[i] != 'dense'``; Cohere2MoeTopKRouter (``mlp.gate.weight``):
    topk of the logits (softmax or sigmoid of the top values only)."""
    k, n = c["num_experts_per_tok"], c["num_hidden_layers"]
    types = c.get("mlp_layer_types") or ["dense" if i < c.get("first_k_dense_replace", 0)
                                         else "sparse" for i in range(n)]
    if c.get("rms_norm_eps") is not None:
        kind, eps = "rms", c["rms_norm_eps"]
    else:
        kind, eps = "layer", c.get("layer_norm_eps", 1e-5)
    return _decoder(keys, c, n, lambda i: types[i] != "dense", ("mlp.gate.weight",),
                    "input_layernorm", kind, eps, lambda w: _logit_topk(w, k))


def _jetmoe(keys, c):
    """JetMoeDecoderLayer: two routers per layer, both JetMoeTopKGating (``router.layer``, topk of
    the logits, softmax of the top-k): the mixture-of-attention router
    ``self_attention.experts.router`` behind ``input_layernorm`` and the MLP router
    ``mlp.router`` behind ``post_attention_layernorm``. Both norms are built as
    ``JetMoeRMSNorm(config.hidden_size)`` -- the class default eps 1e-6, *not* ``rms_norm_eps``
    (only the final ``model.norm`` reads the config)."""
    k, eps = c["num_experts_per_tok"], 1e-6
    out = []
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for key, norm, kind in ((p + "self_attention.experts.router.layer.weight",
                                 p + "input_layernorm", "attention"),
                                (p + "mlp.router.layer.weight", p + "post_attention_layernorm",
                                 "mlp")):
            out.append(Router(key, i, ("rms", norm + ".weight", None, eps),
                              _logit_topk(key, k), kind=kind))
    return out


def _hunyuan_v1_moe(keys, c):
    """HunYuanMoEV1DecoderLayer: every layer ``HunYuanMoEV1Moe``; ``post_attention_layernorm``
    (HunYuanMoEV1RMSNorm = LlamaRMSNorm, ``rms_norm_eps``) -> HunYuanMoEV1Gate ``wg``
    (nn.Linear(hidden, num_experts, bias=False, dtype=float32); hub key ``mlp.gate.wg.weight``) ->
    softmax, topk(``moe_topk``, an int or a per-layer list). ``mlp.shared_mlp.gate_proj`` is no
    router."""
    n = c["num_hidden_layers"]
    out = []
    for i in range(n):
        k = c["moe_topk"] if isinstance(c["moe_topk"], int) else c["moe_topk"][i]
        p = f"model.layers.{i}."
        key = _first(keys, p + "mlp.gate.wg.weight", p + "mlp.gate.weight")
        out.append(Router(key, i, ("rms", p + "post_attention_layernorm.weight", None,
                                   c["rms_norm_eps"]), _softmax_topk(key, k)))
    return out


def _minimax_m2(keys, c):
    """MiniMaxM2 (MixtralDecoderLayer layout): ``post_attention_layernorm`` (MixtralRMSNorm,
    ``rms_norm_eps``) -> MiniMaxM2TopKRouter: sigmoid(logits) + the MoE block's buffer
    ``e_score_correction_bias``, topk. Hub keys ``block_sparse_moe.gate.weight`` and
    ``block_sparse_moe.e_score_correction_bias`` (on the block, not the gate)."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True,
                    ("block_sparse_moe.gate.weight", "mlp.gate.weight"),
                    "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w, b: _sigmoid_bias_topk(w, b, k),
                    extra=((".block_sparse_moe.e_score_correction_bias",
                            ".mlp.e_score_correction_bias"),))


def _ernie4_5_moe(keys, c):
    """Ernie4_5_MoeDecoderLayer: sparse iff ``(i + 1) % moe_layer_interval == 0 and
    moe_layer_start_index <= i <= moe_layer_end_index``; ``post_attention_layernorm``
    (LlamaRMSNorm, ``rms_norm_eps``) -> Ernie4_5_MoeTopKRouter (``mlp.gate.weight``, kept in fp32):
    softmax, + ``moe_statics.e_score_correction_bias`` (shape (1, M), hub key
    ``mlp.moe_statics.e_score_correction_bias``), topk(``moe_k``)."""
    k, n = c["moe_k"], c["num_hidden_layers"]
    start, end = c.get("moe_layer_start_index", 0), c.get("moe_layer_end_index")
    end = n - 1 if end is None or end == -1 else end
    iv = c.get("moe_layer_interval", 1)
    return _decoder(keys, c, n, lambda i: (i + 1) % iv == 0 and start <= i <= end,
                    ("mlp.gate.weight",), "post_attention_layernorm", "rms", c["rms_norm_eps"],
                    lambda w, b: _softmax_bias_topk(w, b, k),
                    extra=((".mlp.moe_statics.e_score_correction_bias",
                            ".mlp.gate.moe_statics.e_score_correction_bias"),))


def _flex_olmo(keys, c):
    """FlexOlmoDecoderLayer (post-norm, ``del self.input_layernorm``): ``h = residual +
    post_attention_layernorm(attn(h))``; ``h = residual + post_feedforward_layernorm(mlp(h))``: the
    router ``mlp.gate`` (OlmoeTopKRouter: softmax, topk) sees the residual stream with *no* norm in
    front; the two norm weights in the checkpoint act on sublayer outputs."""
    k = c["num_experts_per_tok"]
    return _decoder(keys, c, c["num_hidden_layers"], lambda i: True, ("mlp.gate.weight",),
                    "", None, None, lambda w: _softmax_topk(w, k))


_BUILDERS = {
    "mixtral": _mixtral, "arctic": _arctic, "phimoe": _phimoe, "olmoe": _olmoe,
    "qwen2_moe": _qwen2_moe, "qwen3_moe": _qwen3_moe, "deepseek_v3": _deepseek_v3,
    "dbrx": _dbrx, "jamba": _jamba, "granitemoe": _granitemoe,
    "gpt_oss": _gpt_oss, "switch_transformers": _switch,
    "deepseek_v2": _deepseek_v2, "llama4": _llama4, "cohere2_moe": _cohere2_moe,
    "jetmoe": _jetmoe, "hunyuan_v1_moe": _hunyuan_v1_moe, "qwen3_next": _qwen3_next,
    "qwen3_5_moe": _qwen3_5_moe, "minimax_m2": _minimax_m2, "exaone_moe": _exaone_moe,
    "ernie4_5_moe": _ernie4_5_moe, "flex_olmo": _flex_olmo, "glm4_moe": _glm4_moe,
    "minimax": _minimax, "qwen3_vl_moe": _qwen3_vl_moe, "glm4v_moe": _glm4v_moe,
}

FAMILIES = tuple(_BUILDERS)


def routers(family, keys, config):
    """The model's routers in layer order (see the module docstring)."""
    return _BUILDERS[canonical(family)](set(keys), config)


def _find(family, tensors, config, layer):
    rs = routers(family, tensors.keys(), config)
    return next(x for x in rs if x.key == layer) if isinstance(layer, str) else rs[layer]


def normed(family, tensors, config, layer, hidden, eps=None):
    """The router's input: ``hidden`` through the norm in front of the router (float64)."""
    r = _find(family, tensors, config, layer)
    norm = r.norm if eps is None or r.norm[0] is None else r.norm[:3] + (eps,)
    return _norm_apply(norm, tensors, np.asarray(hidden, dtype=np.float64))


def logits(family, tensors, config, layer, hidden):
    """The router's linear output ``W n(h) (+ b)`` (the router's own bias only)."""
    r = _find(family, tensors, config, layer)
    out = normed(family, tensors, config, layer, hidden) @ tensors[r.key].T
    return out + tensors[r.router_bias] if r.router_bias else out


def route(family, tensors, config, layer, hidden, eps=None):
    """Experts selected for ``hidden`` (N, D) at router ``layer`` (tensor name or position).

    ``eps`` overrides the norm's epsilon (0.0 reproduces a plain ``h / rms(h)``).

    Returns
    -------
    mask : ndarray of bool, shape (N, M)
    info : dict with ``scores`` (N, M) float64 (what topk is taken of, dropped groups filled),
        ``tie`` (N,) bool and ``router`` (the :class:`Router`).
    """
    r = _find(family, tensors, config, layer)
    x = normed(family, tensors, config, layer, hidden, eps)
    mask, scores, tie = r.select(tensors, x)
    return mask, {"scores": scores, "tie": tie, "router": r}
