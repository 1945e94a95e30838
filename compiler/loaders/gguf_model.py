"""GGUF files (llama.cpp, bitnet.cpp) -> Checkpoint.

Archs: `bitnet` (llama.cpp and bitnet.cpp build_bitnet: SiLU, with sub-norms), `bitnet-b1.58` and
`bitnet-25` (bitnet.cpp build_bitnet_158: ReLU^2, with sub-norms; microsoft/bitnet-b1.58-2B-4T-gguf
is bitnet-b1.58 since its April 2025 re-upload, bitnet-25 before), `llama` (Falcon3-1.58bit
and other Llama-shaped ternary models; the converter permuted the q/k rows for its RoPE, which we
undo). Tensor names come from the architecture's structure table; which architecture a file is
follows from its sub-norm tensors and its activation. Linear weights in TQ1_0 / TQ2_0 / I2_S (or
any float type) must be ternary: codes times one magnitude per tensor, times an optional
`<name>.scale` [1] (which llama.cpp multiplies into the output)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..architectures import architecture
from ..checkpoint import BitLinear, Checkpoint, ModelConfig, TokenizerFiles
from .errors import CheckpointError
from .gguf_file import I2_S, GGUFFile, i2_s_codes
from .gguf_tokenizer import tokenizer_files

# arch -> the FFN activation of the graph llama.cpp / bitnet.cpp (Eddie-Wang1120/llama.cpp src/llama.cpp) runs for it
ACTIVATIONS = {"bitnet": "silu", "bitnet-b1.58": "relu2", "bitnet-25": "relu2", "llama": "silu"}
PERMUTED_QK = {"llama"}  # archs whose converter interleaved the q/k rows (convert_hf_to_gguf LlamaModel.permute)
GRAPHS = {  # (has sub-norms, activation) -> our architecture
    (True, "relu2"): "bitnet",
    (True, "silu"): "bitnet-llama",
    (False, "silu"): "llama",
}


class GGUFWarning(UserWarning):
    pass


def load_gguf(path: Path) -> Checkpoint:
    f = GGUFFile(path)
    arch = f.metadata.get("general.architecture")
    if arch not in ACTIVATIONS:
        raise CheckpointError(f"{path}: GGUF architecture {arch!r} is not supported; supported: {', '.join(ACTIVATIONS)} "
                              "(BitNet b1.58 models in TQ1_0, TQ2_0 or I2_S)")
    config = _model_config(f, arch)
    ours = architecture(config.architecture)
    tensors, linears = {}, {}
    expected = set()
    for t in ours.globals(config):
        expected.add(f"{t.gguf}.weight")
        tensors[t.role] = _float_tensor(f, f"{t.gguf}.weight", t.dims(config))
    for i in range(config.num_layers):
        for t in ours.norms():
            expected.add(f"blk.{i}.{t.gguf}.weight")
            tensors[f"layers.{i}.{t.role}"] = _float_tensor(f, f"blk.{i}.{t.gguf}.weight", t.dims(config))
        for t in ours.linears():
            name = f"blk.{i}.{t.gguf}"
            expected |= {f"{name}.weight", f"{name}.scale"}
            linear = _linear(f, name, t.dims(config))
            if arch in PERMUTED_QK and t.role in ("q_proj", "k_proj"):
                heads = config.num_heads if t.role == "q_proj" else config.num_kv_heads
                linear = BitLinear(unpermute(linear.weights, heads), linear.wscale, linear.binary)
            linears[f"layers.{i}.{t.role}"] = linear
    extra = sorted(set(f.tensors) - expected - {"rope_freqs.weight"})
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor '{extra[0]}' for a {config.architecture} model"
                              + (f" and {len(extra) - 1} more" if len(extra) > 1 else ""))
    return Checkpoint(config=config, tensors=tensors, linears=linears, tokenizer=_tokenizer(f, config), source=path)


def _key(f: GGUFFile, arch: str, key: str, default=None, kind=int):
    value = f.metadata.get(f"{arch}.{key}", default)
    if value is None:
        raise CheckpointError(f"{f.path}: missing metadata '{arch}.{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CheckpointError(f"{f.path}: metadata '{arch}.{key}' must be a positive number, got {value!r}")
    return float(str(np.float32(value))) if isinstance(value, float) else kind(value)  # GGUF keeps f32: its shortest decimal


def _token_id(f: GGUFFile, key: str, vocab_size: int) -> int | None:
    v = f.metadata.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab_size):
        raise CheckpointError(f"{f.path}: metadata '{key}' must be a token id below the vocabulary size {vocab_size}, got {v!r}")
    return v


def _model_config(f: GGUFFile, arch: str) -> ModelConfig:
    if "token_embd.weight" not in f.tensors:
        raise CheckpointError(f"{f.path}: missing tensor 'token_embd.weight'")
    vocab, hidden = f.tensors["token_embd.weight"].shape
    heads = _key(f, arch, "attention.head_count")
    activation = f.metadata.get(f"{arch}.hidden_activation", ACTIVATIONS[arch])
    sub_norms = "blk.0.attn_sub_norm.weight" in f.tensors
    graph = GRAPHS.get((sub_norms, activation))
    if graph is None:
        supported = ", ".join(f"{act} {'with' if subs else 'without'} sub-norms" for subs, act in GRAPHS)
        raise CheckpointError(f"{f.path}: a {arch} model {'with' if sub_norms else 'without'} sub-norms and activation "
                              f"{activation!r} is not supported; supported: {supported}")
    eos = [_token_id(f, k, vocab) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")]
    return ModelConfig(
        architecture=graph, vocab_size=vocab, hidden_size=hidden,
        intermediate_size=_key(f, arch, "feed_forward_length"), num_layers=_key(f, arch, "block_count"),
        num_heads=heads, num_kv_heads=_key(f, arch, "attention.head_count_kv", heads),
        head_dim=_key(f, arch, "attention.key_length", hidden // heads), max_position=_key(f, arch, "context_length"),
        rope_theta=_key(f, arch, "rope.freq_base", 10000.0, float),
        rms_norm_eps=_key(f, arch, "attention.layer_norm_rms_epsilon", 1e-6, float),
        tie_embeddings="output.weight" not in f.tensors,
        bos_token_id=_token_id(f, "tokenizer.ggml.bos_token_id", vocab),
        eos_token_ids=tuple(dict.fromkeys(i for i in eos if i is not None)),
        name=str(f.metadata.get("general.name") or f.path.stem),
    )


def _check_shape(f: GGUFFile, name: str, shape: tuple[int, ...]) -> None:
    if name not in f.tensors:
        raise CheckpointError(f"{f.path}: missing tensor '{name}' (expected shape {list(shape)})")
    got = f.tensors[name].shape
    if got != shape:
        raise CheckpointError(f"{f.path}: tensor '{name}' has shape {list(got)}, expected {list(shape)}")


def _float_tensor(f: GGUFFile, name: str, shape: tuple[int, ...]) -> np.ndarray:
    _check_shape(f, name, shape)
    return _decode(f, name, f.floats)


def _decode(f: GGUFFile, name: str, read):
    try:
        return read(name)
    except (ValueError, NotImplementedError) as err:
        raise CheckpointError(f"{f.path}: tensor '{name}' ({f.tensors[name].type_name}): {err}") from None


def _linear(f: GGUFFile, name: str, shape: tuple[int, int]) -> BitLinear:
    """codes and the inverse scale of y = (codes @ x) * magnitude * <name>.scale."""
    weight = f"{name}.weight"
    _check_shape(f, weight, shape)
    if f.tensors[weight].type == I2_S:
        codes, magnitude = _decode(f, weight, lambda n: i2_s_codes(f.raw(n), shape))
    else:
        codes, magnitude = _decode(f, weight, lambda n: ternary(f.floats(n)))
    scale = 1.0
    if f"{name}.scale" in f.tensors:
        scale = float(_float_tensor(f, f"{name}.scale", (1,))[0])
    forward = magnitude * scale
    if not (np.isfinite(forward) and forward > 0):
        raise CheckpointError(f"{f.path}: tensor '{weight}' has scale {forward}, expected a positive number")
    return BitLinear(codes, wscale=1.0 / forward)


def ternary(w: np.ndarray) -> tuple[np.ndarray, float]:
    """A dequantized ternary tensor -> (codes, its one magnitude); all-zero tensors get magnitude 1."""
    magnitudes = np.unique(np.abs(w[w != 0]))
    if len(magnitudes) > 1:
        raise ValueError(f"not ternary: {len(magnitudes)} distinct magnitudes (e.g. {magnitudes[0]:g}, {magnitudes[-1]:g}); "
                         "expected codes times one scale per tensor")
    magnitude = float(magnitudes[0]) if len(magnitudes) else 1.0
    return np.sign(w).astype(np.int8), magnitude


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's LlamaModel.permute: rows (head, half, pair) back to (head, pair, half)."""
    out, in_ = w.shape
    return w.reshape(heads, out // heads // 2, 2, in_).swapaxes(1, 2).reshape(out, in_)


def _tokenizer(f: GGUFFile, config: ModelConfig) -> TokenizerFiles | None:
    try:
        return tokenizer_files(f.metadata, config.vocab_size)
    except ValueError as err:
        warnings.warn(f"{f.path}: building without a tokenizer: {err}", GGUFWarning, stacklevel=3)
        return None

