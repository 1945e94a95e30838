"""bn_rope against HF Llama/BitNet rotate-half RoPE: float32 angles as HF computes them, every
transcendental in float64 (Python's math) and rounded once, so the reference does not depend on the
CPU's numpy (its float32 pow/sin differ by an ulp between AVX2 and AVX-512 builds)."""
import math

import numpy as np
import pytest

# (n, heads, head_dim, pos0): odd half-dims hit the scalar tail; large pos0 the range reduction
SHAPES = [(1, 1, 2, 0), (3, 2, 6, 5), (17, 3, 34, 100), (4, 5, 64, 4090), (2, 4, 128, 130_000)]
THETAS = [10000.0, 500000.0]


def reference_inv_freq(theta, d):
    """float32 inv_freq = 1 / theta^(2i/d): the exponent and the division in float32 (IEEE, exact on
    every CPU), the power in float64 rounded once."""
    exponents = np.arange(0, d, 2).astype(np.float32) / np.float32(d)
    powers = np.array([math.exp(float(e) * math.log(theta)) for e in exponents]).astype(np.float32)
    return np.float32(1.0) / powers


def reference_rope(x, pos0, theta):
    n, heads, d = x.shape
    angles = np.arange(pos0, pos0 + n).astype(np.float32)[:, None] * reference_inv_freq(theta, d)[None, :]
    emb = np.concatenate([angles, angles], axis=-1).astype(np.float64)
    cos = np.vectorize(math.cos)(emb).astype(np.float32).astype(np.float64)[:, None, :]
    sin = np.vectorize(math.sin)(emb).astype(np.float32).astype(np.float64)[:, None, :]
    x = x.astype(np.float64)
    rotate_half = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
    return x * cos + rotate_half * sin


def run(lib, name, x, pos0, theta):
    y = x.copy()
    getattr(lib, name)(y, y.shape[0], y.shape[1], y.shape[2], pos0, theta)
    return y


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("theta", THETAS)
def test_rope_simd_equals_scalar_and_reference(lib, shape, theta):
    n, heads, d, pos0 = shape
    x = np.random.default_rng(d).standard_normal((n, heads, d)).astype(np.float32)
    fast, ref = run(lib, "bn_rope", x, pos0, theta), run(lib, "bn_rope_ref", x, pos0, theta)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    # same float32 angles as HF; what may differ is a last-bit rounding of inv_freq, cos or sin
    scale = np.abs(x[..., : d // 2]) + np.abs(x[..., d // 2:])
    err = np.abs(fast - reference_rope(x, pos0, theta))
    assert (err <= 2.0**-22 * np.concatenate([scale, scale], axis=-1) + 1e-30).all()


def test_rope_position_zero_is_identity(lib):
    x = np.random.default_rng(0).standard_normal((1, 3, 16)).astype(np.float32)
    np.testing.assert_array_equal(run(lib, "bn_rope", x, 0, 500000.0), x)
