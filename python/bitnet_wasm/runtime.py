"""A built site, run from Python: the site's own compiled forward pass, natively by default
(its C compiled once into a cache folder keyed by the sources' digest; BITNET_WASM_CACHE
overrides the folder) or its bitnet.wasm under wasmtime."""
from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.generation import resolve as resolve_options
from bitnet_wasm.compiler.site_format import ALIGN, SiteError, read_manifest, read_shard
from bitnet_wasm.wasm_kernels import NativeKernels, WasmKernels, toolchain
from bitnet_wasm.text_stream import StopStrings, StreamDecoder
from bitnet_wasm.wasm_kernels.abi import kernel_abi, parse_header


def native_library(src_dir: Path) -> Path:
    """The native build of a site's C (kernels + forward.c), compiled on first use."""
    files = sorted(Path(src_dir).resolve().glob("*.[ch]"))
    h = hashlib.sha256(toolchain.sources_digest([]).encode())
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    out = cache_dir() / f"model-{h.hexdigest()[:16]}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            sources = [f for f in files if f.suffix == ".c"]
            built = toolchain.compile_target(toolchain.TARGETS["native"], sources, Path(tmp) / out.name)
            os.replace(built, out)  # atomic: a concurrent loader sees the whole library or none
    return out


class _NativeArena:
    def __init__(self, src_dir: Path, abi, nbytes: int):
        self.lib = NativeKernels(native_library(src_dir), abi)
        raw = np.zeros(nbytes + ALIGN, np.uint8)
        start = -raw.ctypes.data % ALIGN
        self.arena = raw[start:start + nbytes]

    def bytes(self) -> np.ndarray:
        return self.arena


class _WasmArena:
    def __init__(self, wasm_file: Path, abi, nbytes: int):
        self.lib = WasmKernels(wasm_file, abi)
        self.arena = self.lib.resident(np.zeros(nbytes, np.uint8))

    def bytes(self) -> np.ndarray:
        # a fresh view each time: growing the memory may move it
        return self.lib.view(self.arena.address, np.uint8, self.arena.size)


BACKENDS = {"native": None, "wasm": "simd128", "wasm-relaxed": "relaxed"}


@dataclass
class Generation:
    prompt_tokens: list[int]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""   # "eos", "stop", "length" or "context"
    seed: int = 0           # the seed sampling used (a random one unless given)


@dataclass(frozen=True)
class Piece:
    token: int
    text: str               # the new text this token completes ("" while a character is partial)


