import numpy as np
import pytest

from bitnet_wasm.wasm_kernels import layouts
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

SIZES = (1, 3, 17, 63, 64, 65, 100, 129, 257)


def random_weights(rng, layout, out, in_):
    return rng.choice(np.array(layout.values, np.int8), size=(out, in_))


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_pack_unpack_round_trip_and_size(name):
    layout = LAYOUTS[name]
    rng = np.random.default_rng(1)
    for out in SIZES:
        for in_ in SIZES:
            w = random_weights(rng, layout, out, in_)
            packed = layout.pack(w)
            assert packed.dtype == np.uint8 and packed.shape == (layout.packed_bytes(out, in_),)
            np.testing.assert_array_equal(layout.unpack(packed, out, in_), w, err_msg=f"{name} {out}x{in_}")


def test_table_names_kernels_and_size_functions():
    assert {n: (l.kernel, l.values) for n, l in LAYOUTS.items()} == {
        "mad": ("bn_bitlinear_mad", (-1, 0, 1)),
        "lut": ("bn_bitlinear_lut", (-1, 0, 1)),
        "binary": ("bn_bitlinear_binary", (-1, 1)),
    }
    for name in layouts.SIZE_FUNCTIONS:
        assert callable(getattr(layouts, name))
    assert LAYOUTS["mad"].scratch_bytes(2560) == 0 and LAYOUTS["lut"].scratch_bytes(2560) > 0


# Byte orders written out by hand from the layout descriptions in the C files.
def test_mad_byte_order():
    w = np.zeros((5, 70), np.int8)
    w[1, 17] = 1  # tile 0, block 0, row 1: byte j = 1, plane k = 1 -> bits 2..3 = code 2
    w[4, 69] = -1  # tile 1, block 1, row 0: column 5 of the block -> byte 5, plane 0 = code 0
    packed = layouts.pack_mad(w)
    assert packed.size == 2 * 2 * 4 * 16
    expected = np.full(packed.size, 0x55, np.uint8)  # code 1 (w = 0) everywhere, padding included
    expected[1 * 16 + 1] = 0b01011001
    expected[2 * 64 + 1 * 64 + 0 * 16 + 5] = 0b01010100
    np.testing.assert_array_equal(packed, expected)


def test_lut_byte_order():
    w = np.zeros((18, 6), np.int8)
    w[2, 1] = -1  # tile 0, block 0, byte 2: pair 0 index 3*1 + 0 = 3, pair 1 index 4
    w[17, 4] = 1  # tile 1, block 1, byte 1: pair 0 (columns 4, 5) index 3*2 + 1 = 7
    packed = layouts.pack_lut(w)
    assert packed.size == 2 * 2 * 16
    expected = np.full(packed.size, 0x44, np.uint8)
    expected[2] = 0x43
    expected[3 * 16 + 1] = 0x47
    np.testing.assert_array_equal(packed, expected)


def test_binary_byte_order():
    w = -np.ones((3, 131), np.int8)
    w[2, 130] = 1  # block 1, row 2, column 2 of the block: byte 2, bit 0
    w[0, 127] = 1  # block 0, row 0, column 127: byte 15, bit 7
    packed = layouts.pack_binary(w)
    assert packed.size == 2 * 4 * 16
    expected = np.zeros(packed.size, np.uint8)
    expected[64 + 2 * 16 + 2] = 1
    expected[15] = 0x80
    np.testing.assert_array_equal(packed, expected)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_pack_rejects_bad_weights(name):
    layout = LAYOUTS[name]
    with pytest.raises(ValueError, match=f"{name} layout: weights must be an int8 numpy array, got float32"):
        layout.pack(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="got shape \\(4,\\)"):
        layout.pack(np.ones(4, np.int8))
    with pytest.raises(ValueError, match="got shape \\(0, 3\\)"):
        layout.pack(np.ones((0, 3), np.int8))
    w = np.ones((3, 5), np.int8)
    w[2, 4] = 2
    with pytest.raises(ValueError, match=r"weights must be in .*W\[2, 4\] = 2"):
        layout.pack(w)
    with pytest.raises(ValueError, match="must be .* uint8 bytes"):
        layout.unpack(np.zeros(layout.packed_bytes(3, 5) + 1, np.uint8), 3, 5)


def test_binary_rejects_zero_weights():
    with pytest.raises(ValueError, match=r"binary layout: weights must be in \(-1, 1\); W\[0, 1\] = 0"):
        layouts.pack_binary(np.array([[1, 0, -1]], np.int8))
