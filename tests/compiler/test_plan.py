import re
from dataclasses import replace

import pytest

from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.compiler.graph import BuildOptions, build_graph
from bitnet_wasm.compiler.plan import ALIGN, MIB, MODULE_RESERVE_BYTES, WASM32_BYTES, PlanError, _lifetimes, plan_memory, plan_model
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

TINY = ModelConfig("bitnet", vocab_size=97, hidden_size=48, intermediate_size=100, num_layers=3, num_heads=3,
                   num_kv_heads=1, head_dim=16, max_position=300, rope_theta=10000.0, rms_norm_eps=1e-5, tie_embeddings=True)
# microsoft/bitnet-b1.58-2B-4T config.json
B2B4T = ModelConfig("bitnet", vocab_size=128256, hidden_size=2560, intermediate_size=6912, num_layers=30, num_heads=20,
                    num_kv_heads=5, head_dim=128, max_position=4096, rope_theta=500000.0, rms_norm_eps=1e-5,
                    tie_embeddings=True, name="bitnet-b1.58-2B-4T")

CASES = [
    (TINY, BuildOptions()),
    (replace(TINY, architecture="bitnet-llama", tie_embeddings=False, num_kv_heads=3), BuildOptions(embed="q8", layout="lut", chunk=5)),
    (TINY, BuildOptions(context=7, chunk=3)),
    (B2B4T, BuildOptions()),
]


@pytest.mark.parametrize("config, options", CASES)
def test_buffers_alive_together_never_share_bytes(config, options):
    graph = build_graph(config, options)
    plan = plan_memory(graph)
    spans = _lifetimes(graph)
    acts = [n for n, v in graph.values.items() if v.region == "activations"]
    for i, a in enumerate(acts):
        for b in acts[i + 1:]:
            sa, sb = plan.slots[a], plan.slots[b]
            live_together = spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]
            if live_together:
                assert sa.end <= sb.offset or sb.end <= sa.offset, (a, b)
    # activations do share space: the region is smaller than all of them side by side
    assert plan.regions["activations"].nbytes < sum(plan.slots[n].nbytes for n in acts)


@pytest.mark.parametrize("config, options", CASES)
def test_regions_are_ordered_aligned_and_hold_their_slots(config, options):
    graph = build_graph(config, options)
    plan = plan_memory(graph)
    cursor = 0
    for name, region in plan.regions.items():
        assert region.offset == cursor and region.offset % ALIGN == 0
        cursor = region.end
    assert plan.total_bytes == cursor
    regions = {**{w: "weights" for w in graph.weights}, **{n: v.region for n, v in graph.values.items()}}
    for name, slot in plan.slots.items():
        region = plan.regions[regions[name]]
        assert slot.offset % ALIGN == 0 and region.offset <= slot.offset and slot.end <= region.end, name
    weights = sorted((plan.slots[w] for w in graph.weights), key=lambda s: s.offset)
    assert all(a.end <= b.offset for a, b in zip(weights, weights[1:]))


def test_residual_stream_lives_through_every_layer():
    graph = build_graph(TINY)
    spans = _lifetimes(graph)
    assert spans["x"] == (0, len(graph.ops()) - 2)  # from the embedding to the final norm
    body = range(len(graph.prologue), len(graph.prologue) + len(graph.layer))
    assert spans["scores"][0] == spans["scores"][1] and spans["scores"][0] in body


def test_kv_cache_and_weights_of_2b4t():
    plan = plan_memory(build_graph(B2B4T, BuildOptions(context=4096)))
    assert plan.regions["kv"].nbytes == 2 * 30 * 4096 * 5 * 128 * 2  # 76.8 KB per token
    ternary = 30 * sum(LAYOUTS["mad"].packed_bytes(o, i) for o, i in
                       [(2560, 2560), (640, 2560), (640, 2560), (2560, 2560), (6912, 2560), (6912, 2560), (2560, 6912)])
    embed = 128256 * 2560 + 128256 * 4  # --embed auto at this vocabulary: 7-bit codes and a scale per row
    assert ternary + embed < plan.regions["weights"].nbytes < ternary + embed + 2 * MIB  # plus norms, scales, alignment
    assert plan.required_bytes < 2 * 2**30 and plan.warning is None
    summary = plan.summary()
    assert re.search(r"^kv +300\.0 MiB$", summary, re.M) and "(context 4096, chunk 32)" in summary


def test_model_over_4gib_is_refused_with_the_options_that_fit():
    long = replace(B2B4T, max_position=65536, name="long")
    with pytest.raises(PlanError) as e:
        plan_model(long, BuildOptions(context=65536, embed="f16"))
    message = str(e.value)
    assert re.search(r"long does not fit wasm32 memory: it needs [\d,]+ MiB \(weights [\d,]+ MiB, KV cache [\d,]+ MiB at context 65536", message)
    assert "at most 4,096 MiB" in message
    f16_context = int(re.search(r"fits with: --context (\d+) \(", message).group(1))
    q8_context = int(re.search(r"; --embed q8 --context (\d+) \(", message).group(1))
    assert q8_context > f16_context
    for embed, context in (("f16", f16_context), ("q8", q8_context)):  # each is the largest context that fits
        _, plan = plan_model(long, BuildOptions(context=context, embed=embed))
        assert plan.warning and "many browsers" in plan.warning
        with pytest.raises(PlanError):
            plan_model(long, BuildOptions(context=context + 1, embed=embed))


def test_big_embedding_is_told_to_use_q8():
    wide = replace(B2B4T, vocab_size=256000, hidden_size=8192, intermediate_size=8192, num_layers=8, num_heads=64, num_kv_heads=8, name="wide")
    with pytest.raises(PlanError, match=r"it fits with: --embed q8 \([\d,]+ MiB\)$"):
        plan_model(wide, BuildOptions(embed="f16"))
    _, plan = plan_model(wide, BuildOptions(embed="q8"))
    assert plan.required_bytes <= WASM32_BYTES


def test_weights_alone_too_large_says_nothing_fits():
    huge = replace(B2B4T, num_layers=300, name="huge")
    with pytest.raises(PlanError, match="no build option makes it fit"):
        plan_model(huge)


def test_required_bytes_include_the_module_reserve():
    plan = plan_memory(build_graph(TINY))
    assert plan.required_bytes == plan.total_bytes + MODULE_RESERVE_BYTES
