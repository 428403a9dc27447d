"""Synthetic checkpoints of every MoE family, written independently of discosim's own writer.

Each case writes what a hub model directory of the family holds, at toy size: ``config.json`` with
the family's own field names (``num_local_experts`` / ``num_experts`` / ``n_routed_experts`` /
``moe_num_experts`` / ``ffn_config.moe_num_experts``, ``rms_norm_eps`` / ``layer_norm_eps`` /
``layer_norm_epsilon``, ``text_config`` for multimodal wrappers, ...), the tensor names of the hub
checkpoints (routers, the norms in front of them, router and selection biases under their own
names) and the look-alikes a reader must not take for routers (expert ``gate_proj`` / ``w1``,
``shared_expert_gate``, dense layers' ``mlp.gate_proj``, MTP layers, residual MLPs, post-norms,
vision towers, MXFP4 ``uint8`` blocks), in two shards with ``model.safetensors.index.json``.

Storage: bf16 mostly, fp32 where the real checkpoints keep it (DeepSeek-style score-correction
biases, HunYuan's ``wg``, ERNIE's gate and ``moe_statics``, Switch), written with the
``safetensors`` package (``serialize_file`` with ``TensorSpec``, which takes bf16 as raw 16-bit
words). bf16 values are rounded here (round to nearest even of the float32 bit pattern) and the
exact stored values are returned as float64 for the reference.
"""

import json
import os

import numpy as np
from safetensors import TensorSpec, serialize_file

__all__ = ["CASES", "build"]

D = 64   # hidden size of every toy model
F = 16   # intermediate size of toy MLPs


# ------------------------------------------------------------------------------- storage
def _bf16_bits(x):
    f = np.asarray(x, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16          # round to nearest, ties to even
    return u.astype(np.uint16)


def _bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def store(x, dtype):
    """(stored array, exact float64 value) of ``x`` in ``dtype``."""
    if dtype == "uint8":
        a = np.asarray(x, dtype=np.uint8)
        return a, a
    if dtype == "bfloat16":
        bits = _bf16_bits(x)
        return bits, _bf16_value(bits)
    a = np.asarray(x, dtype=dtype)
    return a, a.astype(np.float64)


class _Ckpt:
    def __init__(self, rng, dtype="bfloat16"):
        self.rng, self.dtype = rng, dtype
        self.stored, self.values, self.dtypes = {}, {}, {}

    def add(self, name, x, dtype=None):
        dtype = dtype or self.dtype
        assert name not in self.stored, name
        a, v = store(x, dtype)
        self.stored[name], self.values[name], self.dtypes[name] = a, v, dtype

    # typical tensors
    def w(self, name, shape, scale=0.3, dtype=None):
        self.add(name, self.rng.normal(0.0, scale, shape), dtype)

    def gamma(self, name, n=D, dtype=None):
        self.add(name, self.rng.uniform(0.5, 1.5, n), dtype)

    def write(self, path, config, shard_of):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as fh:
            json.dump(config, fh, indent=2)
        names = sorted(self.stored)
        files = {}
        for n in names:
            files.setdefault(shard_of(n), []).append(n)
        assert len(files) == 2, "two shards wanted"
        weight_map, total = {}, 0
        for j, (_, group) in enumerate(sorted(files.items())):
            fname = f"model-{j + 1:05d}-of-00002.safetensors"
            specs, keep = {}, []
            for n in group:
                a = np.ascontiguousarray(self.stored[n])
                keep.append(a)
                specs[n] = TensorSpec(dtype=self.dtypes[n], shape=a.shape,
                                      data_ptr=a.ctypes.data, data_len=a.nbytes)
                weight_map[n] = fname
                total += a.nbytes
            serialize_file(specs, os.path.join(path, fname), metadata={"format": "pt"})
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as fh:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)


def _layer_shard(name):
    """Even layers (and everything without a layer number) in shard 0, odd layers in shard 1."""
    for part in name.split("."):
        if part.isdigit():
            return int(part) % 2
    return 0


# ------------------------------------------------------------------------------- pieces
def _attn(c, p, norm="input_layernorm"):
    c.w(p + "self_attn.q_proj.weight", (D, D))
    c.w(p + "self_attn.k_proj.weight", (16, D))
    c.w(p + "self_attn.v_proj.weight", (16, D))
    c.w(p + "self_attn.o_proj.weight", (D, D))
    if norm:
        c.gamma(p + norm + ".weight")


def _dense_mlp(c, p, sub="mlp."):
    c.w(p + sub + "gate_proj.weight", (F, D))
    c.w(p + sub + "up_proj.weight", (F, D))
    c.w(p + sub + "down_proj.weight", (D, F))


