"""A damaged site never reaches "ready" in the page: the manifest is checked whole (web/manifest.js),
and the wasm module and tokenizer against their sha256 in the manifest, before any is used."""
from __future__ import annotations

import json
import shutil

import pytest
from damaged import overflowing_checkpoint

import bitnet_wasm

LOAD_ERROR = """async () => {
  const { BitNet } = await import("/bitnet.js");
  try { await BitNet.load("/model/manifest.json", { threads: 1, simd: "simd128" }); return null; } catch (e) { return e.message; }
}"""


@pytest.fixture(scope="session")
def site(small_site):
    return small_site


def drop_last_shard(model_dir):
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["shards"].pop()
    path.write_text(json.dumps(manifest))


def flip_byte(name):
    def damage(model_dir):
        data = bytearray((model_dir / name).read_bytes())
        data[len(data) // 2] ^= 0x20
        (model_dir / name).write_bytes(data)
    return damage


DAMAGE = {  # what is done to model/ -> what the page's error says
    "last shard dropped from the manifest": (drop_last_shard, "shards cover the weights region only up to byte"),
    "wasm module changed": (flip_byte("bitnet.wasm"), "bitnet.wasm: sha256 does not match the manifest"),
    "tokenizer changed": (flip_byte("tokenizer.json"), "tokenizer.json: sha256 does not match the manifest"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_site_is_refused_naming_what_is_wrong(page, served_dir, site, tmp_path, damage):
    damaged = tmp_path / "site"
    shutil.copytree(site, damaged)
    change, message = DAMAGE[damage]
    change(damaged / "model")
    page.goto(served_dir(damaged) + "model/manifest.json")
    error = page.evaluate(LOAD_ERROR)
    assert error is not None and message in error, error


@pytest.fixture(scope="session", params=["norm", "layers.0.input_norm"])
def overflowing_site(tmp_path_factory, request):
    """NaN logits from the final norm, or from a NaN born in layer 0 (the page's quantizer must not make it 0)."""
    root = tmp_path_factory.mktemp("overflow")
    bitnet_wasm.build(overflowing_checkpoint(root / "hf", request.param), root / "site", layout="mad", progress=False)
    return root / "site"


def test_nan_logits_from_finite_weights_are_reported_not_sampled(page, served_dir, overflowing_site):
    page.goto(served_dir(overflowing_site) + "model/manifest.json")
    error = page.evaluate("""async () => {
      const { BitNet } = await import("/bitnet.js");
      const model = await BitNet.load("/model/manifest.json", { threads: 1 });
      try { for await (const piece of model.generate([1, 2, 3], { maxNewTokens: 4, temperature: 0 })); return null; } catch (e) { return e.message; }
    }""")
    assert error is not None and "the logits at position 3 are not finite (NaN or inf): the model's arithmetic overflowed float32" in error, error
