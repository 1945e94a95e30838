"""The new checkpoint families in the page: a Falcon3-layout (LlamaForCausalLM + bitnet, no
sub-norms, explicit head_dim, untied head) site, the same with use_rms_norm, a 2B-4T-layout site
from an I2_S GGUF and a llama-arch TQ2_0 GGUF with a SentencePiece vocabulary, all built with
--kv f32, give in the browsers the greedy tokens and logits of the Python runtime."""
from __future__ import annotations

import bitnet_wasm
import numpy as np
import pytest
from bitnet_wasm.compiler import writers
from bitnet_wasm.compiler.loaders import load_checkpoint
from bitnet_wasm.compiler.writers.gguf import write_gguf

PROMPT = "The old lighthouse keeper climbed the stairs every evening before the sun went down."
RUN = """async ([prompt, steps, ids]) => {
  const { BitNet } = await import("/bitnet.js");
  const model = await BitNet.load("/model/manifest.json");
  const tokens = [];
  for await (const piece of model.generate(prompt, { maxNewTokens: steps, temperature: 0 })) tokens.push(piece.token);
  const logits = (await model.logits(ids)).map((row) => Array.from(row));
  return { tokens, logits };
}"""


def falcon3(root):
    return writers.write_llama_bitnet(root / "hf", seed=0, hidden=40, heads=4, kv_heads=2, head_dim=12, intermediate=72, shards=2).path


def bitnet_i2_s(root):
    written = writers.write_bitnet_packed(root / "hf", seed=0, hidden=256, heads=4, kv_heads=2, intermediate=512)
    return write_gguf(load_checkpoint(written.path), root / "ggml-model-i2_s.gguf", "i2_s", "bitnet-25")


def llama_use_rms_norm(root):
    """quantization_config use_rms_norm: every linear norms its own input."""
    return writers.write_llama_bitnet(root / "hf", seed=0, hidden=40, heads=4, kv_heads=2, head_dim=12, intermediate=72,
                                      linear_norm_eps=1e-5).path


def llama_sentencepiece_tq2_0(root):
    """A llama-arch TQ2_0 GGUF with a Llama-2-style SentencePiece vocabulary: the page tokenizes with it."""
    written = writers.write_llama_bitnet(root / "hf", seed=0, hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=256,
                                         vocab=512, tokenizer=False)
    return write_gguf(load_checkpoint(written.path), root / "model-tq2_0.gguf", "tq2_0", "llama", tokenizer="llama")


SOURCES = {source.__name__: source for source in (falcon3, bitnet_i2_s, llama_use_rms_norm, llama_sentencepiece_tq2_0)}


@pytest.fixture(scope="session")
def sites(tmp_path_factory):
    """name -> (site, Python's greedy tokens, prompt ids, their logits): each built once for every engine."""
    built = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        for name, source in SOURCES.items():
            root = tmp_path_factory.mktemp(name)
            bitnet_wasm.build(source(root), root / "site", kv="f32", layout="mad", progress=False)
            python_model = bitnet_wasm.load(root / "site")
            ids = python_model.encode(PROMPT)[:20]
            built[name] = (root / "site", python_model.generate(PROMPT, max_new_tokens=32, temperature=0).tokens, ids, python_model.logits(ids))
    return built


@pytest.mark.parametrize("source", list(SOURCES))
def test_page_matches_python_in_exact_mode(page, served_dir, sites, source):
    site, tokens, ids, logits = sites[source]
    page.goto(served_dir(site) + "model/manifest.json")
    got = page.evaluate(RUN, [PROMPT, 32, ids])
    assert got["tokens"] == tokens
    np.testing.assert_array_equal(np.array(got["logits"], np.float32), logits)  # the same C: bit-identical