def _experts(c, p, M, style):
    """Expert tensors: per-expert ``gate/up/down_proj`` or Mixtral ``w1/w2/w3`` (hub layouts), or
    transformers' fused 3-D ``gate_up_proj`` / ``down_proj``."""
    if style == "proj":
        for e in range(M):
            _dense_mlp(c, p, f"experts.{e}.")
    elif style == "w123":
        for e in range(M):
            c.w(p + f"experts.{e}.w1.weight", (F, D))
            c.w(p + f"experts.{e}.w2.weight", (D, F))
            c.w(p + f"experts.{e}.w3.weight", (F, D))
    else:
        c.w(p + "experts.gate_up_proj", (M, 2 * F, D))
        c.w(p + "experts.down_proj", (M, D, F))


def _embed(c, prefix="model."):
    c.w(prefix + "embed_tokens.weight", (32, D))
    c.gamma(prefix + "norm.weight")
    c.w("lm_head.weight", (32, D))


def _base(model_type, arch, **fields):
    cfg = {"architectures": [arch], "model_type": model_type, "hidden_size": D,
           "torch_dtype": "bfloat16", "vocab_size": 32, "num_attention_heads": 4,
           "num_key_value_heads": 1, "intermediate_size": F}
    cfg.update(fields)
    return cfg


# ------------------------------------------------------------------------------- families
def _mixtral_like(c, model_type, arch, *, layout="hub", n=3, M=8, k=2, eps=1e-5, extra=None):
    cfg = _base(model_type, arch, num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=k, rms_norm_eps=eps)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        moe = p + ("block_sparse_moe." if layout == "hub" else "mlp.")
        c.w(moe + "gate.weight", (M, D))
        _experts(c, moe, M, "w123" if layout == "hub" else "fused")
        if extra:
            extra(c, p, moe, i)
    return cfg


def case_mixtral(c):
    return _mixtral_like(c, "mixtral", "MixtralForCausalLM")


def case_mixtral_internal_layout(c):
    """Mixtral saved by transformers >= 5 (``mlp.gate``, fused experts), model_type mixtral."""
    return _mixtral_like(c, "mixtral", "MixtralForCausalLM", layout="internal")


def case_minimax(c):
    cfg = _mixtral_like(c, "minimax", "MiniMaxForCausalLM", M=8, k=2, eps=1e-5)
    cfg.update(layer_types=["linear_attention", "full_attention", "linear_attention"],
               full_attn_alpha_factor=3.5, full_attn_beta_factor=1.0,
               linear_attn_alpha_factor=3.5, linear_attn_beta_factor=1.0,
               mlp_alpha_factor=3.5, mlp_beta_factor=1.0)
    return cfg


def case_minimax_m2(c):
    def bias(c, p, moe, i):
        c.add(moe + "e_score_correction_bias", c.rng.normal(0, 0.05, 16), "float32")
    cfg = _mixtral_like(c, "minimax_m2", "MiniMaxM2ForCausalLM", M=16, k=4, eps=1e-6,
                        extra=bias)
    cfg.update(scoring_func="sigmoid", use_routing_bias=True, head_dim=16)
    return cfg


def case_arctic(c):
    n, M, k, freq = 4, 8, 2, 2
    cfg = _base("arctic", "ArcticForCausalLM", num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=k, rms_norm_eps=1e-5, moe_layer_frequency=freq,
                parallel_attn_mlp_res=True, use_residual=True)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        if (i + 1) % freq == 0:
            c.w(p + "block_sparse_moe.gate.weight", (M, D))
            _experts(c, p + "block_sparse_moe.", M, "w123")
            c.gamma(p + "residual_layernorm.weight")
            c.w(p + "residual_mlp.w1.weight", (F, D))
            c.w(p + "residual_mlp.w3.weight", (F, D))
            c.w(p + "residual_mlp.w2.weight", (D, F))
        else:
            c.w(p + "block_sparse_moe.mlp.w1.weight", (F, D))
            c.w(p + "block_sparse_moe.mlp.w2.weight", (D, F))
            c.w(p + "block_sparse_moe.mlp.w3.weight", (F, D))
    return cfg


def case_phimoe(c):
    n, M = 3, 8
    cfg = _base("phimoe", "PhimoeForCausalLM", num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=2, rms_norm_eps=1e-5, router_jitter_noise=0.01,
                input_jitter_noise=0.0)
    _embed(c)
    c.add("model.norm.bias", c.rng.normal(0, 0.1, D))
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.add(p + "input_layernorm.bias", c.rng.normal(0, 0.1, D))
        c.gamma(p + "post_attention_layernorm.weight")
        c.add(p + "post_attention_layernorm.bias", c.rng.normal(0, 0.3, D))
        c.w(p + "block_sparse_moe.gate.weight", (M, D))
        _experts(c, p + "block_sparse_moe.", M, "w123")
    return cfg


