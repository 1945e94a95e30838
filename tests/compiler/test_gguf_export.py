"""GGUF export: a built site -> llama.cpp bitnet GGUF, read back with gguf-py and compared with the
checkpoint's own values (the writers' ternary codes and scales, or numpy on the float weights)."""
import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler.gguf_export import GGUFExportError, _pre_tokenizer, export_gguf
from bitnet_wasm.compiler.shards import q4_rows
from bitnet_wasm.compiler.writers import write_1bitllm, write_bitnet_1bit, write_bitnet_packed
from bitnet_wasm.runtime import load

LLAMA_CPP_SCRIPT = Path(__file__).with_name("llama_cpp_logits.mjs")
LLAMA3_JSON_GZ = Path(__file__).parents[1] / "data" / "llama3-tokenizer.json.gz"

TQ_SHAPE = dict(hidden=256, heads=4, kv_heads=2, intermediate=512, layers=2, vocab=320)  # every row a multiple of 256
MIXED_SHAPE = dict(hidden=256, heads=4, kv_heads=2, intermediate=96, layers=1, vocab=300)  # down_proj rows of 96 -> Q8_0
ODD_SHAPE = dict(hidden=48, heads=3, kv_heads=1, intermediate=100, layers=1, vocab=300)  # rows of 48 and 100 -> F16
LINEARS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def build_site(tmp_path, written, **options):
    bitnet_wasm.build(written.path, tmp_path / "site", wasm=False, progress=False, **options)
    return tmp_path / "site"


def read_back(path):
    reader = gguf.GGUFReader(path)
    tensors = {t.name: (t.tensor_type, gguf.quants.dequantize(t.data, t.tensor_type)) for t in reader.tensors}
    fields = {name: field.contents() for name, field in reader.fields.items()}
    return tensors, fields


def linear_values(tensors, layer, gguf_name):
    kind, codes = tensors[f"blk.{layer}.{gguf_name}.weight"]
    _, scale = tensors[f"blk.{layer}.{gguf_name}.scale"]
    return kind, codes, scale


@pytest.mark.parametrize("weight_type, qtype", [("tq2_0", gguf.GGMLQuantizationType.TQ2_0), ("tq1_0", gguf.GGMLQuantizationType.TQ1_0)])
def test_ternary_weights_and_scales_read_back_exactly(tmp_path, weight_type, qtype):
    written = write_bitnet_packed(tmp_path / "hf", seed=1, linear_class="bitlinear", **TQ_SHAPE)  # weight_scale: the inverse scale
    path = export_gguf(build_site(tmp_path, written), tmp_path / "m.gguf", weight_type)
    tensors, fields = read_back(path)
    for n in range(TQ_SHAPE["layers"]):
        for hf, name in LINEARS.items():
            kind, codes, scale = linear_values(tensors, n, name)
            truth = written.ternary[f"model.layers.{n}.{hf}"]
            inverse = written.tensors[f"model.layers.{n}.{hf}.weight_scale"].astype(np.float32)
            assert kind == qtype
            assert np.array_equal(codes, truth)
            assert np.array_equal(codes * scale, truth * (np.float32(1) / inverse))
        assert np.array_equal(tensors[f"blk.{n}.attn_sub_norm.weight"][1], written.tensors[f"model.layers.{n}.self_attn.attn_sub_norm.weight"])
        assert np.array_equal(tensors[f"blk.{n}.ffn_norm.weight"][1], written.tensors[f"model.layers.{n}.post_attention_layernorm.weight"])
    embed_type, embed = tensors["token_embd.weight"]
    assert embed_type == gguf.GGMLQuantizationType.F16
    assert np.array_equal(embed, written.tensors["model.embed_tokens.weight"].astype(np.float16).astype(np.float32))
    assert np.array_equal(tensors["output_norm.weight"][1], written.tensors["model.norm.weight"])
    assert "output.weight" not in tensors  # llama.cpp's bitnet head is token_embd
    assert fields["general.file_type"] == {"tq2_0": gguf.LlamaFileType.MOSTLY_TQ2_0, "tq1_0": gguf.LlamaFileType.MOSTLY_TQ1_0}[weight_type]
    assert fields["bitnet_wasm.exact_fallback"] == "none"


