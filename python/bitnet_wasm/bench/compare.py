"""`bitnet-wasm bench --compare`: our engine against wllama (llama.cpp in wasm) on the same models,
prompt and token count, in one headless Chromium session, next to the page's own wasm read
bandwidth (the decode roofline) and int8-dot peak (the prefill roofline, against our time to first
token on a long prompt), our native build and native llama.cpp on the same GGUF. Models,
sites and GGUF files are built into the cache folder and rebuilt only when their inputs change;
wllama and node-llama-cpp come from npm."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tokenizers import Tokenizer

import bitnet_wasm
from bitnet_wasm.bench import compare_report, llama_cpp, load_memory, random_model, wllama
from bitnet_wasm.bench.chromium import headless_chromium, launch_on_disk, playwright
from bitnet_wasm.bench.compare_report import LLAMA_CPP, NATIVE, OURS, THREADS, WLLAMA
from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.writers import hf as writers_hf
from bitnet_wasm.compiler.writers import tokenizer as writers_tokenizer
from bitnet_wasm.demo_site import cached_site, inputs_digest
from bitnet_wasm.models import MODELS_ENV, embedded_model_dir
from bitnet_wasm.runtime import Generation
from bitnet_wasm.serve import SiteServer
from bitnet_wasm.wasm_kernels import abi
from bitnet_wasm.wasm_kernels.toolchain import build_kernels
from bitnet_wasm.web import WEB_DIR

DEFAULT_PROMPT = ("The old lighthouse keeper climbed the stairs every evening before the sun went down. He carried a "
                  "small lamp, a book of poems, and a flask of tea that his daughter had made for him.")
DEFAULT_TOKENS = 32
DEFAULT_ROUNDS = 3  # turns of the paired rows (ours relaxed and wllama): each row reports the median of its rounds
WARMUP = ("Warm up.", 2)  # prompt and new tokens of the untimed generation each engine runs first (as in compare.js)
SIMD = ("relaxed", "simd128")
STREAM_MB = 256
STREAM_SECONDS = 1.5
DOT_PEAK = {"bytes": 4096, "reps": 20000, "seconds": 1.5}  # activations in L1; a call takes milliseconds
PREFILL_TOKENS = 256  # the prompt of the time-to-first-token rows (fewer where the context is smaller)
LARGE_CONTEXT = 512   # KV cache of the large model's site and of wllama's context for it
CALL_TIMEOUT_S = 900  # one measurement in the page
BUSY_LOAD = 0.5  # load average before the bench above which the report says the machine was shared
PAGE_DIR = Path(__file__).parent / "compare_page"
OUTPUTS = {"json": "benchmarks.json", "markdown": "benchmarks.md", "plot": "benchmark.png"}
NOTES = [
    "Every measurement runs in a fresh browser context (fresh page, workers and memory) of the same Chromium, wllama's in that "
    "Chromium started on a fresh profile on disk (wllama stores the GGUF before loading it, and in a private context storing "
    "a 2 GB one fails with QuotaExceededError); the server sends COOP/COEP, so pages are cross-origin isolated and wllama can use its multi-thread build.",
    "bitnet-wasm: `BitNet.load(manifest, {threads, simd})`, then `generate` greedily; prefill and decode tok/s "
    "are the runtime's `lastStats` (decode: new tokens after the first, over the time since the first; each of those "
    "steps runs one forward pass, that of the token the step before chose, so the last token chosen is never run and the "
    "first reaches the page before it runs).",
    f"wllama {wllama.WLLAMA.version}: `loadModelFromUrl(gguf, {{n_threads, n_ctx, n_gpu_layers: 0}})`, then "
    "`createCompletion({prompt, max_tokens, temperature: 0, top_k: 1})`; tok/s are its own `timings` "
    "(prompt_per_second, predicted_per_second). Byte-level tokens that are not whole UTF-8 characters get "
    "logit_bias -1000 (wllama aborts on a lone one, which random weights produce); this does not change the work per token.",
    "The GGUF is our site exported to llama.cpp's `bitnet` architecture with TQ2_0 linears "
    "(`bitnet_wasm.compiler.gguf_export`); same tokenizer, so the same prompt tokens. llama.cpp's bitnet graph has no "
    "ReLU², so on these BitNetForCausalLM models it runs SiLU in its place, and it quantizes activations per 256-value "
    "block: the same weights and work per token, not the same function, so the greedy tokens differ.",
    "native: the site's own C compiled for this CPU (`bitnet_wasm.load(site, backend=\"native\")`, SIMDe, one thread), "
    "same prompt and token count, timed at each token the Python API's `stream` yields: prefill = prompt tokens / time to the "
    "first new token, decode = new tokens after the first / time from the first to the last (its per-token Python work, e.g. "
    "detokenizing, is included: it matters for the tiny demo model, not for the large one).",
    f"llama.cpp: native llama.cpp on the same GGUF as wllama, through npm `{llama_cpp.NODE_LLAMA_CPP.spec()}` with only its prebuilt "
    "linux-x64 CPU binary (nothing compiled), one Node process per row: `getLlama({gpu: false, build: \"never\", maxThreads: 0})`, "
    "`loadModel`, `createContext({contextSize, threads})`, then the context sequence's `evaluate(ids, {temperature: 0, yieldEogToken: true})` "
    "(greedy, a fixed token count) on the prompt token ids of our site's tokenizer, after the same untimed warm-up. node-llama-cpp "
    "returns no timings (its `printTimings` only logs), so the script times around the calls with `performance.now()`: "
    "prefill = prompt tokens / time from the `evaluate` call to the first new token; decode = new tokens after the first / time "
    "from the first to the last (each step a one-token evaluation plus greedy sampling). Its SIMD is whatever the prebuilt binary "
    "chose for this CPU.",
    "A row requested with a thread count or SIMD level the runtime did not run is reported as not measured, with what ran.",
    "int8-dot peak: `bn_dot_peak` of the relaxed-SIMD kernel library, one instance per thread in its own Web Worker, all at once: "
    "the ternary kernels' inner step (16 multiply-adds) in each of its two dot forms (`i16x8.relaxed_dot_i8x16_i7x16` plus an i16 add, or "
    "`i32x4.relaxed_dot_i8x16_i7x16_add`) on 4 KB of activations in L1 against 8 weight vectors in registers; all threads start each call "
    "together (a barrier in shared memory); the fastest such round in the faster form, every thread's multiply-adds over the round "
    "(its first call's start to its last call's end); 2 operations per multiply-add.",
    f"Prefill rows: our engine, relaxed SIMD, on the first {PREFILL_TOKENS} token ids of the prompt repeated (the context minus one where "
    "it is smaller), one new token: time to first token is the runtime's `ttftSeconds` (prefill and the first step), prefill tok/s its "
    "`prefillTokensPerSecond`. Prefill GOPS = prefill tok/s x 2 x the multiply-adds of the ternary linears per token (from the manifest's "
    "shapes); attention and the head, which runs once per prompt, are not counted.",
    "Roofline: weight bytes read per decode token from the site manifest's tensor table (all packed linears, norms "
    "and scales, the head's table, one embedding row; the KV cache is not counted).",
]


class CompareError(RuntimeError):
    pass


@dataclass
class Prepared:
    """A model ready to benchmark: its site, and its GGUF or why there is none."""
    name: str
    description: str
    site: Path
    gguf: Path | None = None
    gguf_error: str | None = None


def _cached(product: Path, digest: str, make: Callable[[Path], object], log) -> Path:
    """`product` made by make(product) unless a previous make left it with the same input digest."""
    stamp = product.with_name(product.name + ".inputs.sha256")
    if stamp.is_file() and stamp.read_text().strip() == digest and product.exists():
        log(f"using cached {product}")
        return product
    log(f"making {product} ...")
    stamp.unlink(missing_ok=True)  # written last: an interrupted make is never taken as cached
    if product.is_dir():
        shutil.rmtree(product)
    product.unlink(missing_ok=True)
    product.parent.mkdir(parents=True, exist_ok=True)
    make(product)
    stamp.write_text(digest + "\n")
    return product


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256(f"bitnet-wasm {bitnet_wasm.__version__}\n".encode())
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


def _demo_site(cache: Path, log) -> tuple[Path, str]:
    with contextlib.redirect_stdout(sys.stderr):  # cached_site reports on stdout, which --json keeps for the result
        site = cached_site("b1.58", cache)
    if os.environ.get(MODELS_ENV):
        return site, f"a stand-in for the embedded demo model: {embedded_model_dir('b1.58')} (${MODELS_ENV} is set)"
    return site, "the embedded b1.58 demo model (`bitnet-wasm demo`), trained with this repository's trainer"


def _random_site(name: str, shape: random_model.Shape, model: str, cache: Path, log) -> tuple[Path, str]:
    """A random checkpoint of `shape` (the shape of the published `model`) and its site, cached."""
    folder = cache / f"bench-{name}"
    writer = b"".join(Path(m.__file__).read_bytes() for m in (random_model, writers_hf, writers_tokenizer))
    checkpoint = _cached(folder / "checkpoint", _digest(repr(shape), writer),
                         lambda path: random_model.write_random_bitnet(path, shape), log)
    site = _cached(folder / "site", _digest(inputs_digest(checkpoint), f"context={LARGE_CONTEXT}"),
                   lambda path: bitnet_wasm.build(checkpoint, path, context=LARGE_CONTEXT, progress=False), log)
    embed = json.loads((site / "model" / "manifest.json").read_text())["tensors"]["embed"]["layout"]
    return site, (f"random ternary weights with the shape of {model} (hidden {shape.hidden}, {shape.layers} layers, "
                  f"{shape.heads} heads / {shape.kv_heads} KV, FFN {shape.intermediate}, vocab {shape.vocab}, tied embeddings), "
                  f"BitNetForCausalLM packed layout, built with --context {LARGE_CONTEXT} (embeddings: {embed})")


MODELS = {  # --models name -> (cache, log) -> (site, description)
    "demo": _demo_site,
    "large": lambda cache, log: _random_site("large", random_model.LARGE, "1bitLLM/bitnet_b1_58-large", cache, log),
    "2b": lambda cache, log: _random_site("2b", random_model.B2_4T, "microsoft/bitnet-b1.58-2B-4T", cache, log),
}
DEFAULT_MODELS = ("demo", "large")  # 2b: a 1.2 GB site and minutes per engine, on request


def _with_gguf(name: str, site: Path, description: str, log) -> Prepared:
    try:
        from bitnet_wasm.compiler import gguf_export
    except ImportError:
        return Prepared(name, description, site, gguf_error="no GGUF exporter in this build (bitnet_wasm.compiler.gguf_export, branch gguf, not merged yet)")
    digest = _digest((site / "model" / "manifest.json").read_bytes(), Path(gguf_export.__file__).read_bytes())
    try:
        gguf = _cached(site.parent / "model-tq2_0.gguf", digest, lambda path: gguf_export.export_gguf(site, path, weight_type="tq2_0"), log)
    except Exception as e:  # the exporter is another branch's code: its failure is a row, not a crash
        return Prepared(name, description, site, gguf_error=f"GGUF export failed: {type(e).__name__}: {e}")
    return Prepared(name, description, site, gguf)


class _Session:
    """One Chromium (and the Playwright that started it), the cache folder served with COOP/COEP, and
    the compare page in a fresh browser context per measurement."""

    def __init__(self, browser, server_url: str, root: Path, playwright=None):
        self.browser, self.server_url, self.root, self.playwright = browser, server_url, root, playwright
        self.page_url = self.url(root / "compare-page" / "index.html")

    def url(self, path: Path) -> str:
        return self.server_url + path.resolve().relative_to(self.root.resolve()).as_posix()

    @contextlib.contextmanager
    def _context(self, on_disk: bool):
        """A fresh private context of the browser, or (on_disk) the same Chromium started on a fresh profile:
        wllama stores the GGUF before loading it, and in a private context storing a 2 GB one fails (QuotaExceededError)."""
        with contextlib.ExitStack() as stack:
            if on_disk:
                profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="bitnet-wasm-compare-profile-"))
                context = launch_on_disk(self.playwright, profile)
            else:
                context = self.browser.new_context()
            stack.callback(context.close)
            yield context

    def call(self, function: str, argument: dict, on_disk: bool = False) -> dict:
        with self._context(on_disk) as context:
            page = context.new_page()
            page.goto(self.page_url)
            page.wait_for_function("() => window.bench !== undefined")
            return page.evaluate(
                f"""(a) => Promise.race([window.bench.{function}(a), new Promise((_, reject) =>
                      setTimeout(() => reject(new Error('no answer after {CALL_TIMEOUT_S} s')), {CALL_TIMEOUT_S * 1000}))])""",
                argument)


def _attempt(label: str, row: dict, measure: Callable[[], dict], log) -> dict:
    """row plus what measure() returns, or plus the error that stopped it (one line)."""
    log(f"{label} ...")
    try:
        measured = measure()
        log(f"{label}: " + ", ".join(f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value}" for key, value in measured.items()))
        result = {**row, **measured, "error": None}
    except Exception as e:  # any failure of one engine or configuration is that row's result
        message = (str(e).strip().splitlines() or [type(e).__name__])[0].removeprefix("Error: ")
        result = {**row, "error": message}
        log(f"{label}: not measured: {message}")
    return result


def _ours_call(session: _Session, site: Path, simd: str, threads: int, prompt: str | list[int], tokens: int) -> dict:
    got = session.call("ours", {"siteUrl": session.url(site) + "/", "simd": simd, "threads": threads, "prompt": prompt, "tokens": tokens})
    if (got["simd"], got["threads"]) != (simd, threads):
        why = got["threadsFallback"] or "this build's BitNet.load ignores the option: branch threads not merged"
        raise CompareError(f"asked for {simd} SIMD on {threads} thread(s), the runtime ran {got['simd']} on {got['threads']} ({why})")
    return got


def _ours(session: _Session, site: Path, simd: str, threads: int, prompt: str, tokens: int) -> dict:
    got = _ours_call(session, site, simd, threads, prompt, tokens)
    return {"prompt_tokens": got["promptTokens"], "new_tokens": got["newTokens"], "dot_form": got["dotForm"], "read_ahead": got["readAhead"],
            "prefill_tps": got["prefillTokensPerSecond"], "decode_tps": got["decodeTokensPerSecond"]}


def _long_prompt_ids(site: Path, prompt: str, count: int) -> list[int]:
    """The first `count` token ids of the prompt repeated (fewer if the site's context cannot hold them and a new token)."""
    count = min(count, _site_context(site) - 1)
    ids = Tokenizer.from_file(str(site / "model" / "tokenizer.json")).encode(prompt * (count // 4 + 1)).ids[:count]
    if len(ids) < count:
        raise CompareError(f"the prompt repeated gives only {len(ids)} tokens, not {count}")
    return ids


def _prefill_rows(session: _Session, model: Prepared, prompt: str, log) -> list[dict]:
    """Time to the first token of a PREFILL_TOKENS-token prompt on our engine, relaxed SIMD, per thread count."""
    def measure(threads: int) -> dict:
        got = _ours_call(session, model.site, "relaxed", threads, _long_prompt_ids(model.site, prompt, PREFILL_TOKENS), 1)
        return {"prompt_tokens": got["promptTokens"], "ttft_s": got["ttftSeconds"], "prefill_tps": got["prefillTokensPerSecond"]}
    return [_attempt(f"{model.name}: {OURS} relaxed {threads} thread(s), long prompt", {"threads": threads}, lambda: measure(threads), log)
            for threads in THREADS]


def _wllama(session: _Session, esm: Path, model: Prepared, threads: int, context: int, prompt: str, tokens: int) -> dict:
    broken = wllama.broken_utf8_tokens(json.loads((model.site / "model" / "tokenizer.json").read_text()))
    got = session.call("wllama", {
        "moduleUrl": session.url(esm / "index.js"), "wasmUrl": session.url(esm / "wasm" / "wllama.wasm"),
        "ggufUrl": session.url(model.gguf), "threads": threads, "context": context, "prompt": prompt, "tokens": tokens,
        "logitBias": {str(token): -1000 for token in broken}}, on_disk=True)
    if got["threads"] != threads:
        raise CompareError(f"asked for {threads} thread(s), wllama ran {got['threads']} (cross-origin isolated: {got['crossOriginIsolated']})")
    return {"prompt_tokens": got["promptTokens"], "new_tokens": got["newTokens"],
            "prefill_tps": got["prefillTokensPerSecond"], "decode_tps": got["decodeTokensPerSecond"]}


def _llama_cpp(package: Path, model: Prepared, threads: int, context: int, prompt_ids: list[int], warmup_ids: list[int], tokens: int) -> dict:
    got = llama_cpp.generate(package, model.gguf, prompt_ids, tokens, (warmup_ids, WARMUP[1]), threads, context)
    if got["threads"] != threads:
        raise CompareError(f"asked for {threads} thread(s), llama.cpp ran {got['threads']}")
    return {"prompt_tokens": got["promptTokens"], "new_tokens": got["newTokens"],
            "prefill_tps": got["prefillTokensPerSecond"], "decode_tps": got["decodeTokensPerSecond"]}


def _native(site: Path, prompt: str, tokens: int) -> dict:
    """Timed at each token of one streamed generation: prefill = prompt tokens / time to the first new
    token; decode = the new tokens after the first / time from the first to the last, the browser
    runtime's definitions."""
    model = bitnet_wasm.load(site, backend="native")
    greedy_uncached = {"temperature": 0, "cache_prompt": False}  # every generation prefills its whole prompt
    model.generate(WARMUP[0], max_new_tokens=WARMUP[1], **greedy_uncached)
    result = Generation([])
    started = time.perf_counter()
    times = [time.perf_counter() for _ in model.stream(prompt, max_new_tokens=tokens, result=result, **greedy_uncached)]
    if len(times) < 2:
        raise CompareError(f"the model stopped after {len(times)} token(s) ({result.stop_reason}); nothing to time")
    return {"prompt_tokens": len(result.prompt_tokens), "new_tokens": len(times),
            "prefill_tps": len(result.prompt_tokens) / (times[0] - started), "decode_tps": (len(times) - 1) / (times[-1] - times[0])}


@dataclass
class Peers:
    """The llama.cpp engines: each one's installed folder, or why it is missing."""
    wllama_esm: Path | None = None
    wllama_error: str | None = None
    llama_cpp: Path | None = None
    llama_cpp_error: str | None = None


def _peer_row(model: Prepared, engine: str, simd: str | None, peer_error: str | None, threads: int, measure: Callable[[int], dict], log,
              round_label: str = "") -> dict:
    """A row of a peer that runs the model's GGUF: measure(threads), or why the peer or the GGUF is missing."""
    label, row = f"{model.name}: {engine} {threads} thread(s){round_label}", {"engine": engine, "simd": simd, "threads": threads}
    error = peer_error or model.gguf_error
    if error:
        log(f"{label}: not measured: {error}")
        return {**row, "error": error}
    return _attempt(label, row, lambda: measure(threads), log)


def _peer_rows(model: Prepared, engine: str, simd: str | None, peer_error: str | None, measure: Callable[[int], dict], log) -> list[dict]:
    return [_peer_row(model, engine, simd, peer_error, threads, measure, log) for threads in THREADS]


def _median_row(turns: list[dict]) -> dict:
    """One row from the rounds of a paired configuration: the median tok/s of the rounds measured, each round kept
    (an error where it failed); the last round's error when none was measured."""
    measured = [t for t in turns if not t.get("error")]
    if not measured:
        return turns[-1]
    rounds = [{"prefill_tps": t.get("prefill_tps"), "decode_tps": t.get("decode_tps"), "error": t.get("error")} for t in turns]
    return {**measured[0], "prefill_tps": statistics.median(t["prefill_tps"] for t in measured),
            "decode_tps": statistics.median(t["decode_tps"] for t in measured), "rounds": rounds}


def _site_context(site: Path) -> int:
    return json.loads((site / "model" / "manifest.json").read_text())["plan"]["context"]


def _llama_cpp_rows(peers: Peers, model: Prepared, prompt: str, tokens: int, log) -> list[dict]:
    tokenizer = Tokenizer.from_file(str(model.site / "model" / "tokenizer.json"))  # the ids our runtime's encode gives
    context, prompt_ids, warmup_ids = _site_context(model.site), tokenizer.encode(prompt).ids, tokenizer.encode(WARMUP[0]).ids
    return _peer_rows(model, LLAMA_CPP, None, peers.llama_cpp_error,
                      lambda threads: _llama_cpp(peers.llama_cpp, model, threads, context, prompt_ids, warmup_ids, tokens), log)


def _paired_rows(session: _Session, peers: Peers, model: Prepared, prompt: str, tokens: int, rounds: int, log) -> dict:
    """Our relaxed rows and wllama's by thread count, measured in turns (ours, wllama at 1 thread, the same at 2,
    `rounds` times), so that the machine's drifting speed moves both sides of a ratio alike: (engine, threads) -> row."""
    context = _site_context(model.site)
    turns = {}
    for r in range(rounds):
        label = f", round {r + 1}/{rounds}"
        for threads in THREADS:
            turns.setdefault((OURS, threads), []).append(
                _attempt(f"{model.name}: {OURS} relaxed {threads} thread(s){label}", {"engine": OURS, "simd": "relaxed", "threads": threads},
                         lambda: _ours(session, model.site, "relaxed", threads, prompt, tokens), log))
            turns.setdefault((WLLAMA, threads), []).append(_peer_row(
                model, WLLAMA, "simd128", peers.wllama_error, threads,
                lambda threads: _wllama(session, peers.wllama_esm, model, threads, context, prompt, tokens), log, label))
    return {key: _median_row(rows) for key, rows in turns.items()}


def _measure_model(session: _Session, peers: Peers, model: Prepared, prompt: str, tokens: int, rounds: int, log) -> list[dict]:
    paired = _paired_rows(session, peers, model, prompt, tokens, rounds, log)
    rows = [paired[OURS, threads] for threads in THREADS]
    rows += [_attempt(f"{model.name}: {OURS} simd128 {threads} thread(s)", {"engine": OURS, "simd": "simd128", "threads": threads},
                      lambda: _ours(session, model.site, "simd128", threads, prompt, tokens), log)
             for threads in THREADS]
    rows += [paired[WLLAMA, threads] for threads in THREADS]
    rows.append(_attempt(f"{model.name}: {NATIVE} 1 thread", {"engine": NATIVE, "simd": None, "threads": 1},
                         lambda: _native(model.site, prompt, tokens), log))
    return rows + _llama_cpp_rows(peers, model, prompt, tokens, log)


def _model_notes(models: list[dict]) -> list[str]:
    """What a reader must know about particular models: differing prompt token counts, and weights
    small enough for the CPU caches (then DRAM bandwidth does not bound decode)."""
    notes = []
    for m in models:
        counts = {(r["engine"], r["prompt_tokens"]) for r in m["rows"] if not r.get("error")}
        if len({count for _, count in counts}) > 1:
            notes.append(f"{m['name']}: the engines saw different prompt token counts: "
                         + ", ".join(f"{engine} {count}" for engine, count in sorted(counts)))
        if m.get("bytes_per_token") and m["bytes_per_token"] < compare_report.CACHE_RESIDENT_BYTES:
            notes.append(f"{m['name']}: its {m['bytes_per_token'] / 1e6:.1f} MB of weights per token stay in the CPU caches, "
                         "so the DRAM roofline is not what bounds its decode; judge the roofline on the large model.")
    return notes


def _prepare(models, cache: Path, log) -> tuple[list[Prepared], list[dict]]:
    """The models ready to measure, and a result entry with the error for each that could not be built."""
    prepared, failed = [], []
    for name in models:
        try:
            site, description = MODELS[name](cache, log)
            prepared.append(_with_gguf(name, site, description, log))
        except Exception as e:  # a model that cannot be built is reported, the other still measured
            failed.append({"name": name, "description": "", "bytes_per_token": None, "error": f"{type(e).__name__}: {e}", "rows": []})
            log(f"{name}: not measured: {e}")
    return prepared, failed


def _install_peers(root: Path, log) -> Peers:
    """wllama and node-llama-cpp under root; a peer that cannot be installed is its rows' error, not the bench's."""
    peers = Peers()
    try:
        peers.wllama_esm = wllama.ensure_installed(root, log)
    except wllama.WllamaUnavailable as e:
        peers.wllama_error = str(e)
    try:
        peers.llama_cpp = llama_cpp.ensure_installed(root, log)
    except llama_cpp.LlamaCppUnavailable as e:
        peers.llama_cpp_error = str(e)
    return peers


def _machine_note(load_start: float, load_end: float, cpus: int, note: str) -> str:
    busy = load_start > BUSY_LOAD  # at the end the load includes the bench's own browser
    return (f"{cpus} cores, load average {load_start:.1f} when the bench started and {load_end:.1f} when it ended"
            + ("; other jobs shared the machine, so absolute numbers are noisy and the ratios, measured in one run, "
               "are what to judge." if busy else ".") + (f" {note}" if note else ""))


def run(models=DEFAULT_MODELS, prompt: str = DEFAULT_PROMPT, tokens: int = DEFAULT_TOKENS, cache: Path | None = None,
        command: str = "bitnet-wasm bench --compare", note: str = "", rounds: int = DEFAULT_ROUNDS, log=print) -> dict:
    """Measure everything; returns the results dict (see compare_report for its derived parts).
    `note` is added to the machine line (e.g. what else was running)."""
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise CompareError(f"--models {','.join(models)}: choose from {', '.join(MODELS)}")
    if tokens < 2:
        raise CompareError(f"--tokens must be at least 2 (decode speed needs a second token), got {tokens}")
    if rounds < 1:
        raise CompareError(f"--rounds must be at least 1, got {rounds}")
    cache = Path(cache or cache_dir())
    load_start = os.getloadavg()[0]
    playwright()  # before the long preparation: without Playwright the compare cannot run

    prepared, results_models = _prepare(models, cache, log)
    peers = _install_peers(cache / "npm", log)
    _write_page(cache)

    bandwidth, compute = [], []
    with SiteServer(cache, "127.0.0.1", 0, quiet=True) as server, headless_chromium() as (p, browser):
        session = _Session(browser, server.url, cache, p)
        if prepared:  # the kernel library exports the probes; a site's modules export only the model
            libraries = {name: session.url(path) for name, path in build_kernels(cache / "kernels", ["wasm", "wasm-relaxed"]).items()}
            for threads in THREADS:
                bandwidth.append(_attempt(f"read bandwidth, {threads} thread(s)", {"threads": threads},
                                          lambda: _bandwidth(session, libraries["wasm"], threads), log))
                compute.append(_attempt(f"int8-dot peak, relaxed SIMD, {threads} thread(s)", {"threads": threads},
                                        lambda: _compute(session, libraries["wasm-relaxed"], threads), log))
        for model in prepared:
            manifest = json.loads((model.site / "model" / "manifest.json").read_text())
            results_models.append({"name": model.name, "description": model.description, "error": None,
                                   "bytes_per_token": compare_report.bytes_per_token(manifest),
                                   "prefill_ops_per_token": compare_report.prefill_ops_per_token(manifest),
                                   "rows": _measure_model(session, peers, model, prompt, tokens, rounds, log),
                                   "prefill": _prefill_rows(session, model, prompt, log)})
            results_models[-1]["load"] = _load_and_memory(p, session, model, prompt, log)
        browser_version = browser.version
    results_models.sort(key=lambda m: list(models).index(m["name"]))
    return {
        "bitnet_wasm": bitnet_wasm.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "browser": f"Chromium {browser_version}",
                    "load_average": [load_start, os.getloadavg()[0]],
                    "note": _machine_note(load_start, os.getloadavg()[0], os.cpu_count() or 0, note)},
        "settings": {"command": command, "prompt": prompt, "tokens": tokens, "warmup_tokens": WARMUP[1], "rounds": rounds, "wllama": wllama.WLLAMA.version,
                     "node_llama_cpp": llama_cpp.NODE_LLAMA_CPP.version,
                     "stream_mb": STREAM_MB, "stream_seconds": STREAM_SECONDS, "dot_peak": {**DOT_PEAK, "rows": abi.defines()["BN_DOT_PEAK_ROWS"]}, "prefill_tokens": PREFILL_TOKENS},
        "bandwidth": [{"threads": b["threads"], "gbps": b.get("gbps"), "error": b["error"]} for b in bandwidth],
        "compute": [{"threads": c["threads"], "gops": c.get("gops"), "error": c["error"]} for c in compute],
        "models": results_models,
        "notes": NOTES + load_memory.NOTES + _model_notes(results_models),
    }


def _write_page(cache: Path) -> None:
    """The compare page into the cache folder, with the runtime's own enumeration of the dot forms."""
    page_dir = cache / "compare-page"
    shutil.rmtree(page_dir, ignore_errors=True)
    shutil.copytree(PAGE_DIR, page_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(WEB_DIR / "dot_form.js", page_dir)


def _bandwidth(session: _Session, wasm_url: str, threads: int) -> dict:
    got = session.call("bandwidth", {"wasmUrl": wasm_url, "threads": threads, "megabytes": STREAM_MB, "seconds": STREAM_SECONDS})
    return {"gbps": got["gbps"], "rounds": got["rounds"]}


def _compute(session: _Session, wasm_url: str, threads: int) -> dict:
    macs_per_call = 16 * abi.defines()["BN_DOT_PEAK_ROWS"] * (DOT_PEAK["bytes"] // 16) * DOT_PEAK["reps"]
    got = session.call("compute", {"wasmUrl": wasm_url, "threads": threads, "macsPerCall": macs_per_call, **DOT_PEAK})
    return {"gops": got["gops"], "rounds": got["rounds"]}


def _load_and_memory(playwright, session: _Session, model: Prepared, prompt: str, log) -> dict:
    """Issue #12's load and memory measurement of our engine on the model (load_memory.py), or the error that stopped it."""
    return _attempt(f"{model.name}: load and memory", {},
                    lambda: load_memory.measure(playwright, session.page_url, session.url(model.site) + "/", prompt), log)


def write(results: dict, out_dir: Path, log=print) -> dict[str, Path]:
    """benchmarks.json (with the derived ratios), benchmarks.md and, with matplotlib, benchmark.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in OUTPUTS.items()}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("no plot: matplotlib is missing (pip install -e '.[docs]')")
        del paths["plot"]
    paths["json"].write_text(json.dumps(compare_report.derive(results), indent=1) + "\n")
    paths["markdown"].write_text(compare_report.markdown(results, OUTPUTS["plot"] if "plot" in paths else None))
    if "plot" in paths:
        compare_report.plot(results, paths["plot"])
    return paths
