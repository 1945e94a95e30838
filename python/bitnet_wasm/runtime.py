"""A built site, run from Python: the site's own compiled forward pass, natively by default
(its C, shipped in model/src/ or regenerated from the manifest, compiled once into a cache folder
keyed by the sources' digest; BITNET_WASM_CACHE overrides the folder) or its bitnet.wasm under wasmtime."""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.chat import check_messages, render_fragments
from bitnet_wasm.compiler.generation import resolve as resolve_options
from bitnet_wasm.compiler.site_format import ALIGN, SiteError, read_file, read_manifest, read_shard
from bitnet_wasm.compiler.sources import site_sources
from bitnet_wasm.text_stream import StopStrings, StreamDecoder
from bitnet_wasm.wasm_kernels import NativeKernels, WasmKernels, toolchain
from bitnet_wasm.wasm_kernels.abi import kernel_abi, parse_header


def native_library(src_dir: Path, sources_sha256: str) -> Path:
    """The native build of a site's C (kernels + forward.c), compiled on first use; sources_sha256 is
    the folder's digest (compiler/sources.py), already checked against the manifest by site_sources."""
    key = hashlib.sha256(f"{toolchain.sources_digest([])} {sources_sha256}".encode()).hexdigest()[:16]
    out = cache_dir() / f"model-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            sources = sorted(Path(src_dir).resolve().glob("*.c"))
            built = toolchain.compile_target(toolchain.TARGETS["native"], sources, Path(tmp) / out.name)
            os.replace(built, out)  # atomic: a concurrent loader sees the whole library or none
    return out


class _NativeArena:
    def __init__(self, src_dir: Path, sources_sha256: str, abi, nbytes: int):
        self.lib = NativeKernels(native_library(src_dir, sources_sha256), abi)
        raw = np.zeros(nbytes + ALIGN, np.uint8)
        start = -raw.ctypes.data % ALIGN
        self.arena = raw[start:start + nbytes]

    def bytes(self) -> np.ndarray:
        return self.arena


class _WasmArena:
    def __init__(self, wasm_file: Path, code: bytes, abi, nbytes: int):
        self.lib = WasmKernels(wasm_file, abi, code)
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
    reused_tokens: int = 0  # prompt tokens whose keys and values came from the cache
    dropped_messages: int = 0  # chat: the oldest messages left out to fit the context

    @property
    def prefilled_tokens(self) -> int:
        """Prompt tokens the forward pass ran before the first new token."""
        return len(self.prompt_tokens) - self.reused_tokens


@dataclass(frozen=True)
class Piece:
    token: int
    text: str               # the new text this token completes ("" while a character is partial)


