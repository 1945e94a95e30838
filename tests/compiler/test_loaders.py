import functools
import json

import numpy as np
import pytest

from bitnet_wasm.compiler import writers as models
from bitnet_wasm.compiler.loaders import CheckpointError, load_checkpoint
from bitnet_wasm.compiler.loaders.encodings import unpack_output_packed

LINEARS = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
           "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj"}
SUB_NORMS = {  # config architecture -> canonical sub-norm -> HF name under model.layers.{i}.
    "BitNetForCausalLM": {"attn_sub_norm": "self_attn.attn_sub_norm", "ffn_sub_norm": "mlp.ffn_sub_norm"},
    "BitnetForCausalLM": {"attn_sub_norm": "self_attn.inner_attn_ln", "ffn_sub_norm": "mlp.ffn_layernorm"},
    "LlamaForCausalLM": {},
}
BITLINEAR_PACKED = functools.partial(models.write_bitnet_packed, linear_class="bitlinear")  # weight_scale divides
LLAMA_LINEAR_NORMS = functools.partial(models.write_llama_bitnet, linear_norm_eps=1e-5)  # use_rms_norm
BITNET_LINEAR_NORMS = functools.partial(models.write_bitnet_packed, linear_norm_eps=1e-5)
ARCHITECTURES = {models.write_bitnet_packed: "bitnet", BITLINEAR_PACKED: "bitnet", models.write_bitnet_fp: "bitnet", models.write_bitnet_1bit: "bitnet",
                 models.write_1bitllm: "bitnet-llama", models.write_llama_bitnet: "llama",
                 LLAMA_LINEAR_NORMS: "llama+linear_norms", BITNET_LINEAR_NORMS: "bitnet+linear_norms"}
ODD = dict(hidden=30, heads=5, kv_heads=1, intermediate=45)  # out dims 30, 6, 45: none a multiple of 4


def absmean(w):
    s = 1 / max(np.abs(w.astype(np.float64)).mean(), 1e-5)
    return np.clip(np.round(w * s), -1, 1), s


def sign_mean(w):
    w = w.astype(np.float64)
    return np.where(w >= w.mean(), 1, -1), 1 / np.abs(w).mean()


def expected_linear(model, prefix):
    if model.ternary:
        scale = float(model.tensors[f"{prefix}.weight_scale"][0])
        forward = model.config["quantization_config"].get("linear_class") == "autobitlinear"  # the scale multiplies
        return model.ternary[prefix], 1 / scale if forward else scale
    w = model.tensors[f"{prefix}.weight"]
    return sign_mean(w) if model.config.get("weight_bits") == 1 and model.config["model_type"] == "bitnet" else absmean(w)


