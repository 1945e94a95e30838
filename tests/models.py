"""Tiny random models written in exactly the published formats, with safetensors from numpy (no torch).

Each writer returns a TinyModel holding what it wrote, so tests can compare a loader's output
with the truth. Weight scales keep activations near unit size and logits spread (std ~3)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitnet_wasm.bench.random_model import (  # noqa: F401  (re-exported for the tests)
    CHAT_TEMPLATE, SPECIAL_TOKENS, TRAINING_TEXT, bfloat16_bits, pack_output_dim, special_token_ids, tokenizer_json,
    write_json, write_safetensors, write_tokenizer,
)

STORAGE = {  # config torch_dtype -> (safetensors dtype, encode float32 -> stored array, decode stored -> float32)
    "bfloat16": ("bfloat16", bfloat16_bits, lambda s: (s.astype(np.uint32) << 16).view(np.float32)),
    "float16": ("float16", lambda x: x.astype(np.float16), lambda s: s.astype(np.float32)),
    "float32": ("float32", lambda x: x.copy(), lambda s: s.astype(np.float32)),
}


@dataclass
class TinyModel:
    path: Path
    config: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # HF name -> values as stored (floats decoded to f32; packed bytes as uint8)
    ternary: dict[str, np.ndarray] = field(default_factory=dict)  # HF module name -> int8 codes before packing (packed format only)
    shards: int = 1
    tokenizer: bool = True


def write_bitnet_packed(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                        intermediate: int = 96, vocab: int = 320, dtype: str = "bfloat16", shards: int = 1, tied: bool = True,
                        tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                        rope_theta: float = 500000.0) -> TinyModel:
    """microsoft/bitnet-b1.58-2B-4T's layout: uint8 weights packed along the output dim, inverse weight_scale (1,)."""
    model = _bitnet_model(path, locals(), {"quantization_config": {
        "quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}})
    rng = np.random.default_rng(seed)
    for prefix, (out, in_) in _linear_shapes(model.config).items():
        codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(out, in_), p=[0.35, 0.3, 0.35])
        model.ternary[prefix] = codes
        model.tensors[f"{prefix}.weight"] = pack_output_dim(codes)
        model.tensors[f"{prefix}.weight_scale"] = np.array([np.sqrt(in_) * rng.uniform(0.9, 1.4)], np.float32)
    return _finish(model, rng)


def write_bitnet_fp(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                    intermediate: int = 96, vocab: int = 320, dtype: str = "bfloat16", shards: int = 1, tied: bool = True,
                    tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                    rope_theta: float = 500000.0, quantization_config: dict | None = None) -> TinyModel:
    """BitNetForCausalLM with full-precision weights and no quantization_config (like bitnet-b1.58-2B-4T-bf16)."""
    extra = {"quantization_config": quantization_config} if quantization_config else {}
    return _full_precision(_bitnet_model(path, locals(), extra), seed)


def write_bitnet_1bit(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                      intermediate: int = 96, vocab: int = 320, dtype: str = "float32", shards: int = 1, tied: bool = True,
                      tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                      rope_theta: float = 500000.0) -> TinyModel:
    """Original 1-bit BitNet, as this project's trainer exports it: BitNetForCausalLM + "weight_bits": 1, float weights."""
    return _full_precision(_bitnet_model(path, locals(), {"weight_bits": 1}), seed)


def write_1bitllm(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 4,
                  intermediate: int = 96, vocab: int = 320, dtype: str = "float16", shards: int = 1, tied: bool = False,
                  tokenizer: bool = True, max_position: int = 256, rope_theta: float = 10000.0) -> TinyModel:
    """1bitLLM/bitnet_b1_58-large's format: BitnetForCausalLM (lower-case n), Llama names, fp16, SiLU, inner_attn_ln/ffn_layernorm."""
    ids = special_token_ids(vocab)
    config = {
        "architectures": ["BitnetForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": hidden,
        "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": max_position,
        "rms_norm_eps": 1e-5, "rope_theta": rope_theta, "rope_scaling": None, "tie_word_embeddings": tied,
        "attention_bias": False, "input_bits": 8, "weight_bits": 1, "initializer_range": 0.02, "pad_token_id": None,
        "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|end_of_text|>"], "torch_dtype": dtype, "use_cache": True,
    }
    return _full_precision(TinyModel(Path(path), config, shards=shards, tokenizer=tokenizer), seed, norms=("self_attn.inner_attn_ln", "mlp.ffn_layernorm"))


def _bitnet_model(path, options: dict, extra: dict) -> TinyModel:
    o = options
    ids = special_token_ids(o["vocab"])
    config = {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2", "hidden_size": o["hidden"],
        "intermediate_size": o["intermediate"], "num_hidden_layers": o["layers"], "num_attention_heads": o["heads"],
        "num_key_value_heads": o["kv_heads"], "vocab_size": o["vocab"], "max_position_embeddings": o["max_position"],
        "rms_norm_eps": 1e-5, "rope_theta": o["rope_theta"], "tie_word_embeddings": o["tied"], "attention_bias": False,
        "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True, "torch_dtype": o["dtype"],
        "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|end_of_text|>"], **extra,
    }
    if o["head_dim"] is not None:
        config["head_dim"] = o["head_dim"]
    return TinyModel(Path(path), config, shards=o["shards"], tokenizer=o["tokenizer"])


def _head_dim(c: dict) -> int:
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def _linear_shapes(c: dict) -> dict[str, tuple[int, int]]:
    h, i, d = c["hidden_size"], c["intermediate_size"], _head_dim(c)
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    shapes = {"self_attn.q_proj": (q, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h), "self_attn.o_proj": (h, q),
              "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}
    return {f"model.layers.{n}.{name}": shape for n in range(c["num_hidden_layers"]) for name, shape in shapes.items()}


def _full_precision(model: TinyModel, seed: int, norms=("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")) -> TinyModel:
    rng = np.random.default_rng(seed)
    for prefix, (out, in_) in _linear_shapes(model.config).items():
        model.tensors[f"{prefix}.weight"] = (rng.standard_normal((out, in_)) / np.sqrt(in_)).astype(np.float32)
    return _finish(model, rng, norms)


def _finish(model: TinyModel, rng, norms=("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")) -> TinyModel:
    """Adds embeddings and norms, writes the files, and replaces float tensors by the values actually stored."""
    c = model.config
    h, v = c["hidden_size"], c["vocab_size"]
    model.tensors["model.embed_tokens.weight"] = (rng.standard_normal((v, h)) * 3 / np.sqrt(h)).astype(np.float32)
    if not c["tie_word_embeddings"]:
        model.tensors["lm_head.weight"] = (rng.standard_normal((v, h)) * 3 / np.sqrt(h)).astype(np.float32)
    widths = {"input_layernorm": h, "post_attention_layernorm": h, norms[0]: h, norms[1]: c["intermediate_size"]}
    for n in range(c["num_hidden_layers"]):
        for norm, width in widths.items():
            model.tensors[f"model.layers.{n}.{norm}.weight"] = (1 + 0.1 * rng.standard_normal(width)).astype(np.float32)
    model.tensors["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(h)).astype(np.float32)

    st_dtype, encode, decode = STORAGE[c["torch_dtype"]]
    stored = {name: ("uint8", t) if t.dtype == np.uint8 else (st_dtype, encode(t)) for name, t in model.tensors.items()}
    model.tensors = {name: t if t.dtype == np.uint8 else decode(stored[name][1]) for name, t in model.tensors.items()}
    model.path.mkdir(parents=True, exist_ok=True)
    write_json(model.path / "config.json", c)
    write_safetensors(model.path, stored, model.shards)
    if model.tokenizer:
        write_tokenizer(model.path, v)
    return model
