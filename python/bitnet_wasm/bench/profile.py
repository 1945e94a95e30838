"""`bitnet-wasm bench SITE --browser --profile`: where a token's time goes. The site's own C
(SITE/model/src, or regenerated from its manifest) is compiled once more with -DBN_PROFILE=1, so that every kernel call of
forward.c also reads the page's clock (OP in templates/forward.c.j2); headless Chromium runs it
on the site's weights (profile_page/profile_worker.js) with the choices the runtime would make (dot form, read-ahead), through the calls the
runtime makes: an untimed prefill, so that the engine's optimizing tier has compiled the kernels, then a timed one and
greedy decode tokens.
The site's own module then runs the same steps and the table gives both totals: the engine's code for the
kernels can move with the code around them (a simd128 profile of the 2B-4T shape that decoded through
bn_model_forward, not bn_model_step, ran 1.2x slower than the site's module)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bitnet_wasm.bench.browser import BrowserBenchError, check_site, kernel_choices_label
from bitnet_wasm.bench.chromium import headless_chromium
from bitnet_wasm.compiler.pipeline import WASM_MODULES
from bitnet_wasm.compiler.site_format import SiteError, read_manifest
from bitnet_wasm.compiler.sources import site_sources
from bitnet_wasm.serve import ISOLATION_HEADERS, ServeError, SiteServer
from bitnet_wasm.wasm_kernels.toolchain import TARGETS, compile_target
from bitnet_wasm.web import WEB_DIR

PAGE = "__profile__/"  # served by the browser context itself (never a file of the site)
PAGE_FILES = Path(__file__).parent / "profile_page"
TIMEOUT_MS = 900_000
PROMPT_TOKENS = 32
DEFAULT_TOKENS = 16
SITE_ROW = "the site's own module, per token"


def module_key(simd: str, threads: int) -> str:
    """The manifest's name (its "wasm" table) of the module the runtime runs for `simd` on `threads`."""
    return simd + ("_threads" if threads > 1 else "")


def profiling_module(site: Path, simd: str, threads: int, out: Path) -> Path:
    """SITE's C with BN_PROFILE on, for `simd` (relaxed | simd128), threaded if threads > 1."""
    try:
        src = site_sources(*read_manifest(site))
    except SiteError as e:
        raise BrowserBenchError(str(e)) from None
    if "bn_profile_ms" not in (src / "forward.c").read_text():
        raise BrowserBenchError(f"{src / 'forward.c'}: has no profiling hooks (built by an older bitnet-wasm); rebuild the site")
    unit = out.parent / "forward_profile.c"
    unit.write_text(f'#define BN_PROFILE 1\n#include "{(src / "forward.c").resolve()}"\n')
    sources = [p for p in sorted(src.glob("*.c")) if p.name != "forward.c"] + [unit]
    return compile_target(TARGETS[WASM_MODULES[module_key(simd, threads)]], sources, out, include_dirs=[src])


def run(site: Path, tokens: int = DEFAULT_TOKENS, threads: int | None = None, simd: str | None = None,
        prompt_tokens: int = PROMPT_TOKENS) -> dict:
    """ms per token of every op of forward.c, for the prefill (per prompt token) and for decoding."""
    check_site(site)
    threads, simd = threads or 1, simd or "relaxed"
    if min(tokens, threads, prompt_tokens) < 1:
        raise BrowserBenchError(f"--tokens, --threads and --prompt-tokens must be at least 1, got {tokens}, {threads} and {prompt_tokens}")
    manifest = json.loads((Path(site) / "model" / "manifest.json").read_text())
    if prompt_tokens + tokens > manifest["plan"]["context"]:
        raise BrowserBenchError(f"{prompt_tokens} prompt + {tokens} new tokens exceed the site's context of {manifest['plan']['context']}")
    site_module = (manifest["wasm"] or {}).get(module_key(simd, threads))
    if site_module is None:
        raise BrowserBenchError(f"{site}: has no {simd} module for {threads} thread(s) to compare the profile with")
    from playwright.sync_api import Error as PlaywrightError
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-profile-") as tmp:
        wasm = profiling_module(site, simd, threads, Path(tmp) / "profile.wasm").read_bytes()
        files = {"index.html": ("text/html", b'<!doctype html><script type="module" src="profile.js"></script>'),
                 "profile.wasm": ("application/wasm", wasm),
                 **{p.name: ("text/javascript", p.read_bytes()) for p in [*PAGE_FILES.glob("*.js"), WEB_DIR / "dot_form.js", WEB_DIR / "read_ahead.js"]}}
        try:
            with SiteServer(site, "127.0.0.1", 0, quiet=True) as server, headless_chromium() as (_, browser):
                context = browser.new_context()
                context.route(server.url + PAGE + "*", lambda route: route.fulfill(
                    status=200, content_type=files[route.request.url.rsplit("/", 1)[1]][0],
                    headers=ISOLATION_HEADERS, body=files[route.request.url.rsplit("/", 1)[1]][1]))
                page = context.new_page()
                page.goto(server.url + PAGE + "index.html")
                page.wait_for_function("() => window.profile !== undefined")
                page.set_default_timeout(TIMEOUT_MS)
                result = page.evaluate("(a) => window.profile(a)", {
                    "manifestUrl": server.url + "model/manifest.json", "wasmUrl": server.url + PAGE + "profile.wasm",
                    "siteWasmUrl": server.url + "model/" + site_module, "simd": simd,
                    "threads": threads, "promptTokens": prompt_tokens, "decodeTokens": tokens})
        except (ServeError, PlaywrightError) as e:
            raise BrowserBenchError(str(e).splitlines()[0]) from e
    return {**result, "simd": simd, "threads": threads, "prompt_tokens": prompt_tokens, "tokens": tokens}


def table(result: dict) -> str:
    """One row per op of forward.c (layer ops summed over the layers), ms per token, largest share first."""
    decode_total, prefill_total, site = sum(result["decode"]), sum(result["prefill"]), result["site"]
    rows = sorted(zip(result["ops"], result["prefill"], result["decode"]), key=lambda row: -row[2])
    lines = [f"profile: {result['simd']} SIMD{kernel_choices_label(result['dotForm'], result['readAhead'])}, {result['threads']} thread(s); prefill of {result['prompt_tokens']} tokens, "
             f"then {result['tokens']} decode tokens; ms per token, each layer op summed over the layers",
             f"{'op':36} {'prefill ms':>10} {'decode ms':>10} {'decode %':>8}"]
    lines += [f"{op:36} {p:10.3f} {d:10.3f} {100 * d / decode_total:8.1f}" for op, p, d in rows]
    lines += [f"{'sum of ops':36} {prefill_total:10.3f} {decode_total:10.3f}",
              f"{'measured per token':36} {result['prefillMsPerToken']:10.3f} {result['decodeMsPerToken']:10.3f}",
              f"{SITE_ROW:36} {site['prefillMsPerToken']:10.3f} {site['decodeMsPerToken']:10.3f}",
              f"decode {1e3 / result['decodeMsPerToken']:.1f} tok/s, prefill {1e3 / result['prefillMsPerToken']:.1f} tok/s (profiling build); "
              f"{1e3 / site['decodeMsPerToken']:.1f} and {1e3 / site['prefillMsPerToken']:.1f} (the site's module)"]
    return "\n".join(lines)