def _qwen_like(c, model_type, arch, *, n=4, M=8, k=2, eps=1e-6, shared=False, only=(0,),
               step=1, norm="rms", prefix="model.", text=False, dtype_cfg=None, experts="proj"):
    fields = dict(num_hidden_layers=n, num_experts=M, num_experts_per_tok=k, rms_norm_eps=eps,
                  decoder_sparse_step=step, mlp_only_layers=list(only), norm_topk_prob=False,
                  moe_intermediate_size=F)
    if text:
        cfg = {"architectures": [arch], "model_type": model_type,
               "text_config": dict(_base(model_type + "_text", arch), **fields),
               "vision_config": {"depth": 1, "hidden_size": 16}}
        cfg["text_config"].pop("architectures")
    else:
        cfg = _base(model_type, arch, **fields)
    _embed(c, prefix)
    for i in range(n):
        p = f"{prefix}layers.{i}."
        _attn(c, p)
        w = p + "post_attention_layernorm.weight"
        c.add(w, c.rng.normal(0, 0.3, D)) if norm == "rms1p" else c.gamma(w)
        if i in only or (i + 1) % step:
            _dense_mlp(c, p)
            continue
        c.w(p + "mlp.gate.weight", (M, D))
        _experts(c, p + "mlp.", M, experts)
        if shared:
            _dense_mlp(c, p, "mlp.shared_expert.")
            c.w(p + "mlp.shared_expert_gate.weight", (1, D))
    return cfg


def case_olmoe(c):
    n, M = 3, 16
    cfg = _base("olmoe", "OlmoeForCausalLM", num_hidden_layers=n, num_experts=M,
                num_experts_per_tok=4, rms_norm_eps=1e-5, norm_topk_prob=False)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "self_attn.q_norm.weight")
        c.gamma(p + "self_attn.k_norm.weight", 16)
        c.gamma(p + "post_attention_layernorm.weight")
        c.w(p + "mlp.gate.weight", (M, D))
        _experts(c, p + "mlp.", M, "proj")
    return cfg


def case_qwen2_moe(c):
    cfg = _qwen_like(c, "qwen2_moe", "Qwen2MoeForCausalLM", shared=True, step=1, only=(0,))
    cfg["shared_expert_intermediate_size"] = F
    return cfg


def case_qwen3_moe(c):
    return _qwen_like(c, "qwen3_moe", "Qwen3MoeForCausalLM", n=5, step=2, only=())


def case_qwen3_next(c):
    cfg = _qwen_like(c, "qwen3_next", "Qwen3NextForCausalLM", M=16, k=4, shared=True,
                     norm="rms1p", only=())
    cfg["layer_types"] = ["linear_attention", "linear_attention", "linear_attention",
                          "full_attention"]
    return cfg


def case_qwen3_5_moe(c):
    cfg = _qwen_like(c, "qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration", M=16, k=4,
                     shared=True, norm="rms1p", only=(), prefix="model.language_model.",
                     text=True, experts="fused")
    for key in ("decoder_sparse_step", "mlp_only_layers", "norm_topk_prob"):
        cfg["text_config"].pop(key)    # Qwen3_5MoeTextConfig deletes these fields
    c.w("model.visual.blocks.0.mlp.gate_proj.weight", (F, 16))
    c.w("mtp.layers.0.mlp.gate.weight", (16, D))
    c.gamma("mtp.layers.0.post_attention_layernorm.weight")
    return cfg


def case_qwen3_vl_moe(c):
    cfg = _qwen_like(c, "qwen3_vl_moe", "Qwen3VLMoeForConditionalGeneration", M=8, k=2,
                     only=(), prefix="model.language_model.", text=True, experts="fused")
    c.w("model.visual.blocks.0.mlp.linear_fc1.weight", (F, 16))
    c.w("model.visual.merger.linear_fc1.weight", (F, 16))
    return cfg


def _deepseek_like(c, model_type, arch, *, n=4, M=16, k=4, n_group=4, topk_group=2, first=1,
                   eps=1e-6, bias_scale=0.05, mtp=True, extra_fields=None, bias="gate"):
    cfg = _base(model_type, arch, num_hidden_layers=n, n_routed_experts=M,
                num_experts_per_tok=k, n_group=n_group, topk_group=topk_group,
                first_k_dense_replace=first, rms_norm_eps=eps, routed_scaling_factor=2.5,
                norm_topk_prob=True, n_shared_experts=1, moe_intermediate_size=F,
                topk_method="noaux_tc", scoring_func="sigmoid", moe_layer_freq=1)
    cfg.update(extra_fields or {})
    _embed(c)
    _deepseek_layers(c, "model.layers.", n, M, first, mtp,
                     {"gate": "mlp.gate.e_score_correction_bias",
                      "block": "mlp.e_score_correction_bias", None: None}[bias], bias_scale)
    return cfg


