"""Hugging Face BitNet checkpoints (config.json + safetensors) -> Checkpoint.

Every family is one row of data (a Family below; FORMATS in __init__.py maps config.json's
architecture to it): transformers' BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T, packed or full
precision, and our 1-bit export), 1bitLLM's BitnetForCausalLM (bitnet_b1_58-large/3B), and
LlamaForCausalLM with a bitnet quantization_config (tiiuae Falcon3-*-1.58bit, Falcon-E,
HF1BitLLM Llama3-8B-1.58). Tensor names and shapes come from the architecture's structure table."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..architectures import LINEAR_NORMS, architecture
from ..checkpoint import BitLinear, Checkpoint, ModelConfig
from .encodings import ABSMEAN, FLOAT_DTYPES, PACKED, PACKED_FORWARD, SIGN_MEAN, Encoding
from .errors import CheckpointError
from .safetensors_files import TensorFiles
from .tokenizer import read_json, read_tokenizer

REQUIRED_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


@dataclass(frozen=True)
class Family:
    architecture: str                          # ModelConfig.architecture: its tensors and their names
    hidden_act: str                            # the activation its published modeling code runs
    defaults: dict                             # its config class's defaults for keys config.json may omit
    weight_bits: dict                          # config "weight_bits" -> encoding of full-precision weights (none: needs a quantization_config)
    quantization_modes: dict                   # quantization_config (linear_class, quantization_mode) -> encoding


# transformers' BitNetQuantConfig, defaults bitlinear/offline; the published 2B-4T says autobitlinear/offline
QUANTIZATION_MODES = {("bitlinear", "offline"): PACKED, ("autobitlinear", "offline"): PACKED_FORWARD, ("autobitlinear", "online"): ABSMEAN}
BITNET = Family(
    "bitnet", "relu2",
    {"num_key_value_heads": 5, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
     "tie_word_embeddings": False, "bos_token_id": 128000, "eos_token_id": 128001},
    {None: ABSMEAN, 1: SIGN_MEAN},  # weight_bits 1: our export of original 1-bit BitNet
    QUANTIZATION_MODES,
)
ONEBITLLM = Family(
    "bitnet-llama", "silu",
    {"num_key_value_heads": None, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
     "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2},
    {None: ABSMEAN, 1: ABSMEAN},  # its weight_quant ternarizes whatever weight_bits says (1 in the released configs)
    {},
)


LLAMA = Family(
    "llama", "silu",
    {"num_key_value_heads": None, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
     "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2},
    {},  # a Llama without a bitnet quantization_config is a full-precision model, not ours
    QUANTIZATION_MODES,
)


@dataclass(frozen=True)
class Expected:
    shape: tuple[int, ...]
    dtypes: tuple[str, ...]


def load(model_dir: Path, raw: dict, family: Family) -> Checkpoint:
    config_file = model_dir / "config.json"
    config = model_config(model_dir, raw, family)
    encoding = weight_encoding(config_file, raw, family)
    files = TensorFiles(model_dir)
    check_layer_count(files, config, config_file)
    floats, linears = float_tensor_names(config), linear_names(config)
    expected = {hf: Expected(shape, FLOAT_DTYPES) for hf, shape in floats.values()}
    for prefix, (out, in_) in linears.values():
        expected[f"{prefix}.weight"] = Expected(encoding.stored_shape(out, in_), encoding.weight_dtypes)
        if encoding.has_weight_scale:
            expected[f"{prefix}.weight_scale"] = Expected((1,), FLOAT_DTYPES)
    check_tensors(files, expected, config)
    return Checkpoint(
        config=config,
        tensors={name: files.read(hf).astype(np.float32) for name, (hf, _) in floats.items()},
        linears={name: bit_linear(files, prefix, out, encoding) for name, (prefix, (out, _)) in linears.items()},
        tokenizer=read_tokenizer(model_dir, config.vocab_size),
        source=model_dir,
    )


def model_config(model_dir: Path, raw: dict, family: Family) -> ModelConfig:
    file = model_dir / "config.json"
    check_supported(file, raw, family)
    raw = {"rope_theta": rope_parameters(file, raw).get("rope_theta", family.defaults["rope_theta"]), **raw}

    def value(key):
        if key not in raw and key not in family.defaults:
            raise CheckpointError(f"{file}: missing '{key}'")
        return raw.get(key, family.defaults.get(key))

    def positive(key, kind=int):
        v = value(key)
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int) or not v > 0 or not math.isfinite(v):
            raise CheckpointError(f"{file}: '{key}' must be a positive {kind.__name__}, got {v!r}")
        return kind(v)

    sizes = {key: positive(key) for key in REQUIRED_SIZES}
    heads, hidden = sizes["num_attention_heads"], sizes["hidden_size"]
    kv_heads = positive("num_key_value_heads") if value("num_key_value_heads") is not None else heads
    if heads % kv_heads:
        raise CheckpointError(f"{file}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    if raw.get("head_dim") is None and hidden % heads:
        raise CheckpointError(f"{file}: hidden_size {hidden} is not a multiple of num_attention_heads {heads} and no head_dim is given")
    head_dim = positive("head_dim") if raw.get("head_dim") is not None else hidden // heads
    if head_dim % 2:
        raise CheckpointError(f"{file}: head_dim {head_dim} must be even for rotate-half RoPE")
    linear_norm_eps = linear_norm(file, raw)
    return ModelConfig(
        architecture=family.architecture + (LINEAR_NORMS if linear_norm_eps else ""),
        vocab_size=sizes["vocab_size"], hidden_size=hidden, intermediate_size=sizes["intermediate_size"],
        num_layers=sizes["num_hidden_layers"], num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        max_position=positive("max_position_embeddings"), rope_theta=positive("rope_theta", float),
        rms_norm_eps=positive("rms_norm_eps", float), tie_embeddings=bool(value("tie_word_embeddings")),
        bos_token_id=token_id(file, "bos_token_id", value("bos_token_id"), sizes["vocab_size"]),
        eos_token_ids=eos_token_ids(model_dir, value("eos_token_id"), sizes["vocab_size"]),
        name=model_dir.name, linear_norm_eps=linear_norm_eps or ModelConfig.linear_norm_eps,
    )


def linear_norm(file: Path, raw: dict) -> float | None:
    """The eps of the RMSNorm each BitLinear applies to its input (quantization_config use_rms_norm), or None."""
    q = raw.get("quantization_config")
    if not isinstance(q, dict) or not q.get("use_rms_norm"):
        return None
    eps = q.get("rms_norm_eps", 1e-6)  # BitNetQuantConfig's default
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0 and math.isfinite(eps)):
        raise CheckpointError(f"{file}: quantization_config.rms_norm_eps must be a positive number with use_rms_norm, got {eps!r}")
    return float(eps)


def check_supported(file: Path, raw: dict, family: Family) -> None:
    act = raw.get("hidden_act", family.hidden_act)
    if act != family.hidden_act:
        raise CheckpointError(f"{file}: hidden_act {act!r} is not supported for {raw['architectures'][0]}, expected {family.hidden_act!r}")
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key):
            raise CheckpointError(f"{file}: '{key}' true is not supported (BitNet linears have no bias)")
    rope = rope_parameters(file, raw)
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise CheckpointError(f"{file}: RoPE scaling {rope!r} is not supported, only plain RoPE")


def rope_parameters(file: Path, raw: dict) -> dict:
    """rope_scaling, or transformers 5's rope_parameters (which also carries rope_theta)."""
    rope = {}
    for key in ("rope_scaling", "rope_parameters"):
        if not isinstance(raw.get(key) or {}, dict):
            raise CheckpointError(f"{file}: '{key}' must be an object, got {raw[key]!r}")
        rope.update(raw.get(key) or {})
    return rope


