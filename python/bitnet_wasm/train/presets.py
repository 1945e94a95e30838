"""Named model sizes with the training hyper-parameters that suit them."""
from __future__ import annotations

from dataclasses import dataclass

from bitnet_wasm.train.model import ModelConfig


@dataclass(frozen=True)
class Preset:
    vocab_size: int          # BPE target; the model takes the size the tokenizer reaches
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    seq_len: int
    batch_size: int
    lr: float
    warmup_steps: int

    def model_config(self, vocab_size: int, bits: str) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_layers=self.num_layers, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
            max_position=self.seq_len, bits=bits,
        )


PRESETS = {
    "micro": Preset(320, 32, 64, 2, 2, 1, seq_len=32, batch_size=8, lr=1e-2, warmup_steps=5),   # tests
    "tiny": Preset(2048, 192, 512, 4, 6, 2, seq_len=256, batch_size=16, lr=3e-3, warmup_steps=200),
    "small": Preset(4096, 320, 864, 6, 8, 4, seq_len=256, batch_size=16, lr=2e-3, warmup_steps=300),
}
