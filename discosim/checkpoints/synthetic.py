"""Synthetic MoE checkpoints of every router family, for tests, examples and benchmarks (issue 10).

``make_checkpoint(directory, family, ...)`` writes what a Hugging Face model directory holds:
``config.json`` with the family's real fields, ``model.safetensors.index.json``
(``metadata.total_size`` and ``weight_map``) and shards ``model-0000X-of-0000N.safetensors`` (or one
``model.safetensors`` when ``shards=1``), with the real tensor names: routers, the norms in front of
them, router and selection biases, and the tensors around them that a reader must *not* take for
routers (expert ``gate_proj``, Qwen2-MoE's ``shared_expert_gate``, dense layers' ``mlp.gate_proj``,
DeepSeek-V3's multi-token-prediction layer, attention, embeddings).

The safetensors files are written by hand (8-byte header length, JSON header padded to 8 bytes,
raw little-endian data) so bfloat16 can be stored (as uint16 words, dtype "BF16"). Values are drawn
so that they are exactly representable in the chosen dtype: a float64 with at most p significant
bits (bf16 8, fp16 11, fp32 24), built with frexp/ldexp, independently of the reader's widening.
This module shares no code with the reader (it imports numpy, json and discosim._core only), so the tests that
read its checkpoints check the reader against an independent writer.

Command line (a README example, a benchmark input)::

    python -m discosim.checkpoints.synthetic OUT_DIR --family deepseek_v3 --layers 58 \
        --experts 256 --dim 7168 --k 8 --n-group 8 --topk-group 4 --shards 8
"""

import json
import math
import os
import sys

import numpy as np

from discosim._core.errors import InputError
from discosim._core.io import open_atomic
from discosim._core.memory import check_memory

__all__ = ["make_checkpoint", "write_safetensors", "representable", "encode", "FAMILY_NAMES",
           "DTYPE_CODES"]

FAMILY_NAMES = ("mixtral", "arctic", "phimoe", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3",
                "dbrx", "jamba", "granite_moe", "gpt_oss", "switch", "deepseek_v2", "llama4",
                "cohere2_moe", "jetmoe", "hunyuan_v1_moe", "qwen3_next", "qwen3_5_moe",
                "qwen3_vl_moe", "minimax_m2", "exaone_moe", "ernie4_5_moe", "flex_olmo",
                "glm4_moe", "glm4v_moe", "minimax")
DTYPE_CODES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "float64": "F64"}
_BITS = {"bfloat16": 8, "float16": 11, "float32": 24, "float64": 53}
_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}


def representable(rng, shape, dtype, scale=1.0, positive=False, offset=0.0):
    """Random float64 values exactly representable in ``dtype`` (normal range only).

    Magnitudes are kept away from zero (>= 0.05 scale) so float16 never goes subnormal.
    """
    x = rng.standard_normal(shape)
    x = np.sign(x) * (0.05 + np.abs(x)) * scale + offset
    if positive:
        x = np.abs(x)
    m, e = np.frexp(x)
    p = _BITS[dtype]
    return np.ldexp(np.round(m * 2.0 ** p) / 2.0 ** p, e)  # round half to even at p bits


