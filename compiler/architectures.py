"""What tells one BitNet family's transformer layer from another's, as one row of data each.

Both published families norm the attention output before o_proj and the gated MLP output
before down_proj (2B4T: attn_sub_norm / ffn_sub_norm; 1bitLLM: inner_attn_ln / ffn_layernorm);
they differ in the gate's activation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    name: str
    hf_class: str           # the transformers class its checkpoints name
    gated_mlp: str          # graph op combining gate and up projections


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("bitnet", "BitNetForCausalLM", gated_mlp="relu2_mul"),
        Architecture("bitnet-llama", "BitnetForCausalLM", gated_mlp="silu_mul"),
    )
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
