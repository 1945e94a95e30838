"""Checkpoints written in the published layouts with random weights: what the tests load and
compare with transformers, and what the benchmarks build. The inverse of compiler/loaders/."""
from .hf import (
    AUTOBITLINEAR_OFFLINE, AUTOBITLINEAR_ONLINE, BITLINEAR_OFFLINE, STORAGE, TinyModel, bfloat16_bits, pack_output_dim,
    write_1bitllm, write_bitnet_1bit, write_bitnet_fp, write_bitnet_packed, write_llama_bitnet, write_safetensors,
)
from .tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, TRAINING_TEXT, special_token_ids, tokenizer_json, write_json, write_tokenizer

__all__ = [
    "AUTOBITLINEAR_OFFLINE", "AUTOBITLINEAR_ONLINE", "BITLINEAR_OFFLINE", "CHAT_TEMPLATE", "SPECIAL_TOKENS", "STORAGE",
    "TRAINING_TEXT", "TinyModel", "bfloat16_bits", "pack_output_dim", "special_token_ids", "tokenizer_json",
    "write_1bitllm", "write_bitnet_1bit", "write_bitnet_fp", "write_bitnet_packed", "write_json", "write_llama_bitnet",
    "write_safetensors", "write_tokenizer",
]
