"""bn_head_f16 / bn_head_q8 / bn_head_q7 / bn_head_q4 (logits = x . E[v]) against numpy: f16 in
float64 with a dot-product error bound, int8, 7-bit and 4-bit exactly."""
import numpy as np
import pytest

from bitnet_wasm.compiler.shards import Q4_GROUP, Q4_ZERO, Q7_ZERO, q4_pack, tile_table  # the tables as the compiler writes them (their layouts: test_shards.py)

# (n, vocab, dim)
SHAPES = [(1, 1, 1), (1, 3, 17), (2, 17, 3), (3, 100, 129), (1, 129, 100), (2, 64, 2560)]


def make_f16(rng, n, vocab, dim):
    E = (rng.standard_normal((vocab, dim)) * 0.5).astype(np.float16)
    return E, rng.standard_normal((n, dim)).astype(np.float32)


def run_f16(lib, name, E, x):
    (vocab, dim), n = E.shape, x.shape[0]
    logits = np.zeros((n, vocab), np.float32)
    getattr(lib, name)(E.view(np.uint16), x, logits, n, vocab, dim)
    return logits


def make_q8(rng, n, vocab, dim):
    E = rng.integers(-128, 128, (vocab, dim), dtype=np.int8)
    xq = rng.integers(-128, 128, (n, dim), dtype=np.int8)
    return E, rng.uniform(1e-3, 1e-1, vocab).astype(np.float32), xq, rng.uniform(1, 200, n).astype(np.float32)


def run_q8(lib, name, E, row_scale, xq, xscale):
    """tile_table(E) is the kernels' table (its layout: test_shards.py)."""
    (vocab, dim), n = E.shape, xq.shape[0]
    logits = np.zeros((n, vocab), np.float32)
    getattr(lib, name)(tile_table(E), row_scale, xq, xscale, logits, n, vocab, dim)
    return logits


def reference_q8(E, row_scale, xq, xscale):
    acc = xq.astype(np.int32) @ E.astype(np.int32).T
    return (acc.astype(np.float32) * row_scale[None, :]) / xscale[:, None]


def make_q7(rng, n, vocab, dim):
    """(codes, row scales, xq, xscale): tile_table(codes) is the kernels' table."""
    E, row_scale, xq, xscale = make_q8(rng, n, vocab, dim)
    return rng.integers(1, 128, (vocab, dim), dtype=np.uint8), row_scale, xq, xscale


def run_q7(lib, name, codes, row_scale, xq, xscale):
    (vocab, dim), n = codes.shape, xq.shape[0]
    logits = np.zeros((n, vocab), np.float32)
    getattr(lib, name)(tile_table(codes), row_scale, xq, xscale, logits, n, vocab, dim)
    return logits


def reference_q7(codes, row_scale, xq, xscale):
    return reference_q8(codes.astype(np.int32) - Q7_ZERO, row_scale, xq, xscale)


# beyond SHAPES: whole tiles and chunks with and without rows and columns after them
TABLE_SHAPES = SHAPES + [(2, 16, 32), (1, 21, 37), (2, 8, 7), (3, 24, 2560)]

# beyond SHAPES: groups whole and not, chunks whole and not, whole groups past the last four (320, 401), more tokens
# than one block of sums, and rows whose group sums take the whole stack buffer (262144: one token a block) or more
# (the reference path)
Q4_SHAPES = SHAPES + [(2, 7, 515), (3, 9, 64), (2, 6, 96), (3, 5, 160), (1, 3, 320), (2, 5, 401), (70, 5, 40), (3, 5, 262144),
                      (2, 5, 262144 + 64)]



