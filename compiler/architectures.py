"""One structure table per architecture: every tensor of the model by role, whether it is a norm,
a linear or a token table, its shape rule, and its name in each checkpoint family (Hugging Face
safetensors, GGUF). The graph, the loaders and the checkpoint writers all derive from these rows.

BitNetForCausalLM (2B-4T) and 1bitLLM's BitnetForCausalLM norm the attention output before o_proj
and the gated MLP output before down_proj (sub-norms); they differ in the gate's activation and in
the sub-norms' names. Llama + bitnet quantization (Falcon3, Falcon-E) has no sub-norms. Each
architecture has a "+linear_norms" twin for quantization_config use_rms_norm: transformers'
BitLinear / AutoBitLinear then norm their own input (LlamaRMSNorm with a learnable weight,
quantization_config.rms_norm_eps) before quantizing it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bitnet_wasm.compiler.checkpoint import ModelConfig

NORM, LINEAR, TABLE = "norm", "linear", "table"

DIMS: dict[str, Callable[[ModelConfig], int]] = {  # shape rule symbol -> its size for a config
    "vocab": lambda c: c.vocab_size,
    "hidden": lambda c: c.hidden_size,
    "intermediate": lambda c: c.intermediate_size,
    "q": lambda c: c.num_heads * c.head_dim,      # the attention output, what attn_sub_norm and o_proj read
    "kv": lambda c: c.num_kv_heads * c.head_dim,
}


@dataclass(frozen=True)
class Tensor:
    role: str                 # canonical name: "embed", or "q_proj" for layers.{i}.q_proj
    kind: str                 # NORM | LINEAR | TABLE
    shape: tuple[str, ...]    # keys of DIMS; a linear's is (out, in)
    hf: str                   # HF module name (+ ".weight"), under model.layers.{i}. for layer tensors
    gguf: str                 # GGUF tensor name (+ ".weight"), under blk.{i}. for layer tensors

    def dims(self, c: ModelConfig) -> tuple[int, ...]:
        return tuple(DIMS[d](c) for d in self.shape)


def _norm(role, width, hf, gguf):
    return Tensor(role, NORM, (width,), hf, gguf)


def _linear(role, out, in_, hf, gguf):
    return Tensor(role, LINEAR, (out, in_), hf, gguf)


# Per layer, in arena order: norms first, then linears.
INPUT_NORM = _norm("input_norm", "hidden", "input_layernorm", "attn_norm")
POST_ATTENTION_NORM = _norm("post_attention_norm", "hidden", "post_attention_layernorm", "ffn_norm")
LINEARS = (
    _linear("q_proj", "q", "hidden", "self_attn.q_proj", "attn_q"),
    _linear("k_proj", "kv", "hidden", "self_attn.k_proj", "attn_k"),
    _linear("v_proj", "kv", "hidden", "self_attn.v_proj", "attn_v"),
    _linear("o_proj", "hidden", "q", "self_attn.o_proj", "attn_output"),
    _linear("gate_proj", "intermediate", "hidden", "mlp.gate_proj", "ffn_gate"),
    _linear("up_proj", "intermediate", "hidden", "mlp.up_proj", "ffn_up"),
    _linear("down_proj", "hidden", "intermediate", "mlp.down_proj", "ffn_down"),
)
GLOBALS = (
    Tensor("embed", TABLE, ("vocab", "hidden"), "model.embed_tokens", "token_embd"),
    Tensor("norm", NORM, ("hidden",), "model.norm", "output_norm"),
    Tensor("lm_head", TABLE, ("vocab", "hidden"), "lm_head", "output"),  # only when the embeddings are not tied
)


def linear_norm(linear: Tensor) -> Tensor:
    """The RMSNorm a use_rms_norm BitLinear applies to its input: transformers' <proj>.rms_norm."""
    return _norm(f"{linear.role}_norm", linear.shape[1], f"{linear.hf}.rms_norm", f"{linear.gguf}.rms_norm")  # no GGUF arch has it


@dataclass(frozen=True)
class Architecture:
    name: str
    gated_mlp: str                 # graph op combining gate and up projections
    layer: tuple[Tensor, ...]      # every tensor of one layer

    def has(self, role: str) -> bool:
        return any(t.role == role for t in self.layer)

    def linears(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.layer if t.kind == LINEAR)

    def norms(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.layer if t.kind == NORM)

    def globals(self, c: ModelConfig) -> tuple[Tensor, ...]:
        return tuple(t for t in GLOBALS if t.role != "lm_head" or not c.tie_embeddings)


def _with_sub_norms(attn_hf: str, ffn_hf: str) -> tuple[Tensor, ...]:
    return (INPUT_NORM, POST_ATTENTION_NORM, _norm("attn_sub_norm", "q", attn_hf, "attn_sub_norm"),
            _norm("ffn_sub_norm", "intermediate", ffn_hf, "ffn_sub_norm")) + LINEARS


BASE_ARCHITECTURES = (
    Architecture("bitnet", "relu2_mul", _with_sub_norms("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")),
    Architecture("bitnet-llama", "silu_mul", _with_sub_norms("self_attn.inner_attn_ln", "mlp.ffn_layernorm")),
    Architecture("llama", "silu_mul", (INPUT_NORM, POST_ATTENTION_NORM) + LINEARS),
)
LINEAR_NORMS = "+linear_norms"  # suffix of the twin whose linears norm their input (use_rms_norm)
ARCHITECTURES = {a.name: a for a in BASE_ARCHITECTURES} | {
    a.name + LINEAR_NORMS: Architecture(a.name + LINEAR_NORMS, a.gated_mlp, a.norms() + tuple(map(linear_norm, a.linears())) + a.linears())
    for a in BASE_ARCHITECTURES
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def linear_shapes(c: ModelConfig) -> dict[str, tuple[int, int]]:
    """role -> (out, in) of every linear of a layer."""
    return {t.role: t.dims(c) for t in architecture(c.architecture).linears()}
