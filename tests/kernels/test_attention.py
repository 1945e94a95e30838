"""bn_attention (causal GQA over an f16 KV cache) and bn_attention_f32 (over an f32 one) against
HF eager attention in float64 numpy, and bn_kv_store against numpy's float16 rounding. The kernels' caches
are [kv_heads, context, head_dim]; the tests make them [rows, kv_heads, head_dim], as HF's are per token."""
import numpy as np
import pytest

from bitnet_wasm.wasm_kernels import KernelArgumentError
from bitnet_wasm.wasm_kernels.abi import attention_scratch

# (n, heads, kv_heads, head_dim, pos0); groups of 1 to 4 query heads per kv head, and 20 / 5 as 2B-4T;
# head_dim 40 takes every register blocking of the values (32 + 8 columns alone, 16 + 16 + 8 in pairs, 8s
# in threes and fours; 6 heads: a four and a pair); the last three read their cache rows in several phases
# (64 rows of an f16 head of 128, 204 of one of 40), the last one ending on a row that is not a block of 4
SHAPES = [(1, 1, 1, 1, 0), (1, 4, 2, 8, 0), (3, 6, 2, 17, 5), (5, 8, 8, 64, 100), (2, 4, 1, 128, 129), (17, 2, 1, 3, 0),
          (1, 20, 5, 128, 37), (1, 2, 2, 40, 9), (1, 3, 1, 40, 6), (2, 6, 1, 40, 11), (1, 20, 5, 128, 300),
          (1, 6, 2, 40, 450), (1, 4, 1, 128, 200)]


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


KV = {"bn_attention": np.float16, "bn_attention_f32": np.float32}  # kernel -> its cache's element type
CACHE_VIEW = {np.float16: np.uint16, np.float32: np.float32}  # how the C signature takes the cache


def make(rng, n, heads, kv_heads, d, pos0, kv=np.float16):
    rows = pos0 + n
    q = (rng.standard_normal((n, heads, d)) * 2).astype(np.float32)
    k = (rng.standard_normal((rows, kv_heads, d)) * 2).astype(kv)
    v = rng.standard_normal((rows, kv_heads, d)).astype(kv)
    return q, k, v


SPARE_ROWS = 3  # of each kv head, after the valid ones: NaN, which a kernel reading them would spread


def cache_of(rows):
    """[rows, kv_heads, d] as a kernel's cache argument: [kv_heads, rows + SPARE_ROWS, d] in the C signature's type"""
    n, kv_heads, d = rows.shape
    cache = np.full((kv_heads, n + SPARE_ROWS, d), np.nan, rows.dtype)
    cache[:, :n] = rows.transpose(1, 0, 2)
    return cache.view(CACHE_VIEW[rows.dtype.type])


def run(lib, name, q, k, v, kv_heads, pos0, scratch=None):
    n, heads, d = q.shape
    out = np.zeros_like(q)
    scratch = np.zeros(attention_scratch(heads, kv_heads, d, pos0 + n), np.float32) if scratch is None else scratch
    getattr(lib, name)(q, cache_of(k), cache_of(v), out, scratch, n, heads, kv_heads, d, pos0 + n + SPARE_ROWS, pos0)
    return out


@pytest.mark.parametrize("kernel", KV)
@pytest.mark.parametrize("shape", SHAPES)
def test_attention_simd_equals_scalar_and_reference(lib, shape, kernel):
    n, heads, kv_heads, d, pos0 = shape
    q, k, v = make(np.random.default_rng(sum(shape)), *shape, kv=KV[kernel])
    fast, ref = run(lib, kernel, q, k, v, kv_heads, pos0), run(lib, kernel + "_ref", q, k, v, kv_heads, pos0)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    # the output is a convex combination of v rows: error relative to their magnitude
    err = np.abs(fast - reference_attention(q, k, v, pos0))
    assert err.max() <= 1e-5 * np.abs(v.astype(np.float32)).max()


# the kernels convert a kv head's f16 cache rows the short way when none is inf or nan, else as the reference
EDGES = np.float16([65504, -65504, 6.1e-5, -6e-8, 0.0, -0.0, 1e-7])  # largest, smallest normal, subnormals, zeros


