"""GGUF import: TQ1_0 / TQ2_0 files written with the gguf package and I2_S files written like
bitnet.cpp's quantize_i2_s build to the same logits as their safetensors source; our own export
round-trips; the tokenizer comes from the metadata; damaged files are named with the tensor."""
import dataclasses
import gzip
import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler import writers
from bitnet_wasm.compiler.gguf_export import export_gguf
from bitnet_wasm.compiler.loaders import CheckpointError, load_checkpoint
from bitnet_wasm.compiler.loaders.gguf_file import GGUFFile, i2_s_codes
from bitnet_wasm.compiler.loaders.gguf_model import unpermute
from bitnet_wasm.compiler.loaders.gguf_tokenizer import tokenizer_files
from bitnet_wasm.compiler.writers.gguf import permute, quantize_i2_s, sentencepiece_metadata, tokenizer_metadata, write_gguf

SHAPE = dict(hidden=256, heads=4, kv_heads=2, intermediate=512, layers=2)  # TQ blocks of 256 divide every row
SOURCES = {  # name -> (HF writer, GGUF arch)
    "2b4t": (lambda path: writers.write_bitnet_packed(path, seed=3, **SHAPE), "bitnet-25"),
    "1bitllm": (lambda path: writers.write_1bitllm(path, seed=3, **SHAPE), "bitnet"),
    "falcon3": (lambda path: writers.write_llama_bitnet(path, seed=3, head_dim=128, **SHAPE), "llama"),
}
LLAMA3_JSON_GZ = Path(__file__).parents[1] / "data" / "llama3-tokenizer.json.gz"
PROMPT = np.random.default_rng(0).integers(0, 300, 24)


@pytest.fixture(scope="module", autouse=True)
def native_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        yield


def logits(model, site):
    bitnet_wasm.build(model, site, layout="mad", wasm=False, progress=False)
    return bitnet_wasm.load(site).logits(PROMPT)


@pytest.mark.parametrize("weight_type", ["tq2_0", "tq1_0", "i2_s"])
@pytest.mark.parametrize("source", SOURCES)
def test_gguf_builds_to_the_logits_of_its_safetensors_source(tmp_path, source, weight_type):
    writer, arch = SOURCES[source]
    written = writer(tmp_path / "hf")
    gguf_file = write_gguf(load_checkpoint(written.path), tmp_path / f"model-{weight_type}.gguf", weight_type, arch)
    imported = load_checkpoint(gguf_file)
    assert imported.config.architecture == load_checkpoint(written.path).config.architecture
    theirs, ours = logits(written.path, tmp_path / "from-hf"), logits(gguf_file, tmp_path / "from-gguf")
    # the same codes; a scale may come back one f32 ulp off through 1 / (1 / s)
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    assert (ours.argmax(1) == theirs.argmax(1)).all()


@pytest.mark.parametrize("arch", ["bitnet-b1.58", "bitnet-25"])
def test_bitnet_cpp_archs_mean_relu2_without_saying_so(tmp_path, arch):
    """bitnet.cpp runs both with build_bitnet_158 (LLM_FFN_RELU_SQR, sub-norms); its files carry no activation key."""
    written = writers.write_bitnet_packed(tmp_path / "hf", seed=6, **SHAPE)
    gguf_file = write_gguf(load_checkpoint(written.path), tmp_path / "ggml-model-i2_s.gguf", "i2_s", arch)
    assert not [key for key in GGUFFile(gguf_file).metadata if key.endswith("hidden_activation")]
    assert load_checkpoint(gguf_file).config.architecture == "bitnet"
    theirs, ours = logits(written.path, tmp_path / "from-hf"), logits(gguf_file, tmp_path / "from-gguf")
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_export_import_round_trip_gives_identical_logits(tmp_path):
    written = writers.write_bitnet_packed(tmp_path / "hf", seed=5, **SHAPE)
    before = logits(written.path, tmp_path / "site")
    exported = export_gguf(tmp_path / "site" / "model", tmp_path / "export.gguf")
    after = logits(exported, tmp_path / "again")
    np.testing.assert_array_equal(after.view(np.uint32), before.view(np.uint32))


