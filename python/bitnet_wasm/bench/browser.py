"""Browser benchmark: serve a built site, open its page in a browser engine (Chromium, Firefox or
WebKit; bench/engines.py), wait until the model is loaded, then generate greedily through
window.bitnet and read the runtime's own timings, and probe the engine's memory and storage limits."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from bitnet_wasm.bench import engines
from bitnet_wasm.serve import ServeError, SiteServer
from bitnet_wasm.wasm_kernels.abi import dot_form_name

DEFAULT_PROMPT = "The old lighthouse keeper"
DEFAULT_TOKENS = 32
LOAD_TIMEOUT_S = 300
READY_OR_ERROR = "() => ['ready', 'error'].includes(document.documentElement.dataset.state)"

# Runs in the page once data-state is "ready": greedy generation and the page's timing marks.
GENERATE_JS = """async ({prompt, tokens}) => {
  const pieces = [];
  for await (const piece of window.bitnet.generate(prompt, {maxNewTokens: tokens, temperature: 0}))
    pieces.push(piece);
  const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
  const navigation = performance.getEntriesByType("navigation")[0];
  return {
    tokens: pieces.map((p) => p.token), text: pieces.map((p) => p.text).join(""), stats: window.bitnet.lastStats,
    pageLoadMs: navigation.loadEventEnd, loadStartMs: mark("bitnet:load-start"), readyMs: mark("bitnet:ready"),
    info: window.bitnet.info,
  };
}"""


# The largest WebAssembly.Memory (plain and shared) the engine grants, by bisection over 64 KiB
# pages up to wasm32's 4 GiB, and the storage quota it reports.
LIMITS_JS = """async () => {
  const grants = (pages, shared) => { try { new WebAssembly.Memory({ initial: pages, maximum: pages, shared }); return true; } catch { return false; } };
  const largestMiB = (shared) => {
    let lo = 0, hi = 65536;
    while (lo < hi) { const mid = Math.ceil((lo + hi) / 2); if (grants(mid, shared)) lo = mid; else hi = mid - 1; }
    return lo / 16;
  };
  const estimate = await navigator.storage?.estimate?.().catch(() => null);
  return { memoryMiB: largestMiB(false), sharedMemoryMiB: largestMiB(true), sharedArrayBuffer: typeof SharedArrayBuffer === "function",
           storageQuotaMB: estimate ? estimate.quota / 1e6 : null };
}"""


class BrowserBenchError(RuntimeError):
    pass


def check_site(site: Path) -> None:
    if not Path(site).is_dir():
        raise BrowserBenchError(f"{site}: {'is not a folder' if Path(site).exists() else 'does not exist'}")
    if not (Path(site) / "index.html").is_file():
        raise BrowserBenchError(f"{site}: no index.html; is this a folder written by `bitnet-wasm build`?")
    if not (Path(site) / "model" / "manifest.json").is_file():
        raise BrowserBenchError(f"{site}: no model/manifest.json; build the site with `bitnet-wasm build MODEL --out {site}`")


def _measure(page, url: str, prompt: str, tokens: int) -> dict:
    page.goto(url)
    page.wait_for(READY_OR_ERROR, LOAD_TIMEOUT_S)
    state, error = page.evaluate("() => [document.documentElement.dataset.state, document.getElementById('error-message').textContent]")
    if state == "error":
        raise BrowserBenchError(f"the page failed to load the model: {error}")
    return {**page.evaluate(GENERATE_JS, {"prompt": prompt, "tokens": tokens}), "limits": page.evaluate(LIMITS_JS)}


def page_query(threads: int | None, simd: str | None) -> str:
    """The page's load options (page.js reads them from the URL)."""
    options = {name: value for name, value in (("threads", threads), ("simd", simd)) if value is not None}
    return "?" + urlencode(options) if options else ""


def run(site: Path, prompt: str = DEFAULT_PROMPT, tokens: int = DEFAULT_TOKENS, threads: int | None = None, simd: str | None = None,
        engine: str = "chromium") -> dict:
    """The benchmark as data: tokens, text, load_s (navigation to model ready), page_load_s,
    weight_load_s, ttft_s, prefill/decode tokens per second, the runtime's info (threads and simd
    actually used), the engine's name and version and its limits. threads / simd: as BitNet.load's
    options; None: the runtime's default."""
    if tokens < 1:
        raise BrowserBenchError(f"--tokens must be at least 1, got {tokens}")
    if threads is not None and threads < 1:
        raise BrowserBenchError(f"--threads must be at least 1, got {threads}")
    check_site(site)
    try:
        with SiteServer(site, "127.0.0.1", 0, quiet=True) as server, engines.launch(engine) as browser, browser.new_page() as page:
            raw = _measure(page, server.url + page_query(threads, simd), prompt, tokens)
            version = browser.version
    except (ServeError, engines.EngineError, TimeoutError) as e:
        raise BrowserBenchError(str(e).splitlines()[0]) from e
    stats = raw["stats"]
    return {
        "engine": engine, "browser": version,
        "tokens": raw["tokens"], "text": raw["text"],
        "load_s": raw["readyMs"] / 1e3, "page_load_s": raw["pageLoadMs"] / 1e3,
        "weight_load_s": (raw["readyMs"] - raw["loadStartMs"]) / 1e3,
        "ttft_s": stats["ttftSeconds"], "prompt_tokens": stats["promptTokens"],
        "prefill_tokens_per_second": stats["prefillTokensPerSecond"],
        "decode_tokens_per_second": stats["decodeTokensPerSecond"],
        "info": raw["info"], "limits": raw["limits"],
    }


def kernel_choices_label(dot_form: int | None, read_ahead: bool | None) -> str:
    """The choices the runtime made by speed at load, as " (i16 dot, no read-ahead)"; None: not made (or not reported)."""
    choices = ([f"{dot_form_name(dot_form)} dot"] if dot_form is not None else []) + \
              ([] if read_ahead is None else ["read-ahead" if read_ahead else "no read-ahead"])
    return f" ({', '.join(choices)})" if choices else ""


def table(result: dict) -> str:
    info, limits = result["info"], result["limits"]
    quota = "unknown" if limits["storageQuotaMB"] is None else f"{limits['storageQuotaMB']:,.0f} MB"
    return "\n".join([
        f"engine: {result['engine']} ({result['browser']})",
        f"limits: WebAssembly.Memory up to {limits['memoryMiB']:,.0f} MiB, shared {limits['sharedMemoryMiB']:,.0f} MiB"
        f" (SharedArrayBuffer {'yes' if limits['sharedArrayBuffer'] else 'no'}), storage quota {quota}",
        f"browser: {info.get('simd')} SIMD{kernel_choices_label(info.get('dotForm'), info.get('readAhead'))}, {info.get('threads')} thread(s), cross-origin isolated: {info.get('crossOriginIsolated')}"
        + (f" (single thread: {info['threadsFallback']})" if info.get("threadsFallback") else ""),
        f"page load      {result['page_load_s']:8.3f} s",
        f"weight load    {result['weight_load_s']:8.3f} s",
        f"ready after    {result['load_s']:8.3f} s",
        f"first token    {result['ttft_s']:8.3f} s ({result['prompt_tokens']} prompt tokens)",
        f"prefill        {result['prefill_tokens_per_second']:8.1f} tok/s",
        f"decode         {result['decode_tokens_per_second']:8.1f} tok/s",
        f"tokens         {result['tokens']}",
        f"text           {result['text']!r}",
    ])