def _deepseek_layers(c, prefix, n, M, first, mtp, bias_name, bias_scale):
    """Decoder layers ``prefix{i}.`` of the DeepSeek-V3 layout: the first ``first`` dense, the
    others a router (``mlp.gate.weight``, the fp32 selection bias at ``bias_name`` unless None),
    routed and shared experts; with ``mtp``, layer ``n`` a multi-token-prediction layer."""
    for i in range(n + (1 if mtp else 0)):
        p = f"{prefix}{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        if i < first:
            _dense_mlp(c, p)
            continue
        c.w(p + "mlp.gate.weight", (M, D))
        if bias_name is not None:
            c.add(p + bias_name, c.rng.normal(0, bias_scale, M), "float32")
        _experts(c, p + "mlp.", M, "proj")
        _dense_mlp(c, p, "mlp.shared_experts.")
        if i == n:  # DeepSeek-V3 / GLM-4.5 multi-token-prediction layer
            c.gamma(p + "enorm.weight")
            c.gamma(p + "hnorm.weight")
            c.w(p + "eh_proj.weight", (D, 2 * D))


def case_deepseek_v3(c):
    return _deepseek_like(c, "deepseek_v3", "DeepseekV3ForCausalLM")


def case_kimi_k2(c):
    return _deepseek_like(c, "kimi_k2", "DeepseekV3ForCausalLM", n_group=1, topk_group=1,
                          M=16, k=4, mtp=False)


def case_glm4_moe(c):
    cfg = _deepseek_like(c, "glm4_moe", "Glm4MoeForCausalLM", n_group=1, topk_group=1, M=16,
                         k=4, first=1, eps=1e-5)
    cfg.update(num_nextn_predict_layers=1, partial_rotary_factor=0.5, use_qk_norm=True)
    for key in ("topk_method", "scoring_func", "moe_layer_freq"):
        cfg.pop(key)
    return cfg


def _glm4v_moe(c, *, n=4, M=16, k=4, text_fields=None):
    """GLM-4.5V as convert_glm4v_moe_mgt_weights_to_hf.py writes it:
    Glm4vMoeForConditionalGeneration with the text model under ``model.language_model.`` (the
    first layers dense, their MLP at ``mlp.gate_proj``;
    sparse layers with ``mlp.gate.weight``, the fp32 ``mlp.gate.e_score_correction_bias``,
    per-expert and shared-expert MLPs), the vision tower under ``model.visual.`` (its own
    ``mlp.gate_proj``, ``norm1``/``norm2``) and, past num_hidden_layers, a GLM-4.5-style MTP layer
    that Glm4vMoeTextModel never builds. Text fields under ``text_config``."""
    text = {"model_type": "glm4v_moe_text", "hidden_size": D, "intermediate_size": F,
            "moe_intermediate_size": F, "num_hidden_layers": n, "num_attention_heads": 4,
            "num_key_value_heads": 1, "n_routed_experts": M, "n_shared_experts": 1,
            "num_experts_per_tok": k, "norm_topk_prob": True, "rms_norm_eps": 1e-5,
            "vocab_size": 32, "partial_rotary_factor": 0.5, "attention_bias": True,
            "torch_dtype": "bfloat16"}
    text.update(text_fields or {})
    cfg = {"architectures": ["Glm4vMoeForConditionalGeneration"], "model_type": "glm4v_moe",
           "text_config": text,
           "vision_config": {"hidden_size": 16, "depth": 1, "num_heads": 2,
                             "intermediate_size": F, "out_hidden_size": D},
           "image_token_id": 151363, "video_token_id": 151364}
    first = text.get("first_k_dense_replace", 1)
    _embed(c, "model.language_model.")
    _deepseek_layers(c, "model.language_model.layers.", n, M, first, True,
                     "mlp.gate.e_score_correction_bias", 0.05)
    v = "model.visual.blocks.0."
    c.gamma(v + "norm1.weight", 16)
    c.gamma(v + "norm2.weight", 16)
    c.w(v + "attn.qkv.weight", (48, 16))
    for name, shape in (("gate_proj", (F, 16)), ("up_proj", (F, 16)), ("down_proj", (16, F))):
        c.w(v + "mlp." + name + ".weight", shape)
    c.w("model.visual.merger.gate_proj.weight", (F, D))
    return cfg


def case_glm4v_moe(c):
    """Group-limited routing (n_group 4, topk_group 2) and a second dense layer
    (first_k_dense_replace 2): both read from text_config."""
    return _glm4v_moe(c, n=5, text_fields={"n_group": 4, "topk_group": 2,
                                           "first_k_dense_replace": 2,
                                           "routed_scaling_factor": 1.0})


