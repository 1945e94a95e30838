"""GGUF files of a checkpoint in the published layouts: llama.cpp's TQ1_0 / TQ2_0 (written with the
gguf package) and bitnet.cpp's I2_S (gguf-py cannot write type 36: a minimal GGUF v3 writer here,
the tensor bytes following bitnet.cpp's quantize_i2_s byte for byte). Names from the architecture's
structure table; `llama`-arch files get the converter's q/k row permutation."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np

from ..architectures import architecture
from ..checkpoint import Checkpoint
from ..loaders.gguf_model import ACTIVATIONS as GGUF_ACTIVATIONS
from .tokenizer import sentencepiece_vocab

I2_S = 36
ALIGNMENT = 32
ACTIVATIONS = {"bitnet": "relu2", "bitnet-llama": "silu", "llama": "silu"}  # our architecture -> hidden_activation


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf LlamaModel.permute: each head's rows (pair, half) -> (half, pair)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def quantize_i2_s(src: np.ndarray) -> bytes:
    """bitnet.cpp src/ggml-bitnet-mad.cpp quantize_i2_s: scale = max|src| (double, stored f32);
    |x| < 1e-6 -> 1, else x * scale > 0 -> 2, else 0; value j of each 128-block at byte j % 32,
    shifted left by 6 - 2 * (j / 32); the f32 scale after the n/4 bytes; n/4 + 32 bytes in all."""
    x = src.astype(np.float32).reshape(-1).astype(np.float64)
    scale = np.abs(x).max(initial=0.0)
    q8 = np.where(np.abs(x) < 1e-6, 1, np.where(x * scale > 0, 2, 0)).astype(np.uint8)
    blocks = q8.reshape(-1, 4, 32)  # [block, j // 32, j % 32]
    packed = np.bitwise_or.reduce(blocks << np.array([6, 4, 2, 0], np.uint8)[None, :, None], axis=1).astype(np.uint8)
    return packed.tobytes() + struct.pack("<f", scale) + bytes(28)


class RawGGUF:
    """The subset of gguf.GGUFWriter's interface the writers below use, for tensors of any type id."""

    def __init__(self, path: Path, arch: str):
        self.path, self.kv, self.tensors = path, [], []
        self.add_string("general.architecture", arch)

    def _add(self, key, kind, payload):
        self.kv.append(_string(key) + struct.pack("<I", kind) + payload)

    def add_string(self, key, value):
        self._add(key, 8, _string(value))

    def add_uint32(self, key, value):
        self._add(key, 4, struct.pack("<I", value))

    def add_float32(self, key, value):
        self._add(key, 6, struct.pack("<f", value))

    def add_bool(self, key, value):
        self._add(key, 7, struct.pack("<?", value))

    def add_array(self, key, values):
        if all(isinstance(v, str) for v in values):
            self._add(key, 9, struct.pack("<IQ", 8, len(values)) + b"".join(_string(v) for v in values))
        elif any(isinstance(v, float) for v in values):
            self._add(key, 9, struct.pack("<IQ", 6, len(values)) + np.asarray(values, "<f4").tobytes())
        else:
            self._add(key, 9, struct.pack("<IQ", 5, len(values)) + np.asarray(values, "<i4").tobytes())

    def add_raw_tensor(self, name: str, shape: tuple[int, ...], type_id: int, data: bytes):
        self.tensors.append((name, shape, type_id, data))

    def write(self):
        infos, offset = [], 0
        for name, shape, type_id, data in self.tensors:
            infos.append(_string(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *reversed(shape))
                         + struct.pack("<IQ", type_id, offset))
            offset += -(-len(data) // ALIGNMENT) * ALIGNMENT
        head = b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)) + b"".join(self.kv) + b"".join(infos)
        with open(self.path, "wb") as f:
            f.write(head + bytes(-len(head) % ALIGNMENT))
            for _, _, _, data in self.tensors:
                f.write(data + bytes(-len(data) % ALIGNMENT))


