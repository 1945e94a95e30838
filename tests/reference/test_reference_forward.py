import numpy as np
import pytest

from bitnet_wasm.compiler import writers as models
from reference.forward import reference_logits
from reference.oracle import transformers_logits

WRITERS = [models.write_bitnet_packed, models.write_bitnet_fp, models.write_bitnet_1bit, models.write_1bitllm, models.write_llama_bitnet]
TOKENS = [317, 3, 99, 250, 42, 42, 7, 180, 64, 301, 5, 12]


@pytest.mark.parametrize("writer", WRITERS)
def test_causal_prefixes_agree_and_logits_spread(tmp_path, writer):
    writer(tmp_path, seed=1, heads=4, kv_heads=2)
    full = reference_logits(tmp_path, TOKENS)
    prefix = reference_logits(tmp_path, TOKENS[:5])
    assert full.shape == (len(TOKENS), 320) and full.dtype == np.float32
    np.testing.assert_allclose(prefix, full[:5], rtol=0, atol=1e-9 * np.abs(full).max())
    assert 1 < full.std() < 10 and len(set(full.argmax(-1))) > 3  # tiny models are not degenerate


def test_weights_change_the_output(tmp_path):
    a = reference_logits(models.write_bitnet_packed(tmp_path / "a", seed=1).path, TOKENS)
    b = reference_logits(models.write_bitnet_packed(tmp_path / "b", seed=2).path, TOKENS)
    assert np.abs(a - b).max() > 1


ORACLE_CASES = {  # every published layout, as transformers' AutoModelForCausalLM reads it
    "2b4t-autobitlinear-bf16-tied": (models.write_bitnet_packed, dict(seed=0)),
    "bitlinear-f16-untied-gqa4": (models.write_bitnet_packed, dict(seed=1, heads=8, kv_heads=2, tied=False, dtype="float16",
                                                                   linear_class="bitlinear")),
    "bitlinear-f32-mha": (models.write_bitnet_packed, dict(seed=2, kv_heads=4, dtype="float32", linear_class="bitlinear")),
    "autobitlinear-online-bf16": (models.write_bitnet_fp, dict(seed=3, quantization_config=models.AUTOBITLINEAR_ONLINE)),
    "falcon3-llama-bf16-sharded": (models.write_llama_bitnet, dict(seed=2, shards=2)),
    "falcon3-llama-head_dim-16": (models.write_llama_bitnet, dict(seed=4, head_dim=16, heads=8, kv_heads=4)),
    "llama-use_rms_norm": (models.write_llama_bitnet, dict(seed=5, linear_norm_eps=1e-5)),
    "2b4t-use_rms_norm": (models.write_bitnet_packed, dict(seed=6, linear_norm_eps=0.25)),
}


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_reference_matches_transformers(tmp_path, case):
    """Runs only where torch + transformers are installed (not in CI)."""
    writer, options = ORACLE_CASES[case]
    writer(tmp_path, **options)
    tokens = list(range(3, 300, 9))
    theirs = transformers_logits(tmp_path, tokens)
    ours = reference_logits(tmp_path, tokens)
    delta, scale = np.abs(theirs - ours).max(axis=1), np.abs(ours).max()
    # torch runs f32, the reference f64: an int8 activation that lands on a rounding tie can flip, rarely
    assert np.mean(delta <= 1e-5 * scale) >= 0.9, delta / scale
    assert delta.max() <= 0.02 * scale
