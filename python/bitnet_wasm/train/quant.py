"""The quantizers of training, each applied through a straight-through estimator: the forward
pass sees the quantized tensor, the backward pass treats quantization as the identity."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def ste(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    return x + (quantized - x).detach()


def ternary_scale(w: torch.Tensor) -> torch.Tensor:
    """s = 1 / mean|W|: the INVERSE scale that 2B4T stores as weight_scale."""
    return 1.0 / w.abs().mean().clamp(min=1e-5)


def ternary_codes(w: torch.Tensor) -> torch.Tensor:
    """BitNet b1.58 absmean: the codes {-1, 0, +1} of W (as floats)."""
    return (w * ternary_scale(w)).round().clamp(-1, 1)


def ternarize(w: torch.Tensor) -> torch.Tensor:
    return ternary_codes(w) / ternary_scale(w)


def binary_codes(w: torch.Tensor) -> torch.Tensor:
    """Original 1-bit BitNet: sign(W - mean W) with sign(0) = +1."""
    return torch.where(w >= w.mean(), 1.0, -1.0)


def binarize(w: torch.Tensor) -> torch.Tensor:
    return binary_codes(w) * w.abs().mean()


def int8_absmax(x: torch.Tensor) -> torch.Tensor:
    """Per-token int8 absmax activations, dequantized: clamp(round(x * 127/max|x|), -128, 127) / (127/max|x|)."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * scale).round().clamp(-128, 127) / scale


# --bits -> weight quantizer; "16" is the float baseline (plain linear layers, float activations).
WEIGHT_QUANTIZERS = {"1.58": ternarize, "1": binarize, "16": None}


class BitLinear(nn.Linear):
    """nn.Linear whose forward sees quantized weights and int8 activations (none for the float baseline)."""

    def __init__(self, in_features: int, out_features: int, bits: str):
        super().__init__(in_features, out_features, bias=False)
        self.bits = bits
        self.weight_quant = WEIGHT_QUANTIZERS[bits]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_quant is None:
            return F.linear(x, self.weight)
        return F.linear(ste(x, int8_absmax(x)), ste(self.weight, self.weight_quant(self.weight)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"
