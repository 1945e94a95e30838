import numpy as np
import pytest

from bitnet_wasm.wasm_kernels import KernelArgumentError, abi
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS, layout_id

# kernel -> layout of its packed weights; the relaxed variant exists only in the relaxed builds
KERNELS = {
    "bn_bitlinear_mad": "mad",
    "bn_bitlinear_mad_ref": "mad",
    "bn_bitlinear_mad_simd128": "mad",
    "bn_bitlinear_mad_relaxed": "mad",
    "bn_bitlinear_lut": "lut",
    "bn_bitlinear_lut_ref": "lut",
    "bn_bitlinear_binary": "binary",
    "bn_bitlinear_binary_ref": "binary",
}
SIZES = (1, 3, 17, 63, 64, 65, 100, 257)
TOKENS = (1, 2, 3, 5)


def reference(w, q, scale, wscale):
    """y = acc / (scale * wscale) with acc the exact integer product, in float32 like the kernels."""
    acc = (q.astype(np.int64) @ w.T.astype(np.int64)).astype(np.int32)
    return acc.astype(np.float32) / (scale[:, None] * np.float32(wscale))


def kernels_of(lib):
    present = [k for k in KERNELS if lib.has(k)]
    assert ("bn_bitlinear_mad_relaxed" in present) == ("relaxed" in lib.path.name)
    return present


def run(lib, kernel, packed, wscale, q, scale, out):
    n, in_ = q.shape
    y = np.full((n, out), np.nan, np.float32)
    scratch = LAYOUTS[KERNELS[kernel]].scratch_bytes(in_)
    lib.call(kernel, packed, wscale, q, scale, y, *([np.zeros(scratch, np.uint8)] if scratch else []), out, in_, n)
    return y


def problem(rng, layout, out, in_, n):
    w = rng.choice(np.array(layout.values, np.int8), size=(out, in_))
    q = rng.integers(-128, 128, size=(n, in_), dtype=np.int8)
    scale = rng.uniform(0.01, 100, n).astype(np.float32)
    return w, q, scale, np.float32(rng.uniform(0.1, 10))


def check_all(lib, w, values, q, scale, wscale, label):
    """Every kernel whose layout holds `values` (the weights' alphabet) == numpy, bit for bit."""
    expected = reference(w, q, scale, wscale).tobytes()
    packed = {name: layout.pack(w) for name, layout in LAYOUTS.items() if set(values) <= set(layout.values)}
    for kernel in kernels_of(lib):
        if KERNELS[kernel] in packed:
            y = run(lib, kernel, packed[KERNELS[kernel]], wscale, q, scale, w.shape[0])
            assert y.tobytes() == expected, f"{kernel} {label}: first difference at {np.argmax(y.reshape(-1) != np.frombuffer(expected, np.float32))}"


@pytest.mark.parametrize("values", [(-1, 0, 1), (-1, 1)], ids=["ternary", "binary"])
def test_every_variant_matches_numpy_on_odd_shapes(lib, values):
    rng = np.random.default_rng(len(values))
    for i, out in enumerate(SIZES):
        for j, in_ in enumerate(SIZES):
            n = TOKENS[(i + j) % len(TOKENS)]
            w = rng.choice(np.array(values, np.int8), size=(out, in_))
            _, q, scale, wscale = problem(rng, LAYOUTS["mad"], out, in_, n)
            check_all(lib, w, values, q, scale, wscale, f"{out}x{in_} n={n}")


def test_long_prefill_matches_numpy(lib):
    rng = np.random.default_rng(70)
    for values in ((-1, 0, 1), (-1, 1)):
        w = rng.choice(np.array(values, np.int8), size=(9, 200))
        _, q, scale, wscale = problem(rng, LAYOUTS["mad"], 9, 200, 70)  # more tokens than any kernel keeps at once
        check_all(lib, w, values, q, scale, wscale, "9x200 n=70")


@pytest.fixture(scope="module")
def model_sized():
    """2560 x 2560 ternary and binary matrices, packed once for every build."""
    rng = np.random.default_rng(2560)
    return [(values, rng.choice(np.array(values, np.int8), size=(2560, 2560))) for values in ((-1, 0, 1), (-1, 1))]


def test_every_variant_matches_numpy_at_model_size(lib, model_sized):
    rng = np.random.default_rng(4)
    for (values, w), tokens in zip(model_sized, ((1, 5), (2, 3))):
        for n in tokens:
            _, q, scale, wscale = problem(rng, LAYOUTS["mad"], 1, 2560, n)
            check_all(lib, w, values, q, scale, wscale, f"2560x2560 {values} n={n}")


def test_rows_too_wide_for_the_prepared_activations_match_numpy(lib):
    """simd128 planes path: rows whose prepared activations (2 bytes per column) outgrow its buffer are prepared per block."""
    in_ = abi.defines()["BN_PLANE_PREP_BYTES"] // 2 + 129  # one more block than fits, with a partial last one
    rng = np.random.default_rng(16)
    for values in ((-1, 0, 1), (-1, 1)):
        for n in (1, 2):
            w = rng.choice(np.array(values, np.int8), size=(6, in_))
            _, q, scale, wscale = problem(rng, LAYOUTS["mad"], 6, in_, n)
            check_all(lib, w, values, q, scale, wscale, f"6x{in_} {values} n={n}")


