"""The site format, owned here: what `bitnet-wasm build` writes into SITE/model/ and what every
reader (the Python runtime, export-gguf) accepts. A manifest is checked whole before any of it is
used: its keys and types, and the invariants that keep the weights where the kernels read them
(shards tile the weights region exactly, tensors and buffers lie inside the arena, buffers are disjoint)."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from bitnet_wasm.compiler.graph import DTYPE_BYTES, REGIONS, TABLE_BYTES
from bitnet_wasm.wasm_kernels.abi import defines, step_abi
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

FORMAT = "bitnet-wasm-site"
FORMAT_VERSION = 4        # 4: bn_model_step runs the token the step before chose, then chooses (3: the C's digest in "sources", model/src/ only when asked for; 2: model card, files' sha256, step ABI, generation options)
ALIGN = 64                 # every region, buffer and tensor offset in the arena is a multiple of this
MODEL_DIR = "model"        # SITE/model/ holds everything model-specific
MANIFEST = "manifest.json"
SHARD_FILE = re.compile(r"weights-\d{5}\.bin")
SHA256 = re.compile(r"[0-9a-f]{64}")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")
# a tensor layout whose bytes are not its shape's elements -> its bytes from its 2-D shape
PACKED_BYTES = {**{name: layout.packed_bytes for name, layout in LAYOUTS.items()}, **TABLE_BYTES}


class SiteError(ValueError):
    pass


def read_manifest(site: str | Path) -> tuple[Path, dict]:
    """(SITE/model, its manifest), checked to be a whole, consistent site of this format version.
    `site` may be the site folder or its model folder."""
    site = Path(site)
    for model_dir in (site / MODEL_DIR, site):
        path = model_dir / MANIFEST
        if path.is_file():
            break
    else:
        raise SiteError(f"{site}: no {MODEL_DIR}/{MANIFEST} here; build a site with `bitnet-wasm build MODEL --out {site}`")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SiteError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise SiteError(f"{path}: not valid JSON ({e})") from None
    check_manifest(manifest, path)
    return model_dir, manifest


def write_manifest(model_dir: Path, manifest: dict) -> Path:
    path, text = Path(model_dir) / MANIFEST, json.dumps(manifest, indent=1)
    check_manifest(json.loads(text), path)  # as a reader will see it (tuples become lists)
    path.write_text(text)
    return path


def file_digests(model_dir: Path, names) -> dict[str, str]:
    """manifest["files"]: the sha256 of each file of SITE/model/ besides the shards, so none is used damaged."""
    return {name: hashlib.sha256((Path(model_dir) / name).read_bytes()).hexdigest() for name in names}


def read_file(model_dir: Path, manifest: dict, name: str) -> bytes:
    """A file of SITE/model/ named in manifest["files"], checked against its sha256."""
    path = Path(model_dir) / name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SiteError(f"{path}: cannot be read ({e.strerror or e})") from None
    if hashlib.sha256(data).hexdigest() != manifest["files"][name]:
        raise SiteError(f"{path}: sha256 does not match the manifest (corrupt or partial copy); rebuild or re-download the site")
    return data


def read_json_file(model_dir: Path, manifest: dict, name: str) -> dict:
    """A JSON object file of SITE/model/ (tokenizer.json, tokenizer_config.json), checked and parsed."""
    path = Path(model_dir) / name
    try:
        value = json.loads(read_file(model_dir, manifest, name).decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SiteError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise SiteError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise SiteError(f"{path}: is {type(value).__name__}, expected a JSON object")
    return value


def read_shard(model_dir: Path, shard: dict) -> bytes:
    """A weight shard's bytes, checked against the manifest's size and sha256."""
    path = Path(model_dir) / shard["file"]
    if not path.is_file():
        raise SiteError(f"{path}: weight shard missing")
    data = path.read_bytes()
    if len(data) != shard["bytes"]:
        raise SiteError(f"{path}: {len(data)} bytes, the manifest says {shard['bytes']}")
    if hashlib.sha256(data).hexdigest() != shard["sha256"]:
        raise SiteError(f"{path}: sha256 does not match the manifest (corrupt or partial download)")
    return data


class _Check:
    """Type checks that name the manifest file and the key path of what is wrong."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str):
        raise SiteError(f"{self.path}: {key} {problem}; rebuild the site")

    def get(self, obj: dict, key: str, where: str, kinds, optional: bool = False):
        if key not in obj:
            if optional:
                return None
            self.fail(f"{where}{key}", "is missing")
        value = obj[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(f"{where}{key}", f"is {type(value).__name__} {_short(value)}, expected {'/'.join(k.__name__ for k in kinds)}")
        return value

    def count(self, obj: dict, key: str, where: str, minimum: int = 0) -> int:
        value = self.get(obj, key, where, (int,))
        if value < minimum:
            self.fail(f"{where}{key}", f"is {value}, expected at least {minimum}")
        return value

    def number(self, obj: dict, key: str, where: str) -> float:
        value = self.get(obj, key, where, (int, float))
        if not (math.isfinite(value) and value > 0):
            self.fail(f"{where}{key}", f"is {value}, expected a positive finite number")
        return value

    def span(self, obj: dict, where: str, within: tuple[int, int], aligned: bool = True) -> tuple[int, int]:
        """[offset, offset + bytes) of obj, checked to lie inside `within`."""
        offset, nbytes = self.count(obj, "offset", where), self.count(obj, "bytes", where)
        if aligned and offset % ALIGN:
            self.fail(f"{where}offset", f"{offset} is not a multiple of {ALIGN}")
        if offset < within[0] or offset + nbytes > within[1]:
            self.fail(where.rstrip("."), f"[{offset}, {offset + nbytes}) lies outside [{within[0]}, {within[1]})")
        return offset, offset + nbytes


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


MODEL_COUNTS = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "max_position")
STRING_OR_NONE = {"tokenizer": ("file",), "chat": ("end",)}  # optional sections and their text fields