def test_metadata_and_tokenizer(tmp_path):
    written = write_bitnet_packed(tmp_path / "hf", **TQ_SHAPE)
    _, fields = read_back(export_gguf(build_site(tmp_path, written), tmp_path / "m.gguf"))
    c = written.config
    expected = {
        "general.architecture": "bitnet", "bitnet.vocab_size": c["vocab_size"], "bitnet.context_length": c["max_position_embeddings"],
        "bitnet.embedding_length": c["hidden_size"], "bitnet.block_count": c["num_hidden_layers"],
        "bitnet.feed_forward_length": c["intermediate_size"], "bitnet.attention.head_count": c["num_attention_heads"],
        "bitnet.attention.head_count_kv": c["num_key_value_heads"], "bitnet.rope.dimension_count": 64,
        "bitnet.rope.freq_base": c["rope_theta"], "bitnet.hidden_activation": "relu2",
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.bos_token_id": c["bos_token_id"],
        "tokenizer.ggml.eos_token_id": c["eos_token_id"], "tokenizer.ggml.add_bos_token": True,
    }
    assert {k: fields[k] for k in expected} == expected
    assert fields["bitnet.attention.layer_norm_rms_epsilon"] == pytest.approx(c["rms_norm_eps"])
    spec = json.loads((written.path / "tokenizer.json").read_text())
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == c["vocab_size"] == len(fields["tokenizer.ggml.token_type"])
    assert all(tokens[i] == text for text, i in spec["model"]["vocab"].items())
    assert tokens[c["bos_token_id"]] == "<|begin_of_text|>"
    assert fields["tokenizer.ggml.token_type"][c["bos_token_id"]] == gguf.TokenType.CONTROL
    assert fields["tokenizer.ggml.merges"] == [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    assert "{{ bos_token }}" in fields["tokenizer.chat_template"]


def test_pre_tokenizer_names():
    llama3 = json.loads(gzip.decompress(LLAMA3_JSON_GZ.read_bytes()))["pre_tokenizer"]  # BitNet 2B4T's vocabulary
    assert _pre_tokenizer(LLAMA3_JSON_GZ, llama3) == "llama-bpe"
    assert _pre_tokenizer(LLAMA3_JSON_GZ, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}) == "gpt-2"
    with pytest.raises(GGUFExportError, match="tokenizer.json.*Whitespace"):
        _pre_tokenizer(Path("tokenizer.json"), {"type": "Whitespace"})


def test_rows_not_a_multiple_of_256_fall_back_to_exact_types(tmp_path):
    written = write_bitnet_packed(tmp_path / "hf", linear_class="bitlinear", **MIXED_SHAPE)  # weight_scale: the inverse scale
    tensors, fields = read_back(export_gguf(build_site(tmp_path, written, embed="q8"), tmp_path / "m.gguf", "tq1_0"))
    kinds = {name: linear_values(tensors, 0, name)[0] for name in LINEARS.values()}
    assert kinds.pop("ffn_down") == gguf.GGMLQuantizationType.Q8_0
    assert set(kinds.values()) == {gguf.GGMLQuantizationType.TQ1_0}
    assert fields["bitnet_wasm.exact_fallback"] == "blk.0.ffn_down.weight:q8_0"
    _, codes, scale = linear_values(tensors, 0, "ffn_down")
    inverse = written.tensors["model.layers.0.mlp.down_proj.weight_scale"].astype(np.float32)
    assert np.array_equal(codes * scale, written.ternary["model.layers.0.mlp.down_proj"] * (np.float32(1) / inverse))
    embed_type, embed = tensors["token_embd.weight"]  # q8 rows * f32 row scale: exact only as F32
    assert embed_type == gguf.GGMLQuantizationType.F32
    assert np.abs(embed - written.tensors["model.embed_tokens.weight"]).max() <= np.abs(written.tensors["model.embed_tokens.weight"]).max() / 127