def token_id(file: Path, key: str, v, vocab_size: int) -> int | None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab_size):
        raise CheckpointError(f"{file}: '{key}' must be a token id below vocab_size {vocab_size}, got {v!r}")
    return v


def eos_token_ids(model_dir: Path, from_config, vocab_size: int) -> tuple[int, ...]:
    """config.json's eos ids, then generation_config.json's (the ones chat models stop on)."""
    sources = [(model_dir / "config.json", from_config)]
    generation = model_dir / "generation_config.json"
    if generation.is_file():
        sources.append((generation, read_json(generation).get("eos_token_id")))
    ids = []
    for file, v in sources:
        ids += [token_id(file, "eos_token_id", i, vocab_size) for i in (v if isinstance(v, list) else [v]) if i is not None]
    return tuple(dict.fromkeys(ids))


def weight_encoding(file: Path, raw: dict, family: Family) -> Encoding:
    bits, q = raw.get("weight_bits"), raw.get("quantization_config")
    if q is None and not family.weight_bits:
        raise CheckpointError(f"{file}: {raw['architectures'][0]} without a bitnet quantization_config is a full-precision model; "
                              f"only its BitNet (1.58-bit) variants are supported, e.g. tiiuae/Falcon3-1B-Instruct-1.58bit")
    if bits is not None and bits not in family.weight_bits:
        raise CheckpointError(f"{file}: weight_bits {bits!r} is not supported; expected one of {[b for b in family.weight_bits if b is not None]} or none")
    if q is None:
        return family.weight_bits[bits]
    if bits is not None and family.weight_bits[bits] is not ABSMEAN:
        raise CheckpointError(f"{file}: weight_bits {bits} (binary) cannot be combined with a quantization_config")
    if not isinstance(q, dict) or q.get("quant_method") != "bitnet":
        method = q.get("quant_method") if isinstance(q, dict) else q
        raise CheckpointError(f"{file}: quantization_config.quant_method {method!r} is not supported, expected 'bitnet'")
    mode = (q.get("linear_class", "bitlinear"), q.get("quantization_mode", "offline"))
    if mode not in family.quantization_modes:
        supported = ", ".join(f"{c}/{m}" for c, m in family.quantization_modes) or "none"
        raise CheckpointError(f"{file}: quantization_config linear_class/quantization_mode {mode[0]}/{mode[1]} is not supported; supported: {supported}")
    kept = set(q.get("modules_to_not_convert") or []) - {"lm_head"}
    if kept:
        raise CheckpointError(f"{file}: quantization_config.modules_to_not_convert {sorted(kept)} is not supported (only lm_head stays float)")
    return family.quantization_modes[mode]


