"""The checksum of a cached weight shard (wasm_kernels/checksum.c, web/checksum.js) written out with
Python's integers: the definition both are tested against."""
from __future__ import annotations

LANES, WORD = 4, 4
MOD = 2**32


def fletcher_lanes(data: bytes) -> str:
    """a += word, b += a per lane (word index mod 4), modulo 2^32, over little-endian words; zero-padded to 16 bytes."""
    padded = data + bytes(-len(data) % (LANES * WORD))
    a, b = [0] * LANES, [0] * LANES
    for at in range(0, len(padded), WORD):
        lane = at // WORD % LANES
        a[lane] = (a[lane] + int.from_bytes(padded[at:at + WORD], "little")) % MOD
        b[lane] = (b[lane] + a[lane]) % MOD
    return "".join(f"{s:08x}" for s in a + b)