def make_q4(rng, n, vocab, dim):
    """(codes, group scales, xq, xscale): q4_pack(codes) is the kernels' table."""
    _, _, xq, xscale = make_q8(rng, n, vocab, dim)
    codes = rng.integers(1, 16, (vocab, dim), dtype=np.uint8)
    return codes, rng.uniform(1e-3, 1e-1, (vocab, -(-dim // Q4_GROUP))).astype(np.float32), xq, xscale


def run_q4(lib, name, codes, group_scale, xq, xscale):
    (vocab, dim), n = codes.shape, xq.shape[0]
    logits = np.zeros((n, vocab), np.float32)
    getattr(lib, name)(q4_pack(codes), group_scale, xq, xscale, logits, n, vocab, dim)
    return logits


def reference_q4(codes, group_scale, xq, xscale):
    """bitnet.h's steps: an exact integer per group, then acc + d * scale in float32 group by group
    (numpy's float32 * and + round each op as C does), then / xscale."""
    acc = np.zeros((xq.shape[0], codes.shape[0]), np.float32)
    for g, begin in enumerate(range(0, xq.shape[1], Q4_GROUP)):
        columns = slice(begin, begin + Q4_GROUP)
        d = xq[:, columns].astype(np.int64) @ (codes[:, columns].astype(np.int64) - Q4_ZERO).T
        acc = acc + d.astype(np.float32) * group_scale[None, :, g]
    return acc / xscale[:, None]


@pytest.mark.parametrize("shape", SHAPES)
def test_head_f16_simd_equals_scalar_and_reference(lib, shape):
    E, x = make_f16(np.random.default_rng(sum(shape)), *shape)
    fast, ref = run_f16(lib, "bn_head_f16", E, x), run_f16(lib, "bn_head_f16_ref", E, x)
    np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
    E64, x64 = E.astype(np.float64), x.astype(np.float64)
    bound = 1e-6 * (np.abs(x64) @ np.abs(E64).T)  # float32 summation of dim terms, four lanes
    assert (np.abs(fast - x64 @ E64.T) <= bound + 1e-30).all()


def test_head_f16_takes_every_finite_half_exactly(lib):
    """The SIMD path converts halves assuming they are finite: every finite pattern (zeros,
    subnormals, the largest) is read as the scalar reference reads it."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite = bits[np.isfinite(bits.view(np.float16))]
    E = finite.view(np.float16).reshape(-1, 64)  # 63,488 patterns
    x = np.zeros((1, 64), np.float32)
    for column in range(64):  # one product per logit: the logit is the converted half itself
        x[:] = 0
        x[0, column] = 1.0
        fast, ref = run_f16(lib, "bn_head_f16", E, x), run_f16(lib, "bn_head_f16_ref", E, x)
        np.testing.assert_array_equal(fast.view(np.uint32), ref.view(np.uint32))
        np.testing.assert_array_equal(fast[0], E[:, column].astype(np.float32))


# quantized table -> (make, run, reference, shapes): the SIMD path and _ref each equal the numpy reference bit for bit
QUANTIZED_HEADS = {"q8": (make_q8, run_q8, reference_q8, TABLE_SHAPES), "q7": (make_q7, run_q7, reference_q7, TABLE_SHAPES),
                   "q4": (make_q4, run_q4, reference_q4, Q4_SHAPES)}


@pytest.mark.parametrize("table, shape", [(table, shape) for table, (*_, shapes) in QUANTIZED_HEADS.items() for shape in shapes])
def test_quantized_head_exact(lib, table, shape):
    make, run, reference, _ = QUANTIZED_HEADS[table]
    args = make(np.random.default_rng(sum(shape)), *shape)
    want = reference(*args)
    for name in (f"bn_head_{table}", f"bn_head_{table}_ref"):
        np.testing.assert_array_equal(run(lib, name, *args).view(np.uint32), want.view(np.uint32), err_msg=name)


@pytest.mark.parametrize("code", [1, 127])
def test_head_q7_extreme_values_stay_exact(lib, code):
    """The relaxed dot's pair sums at their largest (-128 * 127 * 2) and the int32 sum of a long row."""
    dim = 4099
    codes = np.full((13, dim), code, np.uint8)  # a tile and rows after it
    xq = np.full((1, dim), -128, np.int8)
    got = run_q7(lib, "bn_head_q7", codes, np.ones(13, np.float32), xq, np.ones(1, np.float32))
    np.testing.assert_array_equal(got, np.full((1, 13), np.float32(-128 * (code - Q7_ZERO) * dim)))


def test_head_q8_extreme_values_stay_exact(lib):
    dim = 4099
    E = np.full((13, dim), -128, np.int8)  # a tile and rows after it
    xq = np.full((1, dim), -128, np.int8)  # acc = 128 * 128 * 4099 needs int32 all the way
    got = run_q8(lib, "bn_head_q8", E, np.ones(13, np.float32), xq, np.ones(1, np.float32))
    np.testing.assert_array_equal(got, np.full((1, 13), np.float32(128 * 128 * dim)))


@pytest.mark.parametrize("code", [1, 15])
def test_head_q4_extreme_values_stay_exact(lib, code):
    """The largest products (-128 * 15) through the dot, and every group's exact sum in a long row."""
    dim = 4099
    codes = np.full((5, dim), code, np.uint8)
    xq = np.full((2, dim), -128, np.int8)
    got = run_q4(lib, "bn_head_q4", codes, np.ones((5, -(-dim // Q4_GROUP)), np.float32), xq, np.ones(2, np.float32))
    np.testing.assert_array_equal(got, np.full((2, 5), np.float32(-128 * (code - Q4_ZERO) * dim)))
