"""A built site, run from Python: the site's own compiled forward pass, natively by default
(its C compiled once into a cache folder keyed by the sources' digest; BITNET_WASM_CACHE
overrides the folder) or its bitnet.wasm under wasmtime."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.site_format import ALIGN, SiteError, read_file, read_manifest, read_shard
from bitnet_wasm.wasm_kernels import NativeKernels, WasmKernels, toolchain
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
        src = self.dir / m["sources"]
        abi = {**kernel_abi(), **parse_header((src / "model.h").read_text())}
        nbytes = m["abi"]["arena_bytes"]
        if backend == "native":
            self._machine = _NativeArena(src, abi, nbytes)
        else:
            if not m.get("wasm"):
                raise SiteError(f"{self.dir}: built without wasm modules")
            wasm_file = m["wasm"][BACKENDS[backend]]
            read_file(self.dir, m, wasm_file)  # checked before wasmtime compiles it
            self._machine = _WasmArena(self.dir / wasm_file, abi, nbytes)
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

        name = self.manifest["tokenizer"]["file"]
        text = read_file(self.dir, self.manifest, name).decode("utf-8", errors="replace")
        try:
            return Tokenizer.from_str(text)
        except Exception as e:  # the tokenizers library raises its own plain Exception
            raise SiteError(f"{self.dir / name}: not a tokenizer the tokenizers library reads ({e})") from None

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
        self._buffer("tokens", np.int32, ids.size)[:] = ids
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

    def stream(self, prompt: str | Sequence[int], max_new_tokens: int = 128, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, min_p: float = 0.0, seed: int = 0, stop: Sequence[str] = (), ignore_eos: bool = False,
               result: Generation | None = None) -> Iterator[Piece]:
        """Generate token by token; `result`, if given, is filled in as tokens arrive."""
        ids = self._check_ids(self.encode(prompt) if isinstance(prompt, str) else prompt)
        if ids.size >= self.context:
            raise ValueError(f"the prompt has {ids.size} tokens; the context holds {self.context} (rebuild with a longer --context)")
        result = result if result is not None else Generation([])
        result.prompt_tokens = ids.tolist()
        rng = np.array([seed & (2**64 - 1)], np.uint64)
        scratch_p, scratch_idx = np.zeros(self.vocab_size, np.float32), np.zeros(self.vocab_size, np.int32)
        logits, position, emitted = self._step(ids, 0, False)[0], ids.size, ""
        result.stop_reason = "length" if max_new_tokens < 1 else ""
        while not result.stop_reason:
            token = self.lib.bn_sample(logits, self.vocab_size, float(temperature), int(top_k), float(top_p), float(min_p),
                                       rng, scratch_p, scratch_idx)
            result.tokens.append(token)
            text = self.decode(result.tokens)
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            result.text = text[:cut] if cut >= 0 else text
            reasons = (("stop", cut >= 0), ("eos", token in self.eos_token_ids and not ignore_eos),
                       ("length", len(result.tokens) >= max_new_tokens), ("context", position >= self.context))
            result.stop_reason = next((reason for reason, hit in reasons if hit), "")
            # hold back a partial UTF-8 character until the next token completes it, or the end
            if (result.stop_reason or not result.text.endswith("\ufffd")) and result.text.startswith(emitted):
                yield Piece(token, result.text[len(emitted):])
                emitted = result.text
            if not result.stop_reason:
                logits, position = self._step(np.array([token], np.int32), position, False)[0], position + 1

    def generate(self, prompt: str | Sequence[int], **sampling) -> Generation:
        """sampling: max_new_tokens, temperature (0: greedy), top_k, top_p, min_p, seed, stop, ignore_eos."""
        result = Generation([])
        for _ in self.stream(prompt, result=result, **sampling):
            pass
        return result


def load(site_dir: str | Path, backend: str = "native") -> Model:
    return Model(site_dir, backend)
