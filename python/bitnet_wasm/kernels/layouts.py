"""The weight layouts: one table shared by the compiler (which packs) and the kernels (which read).

Each layout names its kernel, its packed size for an [out, in] matrix, and its packer from a
dense matrix of weights (int8 in {-1, 0, +1}, or {-1, +1} for binary)."""
from __future__ import annotations

# Names the ABI's /*[count]*/ expressions may call (see bitnet.h).
SIZE_FUNCTIONS = ("mad_bytes", "lut_bytes", "lut_scratch_bytes", "binary_bytes")
