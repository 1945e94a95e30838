"""BitNet b1.58 (HF BitNetForCausalLM, the published layer structure) in torch, for training.

Parameter names are those of the HF checkpoint, so export writes the state dict as it is."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from bitnet_wasm.train.quant import BitLinear


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_position: int
    bits: str = "1.58"            # "1.58" ternary, "1" binary, "16" float baseline
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def validate(self) -> None:
        checks = (
            (self.hidden_size % self.num_heads, f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"),
            (self.num_heads % self.num_kv_heads, f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"),
            (self.head_dim % 2, f"head_dim {self.head_dim} is odd (RoPE rotates halves)"),
            # the packed layout stores out/4 rows per byte row; HF's BitLinear needs out % 4 == 0
            (any(n % 4 for n in (self.hidden_size, self.intermediate_size, self.num_kv_heads * self.head_dim)),
             "hidden, intermediate and kv widths must be multiples of 4"),
        )
        problems = [message for failed, message in checks if failed]
        if problems:
            raise ValueError(f"model config {self}: " + "; ".join(problems))


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        self.q_proj = BitLinear(c.hidden_size, c.num_heads * c.head_dim, c.bits)
        self.k_proj = BitLinear(c.hidden_size, c.num_kv_heads * c.head_dim, c.bits)
        self.v_proj = BitLinear(c.hidden_size, c.num_kv_heads * c.head_dim, c.bits)
        self.o_proj = BitLinear(c.num_heads * c.head_dim, c.hidden_size, c.bits)
        self.attn_sub_norm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        return self.o_proj(self.attn_sub_norm(y.transpose(1, 2).reshape(batch, length, -1)))


class MLP(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.gate_proj = BitLinear(c.hidden_size, c.intermediate_size, c.bits)
        self.up_proj = BitLinear(c.hidden_size, c.intermediate_size, c.bits)
        self.down_proj = BitLinear(c.intermediate_size, c.hidden_size, c.bits)
        self.ffn_sub_norm = RMSNorm(c.intermediate_size, c.rms_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.ffn_sub_norm(F.relu(self.gate_proj(x)).square() * self.up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class BitNetForCausalLM(nn.Module):
    """Tied embeddings: the head is embed_tokens^T (2B4T stores no lm_head)."""

    def __init__(self, config: ModelConfig, init_std: float = 0.02):
        super().__init__()
        config.validate()
        self.config = config
        self.model = Decoder(config)
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, config.head_dim, 2, dtype=torch.float) / config.head_dim))
        angles = torch.outer(torch.arange(config.max_position, dtype=torch.float), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=init_std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [batch, length] -> logits [batch, length, vocab]."""
        length = ids.shape[1]
        if length > self.config.max_position:
            raise ValueError(f"sequence of {length} tokens exceeds max_position {self.config.max_position}")
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return F.linear(self.model.norm(x), self.model.embed_tokens.weight)

    def bit_linears(self) -> dict[str, BitLinear]:
        return {name: m for name, m in self.named_modules() if isinstance(m, BitLinear)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
