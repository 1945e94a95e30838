"""The range forms the thread pool hands out (bn_X_rows, bn_attention_heads) and the pool's own
entry points (bn_X_parallel): pieces put together give the whole kernel's bits, a piece writes
nothing outside its range, in every build. Threaded runs are tested in Chromium (tests/web)."""
import numpy as np
import pytest

from bitnet_wasm.compiler.shards import Q4_GROUP, q4_pack
from bitnet_wasm.wasm_kernels.abi import attention_scratch
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS, layout_id

BOUNDS = [(0, 5, 16, 33, 60, 64, 97), (0, 97), (0, 48, 97), (0, 1, 2, 3, 4, 95, 96, 97)]  # aligned and not
OUT, IN, N = 97, 70, 3


def check_pieces(lib, name, bounds, expected, args_of):
    """Pieces over `bounds` rebuild `expected` bit for bit, and the second piece alone writes its
    range (axis 1 of the output) and nothing else; args_of(output, lo, hi): the call's arguments."""
    whole = np.full_like(expected, np.nan)
    for lo, hi in zip(bounds, bounds[1:]):
        lib.call(name, *args_of(whole, lo, hi))
    assert whole.tobytes() == expected.tobytes(), f"{name} pieces {bounds}"
    lo, hi = bounds[1], bounds[2] if len(bounds) > 2 else bounds[1]
    lone = np.full_like(expected, np.nan)
    lib.call(name, *args_of(lone, lo, hi))
    inside = np.zeros(expected.shape[1], bool)
    inside[lo:hi] = True
    assert not np.isnan(lone[:, inside]).any() and np.isnan(lone[:, ~inside]).all(), f"{name} alone on [{lo}, {hi})"


def bitlinear_problem(layout_name, seed):
    rng = np.random.default_rng(seed)
    layout = LAYOUTS[layout_name]
    w = rng.choice(np.array(layout.values, np.int8), size=(OUT, IN))
    q = rng.integers(-128, 128, size=(N, IN), dtype=np.int8)
    scale = rng.uniform(0.01, 100, N).astype(np.float32)
    scratch = [np.zeros(layout.scratch_bytes(IN), np.uint8)] if layout.scratch_bytes(IN) else []
    return layout.pack(w), np.float32(1.7), q, scale, scratch


@pytest.mark.parametrize("layout", ["mad", "lut", "binary"])
def test_bitlinear_rows_pieces_equal_the_whole(lib, layout):
    packed, wscale, q, scale, scratch = bitlinear_problem(layout, 3)
    expected = np.zeros((N, OUT), np.float32)
    lib.call(f"bn_bitlinear_{layout}", packed, wscale, q, scale, expected, *scratch, OUT, IN, N)
    def args(y, lo, hi):
        return packed, wscale, q, scale, y, *scratch, OUT, IN, N, lo, hi
    for bounds in BOUNDS:
        check_pieces(lib, f"bn_bitlinear_{layout}_rows", bounds, expected, args)


