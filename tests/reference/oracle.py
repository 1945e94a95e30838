"""transformers' own AutoModelForCausalLM as the oracle: float32, eager attention, no torch.compile."""
from __future__ import annotations

import os

import numpy as np
import pytest


class Transformers:
    """One checkpoint loaded by transformers; skips the test where torch + transformers are not installed."""

    def __init__(self, model_dir):
        os.environ["TORCHDYNAMO_DISABLE"] = "1"  # otherwise the quantizers' torch.compile takes ~30 s
        self.torch = pytest.importorskip("torch")
        transformers = pytest.importorskip("transformers")
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=self.torch.float32, attn_implementation="eager").eval()
        for t in list(self.model.parameters()) + list(self.model.buffers()):  # with autobitlinear it leaves the other tensors bf16
            if t.is_floating_point():
                t.data = t.data.float()

    def logits(self, token_ids) -> np.ndarray:
        """[len(token_ids), vocab] float32, one causal pass."""
        with self.torch.no_grad():
            return self.model(self.torch.tensor([list(token_ids)])).logits[0].numpy()

    def greedy(self, prompt, steps: int) -> list[int]:
        """argmax continuation, each step a full causal pass (no cache: nothing of transformers' generate loop)."""
        ids = list(prompt)
        for _ in range(steps):
            ids.append(int(np.argmax(self.logits(ids)[-1])))
        return ids[len(prompt):]


def transformers_logits(model_dir, token_ids) -> np.ndarray:
    return Transformers(model_dir).logits(token_ids)