def check_manifest(m, path: Path) -> None:
    """Raise SiteError naming `path` and the key at fault unless manifest `m` is whole and consistent."""
    c = _Check(path)
    if not isinstance(m, dict):
        c.fail("the manifest", f"is {type(m).__name__}, expected an object")
    if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
        raise SiteError(f"{path}: not a bitnet-wasm site of format version {FORMAT_VERSION} "
                        f"(format {m.get('format')!r}, version {m.get('format_version')!r}); rebuild it")
    model = c.get(m, "model", "", (dict,))
    counts = {key: c.count(model, key, "model.", 1) for key in MODEL_COUNTS}
    for key in ("rope_theta", "rms_norm_eps"):
        c.number(model, key, "model.")
    c.get(model, "architecture", "model.", (str,))
    c.get(model, "tie_embeddings", "model.", (bool,))
    vocab = counts["vocab_size"]
    bos = c.get(model, "bos_token_id", "model.", (int,), optional=True)
    eos = c.get(model, "eos_token_ids", "model.", (list,), optional=True) or []
    for i, token in enumerate(([bos] if bos is not None else []) + eos):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
            c.fail("model.bos_token_id/eos_token_ids", f"holds {token!r}, not a token id below the vocabulary size {vocab}")
    for key, fields in STRING_OR_NONE.items():
        section = c.get(m, key, "", (dict,), optional=True)
        for field in fields if section is not None else ():
            c.get(section, field, f"{key}.", (str,))
    if m.get("tokenizer"):
        c.get(m["tokenizer"], "config", "tokenizer.", (str,), optional=True)
    files = c.get(m, "files", "", (dict,))
    for name in files:
        if not isinstance(files[name], str) or not SHA256.fullmatch(files[name]) or "/" in name or name.startswith("."):
            c.fail(f"files.{name}", "is not a file name in model/ with a sha256 of 64 hex digits")
    chat = m.get("chat")
    for key in ("start", "between") if isinstance(chat, dict) else ():
        for name, text in c.get(chat, key, "chat.", (dict,)).items():
            c.get({name: text}, name, f"chat.{key}.", (str,))
    wasm = c.get(m, "wasm", "", (dict,), optional=True) or {}
    named = [(f"wasm.{key}", c.get(wasm, key, "wasm.", (str,), optional=True)) for key in wasm]  # null: variant not built
    named += [(f"tokenizer.{key}", m["tokenizer"].get(key)) for key in ("file", "config") if m.get("tokenizer")]
    for key, name in named:
        if name is not None and name not in files:
            c.fail(key, f"{name!r} is not listed in files (with its sha256)")
    sources = c.get(m, "sources", "", (dict,))
    if not SHA256.fullmatch(c.get(sources, "sha256", "sources.", (str,))):
        c.fail("sources.sha256", "is not 64 hex digits")
    folder = c.get(sources, "dir", "sources.", (str,), optional=True)
    if folder is not None and not PLAIN_NAME.fullmatch(folder):
        c.fail("sources.dir", f"{folder!r} is not the name of a folder in model/")

    plan = c.get(m, "plan", "", (dict,))
    context, chunk = c.count(plan, "context", "plan.", 1), c.count(plan, "chunk", "plan.", 1)
    if chunk > context or context > counts["max_position"]:
        c.fail("plan.context/chunk", f"{context}/{chunk}: expected chunk <= context <= model.max_position {counts['max_position']}")
    total = c.count(plan, "total_bytes", "plan.", 1)
    regions = c.get(plan, "regions", "plan.", (dict,))
    cursor, spans = 0, {}
    for name in REGIONS:
        spans[name] = c.span(c.get(regions, name, "plan.regions.", (dict,)), f"plan.regions.{name}.", (0, total))
        if spans[name][0] != cursor:
            c.fail(f"plan.regions.{name}.offset", f"is {spans[name][0]}, expected {cursor} (regions are contiguous, in the order {', '.join(REGIONS)})")
        cursor = spans[name][1]

    card = c.get(m, "card", "", (dict,))
    c.get(card, "name", "card.", (str,))
    c.count(card, "parameters", "card.")
    c.get(card, "bits_per_weight", "card.", (int, float), optional=True)
    abi = c.get(m, "abi", "", (dict,))
    if c.get(abi, "arena_align", "abi.", (int,)) != ALIGN:
        c.fail("abi.arena_align", f"is {abi['arena_align']}, expected {ALIGN}")
    for key, value in step_abi().items():  # the generated C was compiled with these; a host reads them
        if abi.get(key) != value:
            c.fail(f"abi.{key}", f"is {_short(abi.get(key))}, this runtime's bitnet.h says {_short(value)}")
    if c.count(abi, "arena_bytes", "abi.", 1) != total:
        c.fail("abi.arena_bytes", f"is {abi['arena_bytes']}, plan.total_bytes is {total}")
    _check_buffers(c, c.get(plan, "buffers", "plan.", (dict,)), c.get(abi, "buffers", "abi.", (dict,)),
                   (spans["kv"][0], total), context, chunk, vocab)
    _check_weights(c, m, spans["weights"])