def float_tensor_names(c: ModelConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """canonical name -> (HF name, shape) of every float tensor."""
    arch = architecture(c.architecture)
    names = {t.role: (f"{t.hf}.weight", t.dims(c)) for t in arch.globals(c)}
    for i in range(c.num_layers):
        names.update({f"layers.{i}.{t.role}": (f"model.layers.{i}.{t.hf}.weight", t.dims(c)) for t in arch.norms()})
    return names


def linear_names(c: ModelConfig) -> dict[str, tuple[str, tuple[int, int]]]:
    """canonical name -> (HF module name, (out, in)) of every BitLinear."""
    return {f"layers.{i}.{t.role}": (f"model.layers.{i}.{t.hf}", t.dims(c))
            for i in range(c.num_layers) for t in architecture(c.architecture).linears()}


LAYER_PREFIX = re.compile(r"model\.layers\.(\d+)\.")


def check_layer_count(files: TensorFiles, config: ModelConfig, config_file: Path) -> None:
    """Before the per-layer tables: a config claiming a million layers fails here, not after building them."""
    stored = max((int(m.group(1)) for name in files.infos if (m := LAYER_PREFIX.match(name))), default=-1) + 1
    if stored != config.num_layers:
        raise CheckpointError(f"{config_file}: num_hidden_layers is {config.num_layers}, but {files.source} holds {stored} layers")


def check_tensors(files: TensorFiles, expected: dict[str, Expected], config: ModelConfig) -> None:
    for name, want in expected.items():
        if name not in files.infos:
            raise CheckpointError(f"{files.source}: missing tensor '{name}' (expected {' or '.join(want.dtypes)} {list(want.shape)})")
        got = files.infos[name]
        if got.shape != want.shape:
            raise CheckpointError(f"{got.file}: tensor '{name}' has shape {list(got.shape)}, expected {list(want.shape)}")
        if got.dtype not in want.dtypes:
            raise CheckpointError(f"{got.file}: tensor '{name}' has dtype {got.dtype}, expected {' or '.join(want.dtypes)}")
    extra = sorted(set(files.infos) - set(expected))
    if extra:
        why = " (tie_word_embeddings is true)" if extra[0] == "lm_head.weight" and config.tie_embeddings else ""
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise CheckpointError(f"{files.infos[extra[0]].file}: unexpected tensor '{extra[0]}'{why}{more}")


def bit_linear(files: TensorFiles, prefix: str, out: int, encoding: Encoding) -> BitLinear:
    scale = 1.0
    if encoding.has_weight_scale:
        scale = float(files.read(f"{prefix}.weight_scale")[0])
        if not (math.isfinite(scale) and scale > 0):
            raise CheckpointError(f"{files.infos[prefix + '.weight_scale'].file}: tensor '{prefix}.weight_scale' is {scale}, expected a positive number")
    try:
        return encoding.decode(files.read(f"{prefix}.weight"), out, scale)
    except ValueError as err:
        raise CheckpointError(f"{files.infos[prefix + '.weight'].file}: tensor '{prefix}.weight' ({encoding.name}): {err}") from None