@pytest.mark.parametrize("d, column", [(40, 35), (19, 17), (128, 100)])  # in a block of 8 columns; in the tail
@pytest.mark.parametrize("special, where", [(None, None), (np.inf, "k"), (-np.inf, "v"), (np.nan, "v"), (np.nan, "k")])
@pytest.mark.parametrize("n, pos0", [(2, 13), (1, 300)])  # a prompt; a decoded token, its special row in a later phase where d is 128
def test_attention_edge_and_nonfinite_cache_values_as_scalar(libs, special, where, d, column, n, pos0):
    heads, kv_heads = 8, 2
    rng = np.random.default_rng(3)
    q, k, v = make(rng, n, heads, kv_heads, d, pos0)
    for cache in (k, v):
        edge = rng.random(cache.shape) < 0.2
        cache[edge] = rng.choice(EDGES, edge.sum())
    if special is not None:
        {"k": k, "v": v}[where][pos0 - 3, 1, column] = special  # the second kv head
        q[:, heads // 2:, column] = np.abs(q[:, heads // 2:, column]) + 1  # so an inf key makes an inf score
    for lib in libs.values():
        fast, ref = run(lib, "bn_attention", q, k, v, kv_heads, pos0), run(lib, "bn_attention_ref", q, k, v, kv_heads, pos0)
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
        np.testing.assert_array_equal(fast.view(np.uint32)[~np.isnan(ref)], ref.view(np.uint32)[~np.isnan(ref)])
        assert np.isfinite(fast[:, :heads // 2]).all()
        assert np.isfinite(fast[:, heads // 2:]).all() == (special is None)


def test_first_query_copies_first_value_row(lib):
    q, k, v = make(np.random.default_rng(0), 1, 2, 1, 16, 0)
    out = run(lib, "bn_attention", q, k, v, 1, 0)
    np.testing.assert_array_equal(out, np.broadcast_to(v[0].astype(np.float32), out.shape))


def test_scratch_must_hold_a_group_of_score_rows_four_cache_rows_and_a_kv_heads_rows(lib):
    q, k, v = make(np.random.default_rng(0), 2, 2, 1, 8, 3)
    assert attention_scratch(2, 1, 8, 5) == 2 * 6 + 4 * 8 + 2 * 5 * 8
    with pytest.raises(KernelArgumentError, match="scratch must have .* = 124 elements"):
        run(lib, "bn_attention", q, k, v, 1, 3, scratch=np.zeros(123, np.float32))


@pytest.mark.parametrize("kernel", KV)
@pytest.mark.parametrize("shape", [(1, 20, 5, 128, 37), (3, 7, 3, 6, 3), (2, 4, 1, 17, 9)])
def test_attention_writes_no_float_beyond_its_scratch(libs, shape, kernel):  # native: the kernel gets numpy's own memory
    n, heads, kv_heads, d, pos0 = shape
    q, k, v = make(np.random.default_rng(1), *shape, kv=KV[kernel])
    size = attention_scratch(heads, kv_heads, d, pos0 + n)
    guarded = np.full(size + 64, np.float32(1234.5))
    out = run(libs["native"], kernel, q, k, v, kv_heads, pos0, scratch=guarded[:size])
    assert (guarded[size:] == np.float32(1234.5)).all()
    # 7 heads over 3 kv heads: groups of 3, 2 and 2, which the float64 reference's repeat_kv cannot express
    np.testing.assert_array_equal(out.view(np.uint32), run(libs["native"], kernel + "_ref", q, k, v, kv_heads, pos0).view(np.uint32))


@pytest.mark.parametrize("n, kv_heads, d, pos0", [(1, 1, 1, 0), (1, 5, 128, 7), (3, 1, 17, 2), (2, 3, 43, 0)])
def test_kv_store_rounds_like_numpy_into_each_kv_heads_rows_and_leaves_the_others(lib, n, kv_heads, d, pos0):
    rng = np.random.default_rng(d)
    x = (rng.standard_normal((n, kv_heads, d)) * np.float32(2.0) ** rng.integers(-26, 17, (n, kv_heads, d))).astype(np.float32)
    context = pos0 + n + 2
    cache = np.full((kv_heads, context, d), 0x1234, np.uint16)
    lib.bn_kv_store(x, cache, n, kv_heads, d, context, pos0)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(cache[:, pos0:pos0 + n], x.astype(np.float16).view(np.uint16).transpose(1, 0, 2))
    assert (cache[:, :pos0] == 0x1234).all() and (cache[:, pos0 + n:] == 0x1234).all()


def test_kv_store_writes_nothing_past_the_context(libs):
    x = np.ones((2, 3, 8), np.float32)
    for lib in libs.values():
        for kernel, cache in (("bn_kv_store", np.zeros((3, 4, 8), np.uint16)), ("bn_kv_store_f32", np.zeros((3, 4, 8), np.float32))):
            lib.call(kernel, x, cache, 2, 3, 8, 4, 3)  # positions 3 and 4 of a context of 4
            assert not cache.any(), kernel


def test_kv_store_ties_subnormals_and_specials(lib):
    ties = ((np.arange(65536, dtype=np.uint32) << 13) + 0x1000).view(np.float32)  # halfway at every f16 step
    x = np.concatenate([ties, np.float32([65519.99, 65520, 2.0**-25, 2.0**-24 * 1.5, -0.0, np.inf, -np.inf])])[None, :]
    cache = np.zeros(x.shape, np.uint16)  # one kv head of one row
    lib.bn_kv_store(x, cache, 1, 1, x.shape[1], 1, 0)
    nan = np.isnan(x)
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(cache[~nan], x[~nan].astype(np.float16).view(np.uint16))
    assert np.isnan(cache[nan].view(np.float16)).all()



def test_kv_store_f32_copies_exactly_and_leaves_other_rows(libs):
    x = np.random.default_rng(7).standard_normal((3, 2, 17)).astype(np.float32) * 1e5
    for lib in libs.values():
        cache = np.full((2, 6, 17), 7.0, np.float32)
        lib.bn_kv_store_f32(x, cache, 3, 2, 17, 6, 2)
        np.testing.assert_array_equal(cache[:, 2:5].view(np.uint32), x.transpose(1, 0, 2).view(np.uint32))
        assert (cache[:, :2] == 7.0).all() and (cache[:, 5:] == 7.0).all()
