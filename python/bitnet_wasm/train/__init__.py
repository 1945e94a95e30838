"""Quantization-aware training of small BitNet models (needs the [train] extra: torch).

corpus text -> tokenizer.py (byte-level BPE) -> data.py (token windows) -> model.py (BitNetForCausalLM
in torch, BitLinear layers from quant.py) -> trainer.py (AdamW loop, checkpoints) -> export.py (HF files)."""
import os

# Before torch loads OpenMP: spinning idle workers on a shared CPU made steps 3-4x slower here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
