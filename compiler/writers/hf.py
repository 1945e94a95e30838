"""Random Hugging Face checkpoints (config.json + safetensors) written in exactly the published
layouts, with numpy (no torch): the tests' tiny models and the benchmark's stand-ins.

The tensors come from the architecture's structure table (compiler/architectures.py), so a
writer cannot disagree with the loader or the graph about a name or a shape. Each writer returns
a TinyModel holding what it wrote. Weight scales keep activations near unit size and logits
spread (std ~3)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import TensorSpec, serialize_file

from ..architectures import LINEAR_NORMS, architecture
from ..checkpoint import ModelConfig
from .tokenizer import special_token_ids, write_json, write_tokenizer


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = x.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


STORAGE = {  # config torch_dtype -> (safetensors dtype, encode float32 -> stored array, decode stored -> float32)
    "bfloat16": ("bfloat16", bfloat16_bits, lambda s: (s.astype(np.uint32) << 16).view(np.float32)),
    "float16": ("float16", lambda x: x.astype(np.float16), lambda s: s.astype(np.float32)),
    "float32": ("float32", lambda x: x.copy(), lambda s: s.astype(np.float32)),
}


def pack_output_dim(codes: np.ndarray) -> np.ndarray:
    """transformers' pack_weights: rows are cut into 4 chunks of ceil(out/4); chunk i goes to bits 2i..2i+1 as code+1."""
    out, in_ = codes.shape
    rows = -(-out // 4)
    padded = np.zeros((4 * rows, in_), np.uint8)  # slots past `out` stay 0, as pack_weights leaves them
    padded[:out] = codes + 1
    return np.bitwise_or.reduce([padded[i * rows:(i + 1) * rows] << (2 * i) for i in range(4)]).astype(np.uint8)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], shards: int = 1) -> None:
    """model.safetensors, or `shards` files model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    names = list(tensors)
    groups = [names[i::shards] for i in range(shards)]
    files = ["model.safetensors"] if shards == 1 else [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    for file, group in zip(files, groups):
        arrays = {name: np.ascontiguousarray(tensors[name][1]) for name in group}
        specs = {name: TensorSpec(dtype=tensors[name][0], shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
                 for name, a in arrays.items()}
        serialize_file(specs, path / file, {"format": "pt"})
    if shards > 1:
        write_json(path / "model.safetensors.index.json", {
            "metadata": {"total_size": sum(a.nbytes for _, a in tensors.values())},
            "weight_map": {name: file for file, group in zip(files, groups) for name in group}})


@dataclass
class TinyModel:
    path: Path
    config: dict                                                   # the config.json written
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # HF name -> values as stored (floats decoded to f32; packed bytes as uint8)
    ternary: dict[str, np.ndarray] = field(default_factory=dict)  # HF module name -> int8 codes before packing (packed formats only)
    shards: int = 1
    tokenizer: bool = True


# How a writer stores each linear: as packed codes whose weight_scale divides (bitlinear) or
# multiplies (autobitlinear) the output, or as full-precision weights.
PACKED_INVERSE, PACKED_FORWARD, FULL_PRECISION = "packed-inverse", "packed-forward", "full-precision"
BITLINEAR_OFFLINE = {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}
AUTOBITLINEAR_OFFLINE = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "offline"}
AUTOBITLINEAR_ONLINE = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}


def _model_config(arch: str, o: dict) -> ModelConfig:
    return ModelConfig(arch, vocab_size=o["vocab"], hidden_size=o["hidden"], intermediate_size=o["intermediate"],
                       num_layers=o["layers"], num_heads=o["heads"], num_kv_heads=o["kv_heads"],
                       head_dim=o.get("head_dim") or o["hidden"] // o["heads"], max_position=o["max_position"],
                       rope_theta=o["rope_theta"], rms_norm_eps=o.get("rms_norm_eps", 1e-5), tie_embeddings=o["tied"])


def write_bitnet_packed(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                        intermediate: int = 96, vocab: int = 320, dtype: str = "bfloat16", shards: int = 1, tied: bool = True,
                        tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                        rope_theta: float = 500000.0, linear_class: str = "autobitlinear", linear_norm_eps: float | None = None) -> TinyModel:
    """microsoft/bitnet-b1.58-2B-4T's layout: uint8 weights packed along the output dim and a weight_scale (1,)
    that multiplies the output (autobitlinear, as published) or divides it (bitlinear). linear_norm_eps:
    quantization_config use_rms_norm with that rms_norm_eps (each linear's <proj>.rms_norm.weight)."""
    quantization = {"autobitlinear": AUTOBITLINEAR_OFFLINE, "bitlinear": BITLINEAR_OFFLINE}[linear_class]
    storage = PACKED_FORWARD if linear_class == "autobitlinear" else PACKED_INVERSE
    quantization, arch = _linear_norms(quantization, "bitnet", linear_norm_eps)
    return _write(_bitnet_model(path, locals(), {"quantization_config": quantization}), _model_config(arch, locals()), storage, seed)


def write_bitnet_fp(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                    intermediate: int = 96, vocab: int = 320, dtype: str = "bfloat16", shards: int = 1, tied: bool = True,
                    tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                    rope_theta: float = 500000.0, quantization_config: dict | None = None) -> TinyModel:
    """BitNetForCausalLM with full-precision weights: no quantization_config, or autobitlinear/online
    (microsoft/bitnet-b1.58-2B-4T-bf16)."""
    extra = {"quantization_config": quantization_config} if quantization_config else {}
    return _write(_bitnet_model(path, locals(), extra), _model_config("bitnet", locals()), FULL_PRECISION, seed)


def write_bitnet_1bit(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                      intermediate: int = 96, vocab: int = 320, dtype: str = "float32", shards: int = 1, tied: bool = True,
                      tokenizer: bool = True, head_dim: int | None = None, max_position: int = 256,
                      rope_theta: float = 500000.0) -> TinyModel:
    """Original 1-bit BitNet, as this project's trainer exports it: BitNetForCausalLM + "weight_bits": 1, float weights."""
    return _write(_bitnet_model(path, locals(), {"weight_bits": 1}), _model_config("bitnet", locals()), FULL_PRECISION, seed)


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
    model = TinyModel(Path(path), config, shards=shards, tokenizer=tokenizer)
    return _write(model, _model_config("bitnet-llama", locals()), FULL_PRECISION, seed)


def write_llama_bitnet(path: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                       intermediate: int = 96, vocab: int = 320, dtype: str = "bfloat16", shards: int = 1,
                       tokenizer: bool = True, head_dim: int | None = 32, max_position: int = 256,
                       rope_theta: float = 1000042, rms_norm_eps: float = 1e-6, linear_norm_eps: float | None = None) -> TinyModel:
    """tiiuae Falcon3-*-1.58bit / Falcon-E / HF1BitLLM Llama3-8B-1.58's layout: LlamaForCausalLM +
    bitnet quantization_config (bitlinear, offline: the weight_scale divides), SiLU, no sub-norms,
    untied bf16 lm_head kept in float, explicit head_dim (256 in Falcon3: here heads x head_dim != hidden).
    linear_norm_eps: quantization_config use_rms_norm with that rms_norm_eps (no published model has it yet)."""
    ids = special_token_ids(vocab)
    quantization, arch = _linear_norms({"modules_to_not_convert": ["lm_head"], "quant_method": "bitnet"}, "llama", linear_norm_eps)
    config = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|end_of_text|>"], "head_dim": head_dim,
        "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": intermediate,
        "max_position_embeddings": max_position, "mlp_bias": False, "model_type": "llama", "num_attention_heads": heads,
        "num_hidden_layers": layers, "num_key_value_heads": kv_heads, "pretraining_tp": 1,
        "quantization_config": quantization,
        "rms_norm_eps": rms_norm_eps, "rope_scaling": None, "rope_theta": rope_theta, "tie_word_embeddings": False,
        "torch_dtype": dtype, "use_cache": True, "vocab_size": vocab,
    }
    model = TinyModel(Path(path), config, shards=shards, tokenizer=tokenizer)
    return _write(model, _model_config(arch, dict(locals(), tied=False)), PACKED_INVERSE, seed)