# ABI buffer -> the bytes it must at least hold, from (context, chunk, vocab)
BUFFER_MINIMUM = {
    "tokens": lambda context, chunk, vocab: 4 * context,
    "logits": lambda context, chunk, vocab: 4 * chunk * vocab,
    "rng_state": lambda context, chunk, vocab: 8,
    "sample_p": lambda context, chunk, vocab: 4 * vocab,
    "sample_idx": lambda context, chunk, vocab: 4 * vocab,
    "step": lambda context, chunk, vocab: 4 * defines()["BN_STEP_WORDS"],
}


def _check_buffers(c: _Check, planned: dict, abi: dict, within: tuple[int, int], context: int, chunk: int, vocab: int) -> None:
    """The ABI's buffers (what the hosts read and write) are the plan's (the generated C has those
    offsets compiled in), lie after the weights, do not overlap, and are large enough for the model.
    (Activations may share bytes by design: the plan reuses a slot once its value is dead.)"""
    spans = []
    for name, buffer in abi.items():
        where = f"abi.buffers.{name}"
        if not isinstance(buffer, dict) or not isinstance(planned.get(name), dict):
            c.fail(where, "is not an object with a twin in plan.buffers")
        if any(buffer.get(key) != planned[name].get(key) for key in ("offset", "bytes")):
            c.fail(where, f"{_short(buffer)} differs from plan.buffers.{name} {_short(planned[name])}")
        spans.append((*c.span(buffer, where + ".", within), name))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            c.fail(f"abi.buffers.{first}/{second}", "overlap")
    for name, minimum in BUFFER_MINIMUM.items():
        nbytes = c.get(abi, name, "abi.buffers.", (dict,))["bytes"]
        if nbytes < minimum(context, chunk, vocab):
            c.fail(f"abi.buffers.{name}.bytes", f"is {nbytes}, expected at least {minimum(context, chunk, vocab)}")


