"""Published checkpoint formats -> the canonical Checkpoint (see ../checkpoint.py): a Hugging Face
folder (config.json + safetensors; one Family row per config architecture) or a GGUF file."""
from __future__ import annotations

from pathlib import Path
from ..checkpoint import Checkpoint
from . import hf
from .gguf_model import load_gguf
from .errors import CheckpointError
from .tokenizer import read_json

__all__ = ["CheckpointError", "FORMATS", "load_checkpoint"]

FORMATS: dict[str, hf.Family] = {  # config.json "architectures"[0] -> its family's row
    "BitNetForCausalLM": hf.BITNET,      # microsoft/bitnet-b1.58-2B-4T (packed), its bf16 master weights, our 1-bit export
    "BitnetForCausalLM": hf.ONEBITLLM,   # 1bitLLM/bitnet_b1_58-large, -3B (fp16, ternarized at build)
    "LlamaForCausalLM": hf.LLAMA,        # tiiuae/Falcon3-*-1.58bit, Falcon-E-*, HF1BitLLM/Llama3-8B-1.58-100B-tokens (packed)
}


SUPPORTED = ("BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T, -bf16), BitnetForCausalLM (1bitLLM/bitnet_b1_58-large), "
             "LlamaForCausalLM with a bitnet quantization_config (tiiuae/Falcon3-1B-Instruct-1.58bit, tiiuae/Falcon-E-1B-Instruct, "
             "HF1BitLLM/Llama3-8B-1.58-100B-tokens), or a GGUF file in TQ1_0 / TQ2_0 / I2_S "
             "(microsoft/bitnet-b1.58-2B-4T-gguf)")


def load_checkpoint(path: str | Path) -> Checkpoint:
    if Path(path).suffix == ".gguf" or Path(path).is_file():
        return load_gguf(Path(path))
    model_dir = Path(path)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{model_dir}: not a model folder (no config.json)")
    config = read_json(config_file)
    names = config.get("architectures")
    if not isinstance(names, list) or len(names) != 1 or names[0] not in FORMATS:
        raise CheckpointError(f"{config_file}: unsupported architecture {names!r}; supported: {SUPPORTED}. "
                              "Other Llama-shaped models need BitNet (ternary) weights first, e.g. a 1.58-bit fine-tune")
    return hf.load(model_dir, config, FORMATS[names[0]])
