"""Checkpoints that load and build but whose arithmetic goes wrong, for the tests of what the runtime reports."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bitnet_wasm.compiler.checkpoint import Checkpoint
from bitnet_wasm.compiler.loaders import load_checkpoint
from bitnet_wasm.compiler.writers import write_bitnet_packed


def overflowing_checkpoint(folder: Path, norm: str = "norm", **shape) -> Checkpoint:
    """Finite weights whose arithmetic overflows float32: a norm weight of 3e38 turns the logits into NaN
    (the final norm's at the head; a layer's inside that layer, whence the NaN has to travel)."""
    checkpoint = load_checkpoint(write_bitnet_packed(folder, seed=1, **shape).path)
    tensors = {**checkpoint.tensors, norm: np.full_like(checkpoint.tensors[norm], 3e38)}
    return dataclasses.replace(checkpoint, tensors=tensors)
