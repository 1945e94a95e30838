"""bn_rmsnorm against HF Llama/BitNet RMSNorm written in float64 numpy."""
import numpy as np
import pytest

SHAPES = [(1, 1), (1, 3), (2, 17), (3, 100), (2, 129), (1, 2560)]


def reference_rmsnorm(x, weight, eps):
    x = x.astype(np.float64)
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight.astype(np.float64) * (x / np.sqrt(variance + eps))


def run(lib, name, x, weight, eps):
    n, dim = x.shape
    y = np.zeros_like(x)
    getattr(lib, name)(x, weight, y, n, dim, eps)
    return y


def make(rng, n, dim):
    x = (rng.standard_normal((n, dim)) * rng.uniform(0.01, 100)).astype(np.float32)
    return x, rng.uniform(-2, 2, dim).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_rmsnorm_simd_equals_scalar_and_reference(lib, shape, eps):
    x, w = make(np.random.default_rng(shape[1]), *shape)
    fast, ref = run(lib, "bn_rmsnorm", x, w, eps), run(lib, "bn_rmsnorm_ref", x, w, eps)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    np.testing.assert_allclose(fast, reference_rmsnorm(x, w, eps), rtol=1e-5, atol=0)


def test_rmsnorm_zero_row_is_zero(lib):
    x, w = np.zeros((1, 33), np.float32), np.ones(33, np.float32)
    assert not run(lib, "bn_rmsnorm", x, w, 1e-5).any()
