"""Tiny random MoE models built by the transformers library itself, for the transformers tier
(tests/transformers) and the CLI conventions of ``discosim capture``.

:func:`make_tiny` builds a model of one ``model_type`` from its own config class with tiny sizes,
draws its norm weights, norm biases and routing biases away from their initial values (ones and
zeros would hide a norm folded wrongly or a bias ignored), saves it sharded in bf16 with a
word-level tokenizer, and returns the directory; None when this transformers lacks the type.
Needs transformers and torch (import this module only where they are present).
"""

import torch
import transformers as tf

__all__ = ["MODEL_TYPES", "make_tiny", "load_float64", "tokenizer", "texts", "WORDS"]

D = 64
M = 8
K = 2

# tiny sizes; a config class ignores the fields it does not have (they become attributes)
COMMON = dict(vocab_size=64, hidden_size=D, intermediate_size=32, moe_intermediate_size=16,
              shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, num_local_experts=M, num_experts=M,
              n_routed_experts=M, num_experts_per_tok=K, max_position_embeddings=256,
              pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
# per model_type: what COMMON does not cover (groups, dense layers, layer patterns)
EXTRA = {
    "deepseek_v3": dict(first_k_dense_replace=0, n_group=4, topk_group=2, q_lora_rank=16,
                        kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                        n_shared_experts=1, num_hidden_layers=3, head_dim=8,
                        num_key_value_heads=4),
    "deepseek_v2": dict(first_k_dense_replace=0, n_group=4, topk_group=2, q_lora_rank=16,
                        kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                        n_shared_experts=1, topk_method="group_limited_greedy",
                        num_key_value_heads=4),
    "glm4_moe": dict(first_k_dense_replace=0, n_group=4, topk_group=2, n_shared_experts=1),
    "jamba": dict(num_hidden_layers=4, expert_layer_period=2, expert_layer_offset=1,
                  attn_layer_period=2, attn_layer_offset=0, mamba_d_state=4, mamba_d_conv=2,
                  mamba_expand=2, use_mamba_kernels=False),
    "dbrx": dict(d_model=D, n_heads=4, n_layers=2, max_seq_len=256,
                 attn_config={"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0},
                 ffn_config={"ffn_hidden_size": 32, "moe_num_experts": M, "moe_top_k": K}),
    "switch_transformers": dict(d_model=D, d_ff=32, d_kv=16, num_layers=2, num_decoder_layers=2,
                                num_heads=4, encoder_sparse_step=1, decoder_sparse_step=1,
                                expert_capacity=1 << 20, decoder_start_token_id=0),
    "ernie4_5_moe": dict(moe_layer_start_index=0, moe_layer_interval=1, moe_k=K,
                         moe_num_experts=M),
    "hunyuan_v1_moe": dict(moe_topk=K),
    "minimax": dict(layer_types=["full_attention", "full_attention"]),
    "qwen3_next": dict(layer_types=["full_attention", "full_attention"],
                       decoder_sparse_step=1),
    "qwen3_5_moe_text": dict(layer_types=["full_attention", "full_attention"]),
    "jetmoe": dict(num_key_value_heads=4, kv_channels=16),
    "exaone_moe": dict(first_k_dense_replace=0, n_group=4, topk_group=2),
    # GLM-4.5V's text model: one dense layer first, as released; mrope sections summing to the
    # rotary half-width (head_dim 16 x partial_rotary_factor 0.5 / 2 = 4)
    "glm4v_moe": dict(num_hidden_layers=3, first_k_dense_replace=1, n_group=4, topk_group=2,
                      n_shared_experts=1, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                       "mrope_section": [2, 1, 1], "partial_rotary_factor": 0.5}),
}
# multimodal wrappers: COMMON and EXTRA go to text_config, this to vision_config; the model is
# the wrapper's image-text-to-text class (the hub checkpoint's layout, text model under
# model.language_model)
VISION = {
    "glm4v_moe": dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=32,
                      out_hidden_size=D, patch_size=2, spatial_merge_size=1,
                      temporal_patch_size=1, image_size=8),
}
# every MoE model_type of transformers that routes tokens by a learned router (the families
# issue 22 asks for); a type this transformers lacks is skipped, one discosim lacks fails
MODEL_TYPES = ("mixtral", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3", "deepseek_v2", "dbrx",
               "jamba", "granitemoe", "granitemoeshared", "gpt_oss", "switch_transformers",
               "phimoe", "llama4_text", "qwen3_next", "qwen3_5_moe_text", "glm4_moe", "minimax",
               "minimax_m2", "ernie4_5_moe", "hunyuan_v1_moe", "jetmoe", "flex_olmo",
               "exaone_moe", "cohere2_moe", "glm4v_moe")


