"""The weight layouts: one table shared by the compiler (which packs) and the kernels (which read).

Each layout names its kernel, its packed size for an [out, in] matrix, and its packer from a
dense matrix of weights (int8 in {-1, 0, +1}, or {-1, +1} for binary). The byte orders are
described next to the kernels that read them: wasm_kernels/bitlinear_planes.h (mad, binary)
and wasm_kernels/bitlinear_lut.c (lut)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bitnet_wasm.wasm_kernels.abi import defines

# Names the ABI's /*[count]*/ expressions may call (see bitnet.h).
SIZE_FUNCTIONS = ("mad_bytes", "lut_bytes", "lut_scratch_bytes", "binary_bytes", "layout_bytes", "layout_scratch_bytes")

# The formats' shapes, as bitnet.h defines them: bit-plane layouts' row tile and bytes per row per column block;
# the LUT layout's row tile, columns per chunk, and tokens whose tables its scratch holds.
_BITNET_H = defines()
PLANE_ROWS, PLANE_CHUNK = _BITNET_H["BN_PLANE_ROWS"], _BITNET_H["BN_PLANE_CHUNK"]
LUT_ROWS, LUT_COLS, LUT_TOKENS = _BITNET_H["BN_LUT_ROWS"], _BITNET_H["BN_LUT_COLS"], _BITNET_H["BN_LUT_TOKENS"]


@dataclass(frozen=True)
class Layout:
    name: str  # "mad" | "lut" | "binary"; its id in C is its position in LAYOUTS (bitnet.h enum bn_layout)
    kernel: str  # the layout's own C kernel, e.g. "bn_bitlinear_mad"
    values: tuple[int, ...]  # allowed weights: (-1, 0, 1) or (-1, 1)
    packed_bytes: Callable[[int, int], int]  # (out, in) -> bytes of the packed matrix
    scratch_bytes: Callable[[int], int]  # in -> bytes of kernel scratch (0 if none)
    pack: Callable[[np.ndarray], np.ndarray]  # int8 [out, in] -> uint8 [packed_bytes(out, in)]
    unpack: Callable[[np.ndarray, int, int], np.ndarray]  # (packed, out, in) -> int8 [out, in]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _plane_cols(bits: int) -> int:
    return 8 * PLANE_CHUNK // bits


def _plane_bytes(out: int, in_: int, bits: int) -> int:
    return _ceil(out, PLANE_ROWS) * PLANE_ROWS * _ceil(in_, _plane_cols(bits)) * PLANE_CHUNK


def mad_bytes(out: int, in_: int) -> int:
    return _plane_bytes(out, in_, 2)


def binary_bytes(out: int, in_: int) -> int:
    return _plane_bytes(out, in_, 1)


def lut_bytes(out: int, in_: int) -> int:
    return _ceil(out, LUT_ROWS) * LUT_ROWS * _ceil(in_, LUT_COLS)


def lut_scratch_bytes(in_: int) -> int:
    return LUT_TOKENS * _ceil(in_, LUT_COLS) * 2 * 32  # per token and column pair: 16 low + 16 high bytes


def _no_scratch(in_: int) -> int:
    return 0


def _checked(name: str, weights: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    if not isinstance(weights, np.ndarray) or weights.dtype != np.int8:
        raise ValueError(f"{name} layout: weights must be an int8 numpy array, got {getattr(weights, 'dtype', type(weights).__name__)}")
    if weights.ndim != 2 or 0 in weights.shape:
        raise ValueError(f"{name} layout: weights must be a non-empty [out, in] matrix, got shape {weights.shape}")
    bad = ~np.isin(weights, values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name} layout: weights must be in {values}; W[{r}, {c}] = {weights[r, c]} ({int(bad.sum())} bad values)")
    return weights


def _checked_packed(name: str, packed: np.ndarray, expected: int) -> np.ndarray:
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.size != expected:
        raise ValueError(f"{name} layout: packed must be {expected} uint8 bytes, got {packed.size} {packed.dtype}")
    return packed.reshape(-1)


def _padded(codes: np.ndarray, rows: int, cols: int, fill: int) -> np.ndarray:
    out, in_ = codes.shape
    full = np.full((_ceil(out, rows) * rows, _ceil(in_, cols) * cols), fill, np.uint8)
    full[:out, :in_] = codes
    return full


def _plane_pack(codes: np.ndarray, bits: int, fill: int) -> np.ndarray:
    cols, planes = _plane_cols(bits), 8 // bits
    c = _padded(codes, PLANE_ROWS, cols, fill)
    tiles, blocks = c.shape[0] // PLANE_ROWS, c.shape[1] // cols
    # [tile, row, block, plane k, byte j] -> [tile, block, row, byte j, plane k]
    c = c.reshape(tiles, PLANE_ROWS, blocks, planes, PLANE_CHUNK).transpose(0, 2, 1, 4, 3)
    shifts = (bits * np.arange(planes)).astype(np.uint8)
    return np.bitwise_or.reduce(c << shifts, axis=-1).astype(np.uint8).reshape(-1)


def _plane_unpack(packed: np.ndarray, out: int, in_: int, bits: int) -> np.ndarray:
    cols, planes = _plane_cols(bits), 8 // bits
    tiles, blocks = _ceil(out, PLANE_ROWS), _ceil(in_, cols)
    b = packed.reshape(tiles, blocks, PLANE_ROWS, PLANE_CHUNK, 1)
    c = (b >> (bits * np.arange(planes)).astype(np.uint8)) & ((1 << bits) - 1)
    c = c.transpose(0, 2, 1, 4, 3).reshape(tiles * PLANE_ROWS, blocks * cols)
    return c[:out, :in_]


def pack_mad(weights: np.ndarray) -> np.ndarray:
    w = _checked("mad", weights, (-1, 0, 1))
    return _plane_pack((w + 1).astype(np.uint8), 2, fill=1)


def unpack_mad(packed: np.ndarray, out: int, in_: int) -> np.ndarray:
    codes = _plane_unpack(_checked_packed("mad", packed, mad_bytes(out, in_)), out, in_, 2)
    return codes.astype(np.int8) - 1


def pack_binary(weights: np.ndarray) -> np.ndarray:
    w = _checked("binary", weights, (-1, 1))
    return _plane_pack((w > 0).astype(np.uint8), 1, fill=0)


def unpack_binary(packed: np.ndarray, out: int, in_: int) -> np.ndarray:
    bits = _plane_unpack(_checked_packed("binary", packed, binary_bytes(out, in_)), out, in_, 1)
    return bits.astype(np.int8) * 2 - 1


def pack_lut(weights: np.ndarray) -> np.ndarray:
    w = _checked("lut", weights, (-1, 0, 1))
    c = _padded((w + 1).astype(np.uint8), LUT_ROWS, LUT_COLS, fill=1)
    idx = 3 * c[:, 0::2] + c[:, 1::2]  # one index per column pair
    tiles, blocks = c.shape[0] // LUT_ROWS, c.shape[1] // LUT_COLS
    idx = idx.reshape(tiles, LUT_ROWS, blocks, 2).transpose(0, 2, 1, 3)
    return (idx[..., 0] | idx[..., 1] << 4).astype(np.uint8).reshape(-1)


def unpack_lut(packed: np.ndarray, out: int, in_: int) -> np.ndarray:
    b = _checked_packed("lut", packed, lut_bytes(out, in_))
    tiles, blocks = _ceil(out, LUT_ROWS), _ceil(in_, LUT_COLS)
    b = b.reshape(tiles, blocks, LUT_ROWS)
    idx = np.stack([b & 15, b >> 4], axis=-1).transpose(0, 2, 1, 3).reshape(tiles * LUT_ROWS, blocks * 2)
    codes = np.empty((idx.shape[0], 2 * idx.shape[1]), np.uint8)
    codes[:, 0::2], codes[:, 1::2] = idx // 3, idx % 3
    return codes[:out, :in_].astype(np.int8) - 1


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("mad", "bn_bitlinear_mad", (-1, 0, 1), mad_bytes, _no_scratch, pack_mad, unpack_mad),
        Layout("lut", "bn_bitlinear_lut", (-1, 0, 1), lut_bytes, lut_scratch_bytes, pack_lut, unpack_lut),
        Layout("binary", "bn_bitlinear_binary", (-1, 1), binary_bytes, _no_scratch, pack_binary, unpack_binary),
    )
}


def layout_id(name: str) -> int:
    """The layout's row in the C table (wasm_kernels/layouts.c), as bitnet.h's enum bn_layout numbers it."""
    return list(LAYOUTS).index(name)


def c_layout_id(name: str) -> str:
    return f"BN_LAYOUT_{name.upper()}"


def _by_id(layout: int) -> Layout:
    if not 0 <= layout < len(LAYOUTS):
        raise ValueError(f"layout id {layout} is not one of 0..{len(LAYOUTS) - 1} ({', '.join(LAYOUTS)})")
    return list(LAYOUTS.values())[layout]


def layout_bytes(layout: int, out: int, in_: int) -> int:
    return _by_id(layout).packed_bytes(out, in_)


def layout_scratch_bytes(layout: int, in_: int) -> int:
    return _by_id(layout).scratch_bytes(in_)
