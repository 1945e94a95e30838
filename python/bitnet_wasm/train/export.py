"""Writes a trained model as an HF BitNetForCausalLM folder, the format `bitnet-wasm build` reads:
config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json.

b1.58: the packed offline layout of microsoft/bitnet-b1.58-2B-4T (uint8 codes packed along the
output dim + inverse weight_scale). 1-bit: the project's convention, top-level "weight_bits": 1
and full-precision weights that the loader binarizes with sign(W - mean W) * mean|W|.
float baseline: full-precision weights, "weight_bits": 16 (transformers runs it as a float model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from bitnet_wasm.train.model import BitNetForCausalLM
from bitnet_wasm.train.quant import binarize, ternary_codes, ternary_scale
from bitnet_wasm.train.tokenizer import special_ids, tokenizer_config

DTYPES = {"bf16": (torch.bfloat16, "bfloat16"), "f32": (torch.float32, "float32")}
OFFLINE_QUANTIZATION = {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}


def pack_ternary(codes: np.ndarray) -> np.ndarray:
    """int codes {-1, 0, +1} [out, in] -> uint8 [ceil(out/4), in]: byte [r, c] bits 2i..2i+1 hold
    codes[i * rows + r, c] + 1 (transformers.integrations.bitnet.pack_weights; padding rows are 0)."""
    out, cols = codes.shape
    rows = -(-out // 4)
    shifted = np.zeros((4 * rows, cols), dtype=np.uint8)
    shifted[:out] = (codes + 1).astype(np.uint8)
    chunks = shifted.reshape(4, rows, cols)
    return chunks[0] | chunks[1] << 2 | chunks[2] << 4 | chunks[3] << 6


def _packed_ternary(name: str, w: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    packed = pack_ternary(ternary_codes(w).to(torch.int8).numpy())
    return {name: torch.from_numpy(packed), name + "_scale": ternary_scale(w).reshape(1).to(dtype)}


def _binary(name: str, w: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    # Written already binarized (+-mean|W|): binarizing it again gives the same signs and scale,
    # whatever dtype it is stored in, where latent weights near the mean could flip in bf16.
    return {name: binarize(w).to(dtype)}


def _float(name: str, w: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {name: w.to(dtype)}


# --bits -> (how each BitLinear weight is written, config.json entries that select the format)
FORMATS = {
    "1.58": (_packed_ternary, {"quantization_config": OFFLINE_QUANTIZATION}),
    "1": (_binary, {"weight_bits": 1}),
    "16": (_float, {"weight_bits": 16}),  # marked, so no loader takes it for weights to ternarize
}


def hf_config(model: BitNetForCausalLM, tokenizer: Tokenizer, dtype: str) -> dict:
    c = model.config
    bos, eos = special_ids(tokenizer)
    return {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "hidden_act": "relu2",
        "max_position_embeddings": c.max_position,
        "rope_theta": c.rope_theta,
        "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": DTYPES[dtype][1],
        **FORMATS[c.bits][1],
    }


def state_tensors(model: BitNetForCausalLM, dtype: str) -> dict[str, torch.Tensor]:
    torch_dtype = DTYPES[dtype][0]
    write_linear = FORMATS[model.config.bits][0]
    linears = {f"{name}.weight" for name in model.bit_linears()}
    tensors = {}
    with torch.no_grad():
        for name, p in model.state_dict().items():
            tensors |= write_linear(name, p.float(), torch_dtype) if name in linears else {name: p.to(torch_dtype)}
    return {name: t.contiguous() for name, t in tensors.items()}


def export(model: BitNetForCausalLM, tokenizer: Tokenizer, out: Path, dtype: str = "bf16") -> Path:
    if dtype not in DTYPES:
        raise ValueError(f"export dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    out.mkdir(parents=True, exist_ok=True)
    bos, eos = special_ids(tokenizer)
    save_file(state_tensors(model, dtype), out / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save(str(out / "tokenizer.json"))
    files = {
        "config.json": hf_config(model, tokenizer, dtype),
        "tokenizer_config.json": tokenizer_config(model.config.max_position),
        "generation_config.json": {"bos_token_id": bos, "eos_token_id": eos, "do_sample": True, "temperature": 0.8, "top_p": 0.95},
    }
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
    return out
