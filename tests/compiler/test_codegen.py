import re

import numpy as np
import pytest

from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.compiler.codegen import c_float, generate, write_sources
from bitnet_wasm.compiler.graph import BuildOptions, build_graph
from bitnet_wasm.compiler.plan import plan_memory
from bitnet_wasm.wasm_kernels.abi import kernel_abi, parse_header
from bitnet_wasm.wasm_kernels.toolchain import kernel_sources

TINY = ModelConfig("bitnet", vocab_size=97, hidden_size=48, intermediate_size=100, num_layers=3, num_heads=3,
                   num_kv_heads=1, head_dim=16, max_position=300, rope_theta=500000.0, rms_norm_eps=1e-5, tie_embeddings=False)


def generated(options=BuildOptions()):
    graph = build_graph(TINY, options)
    plan = plan_memory(graph)
    return graph, plan, *generate(graph, plan)


def test_c_float_is_exact_and_short():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-40, 38, 500), [1e-5, 500000.0, 3e-45]])
    for v in values.astype(np.float32):
        literal = c_float(v)
        assert literal.endswith("f") and np.float32(literal[:-1]) == v
    assert c_float(1e-5) == "1e-05f" and c_float(500000) == "500000.0f"
    with pytest.raises(ValueError, match="non-finite"):
        c_float(float("inf"))


def test_one_kernel_call_per_op_with_constant_shapes():
    """One call per op, except the linears of one input (q, k, v; gate, up): one call each group."""
    graph, plan, forward_c, _ = generated()
    body = forward_c[forward_c.index("for (int l = 0;"):forward_c.index("return 0;")]
    loop, epilogue = body.split("\n    }\n")
    calls = re.findall(r"^\s+OP\((bn_\w+)\(", loop, re.M)
    kernels = ["bn_quantize_rows" if op.kind == "quantize" else "bn_" + op.kind for op in graph.layer]
    shared = {"bitlinear", "attention"}  # split among threads in a threaded build
    unfused = [k + "_parallel" if op.kind in shared else k for k, op in zip(kernels, graph.layer)]
    fused = {("bn_bitlinear_parallel",) * 3: "bn_bitlinear3_parallel", ("bn_bitlinear_parallel",) * 2: "bn_bitlinear2_parallel"}
    q = unfused.index("bn_bitlinear_parallel")
    gate = unfused.index("bn_relu2_mul") - 2
    assert calls == unfused[:q] + [fused[tuple(unfused[q:q + 3])]] + unfused[q + 3:gate] + [fused[tuple(unfused[gate:gate + 2])]] + unfused[gate + 2:]
    assert ("OP(bn_bitlinear3_parallel(BN_LAYOUT_MAD, WEIGHTS(q_proj), WSCALE(q_proj), q, Q_DIM, WEIGHTS(k_proj), WSCALE(k_proj), k, KV_DIM, "
            "WEIGHTS(v_proj), WSCALE(v_proj), v, KV_DIM, h_q, h_s, 0, HIDDEN, n));") in loop
    assert ("OP(bn_bitlinear2_parallel(BN_LAYOUT_MAD, WEIGHTS(gate_proj), WSCALE(gate_proj), gate, FFN, WEIGHTS(up_proj), WSCALE(up_proj), up, FFN, "
            "h_q, h_s, 0, HIDDEN, n));") in loop
    assert "OP(bn_bitlinear_parallel(BN_LAYOUT_MAD, WEIGHTS(down_proj), WSCALE(down_proj), mlp_q, mlp_s, down, 0, HIDDEN, FFN, n));" in loop
    assert "OP(bn_attention_parallel(q, k_cache, v_cache, att, scores, n, HEADS, KV_HEADS, HEAD_DIM, CONTEXT, pos0));" in loop
    assert "OP(bn_rope(q, n, HEADS, HEAD_DIM, pos0, ROPE_THETA));" in loop
    assert re.findall(r"^\s+OP\((bn_\w+)\(", epilogue, re.M) == ["bn_rmsnorm", "bn_head_f16_parallel"]
    assert "OP(bn_head_f16_parallel(lm_head, final + (n - rows) * HIDDEN, logits, rows, VOCAB, HIDDEN));" in epilogue