def encode(values, dtype):
    """Raw little-endian bytes of float64 ``values`` stored as ``dtype`` (values must be
    representable; NaN and inf pass through)."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":
        # exact for representable values: bf16 is the high half of the float32 bit pattern
        return (values.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    return values.astype({"float16": "<f2", "float32": "<f4", "float64": "<f8"}[dtype]).tobytes()


class _Big:
    """A large tensor written in chunks (never held in memory)."""

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.nbytes = int(np.prod(shape)) * _ITEMSIZE[DTYPE_CODES[dtype]]

    def write(self, fh):
        chunk = 1 << 22
        pattern = (np.arange(chunk // 2, dtype=np.uint16) * 7919).tobytes()  # not all zeros
        left = self.nbytes
        while left:
            n = min(left, chunk)
            fh.write(pattern[:n])
            left -= n


def write_safetensors(path, tensors):
    """Write ``{name: (dtype_code, shape, bytes or _Big)}`` as a safetensors file."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (code, shape, data) in tensors.items():
        n = data.nbytes if isinstance(data, _Big) else len(data)
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open_atomic(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for code, shape, data in tensors.values():
            if isinstance(data, _Big):
                data.write(fh)
            else:
                fh.write(data)
    return offset


def _decoder_layout(family, n_layers, M, D, F):
    """Tensor plan of decoder-only families: list of (name, kind, shape)."""
    plan = [("model.embed_tokens.weight", "w", (64, D)), ("model.norm.weight", "gamma", (D,))]
    n_dense = 1 if family == "deepseek_v3" else 0
    period = 2 if family == "jamba" else 1
    total = n_dense + n_layers * period
    routers = {L for L in range(total) if L >= n_dense and (period == 1 or L % 2 == 1)}
    layers = list(range(total)) + ([total] if family == "deepseek_v3" else [])  # + MTP layer
    for L in layers:
        p = f"model.layers.{L}."
        plan += [(p + "self_attn.q_proj.weight", "w", (F, D)),
                 (p + "self_attn.o_proj.weight", "w", (D, F)),
                 (p + "input_layernorm.weight", "gamma", (D,))]
        ff_norm = p + ("pre_ff_layernorm" if family == "jamba" else "post_attention_layernorm")
        plan.append((ff_norm + ".weight", "gamma", (D,)))
        if family == "phimoe":
            plan += [(p + "input_layernorm.bias", "beta", (D,)), (ff_norm + ".bias", "beta", (D,))]
        if L not in routers and L != total:
            ff = "feed_forward." if family == "jamba" else "mlp."
            plan += [(p + ff + "gate_proj.weight", "w", (F, D)),
                     (p + ff + "up_proj.weight", "w", (F, D)),
                     (p + ff + "down_proj.weight", "w", (D, F))]
            continue
        if family in ("mixtral", "arctic", "phimoe"):
            plan.append((p + "block_sparse_moe.gate.weight", "router", (M, D)))
            for e in range(2):
                for w, s in (("w1", (F, D)), ("w2", (D, F)), ("w3", (F, D))):
                    plan.append((p + f"block_sparse_moe.experts.{e}.{w}.weight", "w", s))
            if family == "arctic":
                plan += [(p + "residual_layernorm.weight", "gamma", (D,)),
                         (p + "residual_mlp.w1.weight", "w", (F, D))]
        elif family in ("olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3"):
            plan.append((p + "mlp.gate.weight", "router", (M, D)))
            if family == "deepseek_v3":
                plan.append((p + "mlp.gate.e_score_correction_bias", "selbias", (M,)))
                plan.append((p + "mlp.shared_experts.gate_proj.weight", "w", (F, D)))
            for e in range(2):
                for w, s in (("gate_proj", (F, D)), ("up_proj", (F, D)), ("down_proj", (D, F))):
                    plan.append((p + f"mlp.experts.{e}.{w}.weight", "w", s))
            if family == "qwen2_moe":
                plan += [(p + "mlp.shared_expert_gate.weight", "w", (1, D)),
                         (p + "mlp.shared_expert.gate_proj.weight", "w", (F, D))]
            if L == total:  # DeepSeek-V3's multi-token-prediction module
                plan += [(p + "eh_proj.weight", "w", (F, 2 * D)),
                         (p + "enorm.weight", "gamma", (D,))]
        elif family == "jamba":
            plan.append((p + "feed_forward.router.weight", "router", (M, D)))
            plan.append((p + "feed_forward.experts.0.gate_proj.weight", "w", (F, D)))
        elif family == "granite_moe":
            plan += [(p + "block_sparse_moe.router.layer.weight", "router", (M, D)),
                     (p + "block_sparse_moe.input_linear.weight", "w", (M, 2 * F, D)),
                     (p + "block_sparse_moe.output_linear.weight", "w", (M, D, F))]
        elif family == "gpt_oss":
            plan += [(p + "mlp.router.weight", "router", (M, D)),
                     (p + "mlp.router.bias", "rbias", (M,)),
                     (p + "mlp.experts.gate_up_proj", "w", (M, D, 2 * F)),
                     (p + "mlp.experts.gate_up_proj_bias", "w", (M, 2 * F))]
    return plan, total


# --------------------------------------------------------------------------- issue 22's families
# Per family (from its modeling code, see discosim/checkpoints/families.py; written here
# independently of the reader): layer prefix, MoE block name, router key, norm in front of the
# router, the selection bias (key, shape), dense layers and the MTP module.
NEW_FAMILIES = {
    "deepseek_v2": dict(block="mlp.", router="gate.weight", dense_first=1),
    "llama4": dict(prefix="language_model.model.", block="feed_forward.",
                   router="router.weight", period=2),
    "cohere2_moe": dict(block="mlp.", router="gate.weight", norm="input_layernorm"),
    "jetmoe": dict(block="mlp.", router="router.layer.weight"),
    "hunyuan_v1_moe": dict(block="mlp.", router="gate.wg.weight"),
    "qwen3_next": dict(block="mlp.", router="gate.weight", plus_one=True),
    "qwen3_5_moe": dict(prefix="model.language_model.", block="mlp.", router="gate.weight",
                        plus_one=True, mtp="mtp."),
    "qwen3_vl_moe": dict(prefix="model.language_model.", block="mlp.", router="gate.weight"),
    "minimax_m2": dict(block="block_sparse_moe.", router="gate.weight",
                       selbias=("e_score_correction_bias", "vector")),
    "exaone_moe": dict(block="mlp.", router="gate.weight", dense_first=1, mtp="mtp.",
                       selbias=("gate.e_score_correction_bias", "vector")),
    "ernie4_5_moe": dict(block="mlp.", router="gate.weight", dense_first=1, mtp="mtp_block.",
                         router_dtype="float32",
                         selbias=("moe_statics.e_score_correction_bias", "row")),
    "flex_olmo": dict(block="mlp.", router="gate.weight", norm=None),
    "glm4_moe": dict(block="mlp.", router="gate.weight", dense_first=1, mtp="layer",
                     selbias=("gate.e_score_correction_bias", "vector")),
    # GLM-4.5V: GLM-4-MoE's layer under the wrapper's text model; a layer past
    # num_hidden_layers stands for an MTP layer, which Glm4vMoeTextModel never builds
    "glm4v_moe": dict(prefix="model.language_model.", block="mlp.", router="gate.weight",
                      dense_first=1, mtp="layer",
                      selbias=("gate.e_score_correction_bias", "vector")),
    "minimax": dict(block="block_sparse_moe.", router="gate.weight"),
}
GROUPED = ("deepseek_v3", "deepseek_v2", "exaone_moe", "glm4_moe", "glm4v_moe")


def _new_layout(family, n_layers, M, D, F):
    """Tensor plan of issue 22's families: list of (name, kind, shape), and the layer count."""
    spec = NEW_FAMILIES[family]
    pre = spec.get("prefix", "model.")
    blk = spec["block"]
    dense_first, period = spec.get("dense_first", 0), spec.get("period", 1)
    total = dense_first + n_layers * period
    moe = [L for L in range(total) if L >= dense_first and (L - dense_first) % period == period - 1]
    plan = [(pre + "embed_tokens.weight", "w", (64, D)), (pre + "norm.weight", "gamma", (D,))]
    if pre != "model.":  # the wrapper's vision tower: a look-alike-free neighbour
        vis = "vision_model." if pre.startswith("language_model") else "model.visual."
        plan += [(vis + "blocks.0.attn.qkv.weight", "w", (3 * F, F)),
                 (vis + "blocks.0.mlp.gate_proj.weight", "w", (F, F))]
    layers = list(range(total)) + ([total] if spec.get("mtp") == "layer" else [])
    gamma = "gamma1p" if spec.get("plus_one") else "gamma"
    for L in layers:
        p = f"{pre}layers.{L}."
        att = "self_attention." if family == "jetmoe" else "self_attn."
        plan += [(p + att + "q_proj.weight", "w", (F, D)), (p + att + "o_proj.weight", "w", (D, F))]
        if family == "jetmoe":  # mixture-of-attention-heads router: a second router, not audited
            plan += [(p + "self_attention.experts.router.layer.weight", "w", (M, D)),
                     (p + "self_attention.experts.input_linear.weight", "w", (M, F, D))]
        if family == "flex_olmo":  # norms after attention and MLP, none in front of the router
            plan += [(p + "post_attention_layernorm.weight", "gamma", (D,)),
                     (p + "post_feedforward_layernorm.weight", "gamma", (D,))]
        elif family == "cohere2_moe":  # parallel block: one norm feeds attention and MLP
            plan.append((p + "input_layernorm.weight", gamma, (D,)))
        else:
            plan += [(p + "input_layernorm.weight", gamma, (D,)),
                     (p + "post_attention_layernorm.weight", gamma, (D,))]
        if L not in moe and L != total:
            plan += [(p + blk + "gate_proj.weight", "w", (F, D)),
                     (p + blk + "up_proj.weight", "w", (F, D)),
                     (p + blk + "down_proj.weight", "w", (D, F))]
            continue
        rdtype = spec.get("router_dtype")
        plan.append((p + blk + spec["router"], ("router", rdtype) if rdtype else "router",
                     (M, D)))
        if "selbias" in spec:
            key, shape = spec["selbias"]
            plan.append((p + blk + key, "selbias", (M,) if shape == "vector" else (1, M)))
        if family in ("qwen3_next", "qwen3_5_moe"):
            plan += [(p + blk + "shared_expert_gate.weight", "w", (1, D)),
                     (p + blk + "shared_expert.gate_proj.weight", "w", (F, D))]
        if family in ("deepseek_v2", "exaone_moe", "ernie4_5_moe", "glm4_moe", "glm4v_moe"):
            plan.append((p + blk + "shared_experts.gate_proj.weight", "w", (F, D)))
        if family == "llama4":
            plan += [(p + blk + "experts.gate_up_proj", "w", (M, D, 2 * F)),
                     (p + blk + "shared_expert.gate_proj.weight", "w", (F, D))]
        elif family == "jetmoe":
            plan += [(p + blk + "input_linear.weight", "w", (M, 2 * F, D)),
                     (p + blk + "bias", "rbias", (D,))]
        elif family in ("minimax", "minimax_m2"):
            plan += [(p + blk + f"experts.{e}.w1.weight", "w", (F, D)) for e in range(2)]
        elif family == "hunyuan_v1_moe":
            plan += [(p + blk + "shared_mlp.gate_proj.weight", "w", (F, D))]
            plan += [(p + blk + f"experts.{e}.gate_proj.weight", "w", (F, D)) for e in range(2)]
        else:
            plan += [(p + blk + f"experts.{e}.gate_proj.weight", "w", (F, D)) for e in range(2)]
        if L == total:  # GLM-4-MoE's multi-token-prediction layer
            plan += [(p + "eh_proj.weight", "w", (F, 2 * D)), (p + "enorm.weight", "gamma", (D,))]
    if spec.get("mtp", "layer") != "layer":  # a separate MTP module, ignored by transformers
        m = spec["mtp"]
        plan += [(m + "fc.weight", "w", (D, 2 * D)),
                 (m + "layers.0.mlp.gate.weight", "w", (M, D)),
                 (m + "layers.0.post_attention_layernorm.weight", "gamma", (D,))]
    return plan, total


def _new_config(family, M, D, k, n_group, topk_group, total):
    dec = {"hidden_size": D, "num_hidden_layers": total, "intermediate_size": 4 * D,
           "rms_norm_eps": 1e-5, "num_experts_per_tok": k}
    spec = NEW_FAMILIES[family]
    arch = {"deepseek_v2": "DeepseekV2ForCausalLM", "llama4": "Llama4ForConditionalGeneration",
            "cohere2_moe": "Cohere2MoeForCausalLM", "jetmoe": "JetMoeForCausalLM",
            "hunyuan_v1_moe": "HunYuanMoEV1ForCausalLM", "qwen3_next": "Qwen3NextForCausalLM",
            "qwen3_5_moe": "Qwen3_5MoeForConditionalGeneration",
            "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration",
            "minimax_m2": "MiniMaxM2ForCausalLM", "exaone_moe": "ExaoneMoeForCausalLM",
            "ernie4_5_moe": "Ernie4_5_MoeForCausalLM", "flex_olmo": "FlexOlmoForCausalLM",
            "glm4_moe": "Glm4MoeForCausalLM", "minimax": "MiniMaxForCausalLM",
            "glm4v_moe": "Glm4vMoeForConditionalGeneration"}[family]
    if family == "deepseek_v2":
        cfg = {**dec, "n_routed_experts": M, "n_shared_experts": 2, "first_k_dense_replace": 1,
               "topk_method": "group_limited_greedy" if n_group and n_group > 1 else "greedy",
               "n_group": n_group, "topk_group": topk_group, "scoring_func": "softmax",
               "routed_scaling_factor": 1.0, "norm_topk_prob": False, "moe_layer_freq": 1}
    elif family == "llama4":
        text = {**dec, "model_type": "llama4_text", "num_local_experts": M,
                "interleave_moe_layer_step": 2, "rms_norm_eps": 1e-5}
        return {"model_type": "llama4", "architectures": [arch], "text_config": text,
                "vision_config": {"model_type": "llama4_vision_model", "hidden_size": 48,
                                  "num_hidden_layers": 1}}
    elif family == "cohere2_moe":
        cfg = {**dec, "num_experts": M, "expert_selection_fn": "softmax", "norm_topk_prob": True,
               "layer_norm_eps": 1e-5, "mlp_layer_types": ["sparse"] * total,
               "num_shared_experts": 1, "shared_expert_combination_strategy": "sum"}
    elif family == "jetmoe":
        # JetMoeRMSNorm(config.hidden_size): the default eps, whatever the config says
        cfg = {**dec, "num_local_experts": M, "kv_channels": 8, "rms_norm_eps": 1e-5}
    elif family == "hunyuan_v1_moe":
        cfg = {**dec, "num_experts": M, "moe_topk": [k] * total, "use_mixed_mlp_moe": True}
        del cfg["num_experts_per_tok"]
    elif family in ("qwen3_next",):
        cfg = {**dec, "num_experts": M, "decoder_sparse_step": 1, "mlp_only_layers": [],
               "norm_topk_prob": True, "rms_norm_eps": 1e-6}
    elif family in ("qwen3_5_moe", "qwen3_vl_moe"):
        text = {**dec, "model_type": family + "_text", "num_experts": M, "rms_norm_eps": 1e-6}
        return {"model_type": family, "architectures": [arch], "text_config": text,
                "vision_config": {"hidden_size": 48, "depth": 1}}
    elif family == "minimax_m2":
        cfg = {**dec, "num_local_experts": M, "scoring_func": "sigmoid", "use_routing_bias": True,
               "rms_norm_eps": 1e-6}
    elif family == "exaone_moe":
        cfg = {**dec, "num_experts": M, "n_group": n_group, "topk_group": topk_group,
               "first_k_dense_replace": 1, "num_shared_experts": 1, "norm_topk_prob": True,
               "routed_scaling_factor": 2.5,
               "mlp_layer_types": ["dense"] + ["sparse"] * (total - 1)}
    elif family == "ernie4_5_moe":
        cfg = {**dec, "moe_num_experts": M, "moe_k": k, "moe_layer_start_index": 1,
               "moe_layer_end_index": total - 1, "moe_layer_interval": 1,
               "moe_num_shared_experts": 1, "moe_norm_min": 1e-12, "use_bias": False}
        del cfg["num_experts_per_tok"]
    elif family == "flex_olmo":
        cfg = {**dec, "num_experts": M, "norm_topk_prob": False}
    elif family == "glm4v_moe":
        # Glm4vMoeConfig: every text field under text_config (model_type glm4v_moe_text)
        text = {**dec, "model_type": "glm4v_moe_text", "n_routed_experts": M, "n_group": n_group,
                "topk_group": topk_group, "first_k_dense_replace": 1, "n_shared_experts": 1,
                "routed_scaling_factor": 1.0, "norm_topk_prob": True}
        return {"model_type": family, "architectures": [arch], "text_config": text,
                "vision_config": {"model_type": "glm4v_moe_vision", "hidden_size": 48,
                                  "depth": 1}}
    elif family == "glm4_moe":
        cfg = {**dec, "n_routed_experts": M, "n_group": n_group, "topk_group": topk_group,
               "first_k_dense_replace": 1, "n_shared_experts": 1, "num_nextn_predict_layers": 1,
               "routed_scaling_factor": 2.5, "norm_topk_prob": True}
    else:  # minimax
        cfg = {**dec, "num_local_experts": M, "postnorm": False,
               "layer_types": ["full_attention"] * total}
    assert spec is not None
    return {"model_type": family, "architectures": [arch], **cfg}


def _dbrx_layout(n_layers, M, D, F):
    plan = [("transformer.wte.weight", "w", (64, D)), ("transformer.norm_f.weight", "gamma", (D,))]
    for L in range(n_layers):
        p = f"transformer.blocks.{L}."
        plan += [(p + "norm_attn_norm.norm_1.weight", "gamma", (D,)),
                 (p + "norm_attn_norm.attn.Wqkv.weight", "w", (3 * F, D)),
                 (p + "norm_attn_norm.norm_2.weight", "gamma", (D,)),
                 (p + "ffn.router.layer.weight", "router", (M, D)),
                 (p + "ffn.experts.mlp.w1", "w", (M * F, D)),
                 (p + "ffn.experts.mlp.v1", "w", (M * F, D))]
    return plan


def _switch_layout(n_layers, M, D, F):
    plan = [("shared.weight", "w", (64, D)), ("encoder.final_layer_norm.weight", "gamma", (D,))]
    n_enc = (n_layers + 1) // 2
    n_dec = n_layers - n_enc
    for stack, n, ff in (("encoder", n_enc, 1), ("decoder", n_dec, 2)):
        for b in range(2 * n):  # sparse every second block (sparse_step 2: odd blocks)
            p = f"{stack}.block.{b}.layer."
            plan += [(p + "0.SelfAttention.q.weight", "w", (F, D)),
                     (p + "0.layer_norm.weight", "gamma", (D,))]
            if stack == "decoder":
                plan += [(p + "1.EncDecAttention.q.weight", "w", (F, D)),
                         (p + "1.layer_norm.weight", "gamma", (D,))]
            plan.append((p + f"{ff}.layer_norm.weight", "gamma", (D,)))
            if b % 2 == 1:
                plan.append((p + f"{ff}.mlp.router.classifier.weight", "router", (M, D)))
                for e in range(2):
                    plan.append((p + f"{ff}.mlp.experts.expert_{e}.wi.weight", "w", (F, D)))
            else:
                plan.append((p + f"{ff}.DenseReluDense.wi.weight", "w", (F, D)))
    return plan, n_enc, n_dec


def _config(family, n_layers, M, D, k, dtype, n_group, topk_group, total, n_enc, n_dec):
    base = {"_name_or_path": f"synthetic/{family}", "torch_dtype": dtype, "vocab_size": 64}
    dec = {"hidden_size": D, "num_hidden_layers": total, "intermediate_size": 4 * D,
           "rms_norm_eps": 1e-5, "num_experts_per_tok": k}
    if family in ("mixtral", "arctic", "phimoe", "granite_moe", "gpt_oss"):
        mt, arch = {"mixtral": ("mixtral", "MixtralForCausalLM"),
                    "arctic": ("arctic", "ArcticForCausalLM"),
                    "phimoe": ("phimoe", "PhiMoEForCausalLM"),
                    "granite_moe": ("granitemoe", "GraniteMoeForCausalLM"),
                    "gpt_oss": ("gpt_oss", "GptOssForCausalLM")}[family]
        cfg = {**dec, "model_type": mt, "architectures": [arch], "num_local_experts": M}
        if family == "arctic":
            cfg.update(moe_layer_frequency=1, parallel_attn_mlp_res=True)
        if family == "gpt_oss":
            cfg["experts_per_token"] = k
    elif family in ("olmoe", "qwen2_moe", "qwen3_moe"):
        arch = {"olmoe": "OlmoeForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
                "qwen3_moe": "Qwen3MoeForCausalLM"}[family]
        cfg = {**dec, "model_type": family, "architectures": [arch], "num_experts": M,
               "norm_topk_prob": family != "qwen2_moe", "decoder_sparse_step": 1,
               "mlp_only_layers": []}
        if family == "qwen2_moe":
            cfg["shared_expert_intermediate_size"] = 4 * D
    elif family == "deepseek_v3":
        cfg = {**dec, "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"],
               "n_routed_experts": M, "n_shared_experts": 1, "n_group": n_group,
               "topk_group": topk_group, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
               "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": True,
               "num_nextn_predict_layers": 1}
    elif family == "jamba":
        cfg = {**dec, "model_type": "jamba", "architectures": ["JambaForCausalLM"],
               "num_experts": M, "expert_layer_period": 2, "expert_layer_offset": 1,
               "attn_layer_period": 8, "attn_layer_offset": 4}
    elif family == "dbrx":
        cfg = {"model_type": "dbrx", "architectures": ["DbrxForCausalLM"], "d_model": D,
               "n_layers": n_layers, "n_heads": 2,
               "ffn_config": {"moe_num_experts": M, "moe_top_k": k, "ffn_hidden_size": 4 * D,
                              "moe_jitter_eps": 0.0}}
    elif family == "switch":
        cfg = {"model_type": "switch_transformers",
               "architectures": ["SwitchTransformersForConditionalGeneration"], "d_model": D,
               "num_experts": M, "num_layers": 2 * n_enc, "num_decoder_layers": 2 * n_dec,
               "encoder_sparse_step": 2, "decoder_sparse_step": 2, "router_bias": False,
               "expert_capacity": 64}
    elif family in NEW_FAMILIES:
        cfg = _new_config(family, M, D, k, n_group, topk_group, total)
    else:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILY_NAMES)}")
    return {**base, **cfg}