def case_glm4v_moe_converter_config(c):
    """The text fields convert_glm4v_moe_mgt_weights_to_hf.py writes: n_group (1) but neither
    topk_group nor first_k_dense_replace nor routed_scaling_factor (Glm4vMoeTextConfig's
    defaults 1, 1, 1.0 apply)."""
    return _glm4v_moe(c, n=4, text_fields={"n_group": 1})


def case_glm4v_moe_default_topk_group(c):
    """n_group 4 without topk_group: Glm4vMoeTextConfig's default topk_group = 1 keeps one group
    (k = 2 of its 4 experts: with k = 4 the older 0.0 fill would disagree on a fifth of the rows,
    which the reference counts as ties)."""
    return _glm4v_moe(c, n=3, k=2, text_fields={"n_group": 4})


def case_exaone_moe(c):
    cfg = _deepseek_like(c, "exaone_moe", "ExaoneMoEForCausalLM", M=16, k=4, n_group=1,
                         topk_group=1, first=1, eps=1e-5, mtp=False, bias="block")
    cfg["num_experts"] = cfg.pop("n_routed_experts")
    cfg["num_shared_experts"] = cfg.pop("n_shared_experts")
    for key in ("topk_method", "scoring_func", "moe_layer_freq"):
        cfg.pop(key)
    cfg["mlp_layer_types"] = ["dense"] + ["sparse"] * (cfg["num_hidden_layers"] - 1)
    c.w("mtp.layers.0.mlp.gate.weight", (16, D))
    c.add("mtp.layers.0.mlp.e_score_correction_bias", c.rng.normal(0, 0.05, 16), "float32")
    return cfg


def case_exaone_moe_groups(c):
    """EXAONE-MoE with group-limited routing (n_group = 4, topk_group = 2)."""
    cfg = case_exaone_moe(c)
    cfg.update(n_group=4, topk_group=2)
    return cfg


def case_deepseek_v2(c):
    cfg = _deepseek_like(c, "deepseek_v2", "DeepseekV2ForCausalLM", M=16, k=4, n_group=4,
                         topk_group=2, bias=None, mtp=False)
    cfg.update(topk_method="group_limited_greedy", scoring_func="softmax",
               routed_scaling_factor=16.0, norm_topk_prob=False)
    return cfg


def case_deepseek_v2_greedy(c):
    """DeepSeek-V2-Lite: ``topk_method = greedy``, no groups."""
    cfg = case_deepseek_v2(c)
    cfg.update(topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0)
    return cfg


def case_dbrx(c):
    n, M = 3, 8
    cfg = {"architectures": ["DbrxForCausalLM"], "model_type": "dbrx", "d_model": D,
           "n_heads": 4, "n_layers": n, "vocab_size": 32, "torch_dtype": "bfloat16",
           "attn_config": {"kv_n_heads": 1, "clip_qkv": 8, "rope_theta": 500000},
           "ffn_config": {"moe_num_experts": M, "moe_top_k": 4, "ffn_hidden_size": F,
                          "moe_jitter_eps": 0.01}}
    c.w("transformer.wte.weight", (32, D))
    c.gamma("transformer.norm_f.weight")
    c.w("lm_head.weight", (32, D))
    for i in range(n):
        p = f"transformer.blocks.{i}."
        c.gamma(p + "norm_attn_norm.norm_1.weight")
        c.gamma(p + "norm_attn_norm.norm_2.weight")
        c.w(p + "norm_attn_norm.attn.Wqkv.weight", (3 * D, D))
        c.w(p + "norm_attn_norm.attn.out_proj.weight", (D, D))
        c.w(p + "ffn.router.layer.weight", (M, D))
        c.w(p + "ffn.experts.mlp.w1", (M * F, D))
        c.w(p + "ffn.experts.mlp.v1", (M * F, D))
        c.w(p + "ffn.experts.mlp.w2", (M * F, D))
    return cfg


def case_jamba(c):
    n, M, per, off = 4, 8, 2, 1
    cfg = _base("jamba", "JambaForCausalLM", num_hidden_layers=n, num_experts=M,
                num_experts_per_tok=2, rms_norm_eps=1e-6, expert_layer_period=per,
                expert_layer_offset=off, attn_layer_period=4, attn_layer_offset=2)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        c.gamma(p + "input_layernorm.weight")
        c.gamma(p + "pre_ff_layernorm.weight")
        c.w(p + "mamba.in_proj.weight", (2 * D, D))
        if i % per == off:
            c.w(p + "feed_forward.router.weight", (M, D))
            _experts(c, p + "feed_forward.", M, "proj")
        else:
            _dense_mlp(c, p, "feed_forward.")
    return cfg