class _Exclusive:
    """One call at a time on a model's arena: another thread waits its turn; the thread already inside
    (an unfinished stream) gets a clear error instead of a deadlock or a mixed-up KV cache."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextlib.contextmanager
    def __call__(self):
        if self._owner == threading.get_ident():
            raise RuntimeError("the model is busy with an unfinished generation in this thread: consume or close() it first")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None


class Model:
    """A built site's model. Safe to share between threads: calls take turns (see _Exclusive)."""

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
        src = site_sources(self.dir, m)
        abi = {**kernel_abi(), **parse_header((src / "model.h").read_text())}
        nbytes = m["abi"]["arena_bytes"]
        if backend == "native":
            self._machine = _NativeArena(src, m["sources"]["sha256"], abi, nbytes)
        else:
            if not m.get("wasm"):
                raise SiteError(f"{self.dir}: built without wasm modules")
            wasm_file = m["wasm"][BACKENDS[backend]]
            code = read_file(self.dir, m, wasm_file)  # checked against the manifest, then compiled: one read
            self._machine = _WasmArena(self.dir / wasm_file, code, abi, nbytes)
        self.backend = backend
        self._load_weights()
        self.tokenizer = self._tokenizer()
        self.chat_format = m.get("chat") if self.tokenizer else None
        self._cached: list[int] = []  # the tokens whose keys and values are in the KV cache, from position 0
        self._exclusive = _Exclusive()

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
        with self._exclusive():
            self._cached = self._cached[:pos0] + ids.tolist() if pos0 <= len(self._cached) else []
            return np.concatenate([self._step(ids[i:i + self.chunk], pos0 + i, True) for i in range(0, ids.size, self.chunk)])

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """f32 [len, vocab]: the logits after each position, from an empty cache."""
        return self.forward(token_ids, 0)

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise SiteError(f"{self.dir}: the site has no tokenizer; pass token ids")
        return self.tokenizer.encode(text).ids

    def chat_tokens(self, messages: Sequence[dict]) -> list[int]:
        """Token ids of the conversation in the model's chat template, with the assistant's turn opened:
        messages [{"role": "system" | "user" | "assistant", "content": str}], ending with a user's."""
        if self.chat_format is None:
            raise SiteError(f"{self.dir}: the model has no chat template")
        check_messages(self.chat_format, messages)
        return self.tokenizer.encode(render_fragments(self.chat_format, list(messages)), add_special_tokens=False).ids

    def chat(self, messages: Sequence[dict], *, stream: bool = False, result: Generation | None = None,
             **options) -> Generation | Iterator[Piece]:
        """The assistant's reply to `messages` (see chat_tokens): a Generation, or with stream=True an
        iterator of Pieces (filling in `result` if given). The options of stream(), and context_policy:
        "error" refuses a conversation
        longer than the context, "drop_oldest" leaves out its oldest turns (after a system message)
        until it fits (Generation.dropped_messages says how many)."""
        o = resolve_options(options, chat=True)
        policy = o.pop("context_policy")
        messages, dropped = list(messages), 0
        ids = self.chat_tokens(messages)
        while len(ids) >= self.context and policy == "drop_oldest" and sum(m["role"] == "user" for m in messages) > 1:
            first = 1 if messages[0]["role"] == "system" else 0
            del messages[first:first + 2]  # a user message and the assistant's reply
            dropped += 2
            ids = self.chat_tokens(messages)
        result = result if result is not None else Generation([])
        result.dropped_messages = dropped
        pieces = self._generate(self._prompt_ids(ids), o, result, self.chat_format["stop_tokens"])
        if stream:
            return pieces
        for _ in pieces:
            pass
        return result

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True) if self.tokenizer else ""

    def stream(self, prompt: str | Sequence[int], *, result: Generation | None = None, **options) -> Iterator[Piece]:
        """Generate token by token; `result`, if given, is filled in as tokens arrive. options:
        compiler/generation.py's OPTIONS (max_new_tokens, temperature, top_k, top_p, min_p, the
        penalties, seed, stop, ignore_eos, cache_prompt); left out, an option takes its default."""
        o = resolve_options(options)
        return self._generate(self._prompt_ids(prompt), o, result if result is not None else Generation([]), ())

    def _generate(self, ids: np.ndarray, o: dict, result: Generation, stop_tokens: Sequence[int]) -> Iterator[Piece]:
        with self._exclusive():
            result.prompt_tokens = ids.tolist()
            result.seed = o["seed"] if o["seed"] is not None else secrets.randbits(64)
            result.reused_tokens = self._prefill(ids, o["cache_prompt"])
            self._buffer("rng_state", np.uint64, 1)[0] = result.seed & (2**64 - 1)
            self._set_stop_tokens(set(stop_tokens) | (set() if o["ignore_eos"] else self.eos_token_ids))
            decoder, stops = StreamDecoder(self.decode), StopStrings(o["stop"])
            # beyond the context or the vocabulary these limits mean "no limit"; the C takes int32
            max_new_tokens, top_k = min(o["max_new_tokens"], self.context), min(o["top_k"], self.vocab_size)
            sampling = [float(o["temperature"]), top_k, float(o["top_p"]), float(o["min_p"]),
                        float(o["repetition_penalty"]), float(o["presence_penalty"]), float(o["frequency_penalty"])]
            position = ids.size
            while not result.stop_reason:
                code = self.lib.bn_model_step(self._machine.arena, position, len(result.tokens), max_new_tokens, *sampling)
                if code == self.abi["bad_logits"]:
                    raise RuntimeError(f"{self.dir}: the logits at position {position} are not finite (NaN or inf): the model's arithmetic overflowed "
                                       "float32 (weights far outside a trained model's range: a damaged or wrongly converted checkpoint)")
                if code < 0:
                    raise RuntimeError(f"the generation step refused position {position} (context {self.context})")
                if result.tokens:  # the step ran the token chosen before this one
                    self._cached.append(result.tokens[-1])
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

    def _prefill(self, ids: np.ndarray, reuse: bool) -> int:
        """Runs the prompt's tokens that are not in the cache yet (at least its last, for its logits);
        returns how many were reused."""
        reused = 0
        if reuse:
            limit = min(len(self._cached), ids.size - 1)
            while reused < limit and self._cached[reused] == ids[reused]:
                reused += 1
        self._cached = []  # in case the forward pass fails halfway
        self._step(ids[reused:], reused, False)
        self._cached = ids.tolist()
        return reused

    def _set_stop_tokens(self, tokens) -> None:
        words = self._buffer("step", np.int32, self.abi["words"])
        first, count = self.abi["stop_tokens_word"], self.abi["max_stop_tokens"]
        if len(tokens) > count:
            raise ValueError(f"{len(tokens)} stop tokens; the generation step holds at most {count}")
        words[first:first + count] = -1
        words[first:first + len(tokens)] = sorted(tokens)


def too_long_message(tokens: int, context: int, max_position: int) -> str:
    fix = (f"shorten it, or rebuild the site with a longer --context (this model allows up to {max_position})"
           if context < max_position else "shorten it (the site already has the model's full context)")
    return f"the prompt has {tokens} tokens; the context holds {context}, with room for at least one new token: {fix}"


def load(site_dir: str | Path, backend: str = "native") -> Model:
    return Model(site_dir, backend)