def make_checkpoint(directory, family, *, n_layers=2, n_experts=8, dim=32, k=2, dtype="bfloat16",
                    shards=2, seed=0, big_tensor_mb=0, n_group=None, topk_group=None,
                    overrides=None, config_overrides=None, write_config=True,
                    return_tensors=False):
    """Write a small checkpoint of ``family`` into ``directory`` and return its path.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    family : str
        One of :data:`FAMILY_NAMES`.
    n_layers : int
        Number of routers (dense layers, Jamba's expert-free layers, DeepSeek-V3's MTP layer and
        Switch's dense blocks come on top).
    n_experts, dim, k : int
        M, D and top-k (written to config.json; Switch is top-1 whatever k).
    dtype : {'bfloat16', 'float16', 'float32', 'float64'}
        Storage of every tensor except DeepSeek-V3's correction bias (float32, as in the real
        checkpoints).
    shards : int
        1 writes ``model.safetensors`` and no index.
    big_tensor_mb : float
        Adds an expert tensor of about this size (written in chunks) to the last shard.
    n_group, topk_group : int, optional
        DeepSeek-V3 groups (default 4 groups, keep 2, when M allows).
    overrides : dict, optional
        ``{name: float64 array | (dtype, array) | None}`` replaces, adds (``None`` deletes)
        tensors before writing; for broken checkpoints.
    config_overrides : dict, optional
        Keys to set in config.json (value None deletes the key).
    write_config : bool
        False writes no config.json.
    return_tensors : bool
        Also return ``{name: float64 array}`` of the exact stored values (not the big tensor).

    Returns
    -------
    str, or (str, dict) with ``return_tensors``
    """
    if family not in FAMILY_NAMES:
        raise InputError(f"unknown family {family!r}; choose one of {', '.join(FAMILY_NAMES)}")
    if dtype not in DTYPE_CODES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_CODES)}")
    for name, value, low in (("n_layers", n_layers, 1), ("n_experts", n_experts, 2),
                             ("dim", dim, 1), ("k", k, 1), ("shards", shards, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if not big_tensor_mb >= 0:
        raise InputError(f"big_tensor_mb must be >= 0, got {big_tensor_mb!r}")
    # the routers alone, before the plan of every tensor is even listed
    check_memory([(f"{n_layers} routers of {n_experts} x {dim}", n_layers * n_experts * dim,
                   "synthetic")], "write fewer layers, experts or a smaller dim")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    # F (expert / MLP width) stays small: the surrounding tensors only have to exist with the
    # real names, and DeepSeek-V3-sized routers (256 x 7168, 58 layers) must stay quick to write.
    M, D, F = n_experts, dim, min(16, max(4, dim // 4))
    if family in GROUPED and n_group is None:
        n_group = 4 if M % 4 == 0 and M >= 8 else 1
        topk_group = max(1, n_group // 2) if topk_group is None else topk_group
    elif family in GROUPED and topk_group is None:
        topk_group = max(1, n_group // 2)
    n_enc = n_dec = 0
    total = n_layers
    if family == "dbrx":
        plan = _dbrx_layout(n_layers, M, D, F)
    elif family == "switch":
        plan, n_enc, n_dec = _switch_layout(n_layers, M, D, F)
    elif family in NEW_FAMILIES:
        plan, total = _new_layout(family, n_layers, M, D, F)
    else:
        plan, total = _decoder_layout(family, n_layers, M, D, F)

    # every tensor but the big one is drawn, rounded and encoded in memory: refuse before drawing
    entries = sum(math.prod(shape) for _, _, shape in plan)
    check_memory([(f"{len(plan)} tensors of {entries} entries in all", entries, "synthetic")],
                 "write fewer layers, experts or a smaller dim")
    values = {}
    for name, kind, shape in plan:
        code = dtype
        if isinstance(kind, tuple):  # a router stored in its own dtype (ERNIE's float32 gate)
            kind, code = kind
        if kind == "router":
            v = representable(rng, shape, code, scale=1.0 / np.sqrt(D))
        elif kind == "gamma1p":  # a (1 + w) norm's weight is stored centred on 0
            v = representable(rng, shape, dtype, scale=0.2)
        elif kind == "gamma":
            v = representable(rng, shape, dtype, scale=0.2, offset=1.0, positive=True)
        elif kind == "selbias":
            v = representable(rng, shape, "float32", scale=0.05)
        else:  # rbias, beta, w
            v = representable(rng, shape, dtype, scale=0.1)
        code = "float32" if kind == "selbias" else code
        values[name] = (code, v)
    for name, new in (overrides or {}).items():
        if new is None:
            values.pop(name, None)
        elif isinstance(new, tuple):
            values[name] = (new[0], np.asarray(new[1], dtype=np.float64))
        else:
            values[name] = (values[name][0] if name in values else dtype,
                            np.asarray(new, dtype=np.float64))

    tensors = {name: (DTYPE_CODES[code], v.shape, encode(v, code))
               for name, (code, v) in values.items()}
    if big_tensor_mb:
        rows = max(1, int(big_tensor_mb * 2 ** 20) // (_ITEMSIZE[DTYPE_CODES[dtype]] * D))
        big_name = {"dbrx": "transformer.blocks.0.ffn.experts.mlp.w2",
                    "switch": "encoder.block.1.layer.1.mlp.experts.expert_big.wo.weight"}.get(
            family, "model.layers.0.mlp.experts.fused_down_proj.weight")
        tensors[big_name] = (DTYPE_CODES[dtype], (rows, D), _Big((rows, D), dtype))

    names = list(tensors)
    if shards <= 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    else:
        groups = [dict() for _ in range(shards)]
        for j, name in enumerate(names):
            s = shards - 1 if isinstance(tensors[name][2], _Big) else j % shards
            groups[s][name] = tensors[name]
        weight_map, total_size = {}, 0
        for s, group in enumerate(groups):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            total_size += write_safetensors(os.path.join(directory, fname), group)
            weight_map.update({name: fname for name in group})
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        with open_atomic(os.path.join(directory, "model.safetensors.index.json"), "w") as fh:
            json.dump(index, fh, indent=2)
    if write_config:
        cfg = _config(family, n_layers, M, D, k, dtype, n_group, topk_group, total, n_enc, n_dec)
        for key, val in (config_overrides or {}).items():
            if val is None:
                cfg.pop(key, None)
            else:
                cfg[key] = val
        with open_atomic(os.path.join(directory, "config.json"), "w") as fh:
            json.dump(cfg, fh, indent=2)
    if return_tensors:
        return directory, {name: v for name, (code, v) in values.items()}
    return directory


def main(argv=None):
    """``python -m discosim.checkpoints.synthetic OUT_DIR --family F ...``: write a checkpoint.

    Bad input, an OUT_DIR that cannot be written and Ctrl-C end in one line on stderr (exit
    status 2 or 130), never a traceback: the error boundary of ``discosim``.
    """
    from discosim._core.cli import ArgumentParser, HelpFormatter, run_guarded

    ap = ArgumentParser(prog="python -m discosim.checkpoints.synthetic",
                        formatter_class=HelpFormatter,
                        description="Write a synthetic MoE checkpoint (safetensors shards, index, "
                                    "config.json) with a family's real names.")
    ap.add_argument("out", help="directory to write (created if missing)")
    ap.add_argument("--family", default="mixtral", choices=FAMILY_NAMES, help="model family")
    ap.add_argument("--layers", type=int, default=4, help="number of routers")
    ap.add_argument("--experts", type=int, default=8, help="experts per router (M)")
    ap.add_argument("--dim", type=int, default=64, help="hidden size (D)")
    ap.add_argument("--k", type=int, default=2, help="experts per token")
    ap.add_argument("--dtype", default="bfloat16", choices=tuple(DTYPE_CODES),
                    help="storage type of the router weights")
    ap.add_argument("--shards", type=int, default=2, help="safetensors files")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights")
    ap.add_argument("--n-group", type=int, default=None, help="DeepSeek-V3 n_group")
    ap.add_argument("--topk-group", type=int, default=None, help="DeepSeek-V3 topk_group")
    return run_guarded(_main, ap, argv)


def _main(parser, argv):
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out} exists and is not a directory")
    path = make_checkpoint(args.out, args.family, n_layers=args.layers,
                           n_experts=args.experts, dim=args.dim, k=args.k, dtype=args.dtype,
                           shards=args.shards, seed=args.seed, n_group=args.n_group,
                           topk_group=args.topk_group)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
