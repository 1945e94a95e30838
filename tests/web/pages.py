"""Helpers for tests that open the generated page, in any engine of bitnet_wasm.bench.engines."""
from __future__ import annotations

READY_OR_ERROR = "() => ['ready', 'error'].includes(document.documentElement.dataset.state)"


def open_ready(page, url: str, timeout_s: float = 60) -> dict:
    """Open the generated page at url; returns window.bitnet.info once ready, else fails with the page's error."""
    page.goto(url)
    page.wait_for(READY_OR_ERROR, timeout_s)
    state, error = page.evaluate("() => [document.documentElement.dataset.state, document.getElementById('error-message').textContent]")
    assert state == "ready", error
    return page.evaluate("() => window.bitnet.info")
