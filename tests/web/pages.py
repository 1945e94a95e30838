"""Helpers for tests that open the generated page, in any engine of bitnet_wasm.bench.engines."""
from __future__ import annotations

from dataclasses import dataclass

READY_OR_ERROR = "() => ['ready', 'error'].includes(document.documentElement.dataset.state)"
PROGRESS = "() => document.getElementById('download-text').textContent"


@dataclass(frozen=True)
class Features:
    """What the engine installed here gives a site, measured (README, Browser engines)."""
    simd: str       # the module variant it picks by default
    threads: bool   # wasm threads over a shared memory where the page is cross-origin isolated
    persistent_cache: bool  # Cache Storage outlives the worker that filled it (WebKitGTK's ephemeral WebDriver session: no)


FEATURES = {
    "chromium": Features(simd="relaxed", threads=True, persistent_cache=True),
    "firefox": Features(simd="relaxed", threads=True, persistent_cache=True),
    "webkit": Features(simd="simd128", threads=False, persistent_cache=False),
}


def open_ready(page, url: str, timeout_s: float = 60) -> dict:
    """Open the generated page at url; returns window.bitnet.info once ready, else fails with the page's error."""
    page.goto(url)
    try:
        page.wait_for(READY_OR_ERROR, timeout_s)
    except TimeoutError as e:  # say how far loading got
        raise AssertionError(f"{e}; the page shows {page.evaluate(PROGRESS)!r}") from None
    state, error = page.evaluate("() => [document.documentElement.dataset.state, document.getElementById('error-message').textContent]")
    assert state == "ready", error
    return page.evaluate("() => window.bitnet.info")
