"""Where bitnet-wasm keeps what it can rebuild: kernel timings, native libraries, demo sites."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "BITNET_WASM_CACHE"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bitnet-wasm"