def test_1bitllm_silu_model_and_odd_rows_as_f16(tmp_path):
    written = write_1bitllm(tmp_path / "hf", tied=True, **ODD_SHAPE)
    tensors, fields = read_back(export_gguf(build_site(tmp_path, written), tmp_path / "m.gguf"))
    assert fields["bitnet.hidden_activation"] == "silu"
    for hf, name in LINEARS.items():
        w = written.tensors[f"model.layers.0.{hf}.weight"]
        s = 1.0 / max(float(np.abs(w).mean()), 1e-5)  # 1bitLLM's absmean ternarization, in numpy
        kind, codes, scale = linear_values(tensors, 0, name)
        assert kind == gguf.GGMLQuantizationType.F16
        assert np.array_equal(codes, np.clip(np.rint(w * s), -1, 1))
        assert scale[0] == pytest.approx(1 / s, rel=1e-6)


def test_q4_table_exports_as_the_values_the_site_stores(tmp_path):
    written = write_1bitllm(tmp_path / "hf", tied=True, **dict(ODD_SHAPE, hidden=80, heads=5))  # groups of 64 and 16 columns
    tensors, _ = read_back(export_gguf(build_site(tmp_path, written, embed="q4"), tmp_path / "m.gguf"))
    embed_type, embed = tensors["token_embd.weight"]
    codes, scale = q4_rows(written.tensors["model.embed_tokens.weight"].astype(np.float32))
    assert embed_type == gguf.GGMLQuantizationType.F32
    assert np.array_equal(embed, (codes.astype(np.float32) - 8) * np.repeat(scale, 64, axis=1)[:, :80])


def test_binary_model_exports_as_ternary_codes(tmp_path):
    written = write_bitnet_1bit(tmp_path / "hf", **MIXED_SHAPE)
    tensors, fields = read_back(export_gguf(build_site(tmp_path, written), tmp_path / "m.gguf"))
    assert fields["bitnet_wasm.weights"].startswith("binary")
    for hf, name in LINEARS.items():
        w = written.tensors[f"model.layers.0.{hf}.weight"]
        kind, codes, scale = linear_values(tensors, 0, name)
        assert np.array_equal(codes, np.where(w >= w.mean(), 1, -1))
        assert scale[0] == pytest.approx(np.abs(w).mean(), rel=1e-6)
    assert linear_values(tensors, 0, "attn_q")[0] == gguf.GGMLQuantizationType.TQ2_0


def test_untied_head_is_refused(tmp_path):
    site = build_site(tmp_path, write_1bitllm(tmp_path / "hf", tied=False, **ODD_SHAPE))
    with pytest.raises(GGUFExportError, match="lm_head"):
        export_gguf(site, tmp_path / "m.gguf")


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_shard_is_named(tmp_path, damage):
    site = build_site(tmp_path, write_bitnet_packed(tmp_path / "hf", **TQ_SHAPE), shard_mb=0.125)
    shard = site / "model" / "weights-00001.bin"
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[100] ^= 1
        shard.write_bytes(data)
    elif damage == "truncate":
        shard.write_bytes(data[:-1])
    else:
        shard.unlink()
    with pytest.raises(GGUFExportError, match="weights-00001.bin"):
        export_gguf(site, tmp_path / "m.gguf")


