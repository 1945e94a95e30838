"""bn_attention (causal GQA over an f16 KV cache) against HF eager attention in float64 numpy,
and bn_kv_store against numpy's float16 rounding."""
import numpy as np
import pytest

from bitnet_wasm.wasm_kernels import KernelArgumentError

# (n, heads, kv_heads, head_dim, pos0)
SHAPES = [(1, 1, 1, 1, 0), (1, 4, 2, 8, 0), (3, 6, 2, 17, 5), (5, 8, 8, 64, 100), (2, 4, 1, 128, 129), (17, 2, 1, 3, 0)]


def reference_attention(q, k_cache, v_cache, pos0):
    """q [n, heads, d]; caches [rows, kv_heads, d] f16. Each query sees rows 0..pos0+t."""
    n, heads, d = q.shape
    group = heads // k_cache.shape[1]
    k = np.repeat(k_cache.astype(np.float64), group, axis=1)  # repeat_kv
    v = np.repeat(v_cache.astype(np.float64), group, axis=1)
    scores = np.einsum("thd,jhd->thj", q.astype(np.float64), k) * d**-0.5
    causal = np.arange(k.shape[0])[None, :] > (pos0 + np.arange(n))[:, None]
    scores[np.broadcast_to(causal[:, None, :], scores.shape)] = -np.inf
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.einsum("thj,jhd->thd", p / p.sum(axis=-1, keepdims=True), v)


def make(rng, n, heads, kv_heads, d, pos0):
    rows = pos0 + n
    q = (rng.standard_normal((n, heads, d)) * 2).astype(np.float32)
    k = (rng.standard_normal((rows, kv_heads, d)) * 2).astype(np.float16)
    v = rng.standard_normal((rows, kv_heads, d)).astype(np.float16)
    return q, k, v


def run(lib, name, q, k, v, kv_heads, pos0):
    n, heads, d = q.shape
    out = np.zeros_like(q)
    scratch = np.zeros(pos0 + n, np.float32)
    getattr(lib, name)(q, k.view(np.uint16), v.view(np.uint16), out, scratch, n, heads, kv_heads, d, pos0)
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_attention_simd_equals_scalar_and_reference(lib, shape):
    n, heads, kv_heads, d, pos0 = shape
    q, k, v = make(np.random.default_rng(sum(shape)), *shape)
    fast, ref = run(lib, "bn_attention", q, k, v, kv_heads, pos0), run(lib, "bn_attention_ref", q, k, v, kv_heads, pos0)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    # the output is a convex combination of v rows: error relative to their magnitude
    err = np.abs(fast - reference_attention(q, k, v, pos0))
    assert err.max() <= 1e-5 * np.abs(v.astype(np.float32)).max()


def test_first_query_copies_first_value_row(lib):
    q, k, v = make(np.random.default_rng(0), 1, 2, 1, 16, 0)
    out = run(lib, "bn_attention", q, k, v, 1, 0)
    np.testing.assert_array_equal(out, np.broadcast_to(v[0].astype(np.float32), out.shape))


def test_scratch_must_hold_every_visible_row(lib):
    q, k, v = make(np.random.default_rng(0), 2, 2, 1, 8, 3)
    with pytest.raises(KernelArgumentError, match="scratch must have pos0\\+n = 5 elements"):
        lib.bn_attention(q, k.view(np.uint16), v.view(np.uint16), np.zeros_like(q), np.zeros(4, np.float32), 2, 2, 1, 8, 3)


@pytest.mark.parametrize("n, row, pos0", [(1, 1, 0), (1, 640, 7), (3, 17, 2), (2, 129, 0)])
def test_kv_store_rounds_like_numpy_and_leaves_other_rows(lib, n, row, pos0):
    rng = np.random.default_rng(row)
    x = (rng.standard_normal((n, row)) * np.float32(2.0) ** rng.integers(-26, 17, (n, row))).astype(np.float32)
    cache = np.full((pos0 + n, row), 0x1234, np.uint16)
    lib.bn_kv_store(x, cache, n, row, pos0)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(cache[pos0:], x.astype(np.float16).view(np.uint16))
    assert (cache[:pos0] == 0x1234).all()


def test_kv_store_ties_subnormals_and_specials(lib):
    ties = ((np.arange(65536, dtype=np.uint32) << 13) + 0x1000).view(np.float32)  # halfway at every f16 step
    x = np.concatenate([ties, np.float32([65519.99, 65520, 2.0**-25, 2.0**-24 * 1.5, -0.0, np.inf, -np.inf])])[None, :]
    cache = np.zeros(x.shape, np.uint16)
    lib.bn_kv_store(x, cache, 1, x.shape[1], 0)
    nan = np.isnan(x)
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(cache[~nan], x[~nan].astype(np.float16).view(np.uint16))
    assert np.isnan(cache[nan].view(np.float16)).all()


def test_all_builds_agree_bit_for_bit(libs):
    shape = (3, 8, 2, 64, 40)
    q, k, v = make(np.random.default_rng(5), *shape)
    outs = [run(l, name, q, k, v, 2, 40).view(np.uint32) for l in libs.values() for name in ("bn_attention", "bn_attention_ref")]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    x = np.random.default_rng(6).standard_normal((2, 333)).astype(np.float32) * 1000
    caches = []
    for l in libs.values():
        cache = np.zeros((2, 333), np.uint16)
        l.bn_kv_store(x, cache, 2, 333, 0)
        caches.append(cache)
    for cache in caches[1:]:
        np.testing.assert_array_equal(cache, caches[0])
