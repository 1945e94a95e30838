"""The tiny demo models shipped inside the package (README.md here says how they were made)."""
from __future__ import annotations

import os
from pathlib import Path

EMBEDDED = {"b1.58": "bitnet-b1.58-tiny", "1bit": "bitnet-1bit-tiny"}  # --model name -> folder
MODELS_ENV = "BITNET_WASM_MODELS"  # a folder holding those model folders, instead of this package's
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


class EmbeddedModelError(LookupError):
    pass


def models_root() -> Path:
    return Path(os.environ.get(MODELS_ENV) or Path(__file__).parent)


def embedded_model_dir(name: str) -> Path:
    """The folder of the embedded model `name` (a key of EMBEDDED), checked to hold its files."""
    if name not in EMBEDDED:
        raise EmbeddedModelError(f"no embedded model {name!r}: expected one of {', '.join(EMBEDDED)}")
    folder = models_root() / EMBEDDED[name]
    if not folder.is_dir():
        raise EmbeddedModelError(f"embedded model {name!r} is missing: {folder} does not exist "
                                 f"(set {MODELS_ENV} to a folder holding {EMBEDDED[name]}/, or reinstall the package)")
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise EmbeddedModelError(f"embedded model {name!r} in {folder} is incomplete: no {', '.join(missing)}")
    return folder
