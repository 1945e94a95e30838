"""What every loader produces and everything after it consumes: a model in canonical form.

Loaders (compiler/loaders/) read a published format and return a Checkpoint; the graph, plan,
codegen and packing stages read only this, never a file format."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelConfig:
    architecture: str          # key of compiler/architectures.py: the graph's shape, not its weight bits:
                               # "bitnet" (BitNetForCausalLM: ReLU^2 gated MLP, sub-norms),
                               # "bitnet-llama" (1bitLLM BitnetForCausalLM: SiLU gated MLP; its
                               # inner_attn_ln / ffn_layernorm are sub-norms too),
                               # "llama" (Llama + bitnet quantization: SiLU gated MLP, no sub-norms);
                               # each + "+linear_norms" when every linear norms its own input (use_rms_norm)
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position: int
    rope_theta: float
    rms_norm_eps: float
    tie_embeddings: bool
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    name: str = ""             # for the model card, e.g. the source folder's name
    linear_norm_eps: float = 1e-6  # eps of the "+linear_norms" per-linear norms (quantization_config.rms_norm_eps)


@dataclass(frozen=True)
class BitLinear:
    """A quantized linear layer: y = (x_q @ weights.T) / (input_scale * wscale)."""

    weights: np.ndarray        # int8 [out, in], values in {-1, 0, +1} (ternary) or {-1, +1} (binary)
    wscale: float              # the INVERSE weight scale: bitlinear's weight_scale, 1 / autobitlinear's
    binary: bool = False       # original 1-bit BitNet: weights are sign(W - mean W) in {-1, +1}

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape


@dataclass(frozen=True)
class TokenizerFiles:
    tokenizer_json: str                       # the HF tokenizers file, verbatim
    config: dict = field(default_factory=dict)  # tokenizer_config.json (special tokens, chat_template)


@dataclass
class Checkpoint:
    """Canonical tensor names and shapes: the roles of compiler/architectures.py's tables, e.g.
    embed, norm, lm_head (absent when tied) and layers.{i}.input_norm (f32 arrays);
    layers.{i}.q_proj ... layers.{i}.down_proj (BitLinear)."""

    config: ModelConfig
    tensors: dict[str, np.ndarray]
    linears: dict[str, BitLinear]
    tokenizer: TokenizerFiles | None
    source: Path
