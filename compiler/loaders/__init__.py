"""Published checkpoint formats -> the canonical Checkpoint (see ../checkpoint.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..checkpoint import Checkpoint
from . import hf
from .errors import CheckpointError
from .tokenizer import read_json

__all__ = ["CheckpointError", "FORMATS", "load_checkpoint"]

FORMATS: dict[str, Callable[[Path, dict], Checkpoint]] = {  # config.json "architectures"[0] -> loader
    "BitNetForCausalLM": hf.load_bitnet,     # microsoft/bitnet-b1.58-2B-4T (packed), its bf16 master weights, our 1-bit export
    "BitnetForCausalLM": hf.load_1bitllm,    # 1bitLLM/bitnet_b1_58-large, -3B (fp16, ternarized at build)
}


def load_checkpoint(path: str | Path) -> Checkpoint:
    model_dir = Path(path)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{model_dir}: not a model folder (no config.json)")
    config = read_json(config_file)
    names = config.get("architectures")
    if not isinstance(names, list) or len(names) != 1 or names[0] not in FORMATS:
        raise CheckpointError(f"{config_file}: unsupported architecture {names!r}; supported: {', '.join(FORMATS)}")
    return FORMATS[names[0]](model_dir, config)
