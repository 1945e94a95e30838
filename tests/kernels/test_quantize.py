import numpy as np
import pytest

from bitnet_wasm.wasm_kernels import KernelArgumentError

SHAPES = [(1, 1), (1, 15), (2, 16), (3, 17), (4, 100), (1, 2560), (5, 6912)]


def reference_quantize(x: np.ndarray):
    """BitNet b1.58 activation quantization, written from the published torch code."""
    amax = np.abs(x).max(axis=-1, keepdims=True)
    scale = (np.float32(127) / np.maximum(amax, np.float32(1e-5))).astype(np.float32)
    q = np.clip(np.round(x * scale), -128, 127).astype(np.int8)  # np.round is half-to-even
    return q, scale[:, 0]


def run(lib, name, x):
    n, k = x.shape
    q = np.zeros((n, k), np.int8)
    scale = np.zeros(n, np.float32)
    getattr(lib, name)(x, q, scale, n, k)
    return q, scale


def make_input(rng, n, k):
    x = rng.standard_normal((n, k)).astype(np.float32) * rng.uniform(0.01, 50)
    x.flat[:: max(1, k // 3)] *= 8  # outliers set the scale
    return x


@pytest.mark.parametrize("shape", SHAPES)
def test_quantize_matches_reference_and_scalar(lib, shape):
    rng = np.random.default_rng(sum(shape))
    x = make_input(rng, *shape)
    q_ref, s_ref = reference_quantize(x)
    for name in ("bn_quantize_rows", "bn_quantize_rows_ref"):
        q, s = run(lib, name, x)
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(q, q_ref)


def test_quantize_ties_round_half_to_even(lib):
    # amax 127 gives scale exactly 1, so x*scale lands on .5 ties
    x = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5, 0.49999997, 4.5, 5.5, -5.5, 6.5, 7.5, -7.5]], np.float32)
    for name in ("bn_quantize_rows", "bn_quantize_rows_ref"):
        q, s = run(lib, name, x)
        assert s[0] == 1.0
        assert q.tolist() == [[127, 0, 2, 2, 0, -2, -2, 4, 126, -126, 0, 4, 6, -6, 6, 8, -8]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("at", [0, 5, 17, 21])  # a SIMD lane of the first block, a later one, the scalar tail
def test_a_nan_makes_the_scale_nan_and_inf_makes_it_zero(lib, bad, at):
    """As torch: a NaN row's max is NaN (so its outputs turn NaN and the logits say so), an inf one's scale
    127 / inf = 0; every product that is NaN quantizes to 0. Values larger than the rest sit in other lanes."""
    x = np.full((2, 22), 1.0, np.float32)
    x[:, 1::4] = 9.0
    x[0, at] = bad
    for name in ("bn_quantize_rows", "bn_quantize_rows_ref"):
        q, s = run(lib, name, x)
        assert s[1] == np.float32(127) / np.float32(9.0) and q[1].tolist() == reference_quantize(x[1:])[0][0].tolist()
        if np.isnan(bad):
            assert s[0:1].view(np.uint32)[0] == 0x7FC00000 and not q[0].any(), (name, s[0], q[0])
        else:
            assert s[0] == 0.0 and not q[0].any(), (name, s[0], q[0])


def test_quantize_zero_row_uses_floor_scale(lib):
    x = np.zeros((2, 33), np.float32)
    q, s = run(lib, "bn_quantize_rows", x)
    assert np.all(q == 0) and np.all(s == np.float32(127) / np.float32(1e-5))


def test_wasm_equals_native_bit_for_bit(libs):
    x = make_input(np.random.default_rng(7), 7, 333)
    outs = [run(l, "bn_quantize_rows", x) for l in libs.values()]
    for q, s in outs[1:]:
        np.testing.assert_array_equal(q, outs[0][0])
        assert s.tobytes() == outs[0][1].tobytes()


def test_binding_rejects_bad_arguments(lib):
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(KernelArgumentError, match="x must have n\\*k = 24 elements"):
        lib.bn_quantize_rows(x, np.zeros(24, np.int8), np.zeros(2, np.float32), 2, 12)
    with pytest.raises(KernelArgumentError, match="q must be a int8 array"):
        lib.bn_quantize_rows(x, np.zeros(16, np.uint8), np.zeros(2, np.float32), 2, 8)
    with pytest.raises(KernelArgumentError, match="C-contiguous"):
        lib.bn_quantize_rows(np.zeros((8, 4), np.float32).T, np.zeros(32, np.int8), np.zeros(4, np.float32), 4, 8)
    with pytest.raises(KernelArgumentError, match="takes 5 arguments"):
        lib.bn_quantize_rows(x)