def case_granitemoe(c, model_type="granitemoe", arch="GraniteMoeForCausalLM", shared=False):
    n, M = 3, 8
    cfg = _base(model_type, arch, num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=2, rms_norm_eps=1e-6, residual_multiplier=0.22,
                embedding_multiplier=12.0)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        c.w(p + "block_sparse_moe.router.layer.weight", (M, D))
        c.w(p + "block_sparse_moe.input_linear.weight", (M, 2 * F, D))
        c.w(p + "block_sparse_moe.output_linear.weight", (M, D, F))
        if shared:
            c.w(p + "shared_mlp.input_linear.weight", (2 * F, D))
            c.w(p + "shared_mlp.output_linear.weight", (D, F))
    if shared:
        cfg["shared_intermediate_size"] = F
    return cfg


def case_granitemoeshared(c):
    return case_granitemoe(c, "granitemoeshared", "GraniteMoeSharedForCausalLM", shared=True)


def case_gpt_oss(c):
    n, M = 3, 16
    cfg = _base("gpt_oss", "GptOssForCausalLM", num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=4, experts_per_token=4, rms_norm_eps=1e-5, head_dim=16,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                quantization_config={"quant_method": "mxfp4",
                                     "modules_to_not_convert": ["model.layers.*.mlp.router"]})
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.add(p + "self_attn.sinks", c.rng.normal(0, 1, 4))
        c.gamma(p + "post_attention_layernorm.weight")
        c.w(p + "mlp.router.weight", (M, D))
        c.add(p + "mlp.router.bias", c.rng.normal(0, 0.5, M))
        c.add(p + "mlp.experts.gate_up_proj_blocks", c.rng.integers(0, 256, (M, 2 * F, 2, 16)),
              "uint8")
        c.add(p + "mlp.experts.gate_up_proj_scales", c.rng.integers(0, 256, (M, 2 * F, 2)),
              "uint8")
        c.add(p + "mlp.experts.gate_up_proj_bias", c.rng.normal(0, 0.1, (M, 2 * F)))
        c.add(p + "mlp.experts.down_proj_blocks", c.rng.integers(0, 256, (M, D, 1, 8)), "uint8")
        c.add(p + "mlp.experts.down_proj_scales", c.rng.integers(0, 256, (M, D, 1)), "uint8")
        c.add(p + "mlp.experts.down_proj_bias", c.rng.normal(0, 0.1, (M, D)))
    return cfg


def case_switch_transformers(c):
    nl, M = 4, 8
    cfg = {"architectures": ["SwitchTransformersForConditionalGeneration"],
           "model_type": "switch_transformers", "d_model": D, "d_ff": F, "d_kv": 16,
           "num_heads": 4, "num_layers": nl, "num_decoder_layers": nl, "num_experts": M,
           "encoder_sparse_step": 2, "decoder_sparse_step": 2, "layer_norm_epsilon": 1e-6,
           "router_bias": False, "router_dtype": "float32", "expert_capacity": 64,
           "vocab_size": 32, "torch_dtype": "float32"}
    c.w("shared.weight", (32, D))
    for stack in ("encoder", "decoder"):
        c.gamma(stack + ".final_layer_norm.weight")
        for i in range(nl):
            p = f"{stack}.block.{i}.layer."
            c.gamma(p + "0.layer_norm.weight")
            c.w(p + "0.SelfAttention.q.weight", (D, D))
            ff = p + ("1." if stack == "encoder" else "2.")
            if stack == "decoder":
                c.gamma(p + "1.layer_norm.weight")
                c.w(p + "1.EncDecAttention.q.weight", (D, D))
            c.gamma(ff + "layer_norm.weight")
            if i % 2 == 1:
                c.w(ff + "mlp.router.classifier.weight", (M, D))
                for e in range(M):
                    c.w(ff + f"mlp.experts.expert_{e}.wi.weight", (F, D))
                    c.w(ff + f"mlp.experts.expert_{e}.wo.weight", (D, F))
            else:
                c.w(ff + "mlp.wi.weight", (F, D))
                c.w(ff + "mlp.wo.weight", (D, F))
    return cfg


