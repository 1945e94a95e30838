import re
from dataclasses import replace

import pytest

from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.compiler.graph import MAX_THREADS, Q7_FROM_VOCAB, BuildOptionError, BuildOptions, N, build_graph
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

TINY = ModelConfig("bitnet", vocab_size=97, hidden_size=48, intermediate_size=100, num_layers=2, num_heads=3,
                   num_kv_heads=1, head_dim=16, max_position=300, rope_theta=10000.0, rms_norm_eps=1e-5, tie_embeddings=True)

# The layer body as the published model definitions order it; the families differ in the gate.
LAYER_KINDS = ["rmsnorm", "quantize", "bitlinear", "bitlinear", "bitlinear", "rope", "rope", "kv_store", "kv_store",
               "attention", "rmsnorm", "quantize", "bitlinear", "add", "rmsnorm", "quantize", "bitlinear", "bitlinear",
               "GATE", "rmsnorm", "quantize", "bitlinear", "add"]
GATES = {"bitnet": "relu2_mul", "bitnet-llama": "silu_mul"}


@pytest.mark.parametrize("arch", list(GATES))
def test_layer_follows_the_architecture(arch):
    graph = build_graph(replace(TINY, architecture=arch))
    assert [op.kind for op in graph.layer] == [GATES[arch] if k == "GATE" else k for k in LAYER_KINDS]
    assert [op.kind for op in graph.prologue] == ["embed_f16"]
    assert [op.kind for op in graph.epilogue] == ["rmsnorm", "head_f16"]
    norms = [op.weights[0] for op in graph.layer if op.kind == "rmsnorm"]
    assert norms == ["input_norm", "attn_sub_norm", "post_attention_norm", "ffn_sub_norm"]


def test_llama_layer_has_no_sub_norms():
    graph = build_graph(replace(TINY, architecture="llama"))
    kinds = [op.kind for op in graph.layer]
    assert kinds.count("rmsnorm") == 2 and "silu_mul" in kinds
    o_proj = next(op for op in graph.layer if op.weights[:1] == ("o_proj",))
    down = next(op for op in graph.layer if op.weights[:1] == ("down_proj",))
    assert o_proj.reads == ("att_q", "att_s") and down.reads == ("gate_q", "gate_s")  # straight from attention / the gate
    assert not [w for w in graph.weights if "sub_norm" in w]


def test_linear_norms_norm_and_quantize_each_linear_input_with_their_own_eps():
    graph = build_graph(replace(TINY, architecture="llama+linear_norms", linear_norm_eps=0.125))
    for role in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        linear = next(i for i, op in enumerate(graph.layer) if op.kind == "bitlinear" and op.weights[0] == role)
        norm, quantize = graph.layer[linear - 2], graph.layer[linear - 1]
        assert (norm.kind, norm.weights, norm.attrs["eps"]) == ("rmsnorm", (role + "_norm",), 0.125)
        assert quantize.reads == norm.writes and graph.layer[linear].reads == quantize.writes
        assert graph.weights[f"layers.1.{role}_norm"].shape == (graph.layer[linear].attrs["in_dim"],)
    assert [op.attrs["eps"] for op in graph.layer if op.weights[:1] == ("input_norm",)] == [1e-5]


@pytest.mark.parametrize("kv, dtype, kernel", [("f16", "f16", "bn_attention"), ("f32", "f32", "bn_attention_f32")])
def test_kv_cache_type_sets_the_cache_and_its_kernels(kv, dtype, kernel):
    graph = build_graph(TINY, BuildOptions(kv=kv))
    assert graph.values["k_cache"].dtype == graph.values["v_cache"].dtype == dtype
    assert {op.attrs["kernel"] for op in graph.layer if op.kind == "attention"} == {kernel}
    with pytest.raises(BuildOptionError, match="--kv f8: choose one of f16, f32"):
        build_graph(TINY, BuildOptions(kv="f8"))


def test_bitlinear_shapes_follow_gqa_config():
    config = replace(TINY, num_heads=4, num_kv_heads=2, head_dim=8, hidden_size=40, intermediate_size=72)
    graph = build_graph(config)
    dims = {op.weights[0]: (op.attrs["out_dim"], op.attrs["in_dim"]) for op in graph.layer if op.kind == "bitlinear"}
    assert dims == {"q_proj": (32, 40), "k_proj": (16, 40), "v_proj": (16, 40), "o_proj": (40, 32),
                    "gate_proj": (72, 40), "up_proj": (72, 40), "down_proj": (40, 72)}
    attention = next(op for op in graph.layer if op.kind == "attention")
    assert (attention.attrs["heads"], attention.attrs["kv_heads"], attention.attrs["head_dim"]) == (4, 2, 8)
    assert graph.values["k"].shape == (N, 16) and graph.values["q"].shape == (N, 32)
    assert graph.values["h_q"].dtype == "i8" and graph.values["h_s"].shape == (N,)
    assert graph.values["k_cache"].shape == (2, 300, 8) and graph.values["k_cache"].per_layer


def test_every_buffer_is_written_before_it_is_read():
    graph = build_graph(TINY)
    carried = {"x"}  # the residual stream flows from one layer into the next
    written = {name for name, v in graph.values.items() if v.region != "activations"} | carried
    for op in graph.ops():
        assert set(op.reads) <= written, op
        written |= set(op.writes)


@pytest.mark.parametrize("tie", [True, False])
def test_weights_are_the_canonical_checkpoint_tensors(tie):
    graph = build_graph(replace(TINY, tie_embeddings=tie))
    names = set(graph.weights)
    assert ("lm_head" in names) == (not tie)
    assert {"embed", "norm", "layers.1.ffn_sub_norm", "layers.0.q_proj", "layers.0.q_proj.wscale"} <= names
    q = graph.weights["layers.1.down_proj"]
    assert q.packing == "mad" and q.shape == (48, 100) and q.nbytes == LAYOUTS["mad"].packed_bytes(48, 100)
    assert graph.weights["embed"].nbytes == 97 * 48 * 2