def test_prefill_across_unpacked_segments_matches_numpy(lib):
    """relaxed planes path: prefill unpacks BN_PLANE_SEGMENT_COLS columns of a tile at a time; rows that end at a segment,
    a column past it (a partial block alone in the last segment) and a block and 3 columns past it, 9 tokens (two groups
    of 4 and one left over)."""
    segment = abi.defines()["BN_PLANE_SEGMENT_COLS"]
    rng = np.random.default_rng(segment)
    for values in ((-1, 0, 1), (-1, 1)):
        for in_ in (segment, segment + 1, segment + 128 + 3):
            w = rng.choice(np.array(values, np.int8), size=(6, in_))
            _, q, scale, wscale = problem(rng, LAYOUTS["mad"], 6, in_, 9)
            check_all(lib, w, values, q, scale, wscale, f"6x{in_} {values} n=9")


@pytest.mark.parametrize("activation", [-128, 127])
def test_extreme_activations_do_not_overflow(lib, activation):
    out, in_, n = 7, 6912 + 5, 5  # 5 tokens: the blocked prefill path (4 at once) and the one-token path
    q = np.full((n, in_), activation, np.int8)
    scale = np.ones(n, np.float32)
    rng = np.random.default_rng(3)
    for sign in (1, -1):
        w = np.full((out, in_), sign, np.int8)
        w[1] = np.where(np.arange(in_) % 2, 1, -1)
        w[2] = rng.choice(np.array([-1, 1], np.int8), in_)
        check_all(lib, w, (-1, 1), q, scale, 1.0, f"q={activation} w={sign}")
        w[3, ::3] = 0
        check_all(lib, w, (-1, 0, 1), q, scale, 1.0, f"q={activation} w={sign}, ternary")


def test_wasm_equals_native_bit_for_bit(libs):
    rng = np.random.default_rng(11)
    for kernel, name in KERNELS.items():
        w, q, scale, wscale = problem(rng, LAYOUTS[name], 77, 333, 3)
        packed = LAYOUTS[name].pack(w)
        outs = {build: run(lib, kernel, packed, wscale, q, scale, 77).tobytes() for build, lib in libs.items() if lib.has(kernel)}
        assert len(outs) >= 2 and len(set(outs.values())) == 1, f"{kernel} differs between {sorted(outs)}"


def test_binding_rejects_wrongly_sized_buffers(lib):
    out, in_, n = 5, 70, 2
    q, scale, y = np.zeros((n, in_), np.int8), np.ones(n, np.float32), np.zeros((n, out), np.float32)
    w = LAYOUTS["mad"].pack(np.zeros((out, in_), np.int8))
    with pytest.raises(KernelArgumentError, match=f"w must have mad_bytes\\(out, in_\\) = {w.size} elements, got {w.size - 1}"):
        lib.bn_bitlinear_mad(w[:-1], 1.0, q, scale, y, out, in_, n)
    with pytest.raises(KernelArgumentError, match="w must have mad_bytes"):
        lib.bn_bitlinear_mad(w, 1.0, q, scale, y, out + 4, in_, n)  # a bigger matrix than the buffer holds
    lut = LAYOUTS["lut"]
    with pytest.raises(KernelArgumentError, match="scratch must have lut_scratch_bytes\\(in_\\)"):
        lib.bn_bitlinear_lut(lut.pack(np.zeros((out, in_), np.int8)), 1.0, q, scale, y, np.zeros(16, np.uint8), out, in_, n)
    with pytest.raises(KernelArgumentError, match="w must be a uint8 array"):
        lib.bn_bitlinear_binary(np.zeros(LAYOUTS["binary"].packed_bytes(out, in_), np.int8), 1.0, q, scale, y, out, in_, n)


def stream_hash(buf: np.ndarray) -> int:
    """bn_stream_read's fold: xor of the 32-bit words of whole 64-byte blocks, then each tail byte."""
    whole = buf.size // 64 * 64
    h = int(np.bitwise_xor.reduce(buf[:whole].view(np.uint32))) if whole else 0
    for b in buf[whole:]:
        h = ((h << 1 | h >> 31) & 0xFFFFFFFF) ^ int(b)
    return h


