import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bitnet_wasm.compiler.checkpoint import BitLinear, Checkpoint, ModelConfig
from bitnet_wasm.compiler.graph import BuildOptions, build_graph
from bitnet_wasm.compiler.plan import plan_memory
from bitnet_wasm.compiler.shards import PackError, ShardWriter, pack_weight, q4_pack, q4_rows, q4_unpack, q7_rows, q8_rows, tile_table, untile_table, write_shards
from bitnet_wasm.wasm_kernels.abi import q4_row_bytes
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

TINY = ModelConfig("bitnet", vocab_size=50, hidden_size=32, intermediate_size=40, num_layers=2, num_heads=2,
                   num_kv_heads=1, head_dim=16, max_position=64, rope_theta=10000.0, rms_norm_eps=1e-5, tie_embeddings=True)


def checkpoint(config=TINY, seed=0):
    rng = np.random.default_rng(seed)
    graph = build_graph(config)
    tensors, linears = {}, {}
    for w in graph.weights.values():
        if w.packing in LAYOUTS:
            linears[w.source] = BitLinear(rng.integers(-1, 2, w.shape).astype(np.int8), float(rng.uniform(0.5, 2)))
        elif w.packing == "f16" or w.packing == "f32":
            tensors[w.source] = rng.standard_normal(w.shape).astype(np.float32)
    return Checkpoint(config, tensors, linears, None, Path("memory"))