def _check_weights(c: _Check, m: dict, weights: tuple[int, int]) -> None:
    shards = c.get(m, "shards", "", (list,))
    cursor = weights[0]
    for i, shard in enumerate(shards):
        where = f"shards[{i}]."
        if not isinstance(shard, dict):
            c.fail(where.rstrip("."), "is not an object")
        if not SHARD_FILE.fullmatch(str(c.get(shard, "file", where, (str,)))):
            c.fail(f"{where}file", f"{shard['file']!r} is not a shard file name (weights-NNNNN.bin)")
        if not SHA256.fullmatch(c.get(shard, "sha256", where, (str,))):
            c.fail(f"{where}sha256", "is not 64 hex digits")
        start, end = c.span(shard, where, weights, aligned=False)
        if start != cursor or end == start:
            c.fail(where.rstrip("."), f"covers [{start}, {end}); the shards must tile the weights region "
                   f"[{weights[0]}, {weights[1]}) in order, the next one starting at {cursor}")
        cursor = end
    if cursor != weights[1]:
        c.fail("shards", f"cover the weights region only up to byte {cursor} of {weights[1]} (a shard is missing)")
    if c.count(m["card"], "download_bytes", "card.") != weights[1] - weights[0]:
        c.fail("card.download_bytes", f"is {m['card']['download_bytes']}, the shards hold {weights[1] - weights[0]}")
    tensors = c.get(m, "tensors", "", (dict,))
    if not tensors:
        c.fail("tensors", "is empty")
    spans = []
    for name, tensor in tensors.items():
        where = f"tensors.{name}."
        if not isinstance(tensor, dict):
            c.fail(where.rstrip("."), "is not an object")
        start, end = c.span(tensor, where, weights)
        spans.append((start, end, name))
        shape = c.get(tensor, "shape", where, (list,))
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            c.fail(f"{where}shape", f"{_short(shape)} is not a list of positive sizes")
        c.get(tensor, "layout", where, (str,))
        dtype = c.get(tensor, "dtype", where, (str,))
        if dtype not in DTYPE_BYTES:
            c.fail(f"{where}dtype", f"{dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
        packed_bytes = PACKED_BYTES.get(tensor["layout"])
        if packed_bytes is not None and len(shape) != 2:
            c.fail(f"{where}shape", f"{shape} is not (out, in) of a {tensor['layout']} matrix")
        needed = packed_bytes(*shape) if packed_bytes is not None else math.prod(shape) * DTYPE_BYTES[dtype]
        if end - start != needed:
            c.fail(f"{where}bytes", f"is {end - start}, its shape {shape} as {tensor['layout']} takes {needed}")
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            c.fail(f"tensors.{first}/{second}", "overlap")