def _linear_norms(quantization: dict, arch: str, eps: float | None) -> tuple[dict, str]:
    """(quantization_config, architecture): with use_rms_norm and its rms_norm_eps when eps is given."""
    if eps is None:
        return quantization, arch
    return {**quantization, "use_rms_norm": True, "rms_norm_eps": eps}, arch + LINEAR_NORMS


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


def _write(model: TinyModel, c: ModelConfig, storage: str, seed: int) -> TinyModel:
    """Draws every tensor the architecture's table lists, writes the files, and keeps the values actually stored."""
    arch, rng = architecture(c.architecture), np.random.default_rng(seed)
    for i in range(c.num_layers):
        for t in arch.linears():
            prefix, (out, in_) = f"model.layers.{i}.{t.hf}", t.dims(c)
            if storage == FULL_PRECISION:
                model.tensors[f"{prefix}.weight"] = (rng.standard_normal((out, in_)) / np.sqrt(in_)).astype(np.float32)
                continue
            codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(out, in_), p=[0.35, 0.3, 0.35])
            inverse_scale = np.sqrt(in_) * rng.uniform(0.9, 1.4)
            model.ternary[prefix] = codes
            model.tensors[f"{prefix}.weight"] = pack_output_dim(codes)
            model.tensors[f"{prefix}.weight_scale"] = np.array([inverse_scale if storage == PACKED_INVERSE else 1 / inverse_scale], np.float32)
    for t in arch.globals(c):
        if t.kind != "norm":
            model.tensors[f"{t.hf}.weight"] = (rng.standard_normal(t.dims(c)) * 3 / np.sqrt(c.hidden_size)).astype(np.float32)
    for i in range(c.num_layers):
        for t in arch.norms():
            model.tensors[f"model.layers.{i}.{t.hf}.weight"] = (1 + 0.1 * rng.standard_normal(t.dims(c))).astype(np.float32)
    model.tensors["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(c.hidden_size)).astype(np.float32)

    st_dtype, encode, decode = STORAGE[model.config["torch_dtype"]]
    stored = {name: ("uint8", t) if t.dtype == np.uint8 else (st_dtype, encode(t)) for name, t in model.tensors.items()}
    model.tensors = {name: t if t.dtype == np.uint8 else decode(stored[name][1]) for name, t in model.tensors.items()}
    model.path.mkdir(parents=True, exist_ok=True)
    write_json(model.path / "config.json", model.config)
    write_safetensors(model.path, stored, model.shards)
    if model.tokenizer:
        write_tokenizer(model.path, c.vocab_size)
    return model
