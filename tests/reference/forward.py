"""An independent numpy forward pass of the published BitNet models, used only by tests.

Written from the published definitions, not from our C or compiler (it imports neither):
transformers' models/bitnet/modeling_bitnet.py + integrations/bitnet.py (BitNetForCausalLM, and
LlamaForCausalLM whose linears the bitnet quantizer replaces) and 1bitLLM's modeling_bitnet.py +
utils_quant.py (BitnetForCausalLM). It reads the HF folder itself."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import deserialize

FAMILIES = {
    "BitNetForCausalLM": {
        "act": lambda x: np.maximum(x, 0) ** 2,  # ACT2FN["relu2"]
        "sub_norms": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
        "defaults": {"num_key_value_heads": 5, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False},
    },
    "BitnetForCausalLM": {
        "act": lambda x: x / (1 + np.exp(-x)),  # nn.SiLU
        "sub_norms": ("self_attn.inner_attn_ln", "mlp.ffn_layernorm"),
        "defaults": {"num_key_value_heads": None, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False},
    },
    "LlamaForCausalLM": {
        "act": lambda x: x / (1 + np.exp(-x)),  # nn.SiLU
        "sub_norms": None,  # modeling_llama: no norm before o_proj or down_proj
        "defaults": {"num_key_value_heads": None, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False},
    },
}
DECODE = {
    "F32": lambda b: np.frombuffer(b, "<f4"),
    "F16": lambda b: np.frombuffer(b, "<f2"),
    "BF16": lambda b: (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32),
    "U8": lambda b: np.frombuffer(b, np.uint8),
}


def read_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    """float tensors as float64, packed weights as uint8; single file or shards."""
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for file in files:
        for name, t in deserialize((model_dir / file).read_bytes()):
            value = DECODE[t["dtype"]](t["data"]).reshape(t["shape"])
            tensors[name] = value if t["dtype"] == "U8" else value.astype(np.float64)
    return tensors


def activation_quant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token absmax to int8, in float32 as the published code runs it; round half to even."""
    x = x.astype(np.float32)
    scale = np.float32(127) / np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-5))
    return np.clip(np.round(x * scale), -128, 127).astype(np.float64), scale.astype(np.float64)


def unpack_weights(packed: np.ndarray, out: int) -> np.ndarray:
    """integrations/bitnet.py unpack_weights: 2-bit field i of row r is row i*rows + r, stored as value + 1."""
    return np.concatenate([(packed >> (2 * i)) & 3 for i in range(4)])[:out].astype(np.float64) - 1


def quantized_weights(config: dict, w: np.ndarray, weight_scale: np.ndarray | None, out: int) -> tuple[np.ndarray, float]:
    """(integer weights W_q, divisor d) with linear(x) = (x_q @ W_q.T) / (input_scale * d)."""
    if weight_scale is not None:  # offline: packed codes; BitLinear divides by weight_scale, AutoBitLinear multiplies
        forward = (config.get("quantization_config") or {}).get("linear_class") == "autobitlinear"
        return unpack_weights(w, out), 1 / float(weight_scale[0]) if forward else float(weight_scale[0])
    if config.get("architectures") == ["BitNetForCausalLM"] and config.get("weight_bits") == 1:
        beta = max(np.abs(w).mean(), 1e-5)  # original BitNet: sign(W - mean W), scaled by mean|W|
        return np.where(w - w.mean() >= 0, 1.0, -1.0), 1 / beta
    s = 1 / max(np.abs(w).mean(), 1e-5)  # WeightQuant / utils_quant.weight_quant: absmean ternary
    return np.clip(np.round(w * s), -1, 1), s


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return weight * (x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps))


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def reference_logits(model_dir: str | Path, token_ids, kv_dtype=None) -> np.ndarray:
    """Logits [len(token_ids), vocab] (float32) after each position of one causal pass.
    kv_dtype (e.g. np.float16) rounds keys (after RoPE) and values as a KV cache of that type would."""
    model_dir = Path(model_dir)
    raw = json.loads((model_dir / "config.json").read_text())
    family = FAMILIES[raw["architectures"][0]]
    c = {**family["defaults"], **(raw.get("rope_parameters") or {}), **raw}
    t = read_tensors(model_dir)
    heads, hidden, eps = c["num_attention_heads"], c["hidden_size"], c["rms_norm_eps"]
    kv_heads = c["num_key_value_heads"] or heads
    d = c.get("head_dim") or hidden // heads
    ids = np.asarray(token_ids, dtype=np.int64)
    n = len(ids)

    quantization = raw.get("quantization_config") or {}

    def linear(x, prefix, out):
        if quantization.get("use_rms_norm"):  # BitLinear's own LlamaRMSNorm on its input
            x = rms_norm(x, t[f"{prefix}.rms_norm.weight"], quantization.get("rms_norm_eps", 1e-6))
        w_q, divisor = quantized_weights(raw, t[f"{prefix}.weight"], t.get(f"{prefix}.weight_scale"), out)
        x_q, scale = activation_quant(x)
        return (x_q @ w_q.T) / (scale * divisor)

    inv_freq = 1.0 / (c["rope_theta"] ** (np.arange(0, d, 2) / d))
    angles = np.arange(n)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    causal = np.triu(np.full((n, n), -np.inf), k=1)

    h = t["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        x = rms_norm(h, t[f"{p}.input_layernorm.weight"], eps)
        q = linear(x, f"{p}.self_attn.q_proj", heads * d).reshape(n, heads, d).transpose(1, 0, 2)
        k = linear(x, f"{p}.self_attn.k_proj", kv_heads * d).reshape(n, kv_heads, d).transpose(1, 0, 2)
        v = linear(x, f"{p}.self_attn.v_proj", kv_heads * d).reshape(n, kv_heads, d).transpose(1, 0, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if kv_dtype is not None:
            k, v = k.astype(kv_dtype).astype(k.dtype), v.astype(kv_dtype).astype(v.dtype)
        k, v = np.repeat(k, heads // kv_heads, axis=0), np.repeat(v, heads // kv_heads, axis=0)  # repeat_kv
        scores = q @ k.transpose(0, 2, 1) * d ** -0.5 + causal
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        attn = ((weights / weights.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, heads * d)
        if family["sub_norms"]:
            attn = rms_norm(attn, t[f"{p}.{family['sub_norms'][0]}.weight"], eps)
        h = h + linear(attn, f"{p}.self_attn.o_proj", hidden)
        x = rms_norm(h, t[f"{p}.post_attention_layernorm.weight"], eps)
        inter = c["intermediate_size"]
        m = family["act"](linear(x, f"{p}.mlp.gate_proj", inter)) * linear(x, f"{p}.mlp.up_proj", inter)
        if family["sub_norms"]:
            m = rms_norm(m, t[f"{p}.{family['sub_norms'][1]}.weight"], eps)
        h = h + linear(m, f"{p}.mlp.down_proj", hidden)
    h = rms_norm(h, t["model.norm.weight"], eps)
    head = t["model.embed_tokens.weight"] if c["tie_word_embeddings"] else t["lm_head.weight"]
    return (h @ head.T).astype(np.float32)