def case_llama4(c, prefix="language_model.model.", step=2):
    n, M = 4, 16
    text = dict(_base("llama4_text", "Llama4ForCausalLM", num_hidden_layers=n,
                      num_local_experts=M, num_experts_per_tok=1, rms_norm_eps=1e-5,
                      interleave_moe_layer_step=step, intermediate_size_mlp=2 * F,
                      use_qk_norm=True, head_dim=16))
    text.pop("architectures")
    cfg = {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
           "text_config": text, "vision_config": {"model_type": "llama4_vision_model",
                                                  "hidden_size": 16},
           "torch_dtype": "bfloat16"}
    c.w(prefix + "embed_tokens.weight", (32, D))
    c.gamma(prefix + "norm.weight")
    c.w("language_model.lm_head.weight" if prefix.startswith("language") else "lm_head.weight",
        (32, D))
    c.w("vision_model.model.layers.0.mlp.fc1.weight", (F, 16))
    c.w("multi_modal_projector.linear_1.weight", (D, 16))
    for i in range(n):
        p = f"{prefix}layers.{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        if i % step == step - 1:
            c.w(p + "feed_forward.router.weight", (M, D))
            c.w(p + "feed_forward.experts.gate_up_proj", (M, D, 2 * F))
            c.w(p + "feed_forward.experts.down_proj", (M, F, D))
            _dense_mlp(c, p, "feed_forward.shared_expert.")
        else:
            _dense_mlp(c, p, "feed_forward.")
    return cfg


def case_llama4_internal_layout(c):
    """Llama-4 saved by transformers >= 5: ``model.language_model.layers.*``, every layer MoE."""
    return case_llama4(c, prefix="model.language_model.", step=1)


def case_cohere2_moe(c, rms=False):
    n, M = 4, 8
    cfg = _base("cohere2_moe", "Cohere2MoeForCausalLM", num_hidden_layers=n, num_experts=M,
                num_experts_per_tok=2, layer_norm_eps=1e-5, rms_norm_eps=1e-6 if rms else None,
                mlp_layer_types=["dense", "sparse", "sparse", "sparse"], head_dim=16,
                expert_selection_fn="sigmoid", norm_topk_prob=True, num_shared_experts=1,
                prefix_dense_intermediate_size=F, logit_scale=0.0625)
    c.w("model.embed_tokens.weight", (32, D))
    c.gamma("model.norm.weight")
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)           # input_layernorm: the only norm of the parallel block
        if i == 0:
            _dense_mlp(c, p)
            continue
        c.w(p + "mlp.gate.weight", (M, D))
        _experts(c, p + "mlp.", M, "fused")
        _dense_mlp(c, p, "mlp.shared_experts.")
    return cfg


def case_cohere2_moe_rms(c):
    """Cohere2-MoE with ``rms_norm_eps`` set: RMSNorm instead of the centring LayerNorm."""
    return case_cohere2_moe(c, rms=True)


def case_jetmoe(c):
    n, M = 3, 8
    cfg = _base("jetmoe", "JetMoeForCausalLM", num_hidden_layers=n, num_local_experts=M,
                num_experts_per_tok=2, rms_norm_eps=1e-6, kv_channels=16,
                activation_function="silu")
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        c.gamma(p + "input_layernorm.weight")
        c.gamma(p + "post_attention_layernorm.weight")
        c.w(p + "self_attention.experts.router.layer.weight", (M, D))
        c.w(p + "self_attention.experts.input_linear.weight", (M, 16, D))
        c.w(p + "self_attention.experts.output_linear.weight", (M, D, 16))
        c.add(p + "self_attention.experts.bias", np.zeros(D))
        c.w(p + "self_attention.kv_proj.weight", (32, D))
        c.w(p + "mlp.router.layer.weight", (M, D))
        c.w(p + "mlp.input_linear.weight", (M, 2 * F, D))
        c.w(p + "mlp.output_linear.weight", (M, D, F))
        c.add(p + "mlp.bias", np.zeros(D))
    return cfg


def case_hunyuan_v1_moe(c):
    n, M = 3, 16
    cfg = _base("hunyuan_v1_moe", "HunYuanMoEV1ForCausalLM", num_hidden_layers=n,
                num_experts=M, moe_topk=[4] * n, num_shared_expert=[1] * n, rms_norm_eps=1e-5,
                use_qk_norm=True, moe_intermediate_size=[F] * n, head_dim=16)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "self_attn.query_layernorm.weight", 16)
        c.gamma(p + "self_attn.key_layernorm.weight", 16)
        c.gamma(p + "post_attention_layernorm.weight")
        c.w(p + "mlp.gate.wg.weight", (M, D), dtype="float32")
        _experts(c, p + "mlp.", M, "proj")
        _dense_mlp(c, p, "mlp.shared_mlp.")
    return cfg


