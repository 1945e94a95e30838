"""The benchmark's stand-in for a model of a given shape (speed does not depend on the values): a
random checkpoint in microsoft/bitnet-b1.58-2B-4T's packed layout, written by compiler/writers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bitnet_wasm.compiler.writers import write_bitnet_packed


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_position: int = 2048


# 1bitLLM/bitnet_b1_58-large's dimensions (its tokenizer's 32000 + 2 added tokens).
LARGE = Shape(hidden=1536, layers=24, heads=16, kv_heads=16, intermediate=4096, vocab=32002)
# microsoft/bitnet-b1.58-2B-4T's dimensions.
B2_4T = Shape(hidden=2560, layers=30, heads=20, kv_heads=5, intermediate=6912, vocab=128256, max_position=4096)


def write_random_bitnet(path: str | Path, shape: Shape, seed: int = 0) -> Path:
    """A random BitNetForCausalLM of `shape` (bf16, tied embeddings) with a byte-level BPE tokenizer
    of shape.vocab tokens. Returns the folder."""
    s = shape
    return write_bitnet_packed(path, seed=seed, hidden=s.hidden, layers=s.layers, heads=s.heads, kv_heads=s.kv_heads,
                               intermediate=s.intermediate, vocab=s.vocab, max_position=s.max_position,
                               rope_theta=10000.0).path
