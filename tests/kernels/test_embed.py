"""bn_embed_*: table rows as f32, exactly as numpy converts them; bad ids give zero rows."""
import numpy as np
import pytest

from bitnet_wasm.compiler.shards import Q4_GROUP, Q4_ZERO, Q7_ZERO, q4_pack, tile_table

DIMS = [1, 3, 8, 17, 100, 129, 515]


def ids_for(rng, vocab, n):
    ids = rng.integers(0, vocab, n).astype(np.int32)
    ids[::3] = rng.choice([-1, vocab, 2**31 - 1, -(2**31)], len(ids[::3]))  # outside the vocabulary
    return ids


def expected(rows_f32, ids, vocab):
    ok = (ids >= 0) & (ids < vocab)
    y = np.zeros((len(ids), rows_f32.shape[1]), np.float32)
    y[ok] = rows_f32[ids[ok]]
    return y


def tables(rng, vocab, dim):
    f32 = (rng.standard_normal((vocab, dim)) * 3).astype(np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    q8 = rng.integers(-128, 128, (vocab, dim), dtype=np.int8)
    scale = rng.uniform(1e-3, 1, vocab).astype(np.float32)
    q4 = rng.integers(1, 16, (vocab, dim), dtype=np.uint8)
    q7 = q8.view(np.uint8) >> 1
    group_scale = rng.uniform(1e-3, 1, (vocab, -(-dim // Q4_GROUP))).astype(np.float32)
    return {
        "bn_embed_f32": ((f32,), f32),
        "bn_embed_f16": ((f32.astype(np.float16).view(np.uint16),), f32.astype(np.float16).astype(np.float32)),
        "bn_embed_bf16": ((bf16,), (bf16.astype(np.uint32) << 16).view(np.float32)),
        "bn_embed_q8": ((tile_table(q8), scale), q8.astype(np.float32) * scale[:, None]),
        "bn_embed_q7": ((tile_table(q7), scale), (q7.astype(np.float32) - Q7_ZERO) * scale[:, None]),
        "bn_embed_q4": ((q4_pack(q4), group_scale), (q4.astype(np.float32) - Q4_ZERO) * np.repeat(group_scale, Q4_GROUP, axis=1)[:, :dim]),
    }


@pytest.mark.parametrize("dim", DIMS)
def test_embed_rows_exact(lib, dim):
    rng = np.random.default_rng(dim)
    vocab, n = 50, 13
    ids = ids_for(rng, vocab, n)
    for name, (table, rows_f32) in tables(rng, vocab, dim).items():
        y = np.full((n, dim), np.nan, np.float32)
        getattr(lib, name)(*table, ids, y, n, dim, vocab)
        np.testing.assert_array_equal(y.view(np.uint32), expected(rows_f32, ids, vocab).view(np.uint32), err_msg=name)


def test_embed_f16_every_pattern(lib):
    table = np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(8192, 8)
    ids = np.arange(8192, dtype=np.int32)
    y = np.zeros((8192, 8), np.float32)
    lib.bn_embed_f16(table, ids, y, 8192, 8, 8192)
    np.testing.assert_array_equal(y.view(np.uint32), table.view(np.float16).astype(np.float32).view(np.uint32))