def _string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(checkpoint: Checkpoint, path: str | Path, weight_type: str = "tq2_0", arch: str = "bitnet",
               tokenizer: str = "gpt2") -> Path:
    """checkpoint's weights and tokenizer as a GGUF of `arch` with linears in weight_type
    ("tq2_0", "tq1_0": codes with d = 1 and the forward scale in <name>.scale; "i2_s").
    tokenizer: "gpt2" (the checkpoint's byte-level BPE) or "llama" (a SentencePiece vocabulary of
    the model's size, as convert_hf_to_gguf writes a Llama 2 tokenizer.model)."""
    c, path = checkpoint.config, Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = weight_type == "i2_s"
    w = RawGGUF(path, arch) if raw else gguf.GGUFWriter(path, arch)
    _metadata(w, checkpoint, arch, tokenizer)
    ours = architecture(c.architecture)

    def floats(name, values, dtype):
        if raw:
            w.add_raw_tensor(name, values.shape, {np.float16: 1, np.float32: 0}[dtype], values.astype(dtype).tobytes())
        else:
            w.add_tensor(name, values.astype(dtype))

    for t in ours.globals(c):
        floats(f"{t.gguf}.weight", checkpoint.tensors[t.role], np.float16)
    for i in range(c.num_layers):
        for t in ours.norms():
            floats(f"blk.{i}.{t.gguf}.weight", checkpoint.tensors[f"layers.{i}.{t.role}"], np.float32)
        for t in ours.linears():
            linear, name = checkpoint.linears[f"layers.{i}.{t.role}"], f"blk.{i}.{t.gguf}"
            codes = linear.weights
            if arch == "llama" and t.role in ("q_proj", "k_proj"):
                codes = permute(codes, c.num_heads if t.role == "q_proj" else c.num_kv_heads)
            forward = np.float32(1.0 / linear.wscale)
            if raw:
                w.add_raw_tensor(f"{name}.weight", codes.shape, I2_S, quantize_i2_s(codes.astype(np.float32) * forward))
                continue
            qtype = {"tq2_0": gguf.GGMLQuantizationType.TQ2_0, "tq1_0": gguf.GGMLQuantizationType.TQ1_0}[weight_type]
            w.add_tensor(f"{name}.weight", gguf.quants.quantize(codes.astype(np.float32), qtype), raw_dtype=qtype)
            w.add_tensor(f"{name}.scale", np.array([forward], np.float32))
    if raw:
        w.write()
    else:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return path


def _metadata(w, checkpoint: Checkpoint, arch: str, tokenizer: str) -> None:
    c = checkpoint.config
    w.add_string("general.name", c.name or "tiny")
    for key, value in (("context_length", c.max_position), ("embedding_length", c.hidden_size), ("block_count", c.num_layers),
                       ("feed_forward_length", c.intermediate_size), ("attention.head_count", c.num_heads),
                       ("attention.head_count_kv", c.num_kv_heads), ("vocab_size", c.vocab_size)):
        w.add_uint32(f"{arch}.{key}", value)
    if c.num_heads * c.head_dim != c.hidden_size:
        w.add_uint32(f"{arch}.attention.key_length", c.head_dim)
    w.add_float32(f"{arch}.rope.freq_base", c.rope_theta)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
    if ACTIVATIONS[c.architecture] != GGUF_ACTIVATIONS[arch]:  # the arch's own graph would run the other one
        w.add_string(f"{arch}.hidden_activation", ACTIVATIONS[c.architecture])
    if tokenizer == "llama":
        _add_all(w, sentencepiece_metadata(c.vocab_size))
    elif checkpoint.tokenizer is not None:
        _add_all(w, tokenizer_metadata(checkpoint.tokenizer.tokenizer_json, c.vocab_size, c.bos_token_id, c.eos_token_ids,
                                       checkpoint.tokenizer.config.get("chat_template")))


def tokenizer_metadata(tokenizer_json: str, vocab_size: int, bos_token_id: int | None = None, eos_token_ids=(),
                       chat_template: str | None = None, pre: str = "gpt-2") -> dict:
    """A byte-level BPE tokenizer.json as llama.cpp's tokenizer.ggml.* metadata (what convert_hf_to_gguf writes)."""
    spec = json.loads(tokenizer_json)
    tokens, types = [f"[PAD{i}]" for i in range(vocab_size)], [5] * vocab_size  # 5: unused
    for text, i in spec["model"]["vocab"].items():
        tokens[i], types[i] = text, 1
    for added in spec["added_tokens"]:
        tokens[added["id"]], types[added["id"]] = added["content"], 3 if added["special"] else 4
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
                "tokenizer.ggml.token_type": types,
                "tokenizer.ggml.merges": [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]}
    if bos_token_id is not None:
        metadata["tokenizer.ggml.bos_token_id"] = bos_token_id
        metadata["tokenizer.ggml.add_bos_token"] = spec.get("post_processor") is not None
    if eos_token_ids:
        metadata["tokenizer.ggml.eos_token_id"] = eos_token_ids[0]
        metadata["tokenizer.ggml.eot_token_id"] = eos_token_ids[-1]
    if chat_template is not None:
        metadata["tokenizer.chat_template"] = chat_template
    return metadata


def sentencepiece_metadata(vocab_size: int, add_bos: bool | None = True, add_space_prefix: bool | None = None) -> dict:
    """A SentencePiece BPE vocabulary as llama.cpp's metadata (convert_hf_to_gguf _set_vocab_sentencepiece);
    None leaves a flag out, as older files do."""
    tokens, scores, types = sentencepiece_vocab(vocab_size)
    metadata = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default", "tokenizer.ggml.tokens": list(tokens),
                "tokenizer.ggml.scores": list(scores), "tokenizer.ggml.token_type": list(types),
                "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0}
    for key, value in (("add_bos_token", add_bos), ("add_space_prefix", add_space_prefix)):
        if value is not None:
            metadata[f"tokenizer.ggml.{key}"] = value
    return metadata


def _add_all(w, metadata: dict) -> None:
    for key, value in metadata.items():
        add = {str: w.add_string, bool: w.add_bool, int: w.add_uint32, list: w.add_array}[type(value)]
        add(key, value)