def test_head_rows_pieces_equal_the_whole(lib):
    rng = np.random.default_rng(4)
    E16 = (rng.standard_normal((OUT, IN)) * 0.5).astype(np.float16).view(np.uint16)
    x = rng.standard_normal((N, IN)).astype(np.float32)
    E8 = rng.integers(-128, 128, (OUT, IN), dtype=np.int8)
    row_scale = rng.uniform(1e-3, 1e-1, OUT).astype(np.float32)
    xq = rng.integers(-128, 128, (N, IN), dtype=np.int8)
    xscale = rng.uniform(1, 200, N).astype(np.float32)
    group_scale = rng.uniform(1e-3, 1e-1, (OUT, -(-IN // Q4_GROUP))).astype(np.float32)
    heads = {
        "f16": lambda logits, *extra: (E16, x, logits, N, OUT, IN, *extra),
        "q8": lambda logits, *extra: (E8, row_scale, xq, xscale, logits, N, OUT, IN, *extra),
        "q7": lambda logits, *extra: (E8.view(np.uint8) >> 1, row_scale, xq, xscale, logits, N, OUT, IN, *extra),
        "q4": lambda logits, *extra: (q4_pack(E8.view(np.uint8) % 15 + 1), group_scale, xq, xscale, logits, N, OUT, IN, *extra),
    }
    for kind, args_of in heads.items():
        expected = np.zeros((N, OUT), np.float32)
        lib.call(f"bn_head_{kind}", *args_of(expected))
        for bounds in BOUNDS:
            check_pieces(lib, f"bn_head_{kind}_rows", bounds, expected, args_of)


@pytest.mark.parametrize("kernel, cache", [("bn_attention", lambda a: a.astype(np.float16).view(np.uint16)),
                                           ("bn_attention_f32", lambda a: a.astype(np.float32))])
def test_attention_heads_pieces_equal_the_whole(lib, kernel, cache):
    rng = np.random.default_rng(5)
    n, heads, kv_heads, d, pos0 = 3, 6, 2, 12, 4
    q = rng.standard_normal((n, heads, d)).astype(np.float32)
    context = pos0 + n + 1
    k, v = (cache(rng.standard_normal((kv_heads, context, d))) for _ in range(2))
    scratch = np.zeros(attention_scratch(heads, kv_heads, d, pos0 + n), np.float32)
    expected = np.zeros_like(q)
    lib.call(kernel, q, k, v, expected, scratch, n, heads, kv_heads, d, context, pos0)
    def args(out, lo, hi):
        return q, k, v, out, scratch, n, heads, kv_heads, d, context, pos0, lo, hi
    for bounds in [(0, 6), (0, 1, 5, 6), (0, 2, 3, 4, 6)]:
        check_pieces(lib, kernel + "_heads", bounds, expected, args)


def test_parallel_entry_points_run_whole_ops_on_one_thread(lib):
    """Outside the threaded builds the pool takes one thread and runs every job on the caller."""
    assert lib.call("bn_threads_init", 2) == 0 and lib.call("bn_threads_init", 0) == 0
    assert lib.call("bn_threads_init", 1) == 1
    for layout in LAYOUTS:
        packed, wscale, q, scale, scratch = bitlinear_problem(layout, 6)
        expected, got = np.zeros((N, OUT), np.float32), np.full((N, OUT), np.nan, np.float32)
        lib.call(f"bn_bitlinear_{layout}", packed, wscale, q, scale, expected, *scratch, OUT, IN, N)
        per_thread = np.zeros(8 * LAYOUTS[layout].scratch_bytes(IN), np.uint8)
        lib.bn_bitlinear_parallel(layout_id(layout), packed, wscale, q, scale, got, per_thread, OUT, IN, N)
        assert got.tobytes() == expected.tobytes(), layout


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_fused_linears_give_each_linears_bits(lib, layout):
    """bn_bitlinear2/3_parallel (q, k, v or gate, up as one job) == one bn_bitlinear_X call per matrix,
    with output widths that are no multiple of the layout's row tile."""
    rng = np.random.default_rng(8)
    spec, outs = LAYOUTS[layout], (OUT, 13, 40)
    q = rng.integers(-128, 128, size=(N, IN), dtype=np.int8)
    scale = rng.uniform(0.01, 100, N).astype(np.float32)
    scratch = [np.zeros(spec.scratch_bytes(IN), np.uint8)] if spec.scratch_bytes(IN) else []
    per_thread = np.zeros(8 * spec.scratch_bytes(IN), np.uint8)
    parts = [(spec.pack(rng.choice(np.array(spec.values, np.int8), size=(out, IN))), np.float32(0.5 + i), out) for i, out in enumerate(outs)]
    expected = []
    for packed, wscale, out in parts:
        expected.append(np.zeros((N, out), np.float32))
        lib.call(f"bn_bitlinear_{layout}", packed, wscale, q, scale, expected[-1], *scratch, out, IN, N)
    for count in (2, 3):
        got = [np.full((N, out), np.nan, np.float32) for _, _, out in parts[:count]]
        args = [a for (packed, wscale, out), y in zip(parts, got) for a in (packed, wscale, y, out)]
        lib.call(f"bn_bitlinear{count}_parallel", layout_id(layout), *args, q, scale, per_thread, IN, N)
        for i, y in enumerate(got):
            assert y.tobytes() == expected[i].tobytes(), f"{layout}: linear {i} of {count}"