def test_shards_are_the_weights_region_cut_in_pieces(tmp_path):
    ckpt = checkpoint()
    graph = build_graph(TINY, BuildOptions(shard_mb=3000 / 2**20))
    plan = plan_memory(graph)
    shards, tensors = write_shards(graph, plan, ckpt, tmp_path)
    image = b"".join((tmp_path / s["file"]).read_bytes() for s in shards)
    assert len(image) == plan.regions["weights"].nbytes and len(shards) == -(-len(image) // 3000)
    for s in shards:
        data = (tmp_path / s["file"]).read_bytes()
        assert len(data) == s["bytes"] <= 3000 and hashlib.sha256(data).hexdigest() == s["sha256"]
        assert image[s["offset"]:s["offset"] + s["bytes"]] == data
    q = tensors["layers.1.q_proj"]
    assert (q["shard"], q["shard_offset"]) == divmod(q["offset"], 3000)
    unpacked = LAYOUTS["mad"].unpack(np.frombuffer(image[q["offset"]:q["offset"] + q["bytes"]], np.uint8), 32, 32)
    np.testing.assert_array_equal(unpacked, ckpt.linears["layers.1.q_proj"].weights)
    scale = tensors["layers.1.q_proj.wscale"]
    assert np.frombuffer(image[scale["offset"]:scale["offset"] + 4], "<f4")[0] == np.float32(ckpt.linears["layers.1.q_proj"].wscale)
    embed = tensors["embed"]
    np.testing.assert_array_equal(np.frombuffer(image[embed["offset"]:embed["offset"] + embed["bytes"]], "<f2"),
                                  ckpt.tensors["embed"].astype(np.float16).reshape(-1))


def test_writer_pads_gaps_and_refuses_to_go_back(tmp_path):
    writer = ShardWriter(tmp_path, 10)
    writer.write_at(3, np.arange(1, 9, dtype=np.uint8))
    with pytest.raises(ValueError, match="must not go backwards"):
        writer.write_at(5, np.zeros(1, np.uint8))
    shards = writer.finish(25)
    assert [s["bytes"] for s in shards] == [10, 10, 5]
    assert b"".join((tmp_path / s["file"]).read_bytes() for s in shards) == bytes(3) + bytes(range(1, 9)) + bytes(14)


def test_q8_rows_round_trip_within_half_a_step():
    table = np.random.default_rng(1).standard_normal((20, 33)).astype(np.float32)
    table[3] = 0
    q, scale = q8_rows(table)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.all(np.abs(q * scale[:, None] - table) <= 0.5 * scale[:, None] + 1e-7)
    assert np.all(q[3] == 0) and scale[3] == 1


def test_q7_rows_are_codes_of_63_steps_each_side_of_zero():
    table = np.random.default_rng(1).standard_normal((20, 33)).astype(np.float32)
    table[3] = 0
    codes, scale = q7_rows(table)
    q = codes.astype(np.int32) - 64
    assert codes.dtype == np.uint8 and codes.min() >= 1 and codes.max() <= 127 and np.abs(q).max() == 63
    assert np.all(np.abs(q * scale[:, None] - table) <= 0.5 * scale[:, None] + 1e-7)
    assert np.all(codes[3] == 64) and scale[3] == 1


@pytest.mark.parametrize("vocab, dim", [(16, 32), (21, 37), (5, 40), (8, 7), (3, 5)])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_byte_tables_are_laid_out_in_tiles_as_bitnet_h_states(vocab, dim, dtype):
    """int8 and 7-bit tables, tiles of 8 rows: chunk c of row r at tile + (8c + r) * 16, then the rows' last
    dim % 16 columns row by row; the rows after the last whole tile as they are."""
    codes = np.random.default_rng(vocab * dim).integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (vocab, dim)).astype(dtype)
    packed = tile_table(codes)
    assert packed.dtype == dtype and packed.shape == (vocab * dim,)
    tiled, whole = vocab // 8 * 8, dim // 16 * 16
    for v in range(vocab):
        for i in range(dim):
            tile, r = v // 8 * 8 * dim, v % 8
            at = (v * dim + i if v >= tiled else tile + (8 * (i // 16) + r) * 16 + i % 16 if i < whole
                  else tile + 8 * whole + r * (dim - whole) + i - whole)
            assert packed[at] == codes[v, i], (v, i)
    assert np.array_equal(untile_table(packed, vocab, dim), codes)


def test_q4_groups_are_codes_of_7_steps_each_side_of_zero_per_group_of_64():
    table = np.random.default_rng(2).standard_normal((20, 70)).astype(np.float32)
    table[3] = 0
    table[5, 64:] = 0  # a zero last group (6 columns: shorter than the others)
    table[6, 10] = 50  # an outlier moves only its own group's scale
    codes, scale = q4_rows(table)
    q = codes.astype(np.int32) - 8
    assert codes.dtype == np.uint8 and codes.min() >= 1 and codes.max() <= 15 and scale.shape == (20, 2)
    per_column = np.repeat(scale, 64, axis=1)[:, :70]
    assert np.all(np.abs(q * per_column - table) <= 0.5 * per_column + 1e-6)
    assert np.abs(q[:, :64]).max(axis=1).tolist() == [0 if v == 3 else 7 for v in range(20)]
    assert np.all(codes[3] == 8) and np.all(scale[3] == 1) and scale[5, 1] == 1 and np.all(codes[5, 64:] == 8)
    assert scale[6, 0] == np.float32(50) / 7 and scale[6, 1] == np.abs(table[6, 64:]).max() / np.float32(7)


def test_q4_pack_lays_out_rows_as_bitnet_h_states():
    """Byte j of a row's 16-byte chunk m: column 32m + j in the low nibble, 32m + 16 + j in the high one;
    the row padded to whole chunks with code 8 (weight 0)."""
    codes = np.random.default_rng(3).integers(1, 16, (5, 70), dtype=np.uint8)
    packed = q4_pack(codes)
    assert packed.dtype == np.uint8 and packed.shape == (5, q4_row_bytes(70)) == (5, 48)
    padded = np.concatenate([codes, np.full((5, 96 - 70), 8, np.uint8)], axis=1)
    for column in range(96):
        byte = packed[:, column // 32 * 16 + column % 16]
        assert np.array_equal(byte & 0x0F if column % 32 < 16 else byte >> 4, padded[:, column]), column
    assert np.array_equal(q4_unpack(packed, 70), codes)


@pytest.mark.parametrize("embed, rows", [("q8", q8_rows), ("q7", q7_rows)])
def test_byte_tables_pack_in_tiles(embed, rows):
    graph = build_graph(TINY, BuildOptions(embed=embed))
    ckpt = checkpoint()
    values, _ = rows(ckpt.tensors["embed"])
    assert np.array_equal(pack_weight(graph.weights["embed"], ckpt).view(values.dtype), tile_table(values))


def test_q4_table_packs_to_the_planned_bytes_and_names_a_bad_shape():
    graph = build_graph(TINY, BuildOptions(embed="q4"))
    table, scale = graph.weights["embed"], graph.weights["embed.group_scale"]
    assert (table.shape, table.nbytes, scale.shape, scale.nbytes) == ((50, 32), 50 * 16, (50, 1), 50 * 4)
    ckpt = checkpoint()
    packed = pack_weight(table, ckpt).reshape(50, 16)
    codes, group_scale = q4_rows(ckpt.tensors["embed"])
    assert np.array_equal(packed, q4_pack(codes)) and pack_weight(scale, ckpt).view("<f4").tolist() == group_scale[:, 0].tolist()
    ckpt.tensors["embed"] = ckpt.tensors["embed"][:, :31]
    with pytest.raises(PackError, match=r"memory: tensor embed has shape \(50, 31\), expected \(50, 32\)"):
        pack_weight(scale, ckpt)


@pytest.mark.parametrize("breakage, message", [
    (lambda c: c.tensors.pop("layers.0.ffn_sub_norm"), "memory: tensor layers.0.ffn_sub_norm is missing"),
    (lambda c: c.tensors.update(norm=np.ones(31, np.float32)), r"memory: tensor norm has shape \(31,\), expected \(32,\)"),
    (lambda c: c.linears.pop("layers.1.up_proj"), "memory: linear layer layers.1.up_proj is missing"),
    (lambda c: c.linears.update({"layers.0.k_proj": replace(c.linears["layers.0.k_proj"], wscale=float("nan"))}),
     "memory: linear layers.0.k_proj has weight scale nan; expected a positive number"),
    (lambda c: c.linears.update({"layers.0.k_proj": BitLinear(np.zeros((16, 31), np.int8), 1.0)}),
     r"memory: linear layers.0.k_proj has shape \(16, 31\), expected \(16, 32\)"),
    (lambda c: c.tensors["embed"].__setitem__((0, 0), 1e6), "embed: values up to 1e\\+06 overflow f16; build with --embed q8"),
    (lambda c: c.tensors["embed"].__setitem__((3, 5), np.nan), r"memory: tensor embed holds nan at index \[3, 5\] \(1 non-finite values\)"),
    (lambda c: c.tensors["layers.1.input_norm"].__setitem__(7, -np.inf), r"tensor layers.1.input_norm holds -inf at index \[7\]"),
])
def test_bad_weights_are_named(tmp_path, breakage, message):
    ckpt = checkpoint()
    breakage(ckpt)
    graph = build_graph(TINY)
    with pytest.raises(PackError, match=message):
        for weight in graph.weights.values():
            pack_weight(weight, ckpt)
