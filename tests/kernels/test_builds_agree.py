"""Every build of the kernels (wasm, wasm-relaxed, native, native-relaxed) gives the same bits, SIMD
path and scalar reference alike: one table of cases, one test (as ggml's test-backend-ops compares
every backend with the CPU one). Each case runs a kernel family on fixed inputs, using the helpers of
that family's own test file, and returns groups of outputs that must be identical: a kernel's SIMD path
and its scalar reference form one group."""
import numpy as np
import pytest
import test_activations as activations
import test_attention as attention
import test_bitlinear as bitlinear
import test_embed as embed
import test_head as head
import test_math as bn_math
import test_norm as norm
import test_rope as rope


def activation_outputs(lib):
    g, u = activations.inputs(1003, seed=2)
    return [[activations.run(lib, name, g, u)] for name in activations.CASES]


def attention_outputs(lib, kernel):
    q, k, v = attention.make(np.random.default_rng(5), 3, 8, 2, 63, 40, kv=attention.KV[kernel])
    return [[attention.run(lib, name, q, k, v, 2, 40) for name in (kernel, kernel + "_ref")]]


def bitlinear_outputs(lib):
    """Each layout's kernel and reference on 9 tokens (the prefill's blocks of 4 and the rest one by
    one), rows with full column blocks and a partial one."""
    rng = np.random.default_rng(7)
    outs = []
    for name, layout in bitlinear.LAYOUTS.items():
        w, q, scale, wscale = bitlinear.problem(rng, layout, 37, 300, 9)
        packed = layout.pack(w)
        outs.append([bitlinear.run(lib, kernel, packed, wscale, q, scale, 37) for kernel in (layout.kernel, layout.kernel + "_ref")])
    return outs


def kv_store_outputs(lib):
    x = np.random.default_rng(6).standard_normal((2, 3, 111)).astype(np.float32) * 1000
    cache = np.zeros((3, 2, 111), np.uint16)
    lib.bn_kv_store(x, cache, 2, 3, 111, 2, 0)
    return [[cache]]


def embed_outputs(lib):
    rng = np.random.default_rng(1)
    ids = embed.ids_for(rng, 40, 9)
    outs = []
    for name, (table, _) in embed.tables(rng, 40, 77).items():
        y = np.zeros((9, 77), np.float32)
        getattr(lib, name)(*table, ids, y, 9, 77, 40)
        outs.append([y])
    return outs


def head_outputs(lib):
    rng = np.random.default_rng(3)
    E, x = head.make_f16(rng, 2, 37, 515)
    q8, q7, q4 = head.make_q8(rng, 2, 37, 515), head.make_q7(rng, 2, 37, 515), head.make_q4(rng, 2, 37, 515)
    return [[head.run_f16(lib, f"bn_head_f16{v}", E, x) for v in ("", "_ref")], [head.run_q8(lib, f"bn_head_q8{v}", *q8) for v in ("", "_ref")],
            [head.run_q7(lib, f"bn_head_q7{v}", *q7) for v in ("", "_ref")], [head.run_q4(lib, f"bn_head_q4{v}", *q4) for v in ("", "_ref")]]


def math_outputs(lib):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-110, 110, 4001), rng.uniform(-1e5, 1e5, 4000), bn_math.wide_positive(rng, 4000)]).astype(np.float32)
    return [[bn_math.call(lib, name, x)] for name in ("bn_expf_array", "bn_logf_array", "bn_sinf_array", "bn_cosf_array")]


def norm_outputs(lib):
    x, w = norm.make(np.random.default_rng(9), 3, 1001)
    return [[norm.run(lib, name, x, w, 1e-5) for name in ("bn_rmsnorm", "bn_rmsnorm_ref")]]


def rope_outputs(lib):
    x = np.random.default_rng(1).standard_normal((5, 4, 66)).astype(np.float32)
    return [[rope.run(lib, name, x, 12345, 500000.0) for name in ("bn_rope", "bn_rope_ref")]]


CASES = {
    "activations": activation_outputs,
    "bitlinear": bitlinear_outputs,
    "attention f16 cache": lambda lib: attention_outputs(lib, "bn_attention"),
    "attention f32 cache": lambda lib: attention_outputs(lib, "bn_attention_f32"),
    "kv store": kv_store_outputs,
    "embeddings": embed_outputs,
    "heads": head_outputs,
    "exp, log, sin, cos": math_outputs,
    "rmsnorm": norm_outputs,
    "rope": rope_outputs,
}


@pytest.mark.parametrize("case", list(CASES))
def test_all_builds_agree_bit_for_bit(libs, case):
    groups = {name: CASES[case](lib) for name, lib in libs.items()}
    first = next(iter(groups.values()))
    for i, want in enumerate(group[0] for group in first):
        for name, build_groups in groups.items():
            assert len(build_groups) == len(first)
            for got in build_groups[i]:
                np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8),
                                              err_msg=f"{name}, output {i}")
