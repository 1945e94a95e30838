"""relu2 * up, silu * up and the residual add, against numpy."""
import numpy as np
import pytest

SIZES = [1, 3, 17, 100, 129, 6912]


def inputs(n, seed=0):
    rng = np.random.default_rng(seed + n)
    gate = (rng.standard_normal(n) * 8).astype(np.float32)
    gate[:: max(1, n // 5)] = rng.uniform(-120, 120, len(gate[:: max(1, n // 5)]))  # exp saturates
    return gate, rng.standard_normal(n).astype(np.float32)


def reference_relu2_mul(g, u):
    return np.square(np.maximum(g, np.float32(0))) * u  # float32, same operations: exact


def reference_silu_mul(g, u):
    g64 = g.astype(np.float64)
    return g64 / (1 + np.exp(-g64)) * u


def reference_add(a, b):
    return a + b


CASES = {"bn_relu2_mul": (reference_relu2_mul, 0.0), "bn_silu_mul": (reference_silu_mul, 1e-6), "bn_add": (reference_add, 0.0)}


def run(lib, name, a, b):
    y = np.zeros_like(a)
    getattr(lib, name)(a, b, y, a.size)
    return y


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("n", SIZES)
def test_simd_equals_scalar_and_reference(lib, name, n):
    reference, rtol = CASES[name]
    g, u = inputs(n)
    fast, ref = run(lib, name, g, u), run(lib, name + "_ref", g, u)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(fast, reference(g, u), rtol=rtol, atol=1e-35)


@pytest.mark.parametrize("name", CASES)
def test_output_may_alias_an_input(lib, name):
    g, u = inputs(37, seed=1)
    want = run(lib, name, g, u)
    getattr(lib, name)(g, u, g, g.size)
    np.testing.assert_array_equal(g, want)


def test_nan_gate_stays_visible(lib):
    g = np.full(5, np.nan, np.float32)
    for name in ("bn_relu2_mul", "bn_silu_mul", "bn_relu2_mul_ref", "bn_silu_mul_ref"):
        assert np.isnan(run(lib, name, g, np.ones(5, np.float32))).all()
