"""Seeded mutations of the files a user hands us (JSON documents and raw bytes), for the fuzz tests.

Every mutation is drawn from a numpy Generator, so a failing case is replayed from its seed."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

SOAK_ENV = "BITNET_WASM_FUZZ"  # e.g. BITNET_WASM_FUZZ=100000: that many cases per fuzz test instead of the CI count
REPLACEMENTS = (None, True, -1, 0, 1, 3, 2**31, 2**63, -(2**40), 1.5, -0.0, math.inf, math.nan, "", "x", "../x", [], {}, [1], {"a": 1})


def cases(ci_count: int) -> int:
    return int(os.environ.get(SOAK_ENV) or ci_count)


def _paths(value, path=()):
    """Every path (tuple of keys/indices) into a JSON value, the root included."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, path + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value[:50]):  # long lists (shards, merges): their heads are enough
            yield from _paths(child, path + (i,))


def mutate_json(document, rng: np.random.Generator):
    """A copy of `document` with one value replaced, nudged, or deleted. Returns (copy, description)."""
    doc = json.loads(json.dumps(document))
    paths = [p for p in _paths(doc) if p]
    path = paths[rng.integers(len(paths))]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    action = rng.integers(3)
    if action == 0 and isinstance(parent, dict):
        del parent[key]
        return doc, f"deleted {path}"
    if action == 1 and isinstance(old, (int, float)) and not isinstance(old, bool):
        new = old + int(rng.choice([-64, -1, 1, 64, 4096]))
    else:
        new = REPLACEMENTS[rng.integers(len(REPLACEMENTS))]
    parent[key] = new
    return doc, f"{path}: {old!r:.40} -> {new!r:.40}"


def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """`data` with a byte flipped, a cut, bytes inserted or appended. Returns (bytes, description)."""
    if not data:
        return b"\0", "empty -> one zero byte"
    at = int(rng.integers(len(data)))
    action = rng.integers(4)
    if action == 0:
        bit = 1 << int(rng.integers(8))
        return data[:at] + bytes([data[at] ^ bit]) + data[at + 1:], f"byte {at} ^= {bit}"
    if action == 1:
        return data[:at], f"cut at {at} of {len(data)}"
    if action == 2:
        return data[:at] + bytes(rng.integers(0, 256, 8, dtype=np.uint8)) + data[at:], f"8 bytes inserted at {at}"
    return data + b"\0" * int(rng.integers(1, 100)), "zeros appended"


def mutate_file(path: Path, rng: np.random.Generator) -> str:
    """Mutate one file in place: as JSON where it parses as JSON (half the time), else as bytes."""
    data = path.read_bytes()
    if path.suffix == ".json" and rng.integers(2):
        try:
            doc, what = mutate_json(json.loads(data), rng)
            path.write_text(json.dumps(doc))
            return f"{path.name} {what}"
        except (ValueError, UnicodeDecodeError):
            pass
    new, what = mutate_bytes(data, rng)
    path.write_bytes(new)
    return f"{path.name} {what}"


def names_a_file(message: str, folder: Path) -> bool:
    """A clear error names the file at fault: a path inside `folder`, or the folder itself."""
    return str(folder) in message