def test_auto_embedding_is_7_bit_for_large_vocabularies_only():
    assert BuildOptions().resolved(TINY).embed == "f16"
    large = replace(TINY, vocab_size=Q7_FROM_VOCAB)
    assert BuildOptions().resolved(large).embed == "q7" and BuildOptions(embed="f16").resolved(large).embed == "f16"
    assert BuildOptions().resolved(replace(TINY, vocab_size=Q7_FROM_VOCAB - 1)).embed == "f16"


def test_options_choose_kernels_and_layouts():
    graph = build_graph(TINY, BuildOptions(embed="q8", layout="lut"))
    assert [op.kind for op in graph.prologue] == ["embed_q8"]
    assert [op.kind for op in graph.epilogue] == ["rmsnorm", "quantize", "head_q8"]
    assert graph.weights["embed"].dtype == "i8" and graph.weights["embed.row_scale"].shape == (97,)
    assert {op.attrs["layout"] for op in graph.layer if op.kind == "bitlinear"} == {"lut"}
    assert "bitlinear_scratch" in graph.values
    q7 = build_graph(TINY, BuildOptions(embed="q7"))
    assert [op.kind for op in q7.prologue] == ["embed_q7"] and [op.kind for op in q7.epilogue] == ["rmsnorm", "quantize", "head_q7"]
    assert q7.weights["embed"].dtype == "u8" and q7.weights["embed.row_scale"].packing == "q7_scale"
    q4 = build_graph(TINY, BuildOptions(embed="q4"))
    assert [op.kind for op in q4.prologue] == ["embed_q4"] and [op.kind for op in q4.epilogue] == ["rmsnorm", "quantize", "head_q4"]
    # 48 columns: one group of 48 (a shorter last group), two chunks of 32 (the second padded)
    assert (q4.weights["embed"].shape, q4.weights["embed"].nbytes) == ((97, 48), 97 * 32)
    assert (q4.weights["embed.group_scale"].packing, q4.weights["embed.group_scale"].shape) == ("q4_scale", (97, 1))
    binary = build_graph(TINY, binary=True)
    assert binary.linear_layout == "binary" and binary.weights["layers.0.k_proj"].packing == "binary"



def test_auto_layout_takes_each_shape_from_the_kernel_table():
    # TINY's shapes: q (48, 48), k/v (16, 48), o (48, 48), gate/up (100, 48), down (48, 100)
    chosen = (((48, 48), "lut"), ((16, 48), "mad"), ((100, 48), "mad"), ((48, 100), "lut"))
    graph = build_graph(TINY, BuildOptions(layout="auto", shape_layouts=chosen))
    layouts = {op.weights[0]: op.attrs["layout"] for op in graph.layer if op.kind == "bitlinear"}
    assert layouts == {"q_proj": "lut", "k_proj": "mad", "v_proj": "mad", "o_proj": "lut", "gate_proj": "mad", "up_proj": "mad", "down_proj": "lut"}
    scratch = {op.weights[0] for op in graph.layer if "bitlinear_scratch" in op.writes}
    assert scratch == {"q_proj", "o_proj", "down_proj"}  # only the lut kernels take working memory
    assert graph.values["bitlinear_scratch"].shape == (MAX_THREADS * LAYOUTS["lut"].scratch_bytes(100),)  # a slice per thread
    assert graph.weights["layers.1.down_proj"].packing == "lut" and graph.weights["layers.1.up_proj"].packing == "mad"
    assert graph.weights["layers.1.up_proj"].nbytes == LAYOUTS["mad"].packed_bytes(100, 48)
    assert graph.linear_layout == "lut+mad"
    assert build_graph(TINY, BuildOptions(layout="mad", shape_layouts=chosen)).linear_layout == "lut+mad"  # the table wins
    assert build_graph(TINY, BuildOptions(layout="mad")).linear_layout == "mad"

def test_context_defaults_to_model_max_capped_at_2048():
    assert build_graph(TINY).options.context == 300
    assert build_graph(replace(TINY, max_position=4096)).options.context == 2048
    assert build_graph(TINY, BuildOptions(context=64, chunk=100)).options.chunk == 64


@pytest.mark.parametrize("options, config, message", [
    (BuildOptions(context=301), TINY, "--context 301: must be between 1 and the model's max_position 300"),
    (BuildOptions(context=0), TINY, "--context 0"),
    (BuildOptions(embed="f8"), TINY, "--embed f8: choose one of auto, f16, q8, q7, q4"),
    (BuildOptions(layout="binary"), TINY, "--layout binary: choose one of auto, measured, mad, lut"),
    (BuildOptions(layout="auto"), TINY, "--layout auto: no ternary layout for the linear shapes"),
    (BuildOptions(chunk=0), TINY, "chunk 0"),
    (BuildOptions(shard_mb=0), TINY, "--shard-mb 0: must be positive"),
    (BuildOptions(), replace(TINY, head_dim=15), "head_dim 15 must be even"),
    (BuildOptions(), replace(TINY, num_kv_heads=2), "num_heads 3 is not a multiple of num_kv_heads 2"),
    (BuildOptions(), replace(TINY, num_layers=0), "num_layers = 0 must be positive"),
])
def test_bad_options_and_configs_are_refused_by_name(options, config, message):
    with pytest.raises(BuildOptionError, match=re.escape(message)):
        build_graph(config, options)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'gpt2'; known: bitnet, bitnet-llama"):
        build_graph(replace(TINY, architecture="gpt2"))