def test_stream_read_reads_every_byte(lib):
    rng = np.random.default_rng(5)
    for size in (1, 63, 64, 100, 4096 + 7):
        buf = rng.integers(0, 256, size, dtype=np.uint8)
        assert lib.bn_stream_read(buf, size) == stream_hash(buf)
        buf[size // 2] ^= 1
        assert lib.bn_stream_read(buf, size) == stream_hash(buf)


def dot_peak_hash(act: np.ndarray, reps: int, i16: bool) -> int:
    """bn_dot_peak's fold, exactly: row r's weights are all r + 1, so each lane sums its bytes of every
    whole vector times (r + 1) * reps, wrapping in i16 lanes (relaxed i16 form: byte pairs) or i32 lanes (4 bytes)."""
    vectors = act[: act.size // 16 * 16].astype(np.int64).reshape(-1, 16)
    group, bits = (2, 16) if i16 else (4, 32)
    lane_sums = vectors.reshape(len(vectors), -1, group).sum(axis=(0, 2))
    h = 0
    for r in range(abi.defines()["BN_DOT_PEAK_ROWS"]):
        lanes = (lane_sums * (r + 1) * reps) % 2**bits
        words = np.frombuffer(lanes.astype(f"<u{bits // 8}").tobytes(), "<u4")
        h ^= int(np.bitwise_xor.reduce(words))
    return h


def test_dot_peak_multiplies_every_whole_vector(lib, request):
    rng = np.random.default_rng(6)
    case = request.node.callspec.params["lib"]
    i16 = "relaxed" in case and not case.endswith("-i32")  # the relaxed builds in their i16 dot form
    for size, reps in ((16, 1), (100, 3), (4096, 700)):
        act = rng.integers(-128, 128, size, dtype=np.int8)
        assert lib.bn_dot_peak(act, size, reps) == dot_peak_hash(act, reps, i16)
        act[0] ^= 1
        assert lib.bn_dot_peak(act, size, reps) == dot_peak_hash(act, reps, i16)


def dot_form_probe_digest(mem: np.ndarray, reps: int) -> int:
    """bn_dot_form_probe's fold, exactly: per rep, the code dots of the 4-row MAD tile of 1024 columns at
    mem (one block further on in odd reps) with the 1024 activations after the tiles."""
    act = mem[-1024:].view(np.int8).astype(np.int64)
    dots = []
    for start in (0, 64):
        tile = mem[start:start + 1024].reshape(16, 4, 16)  # block, row, byte j
        codes = np.stack([(tile >> (2 * k)) & 3 for k in range(4)], axis=2)  # plane k of byte j: column 64 block + 16 k + j
        dots.append(codes.transpose(1, 0, 2, 3).reshape(4, 1024).astype(np.int64) @ act)
    digest = 0
    for rep in range(reps):
        for dot in dots[rep & 1]:
            digest = (digest * 31 + int(dot)) % 2**32
    return digest


def test_dot_form_probe_runs_the_mad_tile(lib):
    mem = np.random.default_rng(7).integers(0, 256, abi.defines()["BN_DOT_FORM_PROBE_BYTES"], dtype=np.uint8)
    for reps in (1, 2, 5):
        assert lib.bn_dot_form_probe(mem, reps) == dot_form_probe_digest(mem, reps)
    mem[-1] ^= 0x80
    assert lib.bn_dot_form_probe(mem, 3) == dot_form_probe_digest(mem, 3)


def test_dot_form_is_set_only_to_a_known_form(lib):
    forms = (abi.defines()["BN_DOT_I16"], abi.defines()["BN_DOT_I32"])
    for form in forms:
        assert lib.bn_set_dot_form(form) == form
    assert lib.bn_set_dot_form(abi.defines()["BN_DOT_FORMS"]) == forms[-1]
    assert lib.bn_set_dot_form(-1) == forms[-1]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_repeat_helper_runs_the_one_token_kernel_reps_times(lib, layout):
    rng = np.random.default_rng(6)
    out, in_ = 37, 70
    spec = LAYOUTS[layout]
    w = rng.choice(spec.values, (out, in_)).astype(np.int8)
    q, scale = rng.integers(-128, 128, (1, in_), dtype=np.int8), np.array([0.25], np.float32)
    scratch = np.zeros(spec.scratch_bytes(in_), np.uint8)
    for reps, expected in ((0, np.full(out, np.nan, np.float32)), (3, reference(w, q, scale, 2.0)[0])):
        y = np.full(out, np.nan, np.float32)
        lib.bn_bitlinear_repeat(layout_id(layout), spec.pack(w), 2.0, q.reshape(-1), scale, y, scratch, out, in_, reps)
        np.testing.assert_array_equal(y, expected)


def test_layout_table_in_c_matches_layouts_py(lib):
    """bitnet.h's enum bn_layout numbers the layouts in the order of LAYOUTS; an unknown id is refused."""
    for layout, spec in LAYOUTS.items():
        for in_ in (1, 70, 2560):
            assert lib.bn_layout_scratch_bytes(layout_id(layout), in_) == spec.scratch_bytes(in_), layout
    assert lib.bn_layout_scratch_bytes(len(LAYOUTS), 70) == 0
    with pytest.raises(KernelArgumentError, match="layout id 3 is not one of 0..2"):
        lib.bn_bitlinear_repeat(len(LAYOUTS), np.zeros(1, np.uint8), 1.0, np.zeros(4, np.int8), np.ones(1, np.float32),
                                np.zeros(4, np.float32), np.zeros(0, np.uint8), 4, 4, 1)


def test_read_ahead_is_set_only_to_on_or_off(lib):
    for on in (0, 1):
        assert lib.bn_set_read_ahead(on) == on
    assert lib.bn_set_read_ahead(2) == 1 and lib.bn_set_read_ahead(-1) == 1