def rewrite_tokenizer(site, change):
    """Change the site's tokenizer.json and record its new sha256, as a consistent but wrong site."""
    path, manifest_path = site / "model/tokenizer.json", site / "model/manifest.json"
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["tokenizer.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


TOKENIZER_DEFECTS = {  # a defect of a tokenizer.json -> the error naming it
    "added id -3": (lambda spec: spec["added_tokens"][0].update(id=-3), "-> -3 is not a text with a token id below the vocabulary size"),
    "added id past the vocabulary": (lambda spec: spec["added_tokens"][0].update(id=10**6), "is not a text with a token id below"),
    "added id of another token": (lambda spec: spec["added_tokens"][0].update(id=spec["model"]["vocab"]["a"]), "is both"),
    "vocab not an object": (lambda spec: spec["model"].update(vocab=[]), "model.vocab must be an object"),
    "merges not a list": (lambda spec: spec["model"].update(merges="a b"), "model.merges is not a list"),
}


@pytest.mark.parametrize("defect", list(TOKENIZER_DEFECTS))
def test_a_wrong_tokenizer_is_refused_not_written(tmp_path, defect):
    site = build_site(tmp_path, write_bitnet_packed(tmp_path / "hf", **TQ_SHAPE))
    change, message = TOKENIZER_DEFECTS[defect]
    rewrite_tokenizer(site, change)
    with pytest.raises(GGUFExportError, match=message):
        export_gguf(site, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_tensor_spanning_shards_reads_back(tmp_path):
    written = write_bitnet_packed(tmp_path / "hf", **TQ_SHAPE)
    tensors, _ = read_back(export_gguf(build_site(tmp_path, written, shard_mb=0.01), tmp_path / "m.gguf"))
    assert np.array_equal(tensors["blk.1.ffn_down.weight"][1], written.ternary["model.layers.1.mlp.down_proj"])


def test_cli(tmp_path, capsys):
    site = build_site(tmp_path, write_bitnet_packed(tmp_path / "hf", **MIXED_SHAPE))
    out = tmp_path / "cli.gguf"
    assert cli(["export-gguf", str(site), "--out", str(out), "--type", "tq1_0", "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert "6 TQ1_0" in line and "1 Q8_0" in line and "kept exact: 1 as Q8_0" in line
    assert cli(["export-gguf", str(tmp_path / "nowhere"), "--out", str(out), "--no-progress"]) == 2
    assert "no model/manifest.json" in capsys.readouterr().err


def llama_cpp_logits(package, path, ids, vocab):
    run = subprocess.run(["node", str(LLAMA_CPP_SCRIPT), str(package), str(path), json.dumps(ids)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    logits = np.zeros(vocab, np.float32)
    for token, value in json.loads(run.stdout.strip().splitlines()[-1])["logits"]:
        logits[token] = value
    return logits


def test_llama_cpp_runs_the_export_like_our_runtime(tmp_path, node_llama_cpp):
    """The SiLU family maps exactly: one token matches to f16 rounding; longer prompts stay close (llama.cpp rounds
    attention's q and probabilities to f16, and int8 activations amplify that). ReLU^2 models run with SiLU there."""
    shape = dict(hidden=256, heads=4, kv_heads=4, intermediate=256, layers=2, vocab=320)  # one Q8_K block per row, as our per-token scale
    prompt = [315, 40, 41, 100, 200, 7, 8, 9]
    errors = {}
    for family, written in {"silu": write_1bitllm(tmp_path / "silu", tied=True, **shape),
                            "relu2": write_bitnet_packed(tmp_path / "relu2", **shape)}.items():
        bitnet_wasm.build(written.path, tmp_path / family / "site", wasm=False, progress=False)
        path = export_gguf(tmp_path / family / "site", tmp_path / family / "m.gguf")
        ours = load(tmp_path / family / "site")
        for ids in (prompt[:1], prompt):
            theirs, expected = llama_cpp_logits(node_llama_cpp, path, ids, shape["vocab"]), ours.logits(ids)[-1]
            errors[family, len(ids)] = np.abs(theirs - expected).max() / np.abs(expected).max()
            if family == "silu":
                assert np.argmax(theirs) == np.argmax(expected)
    assert errors["silu", 1] < 1e-3 and errors["silu", len(prompt)] < 5e-2, errors
    assert errors["relu2", 1] > 5e-2, errors