class Model:
    def __init__(self, site_dir: str | Path, backend: str = "native"):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.dir, self.manifest = read_manifest(Path(site_dir))
        m = self.manifest
        self.vocab_size = m["model"]["vocab_size"]
        self.eos_token_ids = set(m["model"]["eos_token_ids"] or ())
        self.context, self.chunk = m["plan"]["context"], m["plan"]["chunk"]
        self.buffers = m["abi"]["buffers"]
        self.abi = m["abi"]
        src = self.dir / m["sources"]
        abi = {**kernel_abi(), **parse_header((src / "model.h").read_text())}
        nbytes = m["abi"]["arena_bytes"]
        if backend == "native":
            self._machine = _NativeArena(src, abi, nbytes)
        else:
            if not m.get("wasm"):
                raise SiteError(f"{self.dir}: built without wasm modules")
            self._machine = _WasmArena(self.dir / m["wasm"][BACKENDS[backend]], abi, nbytes)
        self.backend = backend
        self._load_weights()
        self.tokenizer = self._tokenizer()

    def _load_weights(self):
        memory = self._machine.bytes()
        for shard in self.manifest["shards"]:
            memory[shard["offset"]:shard["offset"] + shard["bytes"]] = np.frombuffer(read_shard(self.dir, shard), np.uint8)

    def _tokenizer(self):
        if not self.manifest.get("tokenizer"):
            return None
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.dir / self.manifest["tokenizer"]["file"]))

    @property
    def lib(self):
        return self._machine.lib

    def _buffer(self, name: str, dtype, count: int) -> np.ndarray:
        offset = self.buffers[name]["offset"]
        return self._machine.bytes()[offset:offset + count * np.dtype(dtype).itemsize].view(dtype)

    def _check_ids(self, ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token ids must be a non-empty 1-D sequence of integers, got shape {ids.shape} {ids.dtype}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {int(ids[bad][0])} is outside the vocabulary [0, {self.vocab_size})")
        return ids.astype(np.int32)

    def _step(self, ids: np.ndarray, pos0: int, all_logits: bool) -> np.ndarray:
        self._buffer("tokens", np.int32, self.context)[pos0:pos0 + ids.size] = ids
        arena = self._machine.arena
        if ids.size <= self.chunk:
            status = self.lib.bn_model_forward(arena, ids.size, pos0, int(all_logits))
        else:  # a long prompt: the C loops over chunks and keeps only the last position's logits
            assert not all_logits
            status = self.lib.bn_model_prefill(arena, ids.size, pos0)
        if status != 0:
            raise RuntimeError(f"the forward pass refused n={ids.size} at position {pos0} (context {self.context})")
        rows = ids.size if all_logits else 1
        return self._buffer("logits", np.float32, rows * self.vocab_size).reshape(rows, self.vocab_size).copy()

    def forward(self, token_ids: Sequence[int], pos0: int = 0) -> np.ndarray:
        """Run tokens at positions pos0.. on top of the KV cache (positions before pos0 must have
        been run already); f32 [len, vocab] logits after each of them."""
        ids = self._check_ids(token_ids)
        if not 0 <= pos0 <= self.context - ids.size:
            raise ValueError(f"{ids.size} tokens at position {pos0} do not fit the context of {self.context}")
        return np.concatenate([self._step(ids[i:i + self.chunk], pos0 + i, True) for i in range(0, ids.size, self.chunk)])

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """f32 [len, vocab]: the logits after each position, from an empty cache."""
        return self.forward(token_ids, 0)

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise SiteError(f"{self.dir}: the site has no tokenizer; pass token ids")
        return self.tokenizer.encode(text).ids

    def format_chat(self, text: str) -> list[int]:
        """Token ids of `text` as one user turn in the model's chat template, ready to generate from."""
        chat = self.manifest.get("chat")
        if chat is None or self.tokenizer is None:
            raise SiteError(f"{self.dir}: the model has no chat template")
        return self.tokenizer.encode(chat["prefix"] + text + chat["suffix"], add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True) if self.tokenizer else ""

    def stream(self, prompt: str | Sequence[int], *, result: Generation | None = None, **options) -> Iterator[Piece]:
        """Generate token by token; `result`, if given, is filled in as tokens arrive. options:
        compiler/generation.py's OPTIONS (max_new_tokens, temperature, top_k, top_p, min_p, the
        penalties, seed, stop, ignore_eos); left out, an option takes its default."""
        o = resolve_options(options)
        ids = self._prompt_ids(prompt)
        result = result if result is not None else Generation([])
        result.prompt_tokens = ids.tolist()
        result.seed = o["seed"] if o["seed"] is not None else secrets.randbits(64)
        self._prefill(ids)
        self._buffer("rng_state", np.uint64, 1)[0] = result.seed & (2**64 - 1)
        self._set_stop_tokens(() if o["ignore_eos"] else self.eos_token_ids)
        decoder, stops = StreamDecoder(self.decode), StopStrings(o["stop"])
        sampling = [float(o["temperature"]), o["top_k"], float(o["top_p"]), float(o["min_p"]),
                    float(o["repetition_penalty"]), float(o["presence_penalty"]), float(o["frequency_penalty"])]
        position = ids.size
        while not result.stop_reason:
            code = self.lib.bn_model_step(self._machine.arena, position, len(result.tokens), o["max_new_tokens"], *sampling)
            if code < 0:
                raise RuntimeError(f"the generation step refused position {position} (context {self.context})")
            token = int(self._buffer("step", np.int32, self.abi["words"])[self.abi["token_word"]])
            result.tokens.append(token)
            reason = self.abi["stop_reasons"][code]
            text = decoder.push(token) + (decoder.flush() if reason else "")
            shown = stops.push(text, final=bool(reason))
            result.text, result.stop_reason = stops.text, "stop" if stops.stopped else reason
            yield Piece(token, shown)
            position += 1

    def generate(self, prompt: str | Sequence[int], **options) -> Generation:
        """All of stream()'s tokens at once; the same options."""
        result = Generation([])
        for _ in self.stream(prompt, result=result, **options):
            pass
        return result

    def _prompt_ids(self, prompt: str | Sequence[int]) -> np.ndarray:
        ids = self._check_ids(self.encode(prompt) if isinstance(prompt, str) else prompt)
        if ids.size >= self.context:
            raise ValueError(too_long_message(ids.size, self.context, self.manifest["model"]["max_position"]))
        return ids

    def _prefill(self, ids: np.ndarray) -> None:
        """Runs the prompt from position 0; leaves the last position's logits."""
        self._step(ids, 0, False)

    def _set_stop_tokens(self, tokens) -> None:
        words = self._buffer("step", np.int32, self.abi["words"])
        first, count = self.abi["stop_tokens_word"], self.abi["max_stop_tokens"]
        words[first:first + count] = -1
        words[first:first + len(tokens)] = sorted(tokens)


def too_long_message(tokens: int, context: int, max_position: int) -> str:
    fix = (f"shorten it, or rebuild the site with a longer --context (this model allows up to {max_position})"
           if context < max_position else "shorten it (the site already has the model's full context)")
    return f"the prompt has {tokens} tokens; the context holds {context}, with room for at least one new token: {fix}"


def load(site_dir: str | Path, backend: str = "native") -> Model:
    return Model(site_dir, backend)
