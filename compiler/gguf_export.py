"""A built site's weights as a GGUF file of llama.cpp's `bitnet` architecture, so llama.cpp-based
engines (llama.cpp, wllama, node-llama-cpp) run the same ternary weights.

What llama.cpp reads (ggml-org/llama.cpp src/models/bitnet.cpp, llama-arch.cpp, llama-graph.cpp):
tensors token_embd, output_norm and per block attn_norm, attn_q/k/v, attn_output, attn_sub_norm,
ffn_norm, ffn_gate/up/down, ffn_sub_norm, each projection with an optional `<name>.scale` [1]
that build_lora_mm multiplies into its output. There is no `output` tensor: the head is always
token_embd, so a model with an untied lm_head cannot be exported. RoPE is NEOX (rotate-half),
like ours; q and k need no permutation. llama.cpp expects heads * head_dim == hidden.

Weights: ternary codes go in exactly (TQ2_0 / TQ1_0 blocks of 256 with d = 1, or where a row is
not a multiple of 256, Q8_0 with d = 1, else F16), and the per-tensor scale s = 1 / wscale
(bitnet.h stores wscale inverted) goes to `<name>.scale` as f32: dequantized codes * scale ==
W * s exactly. Binary (+-1) weights are ternary values and go in the same way.

Graph: llama.cpp's bitnet graph is pre-norm attention -> attn_sub_norm -> o_proj, then
act(gate) * up -> ffn_sub_norm -> down_proj. Its activation comes from `bitnet.hidden_activation`
(default SiLU); the names it maps are gelu/geglu, silu/swish/swiglu, relu, reglu: there is no
ReLU^2. So our "bitnet-llama" (1bitLLM, SiLU, sub-norms) maps exactly (with tied embeddings),
while "bitnet" (BitNetForCausalLM, ReLU^2) runs in llama.cpp with SiLU: same weights, different
function (fine for speed benchmarks, not for text). Checked with llama.cpp itself (npm
node-llama-cpp 3.22.1, tests/compiler/llama_cpp_logits.mjs): a SiLU model's logits match ours to
f16 rounding on one token and within ~2 % over a prompt (llama.cpp rounds attention's q and
probabilities to f16, and quantizes TQ* activations per 256-value block, we per token). Fallback
tensors are exact too, but llama.cpp feeds Q8_0 activations quantized per 32 values and F16 ones
unquantized, so their outputs move further from ours (measured 2-5 % of the largest logit)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np

from bitnet_wasm.compiler.loaders.gguf_tokenizer import LLAMA3_REGEX
from bitnet_wasm.compiler.shards import Q4_GROUP, Q4_ZERO, Q7_ZERO, q4_unpack, untile_table
from bitnet_wasm.compiler.site_format import SiteError, read_json_file, read_manifest, read_shard
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

ARCH = "bitnet"
Q = gguf.GGMLQuantizationType


class GGUFExportError(ValueError):
    pass


def _q8_0_unit(codes: np.ndarray) -> np.ndarray:
    """Q8_0 blocks with d = 1 (gguf's quantizer would pick d = 1/127 and round)."""
    rows, cols = codes.shape
    blocks = codes.reshape(rows, cols // 32, 32).view(np.uint8)
    d = np.full((rows, cols // 32, 1), 1.0, "<f2").view(np.uint8)
    return np.concatenate([d, blocks], axis=-1).reshape(rows, -1)


@dataclass(frozen=True)
class CodeType:
    """A GGUF type that holds ternary codes exactly."""

    qtype: gguf.GGMLQuantizationType
    encode: Callable[[np.ndarray], np.ndarray]  # int8 codes [out, in] -> array for GGUFWriter.add_tensor

    @property
    def block(self) -> int:
        return gguf.GGML_QUANT_SIZES[self.qtype][0]


CODE_TYPES = {
    "tq2_0": CodeType(Q.TQ2_0, lambda w: gguf.quants.quantize(w.astype(np.float32), Q.TQ2_0)),
    "tq1_0": CodeType(Q.TQ1_0, lambda w: gguf.quants.quantize(w.astype(np.float32), Q.TQ1_0)),
    "q8_0": CodeType(Q.Q8_0, _q8_0_unit),
    "f16": CodeType(Q.F16, lambda w: w.astype(np.float16)),
}
WEIGHT_TYPES = {"tq2_0": gguf.LlamaFileType.MOSTLY_TQ2_0, "tq1_0": gguf.LlamaFileType.MOSTLY_TQ1_0}  # --type -> general.file_type


def _per_row(dtype, zero: int):
    return lambda site, name, data, shape: (untile_table(data.view(dtype), *shape).astype(np.float32) - zero) * site.array(name + ".row_scale")[:, None]


def _per_group(site, name, data, shape):
    codes = q4_unpack(data.reshape(shape[0], -1), shape[1]).astype(np.float32) - Q4_ZERO
    return codes * np.repeat(site.array(name + ".group_scale"), Q4_GROUP, axis=1)[:, :shape[1]]


# site table layout -> (site weights, tensor name, its bytes, its shape) -> its values as f32, as the embedding kernels give them
QUANTIZED_TABLES = {"q8": _per_row(np.int8, 0), "q7": _per_row(np.uint8, Q7_ZERO), "q4": _per_group}
FALLBACKS = ("q8_0", "f16")  # for rows the requested type's block does not divide, in order of size

LINEAR_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
NORM_NAMES = {"input_norm": "attn_norm", "attn_sub_norm": "attn_sub_norm", "post_attention_norm": "ffn_norm",
              "ffn_sub_norm": "ffn_sub_norm"}
ACTIVATIONS = {"bitnet": "relu2", "bitnet-llama": "silu"}  # our architecture -> bitnet.hidden_activation
LLAMA_CPP_GRAPH = {  # our architecture -> how llama.cpp's bitnet graph runs it
    "bitnet": "weights exact; llama.cpp has no ReLU^2 for bitnet and runs the FFN with SiLU",
    "bitnet-llama": "exact graph (SiLU gated FFN with sub-norms)",
}
PRE_TOKENIZERS = {  # tokenizer.json pre_tokenizer, reduced to (type, regex or use_regex) steps -> tokenizer.ggml.pre
    (("ByteLevel", True),): "gpt-2",
    (("Split", LLAMA3_REGEX), ("ByteLevel", False)): "llama-bpe",
}


# ---- reading the site ------------------------------------------------------------------------

class SiteWeights:
    """The weights region of a built site, read through its manifest after checking every shard."""

    def __init__(self, site_dir: Path):
        try:
            self.dir, self.manifest = read_manifest(site_dir)
            shards = self.manifest["shards"]
            self.start = min((s["offset"] for s in shards), default=0)  # the shards tile the weights region
            self.weights = bytearray(max((s["offset"] + s["bytes"] for s in shards), default=0))
            for shard in shards:
                self.weights[shard["offset"]:shard["offset"] + shard["bytes"]] = read_shard(self.dir, shard)
        except SiteError as e:
            raise GGUFExportError(str(e)) from None

    def json(self, name: str) -> dict:
        """A JSON file of the site (tokenizer.json, tokenizer_config.json), checked against the manifest."""
        try:
            return read_json_file(self.dir, self.manifest, name)
        except SiteError as e:
            raise GGUFExportError(str(e)) from None

    def _entry(self, name: str) -> dict:
        entry = self.manifest.get("tensors", {}).get(name)
        if entry is None:
            raise GGUFExportError(f"{self.dir / 'manifest.json'}: no tensor {name} in the manifest's tensor table")
        return entry

    def raw(self, name: str) -> np.ndarray:
        """The bytes of one tensor, which may span shards."""
        entry = self._entry(name)
        start, end = entry["offset"], entry["offset"] + entry["bytes"]
        if start < self.start or end > len(self.weights):
            raise GGUFExportError(f"{self.dir / 'manifest.json'}: tensor {name} lies outside the shards")
        return np.frombuffer(self.weights, np.uint8, end - start, start)

    def array(self, name: str) -> np.ndarray:
        """A stored tensor decoded: f32 norms and scales, f16, q8, q7 or q4 tables as f32, linears as int8 codes."""
        entry = self._entry(name)
        shape, layout = tuple(entry["shape"]), entry["layout"]
        data = self.raw(name)
        if layout in LAYOUTS:
            return LAYOUTS[layout].unpack(data, *shape)
        if layout in QUANTIZED_TABLES:
            return QUANTIZED_TABLES[layout](self, name, data, shape)
        return data.view({"f32": "<f4", "q8_scale": "<f4", "q7_scale": "<f4", "q4_scale": "<f4", "wscale": "<f4", "f16": "<f2"}[layout]).reshape(shape).astype(np.float32)


# ---- tokenizer -------------------------------------------------------------------------------

def _pre_tokenizer(file: Path, spec: dict | None) -> str:
    steps = spec.get("pretokenizers", []) if spec and spec.get("type") == "Sequence" else [spec] if spec else []
    key = tuple((s.get("type"), s.get("pattern", {}).get("Regex") if s.get("type") == "Split" else s.get("use_regex", True))
                for s in steps)
    if key not in PRE_TOKENIZERS:
        raise GGUFExportError(f"{file}: pre-tokenizer {key} has no llama.cpp name here; known: {', '.join(PRE_TOKENIZERS.values())}")
    return PRE_TOKENIZERS[key]


def _add_tokenizer(writer: gguf.GGUFWriter, site: SiteWeights) -> None:
    info, model = site.manifest.get("tokenizer"), site.manifest["model"]
    if not info:
        raise GGUFExportError(f"{site.dir}: the site has no tokenizer; llama.cpp needs one in the GGUF")
    file = site.dir / info["file"]
    spec = site.json(info["file"])
    bpe = spec.get("model")
    if not isinstance(bpe, dict) or bpe.get("type") != "BPE":
        kind = bpe.get("type") if isinstance(bpe, dict) else bpe
        raise GGUFExportError(f"{file}: a {kind!r} tokenizer; only byte-level BPE maps to llama.cpp's gpt2 vocab")
    tokens, types = _token_table(file, spec, model["vocab_size"])
    merges = bpe.get("merges", [])
    if not isinstance(merges, list) or not all(isinstance(m, str) or _is_pair(m) for m in merges):
        raise GGUFExportError(f"{file}: model.merges is not a list of merges (\"a b\" or [\"a\", \"b\"])")
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(file, spec.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if model.get("bos_token_id") is not None:
        writer.add_bos_token_id(model["bos_token_id"])
        writer.add_add_bos_token(json.dumps(tokens[model["bos_token_id"]]) in json.dumps(spec.get("post_processor")))  # its template adds BOS
    eos = model.get("eos_token_ids") or []
    if eos:
        writer.add_eos_token_id(eos[0])
        writer.add_eot_token_id(eos[-1])
    template = site.json(info["config"]).get("chat_template") if info.get("config") else None
    if isinstance(template, str):
        writer.add_chat_template(template)


def _is_pair(merge) -> bool:
    return isinstance(merge, list) and len(merge) == 2 and all(isinstance(part, str) for part in merge)


def _token_table(file: Path, spec: dict, vocab: int) -> tuple[list[str], list]:
    """Every id's text and GGUF type; an id outside the vocabulary, or one id named twice with two
    texts, is an error (it would silently overwrite another token)."""
    tokens: list[str | None] = [None] * vocab
    types = [gguf.TokenType.UNUSED] * vocab
    entries = spec["model"].get("vocab")
    added = spec.get("added_tokens", [])
    if not isinstance(entries, dict) or not isinstance(added, list) or not all(isinstance(a, dict) for a in added):
        raise GGUFExportError(f"{file}: model.vocab must be an object and added_tokens a list of objects")
    rows = [(text, i, gguf.TokenType.NORMAL, "model.vocab") for text, i in entries.items()]
    rows += [(a.get("content"), a.get("id"), gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED, "added_tokens")
             for a in added]
    for text, i, kind, where in rows:
        if not isinstance(text, str) or isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab:
            raise GGUFExportError(f"{file}: {where} entry {text!r} -> {i!r} is not a text with a token id below the vocabulary size {vocab}")
        if tokens[i] is not None and tokens[i] != text:
            raise GGUFExportError(f"{file}: token id {i} is both {tokens[i]!r} and {text!r} ({where})")
        tokens[i], types[i] = text, kind
    return [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)], types


# ---- weights ---------------------------------------------------------------------------------

def _code_type(weight_type: str, cols: int) -> str:
    for name in (weight_type, *FALLBACKS):
        if cols % CODE_TYPES[name].block == 0:
            return name
    raise GGUFExportError(f"rows of {cols} values fit none of {weight_type}, {', '.join(FALLBACKS)}")


def _add_codes(writer: gguf.GGUFWriter, name: str, codes: np.ndarray, kind: str) -> None:
    code_type = CODE_TYPES[kind]
    data = code_type.encode(codes)
    quantized = code_type.qtype not in (Q.F16, Q.F32)
    writer.add_tensor(name, data, raw_dtype=code_type.qtype if quantized else None)


def _tensor_plan(model: dict) -> list[tuple[str, str, str]]:
    """(GGUF name, site tensor, kind) in file order; kind "codes" for linears, else "f16"/"f32"."""
    plan = [("token_embd.weight", "embed", "table")]
    for i in range(model["num_layers"]):
        for ours, theirs in NORM_NAMES.items():
            plan.append((f"blk.{i}.{theirs}.weight", f"layers.{i}.{ours}", "f32"))
        for ours, theirs in LINEAR_NAMES.items():
            plan.append((f"blk.{i}.{theirs}.weight", f"layers.{i}.{ours}", "codes"))
            plan.append((f"blk.{i}.{theirs}.scale", f"layers.{i}.{ours}.wscale", "scale"))
    plan.append(("output_norm.weight", "norm", "f32"))
    return plan


def _check_model(site: SiteWeights) -> dict:
    model, path = site.manifest["model"], site.dir / "manifest.json"
    if model["architecture"] not in ACTIVATIONS:
        raise GGUFExportError(f"{path}: architecture {model['architecture']!r} has no llama.cpp mapping; known: {', '.join(ACTIVATIONS)}")
    if not model["tie_embeddings"]:
        raise GGUFExportError(f"{path}: the model has its own lm_head, but llama.cpp's bitnet architecture has no output tensor "
                              "(its head is always token_embd); only models with tied embeddings export")
    if model["num_heads"] * model["head_dim"] != model["hidden_size"]:
        raise GGUFExportError(f"{path}: heads {model['num_heads']} x head_dim {model['head_dim']} != hidden {model['hidden_size']}; "
                              "llama.cpp's bitnet architecture assumes they are equal")
    return model


def _add_metadata(writer: gguf.GGUFWriter, site: SiteWeights, model: dict, weight_type: str, fallbacks: list[str]) -> None:
    writer.add_name(model.get("name") or site.dir.parent.name)
    writer.add_file_type(WEIGHT_TYPES[weight_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(model["vocab_size"])
    writer.add_context_length(model["max_position"])
    writer.add_embedding_length(model["hidden_size"])
    writer.add_block_count(model["num_layers"])
    writer.add_feed_forward_length(model["intermediate_size"])
    writer.add_head_count(model["num_heads"])
    writer.add_head_count_kv(model["num_kv_heads"])
    writer.add_key_length(model["head_dim"])
    writer.add_value_length(model["head_dim"])
    writer.add_rope_dimension_count(model["head_dim"])
    writer.add_rope_freq_base(model["rope_theta"])
    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(1.0)
    writer.add_layer_norm_rms_eps(model["rms_norm_eps"])
    writer.add_string(f"{ARCH}.hidden_activation", ACTIVATIONS[model["architecture"]])
    binary = site.manifest["build"]["linear_layout"] == "binary"
    writer.add_string("bitnet_wasm.architecture", model["architecture"])
    writer.add_string("bitnet_wasm.weights", "binary {-1, +1}, stored as ternary codes (llama.cpp runs them as ternary weights)" if binary else "ternary {-1, 0, +1}")
    writer.add_string("bitnet_wasm.llama_cpp", LLAMA_CPP_GRAPH[model["architecture"]])
    writer.add_string("bitnet_wasm.exact_fallback", ", ".join(fallbacks) or "none")  # tensors not in weight_type: "name:type, ..."


def export_gguf(site_dir: str | Path, out_path: str | Path, weight_type: str = "tq2_0",
                progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Write the built site at site_dir as a GGUF of llama.cpp's bitnet architecture; returns out_path.
    Linear weights use weight_type ("tq2_0" | "tq1_0") where their rows are multiples of 256, else
    Q8_0 or F16 (listed in the file's bitnet_wasm.exact_fallback and by summary()); every value is exact.
    progress(done, total, name) is called after each tensor."""
    if weight_type not in WEIGHT_TYPES:
        raise GGUFExportError(f"weight type {weight_type!r}: choose one of {', '.join(WEIGHT_TYPES)}")
    site = SiteWeights(Path(site_dir))
    model = _check_model(site)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out_path, ARCH)
    fallbacks = []
    plan = _tensor_plan(model)
    for done, (gguf_name, ours, kind) in enumerate(plan, 1):
        values = site.array(ours)
        if kind == "codes":
            code_kind = _code_type(weight_type, values.shape[1])
            if code_kind != weight_type:
                fallbacks.append(f"{gguf_name}:{code_kind}")
            _add_codes(writer, gguf_name, values, code_kind)
        elif kind == "scale":
            writer.add_tensor(gguf_name, (np.float32(1) / values).astype(np.float32))
        elif kind == "table" and site.manifest["tensors"][ours]["layout"] == "f16":
            writer.add_tensor(gguf_name, values.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, values.astype(np.float32))
        if progress is not None:
            progress(done, len(plan), gguf_name)
    _add_metadata(writer, site, model, weight_type, fallbacks)
    _add_tokenizer(writer, site)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def summary(path: str | Path) -> str:
    """One line read back from the file: tensors per GGUF type and the file size."""
    reader = gguf.GGUFReader(path)
    counts = Counter(t.tensor_type.name for t in reader.tensors)
    types = ", ".join(f"{n} {name}" for name, n in counts.most_common())
    line = f"{path}: {len(reader.tensors)} tensors ({types}), {Path(path).stat().st_size / 2**20:,.2f} MiB"
    fallback = reader.fields["bitnet_wasm.exact_fallback"].contents()
    if fallback == "none":
        return line
    kinds = Counter(entry.rsplit(":", 1)[1].upper() for entry in fallback.split(", "))
    kept = ", ".join(f"{n} as {kind}" for kind, n in kinds.most_common())
    return f"{line}; rows the block does not divide kept exact: {kept} (names in bitnet_wasm.exact_fallback)"
