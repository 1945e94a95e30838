"""A prompt run as one prefill (chunks of tokens through the blocked GEMM paths of the bitlinear
kernels) gives the same logits, bit for bit, as the same tokens run one at a time (the GEMV
paths), in every layout the kernel choice can pick and in the native and wasm builds."""
import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.compiler.writers import write_bitnet_1bit, write_bitnet_packed

# hidden 200: MAD rows of 3 full 64-column blocks and a tail, binary rows of 1 block and a tail;
# intermediate 136 likewise for down_proj. The chunk of 11 tokens leaves 4-token blocks and rest.
SHAPE = dict(hidden=200, heads=4, kv_heads=2, intermediate=136, layers=2, vocab=300)
CHUNK = 11
PROMPT = 27
SITES = {
    "mad": lambda path: write_bitnet_packed(path, seed=5, **SHAPE),
    "lut": lambda path: write_bitnet_packed(path, seed=5, **SHAPE),
    "binary": lambda path: write_bitnet_1bit(path, seed=6, **SHAPE),
}
BACKENDS = ("native", "wasm", "wasm-relaxed")


@pytest.fixture(scope="module", autouse=True)
def native_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        yield


@pytest.mark.parametrize("layout", list(SITES))
def test_prefill_equals_token_by_token(tmp_path, layout):
    written = SITES[layout](tmp_path / "hf")
    bitnet_wasm.build(written.path, tmp_path / "site", layout="auto" if layout == "binary" else layout, chunk=CHUNK, progress=False)
    ids = np.random.default_rng(7).integers(0, SHAPE["vocab"], PROMPT)
    for backend in BACKENDS:
        model = bitnet_wasm.load(tmp_path / "site", backend)
        assert model.manifest["tensors"]["layers.0.down_proj"]["layout"] == layout
        prefill = model.logits(ids)
        one_by_one = np.concatenate([model.forward([t], pos) for pos, t in enumerate(ids)])
        np.testing.assert_array_equal(prefill.view(np.uint32), one_by_one.view(np.uint32), err_msg=f"{layout}, {backend}")
