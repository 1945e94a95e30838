"""Published checkpoint formats -> the canonical Checkpoint (see ../checkpoint.py)."""
from __future__ import annotations

from pathlib import Path
from ..checkpoint import Checkpoint
from . import hf
from .errors import CheckpointError
from .tokenizer import read_json

__all__ = ["CheckpointError", "FORMATS", "load_checkpoint"]

FORMATS: dict[str, hf.Family] = {  # config.json "architectures"[0] -> its family's row
    "BitNetForCausalLM": hf.BITNET,      # microsoft/bitnet-b1.58-2B-4T (packed), its bf16 master weights, our 1-bit export
    "BitnetForCausalLM": hf.ONEBITLLM,   # 1bitLLM/bitnet_b1_58-large, -3B (fp16, ternarized at build)
    "LlamaForCausalLM": hf.LLAMA,        # tiiuae/Falcon3-*-1.58bit, Falcon-E-*, HF1BitLLM/Llama3-8B-1.58-100B-tokens (packed)
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
    return hf.load(model_dir, config, FORMATS[names[0]])