def case_ernie4_5_moe(c):
    n, M = 4, 16
    cfg = _base("ernie4_5_moe", "Ernie4_5_MoeForCausalLM", num_hidden_layers=n,
                moe_num_experts=M, moe_k=4, rms_norm_eps=1e-5, moe_layer_start_index=1,
                moe_layer_end_index=n - 1, moe_layer_interval=1, moe_num_shared_experts=2,
                moe_intermediate_size=F, use_bias=False, moe_use_aux_free=True,
                moe_gate_act="softmax")
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p)
        c.gamma(p + "post_attention_layernorm.weight")
        if i < 1:
            _dense_mlp(c, p)
            continue
        c.w(p + "mlp.gate.weight", (M, D), dtype="float32")
        c.add(p + "mlp.moe_statics.e_score_correction_bias", c.rng.normal(0, 0.02, (1, M)),
              "float32")
        _experts(c, p + "mlp.", M, "proj")
        _dense_mlp(c, p, "mlp.shared_experts.")
    c.w("model.mtp_block.0.mlp.gate_proj.weight", (F, D))
    return cfg


def case_flex_olmo(c):
    n, M = 3, 8
    cfg = _base("flex_olmo", "FlexOlmoForCausalLM", num_hidden_layers=n, num_experts=M,
                num_experts_per_tok=2, rms_norm_eps=1e-6, norm_topk_prob=False)
    _embed(c)
    for i in range(n):
        p = f"model.layers.{i}."
        _attn(c, p, norm=None)
        c.gamma(p + "self_attn.q_norm.weight")
        c.gamma(p + "self_attn.k_norm.weight", 16)
        c.gamma(p + "post_attention_layernorm.weight")
        c.gamma(p + "post_feedforward_layernorm.weight")
        c.w(p + "mlp.gate.weight", (M, D))
        _experts(c, p + "mlp.", M, "proj")
    return cfg


# case name -> (family = transformers model_type of the routing, writer)
CASES = {
    "mixtral": ("mixtral", case_mixtral),
    "mixtral_internal_layout": ("mixtral", case_mixtral_internal_layout),
    "arctic": ("arctic", case_arctic),
    "phimoe": ("phimoe", case_phimoe),
    "olmoe": ("olmoe", case_olmoe),
    "qwen2_moe": ("qwen2_moe", case_qwen2_moe),
    "qwen3_moe": ("qwen3_moe", case_qwen3_moe),
    "deepseek_v3": ("deepseek_v3", case_deepseek_v3),
    "kimi_k2": ("deepseek_v3", case_kimi_k2),
    "dbrx": ("dbrx", case_dbrx),
    "jamba": ("jamba", case_jamba),
    "granitemoe": ("granitemoe", case_granitemoe),
    "granitemoeshared": ("granitemoe", case_granitemoeshared),
    "gpt_oss": ("gpt_oss", case_gpt_oss),
    "switch_transformers": ("switch_transformers", case_switch_transformers),
    "deepseek_v2": ("deepseek_v2", case_deepseek_v2),
    "deepseek_v2_greedy": ("deepseek_v2", case_deepseek_v2_greedy),
    "llama4": ("llama4", case_llama4),
    "llama4_internal_layout": ("llama4", case_llama4_internal_layout),
    "cohere2_moe": ("cohere2_moe", case_cohere2_moe),
    "cohere2_moe_rms": ("cohere2_moe", case_cohere2_moe_rms),
    "jetmoe": ("jetmoe", case_jetmoe),
    "hunyuan_v1_moe": ("hunyuan_v1_moe", case_hunyuan_v1_moe),
    "qwen3_next": ("qwen3_next", case_qwen3_next),
    "qwen3_5_moe": ("qwen3_5_moe", case_qwen3_5_moe),
    "minimax_m2": ("minimax_m2", case_minimax_m2),
    "exaone_moe": ("exaone_moe", case_exaone_moe),
    "exaone_moe_groups": ("exaone_moe", case_exaone_moe_groups),
    "ernie4_5_moe": ("ernie4_5_moe", case_ernie4_5_moe),
    "flex_olmo": ("flex_olmo", case_flex_olmo),
    "glm4_moe": ("glm4_moe", case_glm4_moe),
    "minimax": ("minimax", case_minimax),
    "qwen3_vl_moe": ("qwen3_vl_moe", case_qwen3_vl_moe),
    "glm4v_moe": ("glm4v_moe", case_glm4v_moe),
    "glm4v_moe_converter_config": ("glm4v_moe", case_glm4v_moe_converter_config),
    "glm4v_moe_default_topk_group": ("glm4v_moe", case_glm4v_moe_default_topk_group),
}


def build(case, directory, seed=0):
    """Write case ``case`` into ``directory``; return (path, config, {name: float64 value})."""
    family, writer = CASES[case]
    rng = np.random.default_rng([seed, sorted(CASES).index(case)])
    c = _Ckpt(rng, "float32" if family == "switch_transformers" else "bfloat16")
    config = writer(c)
    path = os.path.join(os.fspath(directory), case)
    c.write(path, config, _layer_shard)
    return path, config, c.values
