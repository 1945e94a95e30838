"""bn_math.h through its *_array entry points, against float64 numpy (errors in float32 ulps)."""
import shutil
import subprocess

import numpy as np
import pytest

F32_MAX_LOG = 88.72283  # last float32 with a finite exp


def ulp_error(y: np.ndarray, exact: np.ndarray) -> np.ndarray:
    ulp = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    return np.abs(y.astype(np.float64) - exact) / ulp


def call(lib, name, x, out_dtype=np.float32):
    y = np.zeros(x.size, out_dtype)
    getattr(lib, name)(x, y, x.size)
    return y


def wide_positive(rng, size):
    """Positive floats spread over every exponent, subnormals included."""
    bits = rng.integers(1, 0x7F800000, size, dtype=np.int64).astype(np.uint32)
    return bits.view(np.float32)


def test_expf_within_one_ulp(lib):
    rng = np.random.default_rng(1)
    # 4k + 3 elements: the v128 body and the scalar tail both run
    x = np.concatenate([rng.uniform(-103.9, F32_MAX_LOG, 200_000), rng.uniform(-1, 1, 3)]).astype(np.float32)
    assert ulp_error(call(lib, "bn_expf_array", x), np.exp(x.astype(np.float64))).max() <= 1.0


def test_expf_edges(lib):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.7229, 89.0, 1e30, -103.97, -103.98, -1e30, 1e-30], np.float32)
    want = np.array([1, 1, np.inf, 0, np.nan, 3.4027985e38, np.inf, np.inf, np.inf, 1.4e-45, 0, 0, 1], np.float32)
    for n in (x.size, 3):  # once mostly vector, once all scalar
        np.testing.assert_array_equal(call(lib, "bn_expf_array", x[:n]), want[:n])


def test_logf_within_one_ulp(lib):
    x = wide_positive(np.random.default_rng(2), 200_000)
    assert ulp_error(call(lib, "bn_logf_array", x), np.log(x.astype(np.float64))).max() <= 1.0
    near_one = np.float32(1) + np.arange(-2000, 2000, dtype=np.float32) * np.float32(2**-23)
    assert ulp_error(call(lib, "bn_logf_array", near_one), np.log(near_one.astype(np.float64))).max() <= 1.0


def test_logf_edges(lib):
    x = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1.0, 1.4e-45], np.float32)
    np.testing.assert_array_equal(call(lib, "bn_logf_array", x), np.array([-np.inf, -np.inf, np.nan, np.inf, np.nan, np.nan, 0.0, -103.27893], np.float32))


@pytest.mark.parametrize("name, exact", [("bn_sinf_array", np.sin), ("bn_cosf_array", np.cos)])
@pytest.mark.parametrize("bound", [4.0, 4096.0, 1.6e6, 2.0**24])
def test_sin_cos_within_one_ulp_with_range_reduction(lib, name, exact, bound):
    x = np.random.default_rng(int(bound)).uniform(-bound, bound, 50_000).astype(np.float32)
    if bound == 4096.0:  # RoPE angles at large positions, and exact multiples of pi/2 in float32
        x = np.concatenate([x, (np.arange(1, 2000) * np.pi / 2).astype(np.float32)])
    assert ulp_error(call(lib, name, x), exact(x.astype(np.float64))).max() <= 1.0


def test_sin_cos_outside_domain_are_nan(lib):
    x = np.array([np.inf, -np.inf, np.nan, 2.0**24 * 1.01, -1e30], np.float32)
    assert np.isnan(call(lib, "bn_sinf_array", x)).all() and np.isnan(call(lib, "bn_cosf_array", x)).all()


def test_f16_to_f32_every_pattern(lib):
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    y = call(lib, "bn_f16_to_f32_array", h)
    np.testing.assert_array_equal(y.view(np.uint32), h.view(np.float16).astype(np.float32).view(np.uint32))


def test_f32_to_f16_rounds_to_nearest_even(lib):
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, 500_000, dtype=np.uint64).astype(np.uint32)
    # halfway cases at every f16 exponent, subnormals, the overflow edge 65520
    ties = (np.arange(65536, dtype=np.uint32) << 13) + 0x1000
    x = np.concatenate([bits.view(np.float32), ties.view(np.float32), np.float32([65519.99, 65520, 2.0**-25, 2.0**-25 * 1.0001, 2.0**-24 * 1.5, 0, -0.0, np.inf, -np.inf])])
    h = call(lib, "bn_f32_to_f16_array", x, np.uint16)
    nan = np.isnan(x)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h[~nan], x[~nan].astype(np.float16).view(np.uint16))
    assert np.isnan(h[nan].view(np.float16)).all()


def test_bf16_to_f32_every_pattern(lib):
    b = np.arange(65536, dtype=np.uint32)
    np.testing.assert_array_equal(call(lib, "bn_bf16_to_f32_array", b.astype(np.uint16)).view(np.uint32), b << 16)



@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils nm")
def test_native_builds_need_no_libc_or_libm(kernel_builds):
    for name in ("native", "native-relaxed"):
        undefined = subprocess.run(["nm", "-D", "--undefined-only", str(kernel_builds[name])], capture_output=True, text=True, check=True).stdout
        assert undefined.strip() == "", f"{name} calls into libc/libm: {undefined}"