def test_tokenizer_and_chat_template_come_from_the_metadata(tmp_path):
    written = writers.write_bitnet_packed(tmp_path / "hf", seed=1, **SHAPE)
    imported = load_checkpoint(write_gguf(load_checkpoint(written.path), tmp_path / "m.gguf", "tq2_0", "bitnet-25"))
    original = Tokenizer.from_file(str(written.path / "tokenizer.json"))
    converted = Tokenizer.from_str(imported.tokenizer.tokenizer_json)
    for text in (writers.TRAINING_TEXT, "<|start_header_id|>user<|end_header_id|> héllo 42"):
        assert converted.encode(text).ids == original.encode(text).ids
        assert converted.decode(original.encode(text).ids) == original.decode(original.encode(text).ids)
    assert imported.tokenizer.config["chat_template"] == writers.CHAT_TEMPLATE
    assert imported.tokenizer.config["eos_token"] == "<|eot_id|>"
    assert imported.config.eos_token_ids == load_checkpoint(written.path).config.eos_token_ids


def test_cli_builds_a_gguf(tmp_path, capsys):
    written = writers.write_bitnet_packed(tmp_path / "hf", seed=2, **SHAPE)
    gguf_file = write_gguf(load_checkpoint(written.path), tmp_path / "ggml-model-i2_s.gguf", "i2_s", "bitnet-25")
    assert cli(["build", str(gguf_file), "--out", str(tmp_path / "site"), "--layout", "mad", "--no-progress"]) == 0
    manifest = json.loads((tmp_path / "site/model/manifest.json").read_text())
    assert manifest["model"]["architecture"] == "bitnet" and manifest["build"]["source"] == str(gguf_file)


