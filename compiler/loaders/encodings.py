"""How each published format stores a BitLinear's weights, and how to turn them into codes + inverse scale."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..checkpoint import BitLinear

FLOAT_DTYPES = ("BF16", "F16", "F32")
CODES_PER_BYTE = 4
SCALE_FLOOR = 1e-5  # the published quantizers clamp mean|W| here


@dataclass(frozen=True)
class Encoding:
    name: str
    weight_dtypes: tuple[str, ...]
    stored_shape: Callable[[int, int], tuple[int, ...]]  # (out, in) -> shape of the .weight tensor
    has_weight_scale: bool                               # a .weight_scale tensor of shape (1,) sits beside .weight
    decode: Callable[[np.ndarray, int, float], BitLinear]  # (stored weight, out, weight_scale) -> BitLinear


def unpack_output_packed(packed: np.ndarray, out: int) -> np.ndarray:
    """2B4T layout, uint8 [ceil(out/4), in]: bits 2i..2i+1 of byte [r, c] hold W[i*ceil(out/4) + r, c] + 1."""
    codes = np.concatenate([(packed >> (2 * i)) & 3 for i in range(CODES_PER_BYTE)])[:out]
    if (codes == 3).any():
        r, c = np.argwhere(codes == 3)[0]
        raise ValueError(f"code 3 (not -1/0/+1) for W[{r}, {c}]")
    return codes.astype(np.int8) - 1


def ternarize_absmean(w: np.ndarray) -> BitLinear:
    """BitNet b1.58: s = 1/mean|W|, W_q = clamp(round(W*s), -1, 1); s is the inverse scale."""
    w = w.astype(np.float64)
    s = 1.0 / max(float(np.abs(w).mean()), SCALE_FLOOR)
    return BitLinear(np.clip(np.round(w * s), -1, 1).astype(np.int8), wscale=s)


def binarize_sign_mean(w: np.ndarray) -> BitLinear:
    """Original 1-bit BitNet: W_b = sign(W - mean W) with sign(0) = +1, scale beta = mean|W|."""
    w = w.astype(np.float64)
    beta = max(float(np.abs(w).mean()), SCALE_FLOOR)
    return BitLinear(np.where(w >= w.mean(), 1, -1).astype(np.int8), wscale=1.0 / beta, binary=True)


def packed_shape(out: int, in_: int) -> tuple[int, int]:
    return -(-out // CODES_PER_BYTE), in_


PACKED = Encoding(  # transformers BitLinear: the output is divided by weight_scale
    "2-bit packed along the output dim, inverse weight_scale (bitlinear offline)", ("U8",), packed_shape, True,
    lambda stored, out, scale: BitLinear(unpack_output_packed(stored, out), wscale=scale),
)
PACKED_FORWARD = Encoding(  # transformers AutoBitLinear: the output is multiplied by weight_scale
    "2-bit packed along the output dim, forward weight_scale (autobitlinear offline)", ("U8",), packed_shape, True,
    lambda stored, out, scale: BitLinear(unpack_output_packed(stored, out), wscale=1.0 / scale),
)
ABSMEAN = Encoding("full precision, ternarized at build", FLOAT_DTYPES, lambda out, in_: (out, in_), False,
                   lambda stored, out, scale: ternarize_absmean(stored))
SIGN_MEAN = Encoding("full precision, binarized at build", FLOAT_DTYPES, lambda out, in_: (out, in_), False,
                     lambda stored, out, scale: binarize_sign_mean(stored))