def test_forward_reads_like_the_model():
    """Named dimensions instead of numbers, a comment per section, a shape per buffer and a note where buffers share bytes."""
    graph, plan, forward_c, _ = generated()
    defines = dict(re.findall(r"^#define (\w+) (\S+)$", forward_c, re.M))
    assert {k: defines[k] for k in ("HIDDEN", "Q_DIM", "KV_DIM", "FFN", "HEADS", "KV_HEADS", "HEAD_DIM", "VOCAB")} == {
        "HIDDEN": "48", "Q_DIM": "48", "KV_DIM": "16", "FFN": "100", "HEADS": "3", "KV_HEADS": "1", "HEAD_DIM": "16", "VOCAB": "97"}
    calls = re.findall(r"^\s+OP\((.*)\);$", forward_c, re.M)
    assert len(calls) == len(graph.ops()) - 3 and all(re.findall(r"\b\d+\b", call) in ([], ["0"]) for call in calls), calls  # q, k, v: one call; gate, up: one
    assert "/* residual connection back into x */" in forward_c and "/* RoPE relative positional encoding of q and k */" in forward_c
    assert re.search(r"/\* [\w, ]*\bfinal\b[\w, ]*: the same bytes, as no two of them are live at once \(plan.py\) \*/", forward_c)
    assert "float *gate = (float *)(arena + " in forward_c and "/* [n, FFN] */" in forward_c


def test_layer_table_and_buffers_sit_at_the_planned_offsets():
    graph, plan, forward_c, _ = generated()
    rows = re.findall(r"^    \{ (\.input_norm.*) \},$", forward_c, re.M)
    assert len(rows) == TINY.num_layers
    for i, row in enumerate(rows):
        fields = dict(re.findall(r"\.(\w+) = (\d+)u", row))
        assert int(fields["ffn_sub_norm"]) == plan.slots[f"layers.{i}.ffn_sub_norm"].offset
        linear = re.search(r"\.down_proj = \{ (\d+)u, (\d+)u \}", row).groups()
        assert tuple(map(int, linear)) == (plan.slots[f"layers.{i}.down_proj"].offset, plan.slots[f"layers.{i}.down_proj.wscale"].offset)
    defines = dict(re.findall(r"^#define (\w+) (\w+)$", forward_c, re.M))
    assert defines["ARENA_BYTES"] == f"{plan.total_bytes}u" and defines["LOGITS"] == f"{plan.slots['logits'].offset}u"
    assert defines["CONTEXT"] == "300" and defines["CHUNK"] == "32"
    for name in ("x", "gate", "scores"):
        assert f"*{name} = (float *)(arena + {plan.slots[name].offset}u);" in forward_c


def test_q8_and_lut_options_change_the_calls():
    graph, plan, forward_c, _ = generated(BuildOptions(embed="q8", layout="lut", chunk=4))
    assert "OP(bn_embed_q8(embed, embed_row_scale, tokens, x, n, HIDDEN, VOCAB));" in forward_c
    assert "OP(bn_head_q8_parallel(lm_head, lm_head_row_scale, final_q + (n - rows) * HIDDEN, final_s + (n - rows), logits, rows, VOCAB, HIDDEN));" in forward_c
    assert "OP(bn_bitlinear_parallel(BN_LAYOUT_LUT, WEIGHTS(o_proj), WSCALE(o_proj), att_norm_q, att_norm_s, o, bitlinear_scratch, HIDDEN, Q_DIM, n));" in forward_c


def test_model_header_declares_the_abi_with_the_arena_size():
    _, plan, _, model_h = generated()
    sigs = parse_header(model_h)
    assert set(sigs) == {"bn_model_forward", "bn_model_prefill", "bn_model_step"}
    arena = sigs["bn_model_forward"].params[0]
    assert (arena.name, arena.ctype, arena.count) == ("arena", "uint8_t", str(plan.total_bytes))
    assert [p.name for p in sigs["bn_model_forward"].scalars] == ["n", "pos0", "all_logits"]
    assert not set(sigs) & set(kernel_abi())


def test_site_sources_hold_every_kernel_and_header(tmp_path):
    _, _, forward_c, model_h = generated()
    sources = write_sources(tmp_path, forward_c, model_h)
    assert {p.name for p in sources} == {p.name for p in kernel_sources()} | {"forward.c"}
    assert {"bitnet.h", "simd.h", "model.h"} <= {p.name for p in tmp_path.glob("*.h")}