def _config(model_type):
    fields = {**COMMON, **EXTRA.get(model_type, {})}
    try:
        if model_type in VISION:
            return tf.AutoConfig.for_model(model_type, text_config=fields,
                                           vision_config=VISION[model_type],
                                           tie_word_embeddings=False)
        return tf.AutoConfig.for_model(model_type, **fields)
    except (KeyError, ValueError):
        return None


def _auto(config):
    if config.model_type in VISION:
        return tf.AutoModelForImageTextToText
    return (tf.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False)
            else tf.AutoModelForCausalLM)


def _perturb(model, gen):
    """Norm weights and biases and routing biases away from their initial values (ones, zeros),
    so that folding a norm and adding a selection bias are both exercised."""
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            low = name.lower()
            noise = torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype)
            if "norm" in low and t.dim() == 1:
                t.add_(0.3 * noise)
            elif "e_score_correction_bias" in low or (("router" in low or "gate" in low)
                                                       and low.endswith("bias") and t.dim() == 1):
                t.add_(0.05 * noise)


def make_tiny(path, model_type="mixtral", shard="100KB"):
    """Save a tiny random ``model_type`` model (bf16, sharded) with a tokenizer in ``path``;
    returns ``path``, or None when this transformers has no such model_type."""
    config = _config(model_type)
    if config is None:
        return None
    gen = torch.Generator().manual_seed(sum(map(ord, model_type)))
    torch.manual_seed(0)
    model = _auto(config).from_config(config)
    _perturb(model, gen)
    model.to(torch.bfloat16).save_pretrained(path, max_shard_size=shard)
    tokenizer().save_pretrained(path)
    return path


def load_float64(path):
    """The model saved in ``path``, read back by transformers in float64 (the bf16 weights
    exactly, float64 arithmetic), in eval mode."""
    config = tf.AutoConfig.from_pretrained(path, local_files_only=True)
    # transformers 5's grouped-GEMM experts take no float64, its loop over experts does
    extra = ({"dtype": torch.float64, "experts_implementation": "eager"}
             if int(tf.__version__.split(".")[0]) >= 5 else {"torch_dtype": torch.float64})
    model = _auto(config).from_pretrained(path, local_files_only=True, **extra)
    return model.eval()


WORDS = [f"w{i}" for i in range(60)]


def tokenizer():
    """A byte-level BPE tokenizer over :data:`WORDS` (no download): every word is ``w``
    (``Ġw`` after a space) and its digits, pre-tokenized as Qwen's and GPT-2's are, so that
    model types for which transformers forces its own BPE class on ``tokenizer.json`` (Qwen3.5)
    read the same tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[BOS]": 1, "[EOS]": 2, "[UNK]": 3, "\u0120": 4, "w": 5}
    vocab.update({str(d): 6 + d for d in range(10)})
    vocab["\u0120w"] = 16
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("\u0120", "w")], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|\s+"),
                             behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                      bos_token="[BOS]", eos_token="[EOS]")


def texts(n, rng):
    """``n`` texts of 5 to 39 random words."""
    return [" ".join(rng.choice(WORDS, size=rng.integers(5, 40))) for _ in range(n)]