def assert_loads_as_written(model):
    ck = load_checkpoint(model.path)
    c = model.config
    assert (ck.config.vocab_size, ck.config.hidden_size, ck.config.intermediate_size, ck.config.num_layers) == (
        c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"])
    assert (ck.config.num_heads, ck.config.num_kv_heads, ck.config.head_dim) == (
        c["num_attention_heads"], c["num_key_value_heads"], c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"])
    assert ck.config.tie_embeddings == c["tie_word_embeddings"] and ck.config.rope_theta == c["rope_theta"]
    np.testing.assert_array_equal(ck.tensors["embed"], model.tensors["model.embed_tokens.weight"])
    assert ("lm_head" in ck.tensors) != c["tie_word_embeddings"]
    norms = {"input_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm", **SUB_NORMS[c["architectures"][0]]}
    if (c.get("quantization_config") or {}).get("use_rms_norm"):
        norms.update({f"{name}_norm": f"{hf}.rms_norm" for name, hf in LINEARS.items()})
        assert ck.config.linear_norm_eps == c["quantization_config"]["rms_norm_eps"]
    for i in range(c["num_hidden_layers"]):
        assert {k for k in ck.tensors if k.startswith(f"layers.{i}.")} == {f"layers.{i}.{n}" for n in norms}
        for norm, hf in norms.items():
            np.testing.assert_array_equal(ck.tensors[f"layers.{i}.{norm}"], model.tensors[f"model.layers.{i}.{hf}.weight"])
        for name, hf in LINEARS.items():
            codes, scale = expected_linear(model, f"model.layers.{i}.{hf}")
            linear = ck.linears[f"layers.{i}.{name}"]
            assert linear.weights.dtype == np.int8
            np.testing.assert_array_equal(linear.weights, codes)
            assert linear.wscale == pytest.approx(scale, rel=1e-12)
    assert all(t.dtype == np.float32 for t in ck.tensors.values())
    return ck


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("writer", list(ARCHITECTURES))
def test_every_format_loads_to_the_weights_written(tmp_path, writer, dtype):
    ck = assert_loads_as_written(writer(tmp_path, seed=len(dtype), dtype=dtype))
    assert ck.config.architecture == ARCHITECTURES[writer]
    assert all(l.binary == (writer is models.write_bitnet_1bit) for l in ck.linears.values())


def test_binary_weights_are_plus_minus_one_and_ternary_use_zero(tmp_path):
    binary = load_checkpoint(models.write_bitnet_1bit(tmp_path / "b").path).linears["layers.0.q_proj"].weights
    ternary = load_checkpoint(models.write_bitnet_fp(tmp_path / "t").path).linears["layers.0.q_proj"].weights
    assert set(np.unique(binary)) == {-1, 1} and set(np.unique(ternary)) == {-1, 0, 1}


@pytest.mark.parametrize("writer", [models.write_bitnet_packed, models.write_1bitllm, models.write_llama_bitnet])
def test_odd_sizes_sharded_untied(tmp_path, writer):
    untied = {} if writer is models.write_llama_bitnet else dict(tied=False)  # Llama checkpoints are always untied
    model = writer(tmp_path, seed=5, shards=3, **untied, **ODD)
    assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
    assert_loads_as_written(model)


@pytest.mark.parametrize("out", range(1, 14))
def test_packed_layout_round_trips_for_any_out(out):
    codes = np.random.default_rng(out).integers(-1, 2, (out, 7)).astype(np.int8)
    packed = models.pack_output_dim(codes)
    assert packed.shape == (-(-out // 4), 7)
    np.testing.assert_array_equal(unpack_output_packed(packed, out), codes)


def test_packed_layout_matches_transformers_docstring_example():
    # integrations/bitnet.py unpack_weights example: 2 packed rows -> 8 output rows
    packed = np.array([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], np.uint8)
    expected = [[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1], [1, -1]]
    assert unpack_output_packed(packed, 8).tolist() == expected


def test_config_and_tokenizer_fields(tmp_path):
    model = models.write_bitnet_packed(tmp_path, vocab=300, max_position=123, rope_theta=1234.0, head_dim=16)
    ck = load_checkpoint(tmp_path)
    ids = models.special_token_ids(300)
    assert ck.config.bos_token_id == ids["<|begin_of_text|>"]
    assert ck.config.eos_token_ids == (ids["<|end_of_text|>"], ids["<|eot_id|>"])
    assert (ck.config.max_position, ck.config.rope_theta, ck.config.rms_norm_eps, ck.config.head_dim) == (123, 1234.0, 1e-5, 16)
    assert ck.config.name == tmp_path.name and ck.source == tmp_path
    assert ck.tokenizer.tokenizer_json == models.tokenizer_json(300)
    assert ck.tokenizer.config["chat_template"] == models.CHAT_TEMPLATE and ck.tokenizer.config["bos_token"] == "<|begin_of_text|>"
    assert model.config["torch_dtype"] == "bfloat16"


def test_transformers5_rope_parameters_and_no_tokenizer(tmp_path):
    models.write_bitnet_fp(tmp_path, tokenizer=False)
    edit_config(tmp_path, rope_parameters={"rope_theta": 777.0, "rope_type": "default"}, rope_theta=DELETE)
    ck = load_checkpoint(tmp_path)
    assert ck.config.rope_theta == 777.0 and ck.tokenizer is None


# ---- bad input: each error names the file and the tensor or key ----

DELETE = object()


def edit_config(path, **changes):
    """config.json with changes applied; a key whose value is DELETE is removed."""
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not DELETE}))


def rewrite_tensors(model, change):
    """Rewrites the single model.safetensors after change(tensors: name -> (dtype, array))."""
    stored = {n: ("uint8", t) if t.dtype == np.uint8 else ("float32", t) for n, t in model.tensors.items()}
    change(stored)
    models.write_safetensors(model.path, stored)


def expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_missing_tensor(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    expect_error(tmp_path, "model.safetensors", "missing tensor 'model.layers.1.mlp.up_proj.weight'", "U8 [24, 64]")


def test_extra_tensor(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t.update({"model.layers.0.self_attn.rotary_emb.inv_freq": ("float32", np.ones(8, np.float32))}))
    expect_error(tmp_path, "model.safetensors", "unexpected tensor 'model.layers.0.self_attn.rotary_emb.inv_freq'")


def test_lm_head_in_a_tied_model_is_extra(tmp_path):
    model = models.write_bitnet_fp(tmp_path)
    rewrite_tensors(model, lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"]}))
    expect_error(tmp_path, "unexpected tensor 'lm_head.weight' (tie_word_embeddings is true)")


def test_wrong_shape(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t.update({"model.layers.0.self_attn.k_proj.weight": ("uint8", np.zeros((32, 64), np.uint8))}))
    expect_error(tmp_path, "model.safetensors", "'model.layers.0.self_attn.k_proj.weight' has shape [32, 64], expected [8, 64]")


def test_attn_sub_norm_is_as_wide_as_the_attention_output(tmp_path):
    """heads x head_dim (128) != hidden (64): the norm before o_proj has 128 weights, not hidden_size."""
    model = models.write_bitnet_packed(tmp_path, hidden=64, heads=4, head_dim=32)
    assert load_checkpoint(tmp_path).tensors["layers.0.attn_sub_norm"].shape == (128,)
    rewrite_tensors(model, lambda t: t.update({"model.layers.0.self_attn.attn_sub_norm.weight": ("float32", np.ones(64, np.float32))}))
    expect_error(tmp_path, "'model.layers.0.self_attn.attn_sub_norm.weight' has shape [64], expected [128]")


def test_wrong_dtype(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t.update({"model.norm.weight": ("int32", np.ones(64, np.int32))}))
    expect_error(tmp_path, "model.safetensors", "'model.norm.weight' has dtype I32, expected BF16 or F16 or F32")


def test_float_weights_under_a_packed_quantization_config(tmp_path):
    models.write_bitnet_fp(tmp_path)
    edit_config(tmp_path, quantization_config={"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"})
    expect_error(tmp_path, "'model.layers.0.self_attn.q_proj.weight' has shape [64, 64], expected [16, 64]")


def test_invalid_packed_code(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t["model.layers.0.mlp.down_proj.weight"][1].__setitem__(0, 0b11))
    expect_error(tmp_path, "model.safetensors", "'model.layers.0.mlp.down_proj.weight'", "code 3")


def test_nonpositive_weight_scale(tmp_path):
    model = models.write_bitnet_packed(tmp_path)
    rewrite_tensors(model, lambda t: t.update({"model.layers.1.self_attn.o_proj.weight_scale": ("float32", np.zeros(1, np.float32))}))
    expect_error(tmp_path, "'model.layers.1.self_attn.o_proj.weight_scale' is 0.0, expected a positive number")


@pytest.mark.parametrize("quantization_config, message", [
    ({"quant_method": "gptq", "bits": 4}, "quant_method 'gptq' is not supported, expected 'bitnet'"),
    ({"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "qat"}, "autobitlinear/qat is not supported"),
    ({"quant_method": "bitnet", "use_rms_norm": True, "rms_norm_eps": None}, "rms_norm_eps must be a positive number with use_rms_norm"),
    ({"quant_method": "bitnet", "use_rms_norm": True, "rms_norm_eps": -1}, "rms_norm_eps must be a positive number with use_rms_norm"),
    ({"quant_method": "bitnet", "modules_to_not_convert": ["model.layers.0.mlp.up_proj"]}, "modules_to_not_convert"),
    ("bitnet", "quant_method 'bitnet' is not supported"),
])
def test_bad_quantization_config(tmp_path, quantization_config, message):
    models.write_bitnet_packed(tmp_path)
    edit_config(tmp_path, quantization_config=quantization_config)
    expect_error(tmp_path, "config.json", message)


def test_use_rms_norm_without_the_norm_tensors(tmp_path):
    models.write_llama_bitnet(tmp_path)
    edit_config(tmp_path, quantization_config={"quant_method": "bitnet", "modules_to_not_convert": ["lm_head"], "use_rms_norm": True})
    expect_error(tmp_path, "missing tensor 'model.layers.0.self_attn.q_proj.rms_norm.weight'")


def test_llama_without_bitnet_quantization_is_full_precision(tmp_path):
    models.write_llama_bitnet(tmp_path)
    edit_config(tmp_path, quantization_config=DELETE)
    expect_error(tmp_path, "config.json", "LlamaForCausalLM without a bitnet quantization_config is a full-precision model")


def test_1bitllm_rejects_quantization_config(tmp_path):
    models.write_1bitllm(tmp_path)
    edit_config(tmp_path, quantization_config={"quant_method": "bitnet"})
    expect_error(tmp_path, "config.json", "bitlinear/offline is not supported; supported: none")


@pytest.mark.parametrize("changes, message", [
    ({"architectures": ["MistralForCausalLM"]}, "unsupported architecture ['MistralForCausalLM']; supported: BitNetForCausalLM"),
    ({"architectures": None}, "unsupported architecture None"),
    ({"hidden_act": "silu"}, "hidden_act 'silu' is not supported for BitNetForCausalLM, expected 'relu2'"),
    ({"num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    ({"hidden_size": "64"}, "'hidden_size' must be a positive int, got '64'"),
    ({"hidden_size": 66}, "hidden_size 66 is not a multiple of num_attention_heads 4"),
    ({"vocab_size": 0}, "'vocab_size' must be a positive int"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "RoPE scaling"),
    ({"attention_bias": True}, "'attention_bias' true is not supported"),
    ({"weight_bits": 2}, "weight_bits 2 is not supported"),
    ({"weight_bits": 1}, "weight_bits 1 (binary) cannot be combined with a quantization_config"),
    ({"bos_token_id": -1}, "'bos_token_id' must be a token id"),
    ({"bos_token_id": 320}, "'bos_token_id' must be a token id below vocab_size 320, got 320"),
    ({"eos_token_id": [2, 10**6]}, "'eos_token_id' must be a token id below vocab_size 320, got 1000000"),
    ({"num_hidden_layers": 10**6}, "num_hidden_layers is 1000000, but"),
    ({"num_hidden_layers": 1}, "num_hidden_layers is 1, but"),
])
def test_bad_config(tmp_path, changes, message):
    models.write_bitnet_packed(tmp_path)
    edit_config(tmp_path, **changes)
    expect_error(tmp_path, "config.json", message)


def test_missing_config_key(tmp_path):
    models.write_bitnet_packed(tmp_path)
    edit_config(tmp_path, intermediate_size=DELETE)
    expect_error(tmp_path, "config.json", "missing 'intermediate_size'")


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json", "generation_config.json", "model.safetensors.index.json"])
def test_malformed_json(tmp_path, file):
    models.write_bitnet_packed(tmp_path, shards=2)
    (tmp_path / file).write_text('{"vocab_size": 320,')
    expect_error(tmp_path, file)


def test_tokenizer_larger_than_the_model_vocab(tmp_path):
    models.write_bitnet_packed(tmp_path, vocab=300)
    (tmp_path / "tokenizer.json").write_text(models.tokenizer_json(400))
    expect_error(tmp_path, "tokenizer.json", "token id 399 is outside the model's vocabulary (vocab_size 300)")


def test_tokenizer_with_an_id_beyond_the_vocab_but_few_tokens(tmp_path):
    models.write_bitnet_packed(tmp_path, vocab=300)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab[max(vocab, key=vocab.get)] = 5000  # as many tokens as before, one id far out
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    expect_error(tmp_path, "tokenizer.json", "token id 5000 is outside the model's vocabulary")


@pytest.mark.parametrize("damage, message", [("not UTF-8", "cannot be read as UTF-8"), ("dangling link", "which does not exist")])
def test_unreadable_tokenizer_is_named(tmp_path, damage, message):
    models.write_bitnet_packed(tmp_path, vocab=300)
    path = tmp_path / "tokenizer.json"
    if damage == "not UTF-8":
        path.write_bytes(path.read_bytes()[:100] + b"\xff\xfe" + path.read_bytes()[100:])
    else:
        path.unlink()
        path.symlink_to(tmp_path / "gone.json")
    expect_error(tmp_path, "tokenizer.json", message)


def test_truncated_safetensors_names_the_cut_tensor(tmp_path):
    models.write_bitnet_packed(tmp_path)
    file = tmp_path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    expect_error(tmp_path, "model.safetensors: unreadable safetensors file", "truncated: tensor '")


def test_garbage_safetensors(tmp_path):
    models.write_bitnet_packed(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    expect_error(tmp_path, "model.safetensors: unreadable safetensors file")


def test_no_weights_and_no_config(tmp_path):
    expect_error(tmp_path, "no config.json")
    models.write_bitnet_packed(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    expect_error(tmp_path, "no model.safetensors or model.safetensors.index.json")


def test_index_listing_a_missing_shard(tmp_path):
    models.write_bitnet_packed(tmp_path, shards=2)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    expect_error(tmp_path, "model.safetensors.index.json", "lists shard 'model-00002-of-00002.safetensors'")


def test_index_mapping_a_tensor_to_the_wrong_shard(tmp_path):
    models.write_bitnet_packed(tmp_path, shards=2)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors" if index["weight_map"]["model.norm.weight"].startswith("model-00001") else "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    expect_error(tmp_path, "model.safetensors.index.json", "maps tensor 'model.norm.weight'")