def test_quantize_i2_s_follows_bitnet_cpp_byte_for_byte():
    """A line-by-line transcription of the C loop, element by element, as the independent check."""
    rng = np.random.default_rng(0)
    src = (rng.integers(-1, 2, 256) * np.float32(0.0371)).astype(np.float32)
    i2_scale = max(abs(float(x)) for x in src)
    q8 = [1 if abs(float(x)) < 1e-6 else (2 if float(x) * i2_scale > 0 else 0) for x in src]
    expected = bytearray(256 // 4)
    for i in range(256 // 128):
        for j in range(128):
            expected[i * 32 + j % 32] |= (q8[i * 128 + j] << (6 - 2 * (j // 32))) & 0xFF
    expected += struct.pack("<f", i2_scale) + bytes(28)
    assert quantize_i2_s(src) == bytes(expected)
    codes, scale = i2_s_codes(np.frombuffer(bytes(expected), np.uint8), (2, 128))
    np.testing.assert_array_equal(codes.reshape(-1), np.sign(src).astype(np.int8))
    assert scale == np.float32(0.0371)


def test_llama_permutation_is_undone():
    w = np.arange(2 * 8 * 3).reshape(16, 3)  # 2 heads of head_dim 8
    permuted = permute(w, 2)
    assert permuted[:, 0].tolist() == [0, 12, 3, 15, 6, 18, 9, 21, 24, 36, 27, 39, 30, 42, 33, 45]  # halves interleaved per head
    np.testing.assert_array_equal(unpermute(permuted, 2), w)


# ---- damaged files: each error names the file and the tensor ----

@pytest.fixture
def small_gguf(tmp_path):
    written = writers.write_bitnet_packed(tmp_path / "hf", seed=4, **SHAPE)
    return write_gguf(load_checkpoint(written.path), tmp_path / "small.gguf", "tq2_0", "bitnet-25")


def tensor_info_at(data: bytes, name: str) -> int:
    """Byte offset of the n_dims field of `name`'s tensor info."""
    raw = name.encode()
    return data.index(struct.pack("<Q", len(raw)) + raw) + 8 + len(raw)


def expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    for fragment in (str(path), *fragments):
        assert fragment in str(err.value), str(err.value)


def test_truncated_gguf_names_the_cut_tensor(small_gguf):
    last = max(GGUFFile(small_gguf).tensors.values(), key=lambda t: t.offset)
    small_gguf.write_bytes(small_gguf.read_bytes()[:last.offset + last.nbytes - 1])
    expect_error(small_gguf, f"tensor '{last.name}'", "runs past the end of the file")


def test_truncated_header(small_gguf):
    small_gguf.write_bytes(small_gguf.read_bytes()[:5000])
    expect_error(small_gguf, "truncated")


def test_wrong_type_id_names_the_tensor(small_gguf):
    data = bytearray(small_gguf.read_bytes())
    at = tensor_info_at(data, "blk.1.ffn_up.weight")
    n_dims = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<I", data, at + 4 + 8 * n_dims, 99)
    small_gguf.write_bytes(bytes(data))
    expect_error(small_gguf, "tensor 'blk.1.ffn_up.weight' has type id 99")


def test_tensor_offset_past_the_end(small_gguf):
    data = bytearray(small_gguf.read_bytes())
    at = tensor_info_at(data, "blk.0.attn_q.weight")
    n_dims = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<Q", data, at + 4 + 8 * n_dims + 4, len(data))
    small_gguf.write_bytes(bytes(data))
    expect_error(small_gguf, "tensor 'blk.0.attn_q.weight' (TQ2_0", "runs past the end of the file")


@pytest.mark.parametrize("key", ["bos_token_id", "eos_token_ids"])
def test_token_id_beyond_the_vocabulary(tmp_path, key):
    checkpoint = load_checkpoint(writers.write_bitnet_packed(tmp_path / "hf", seed=4, **SHAPE).path)
    beyond = checkpoint.config.vocab_size
    config = dataclasses.replace(checkpoint.config, **{key: beyond if key == "bos_token_id" else (beyond,)})
    path = write_gguf(dataclasses.replace(checkpoint, config=config), tmp_path / "ids.gguf", "tq2_0", "bitnet-25")
    expect_error(path, f"must be a token id below the vocabulary size {beyond}, got {beyond}")


def test_unsupported_arch_and_garbage(tmp_path):
    w = gguf.GGUFWriter(tmp_path / "other.gguf", "qwen2")
    w.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(tmp_path / "other.gguf", "GGUF architecture 'qwen2' is not supported; supported: bitnet, bitnet-b1.58, bitnet-25, llama")
    (tmp_path / "garbage.gguf").write_bytes(b"not a gguf at all")
    expect_error(tmp_path / "garbage.gguf", "not a GGUF file")


@pytest.mark.parametrize("pre", ["llama-bpe", "falcon3"])  # Falcon3's GGUFs name llama.cpp's Llama-3 pre-tokenizer "falcon3"
def test_llama3_tokenizer_survives_gguf_metadata(pre):
    """The real Llama-3 tokenizer (BitNet 2B-4T's) as llama.cpp's converter stores it, read back."""
    text = gzip.decompress(LLAMA3_JSON_GZ.read_bytes()).decode()
    original = Tokenizer.from_str(text)
    metadata = tokenizer_metadata(text, original.get_vocab_size(), 128000, (128001, 128009), pre=pre)
    converted = Tokenizer.from_str(tokenizer_files(metadata, original.get_vocab_size()).tokenizer_json)
    for sample in (writers.TRAINING_TEXT, "  spaces\n\n tabs\t 12345 ünïcode 日本語 <|eot_id|> don't", "a" * 500):
        assert converted.encode(sample, add_special_tokens=False).ids == original.encode(sample, add_special_tokens=False).ids
    assert converted.encode("hi").ids[0] == 128000  # tokenizer.ggml.add_bos_token


# ---- SentencePiece ("llama") vocabularies: the tokenizer transformers' GGUF loader builds ----

SPM_TEXTS = ["Hello world", "", " ", "  two leading spaces", "a\n\nb  c\t d\r\n", "The lighthouse keeper's notebook, 1,234 boats.",
             "emoji 👋🌍 👩‍👩‍👧 é ü 日本語 한국어 𝔘", "▁ already ▁▁ metaspace", "<s>inside</s> <unk> <0x41>", "\x00\x7f bytes",
             writers.TRAINING_TEXT[:600]]


def metadata_only_gguf(path, metadata: dict):
    """A GGUF of arch llama holding only `metadata` (what a tokenizer reader needs)."""
    w = gguf.GGUFWriter(path, "llama")
    for key, value in metadata.items():
        {str: w.add_string, bool: w.add_bool, int: w.add_uint32, list: w.add_array}[type(value)](key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return path


@pytest.mark.parametrize("flags", [dict(), dict(add_bos=None), dict(add_bos=False)])
def test_sentencepiece_tokenizer_is_the_one_transformers_builds(tmp_path, flags):
    transformers = pytest.importorskip("transformers")
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
    path = metadata_only_gguf(tmp_path / "spm.gguf", sentencepiece_metadata(400, **flags))
    metadata = GGUFFile(path).metadata
    ours = tokenizer_files(metadata, 400)
    renamed = {name: metadata[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{key}" in metadata}
    converted = json.loads(convert_gguf_tokenizer("llama", renamed)[0].to_str())
    spec = json.loads(ours.tokenizer_json)
    assert {k: v for k, v in spec.items() if k != "post_processor"} == {k: v for k, v in converted.items() if k != "post_processor"}
    theirs, tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name), Tokenizer.from_str(ours.tokenizer_json)
    for text in SPM_TEXTS:  # the BOS too: transformers' loader adds it unless the file says add_bos_token false
        assert tokenizer.encode(text).ids == theirs.encode(text), text
        assert tokenizer.decode(tokenizer.encode(text).ids) == theirs.decode(theirs.encode(text), skip_special_tokens=True)
    assert (tokenizer.encode("x").ids[0] == 1) == (flags.get("add_bos", True) is not False)
    assert (ours.config["bos_token"], ours.config["eos_token"]) == ("<s>", "</s>")


def test_sentencepiece_without_a_space_prefix():
    """tokenizer.ggml.add_space_prefix false (transformers' converter ignores it; llama.cpp does not prepend ▁)."""
    spec = tokenizer_files(sentencepiece_metadata(400, add_space_prefix=False), 400).tokenizer_json
    tokenizer = Tokenizer.from_str(spec)
    assert tokenizer.encode("the boats", add_special_tokens=False).tokens[0] != "▁the"
    assert tokenizer.encode(" the boats", add_special_tokens=False).tokens[0] == "▁the"
    assert tokenizer.decode(tokenizer.encode(" the boats").ids) == " the boats"


def test_sentencepiece_needs_scores_or_merges():
    metadata = sentencepiece_metadata(400)
    del metadata["tokenizer.ggml.scores"]
    with pytest.raises(ValueError, match="needs tokenizer.ggml.scores"):
        tokenizer_files(metadata, 400)


def test_llama_gguf_with_a_sentencepiece_vocab_builds_with_its_tokenizer(tmp_path):
    """TQ2_0 Falcon3-layout weights with a Llama-2-style vocabulary: the site's tokenizer.json
    encodes as transformers' own GGUF tokenizer loader does."""
    transformers = pytest.importorskip("transformers")
    written = writers.write_llama_bitnet(tmp_path / "hf", seed=3, head_dim=128, vocab=512, **SHAPE)
    gguf_file = write_gguf(load_checkpoint(written.path), tmp_path / "model-tq2_0.gguf", "tq2_0", "llama", tokenizer="llama")
    bitnet_wasm.build(gguf_file, tmp_path / "site", layout="mad", wasm=False, progress=False)
    manifest = json.loads((tmp_path / "site/model/manifest.json").read_text())
    site = Tokenizer.from_file(str(tmp_path / "site/model" / manifest["tokenizer"]["file"]))
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_file.name)
    for text in SPM_TEXTS:
        assert site.encode(text).ids == theirs.encode(text), text
    assert manifest["model"]["bos_token_id"] == 1 and manifest["model"]["eos_token_ids"] == [2]
