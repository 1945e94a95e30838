"""transformers' own AutoModelForCausalLM as the oracle: float32, eager attention, no torch.compile."""
from __future__ import annotations

import os

import numpy as np
import pytest


def transformers_logits(model_dir, token_ids) -> np.ndarray:
    """Logits [len(token_ids), vocab] float32; skips the test where torch + transformers are not installed."""
    os.environ["TORCHDYNAMO_DISABLE"] = "1"  # otherwise the quantizers' torch.compile takes ~30 s
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    for t in list(model.parameters()) + list(model.buffers()):  # with autobitlinear it leaves the non-quantized tensors bf16
        if t.is_floating_point():
            t.data = t.data.float()
    with torch.no_grad():
        return model(torch.tensor([list(token_ids)])).logits[0].numpy()
