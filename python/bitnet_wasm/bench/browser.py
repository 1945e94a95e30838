"""Browser benchmark: serve a built site, open its page in headless Chromium (Playwright), wait
until the model is loaded, then generate greedily through window.bitnet and read the runtime's
own timings."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

from bitnet_wasm.serve import ServeError, SiteServer

SYSTEM_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DEFAULT_PROMPT = "The old lighthouse keeper"
DEFAULT_TOKENS = 32
LOAD_TIMEOUT_MS = 300_000

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


class BrowserBenchError(RuntimeError):
    pass


def chromium_executable(playwright) -> str:
    """Playwright's own Chromium if installed, else Debian's; a clear error if neither exists."""
    bundled = playwright.chromium.executable_path
    for candidate in (bundled, SYSTEM_CHROMIUM):
        if candidate and os.path.exists(candidate):
            return candidate
    raise BrowserBenchError(f"no Chromium found (looked for {bundled} and {SYSTEM_CHROMIUM}); install one with "
                            "`apt-get install -y chromium` (Debian/Ubuntu) or `playwright install chromium`")


def check_site(site: Path) -> None:
    if not Path(site).is_dir():
        raise BrowserBenchError(f"{site}: {'is not a folder' if Path(site).exists() else 'does not exist'}")
    if not (Path(site) / "index.html").is_file():
        raise BrowserBenchError(f"{site}: no index.html; is this a folder written by `bitnet-wasm build`?")
    if not (Path(site) / "model" / "manifest.json").is_file():
        raise BrowserBenchError(f"{site}: no model/manifest.json; build the site with `bitnet-wasm build MODEL --out {site}`")


def _measure(page, url: str, prompt: str, tokens: int) -> dict:
    page.goto(url)
    page.wait_for_function("() => ['ready', 'error'].includes(document.documentElement.dataset.state)", timeout=LOAD_TIMEOUT_MS)
    if page.evaluate("document.documentElement.dataset.state") == "error":
        raise BrowserBenchError(f"the page failed to load the model: {page.text_content('#error-message')}")
    return page.evaluate(GENERATE_JS, {"prompt": prompt, "tokens": tokens})


def page_query(threads: int | None, simd: str | None) -> str:
    """The page's load options (page.js reads them from the URL)."""
    options = {name: value for name, value in (("threads", threads), ("simd", simd)) if value is not None}
    return "?" + urlencode(options) if options else ""


def run(site: Path, prompt: str = DEFAULT_PROMPT, tokens: int = DEFAULT_TOKENS, threads: int | None = None, simd: str | None = None) -> dict:
    """The benchmark as data: tokens, text, load_s (navigation to model ready), page_load_s,
    weight_load_s, ttft_s, prefill/decode tokens per second, and the runtime's info (threads and
    simd actually used). threads / simd: as BitNet.load's options; None: the runtime's default."""
    if tokens < 1:
        raise BrowserBenchError(f"--tokens must be at least 1, got {tokens}")
    if threads is not None and threads < 1:
        raise BrowserBenchError(f"--threads must be at least 1, got {threads}")
    check_site(site)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserBenchError("Playwright is not installed: pip install playwright (the browser itself: apt-get install -y chromium)") from None
    try:
        with SiteServer(site, "127.0.0.1", 0, quiet=True) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_executable(p), args=CHROMIUM_ARGS, headless=True)
            try:
                raw = _measure(browser.new_context().new_page(), server.url + page_query(threads, simd), prompt, tokens)
            finally:
                browser.close()
    except (ServeError, PlaywrightError) as e:
        raise BrowserBenchError(str(e).splitlines()[0]) from e
    stats = raw["stats"]
    return {
        "tokens": raw["tokens"], "text": raw["text"],
        "load_s": raw["readyMs"] / 1e3, "page_load_s": raw["pageLoadMs"] / 1e3,
        "weight_load_s": (raw["readyMs"] - raw["loadStartMs"]) / 1e3,
        "ttft_s": stats["ttftSeconds"], "prompt_tokens": stats["promptTokens"],
        "prefill_tokens_per_second": stats["prefillTokensPerSecond"],
        "decode_tokens_per_second": stats["decodeTokensPerSecond"],
        "info": raw["info"],
    }


def table(result: dict) -> str:
    info = result["info"]
    return "\n".join([
        f"browser: {info.get('simd')} SIMD, {info.get('threads')} thread(s), cross-origin isolated: {info.get('crossOriginIsolated')}"
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
