"""A PNG of the demo page after generating through its UI in headless Chromium.

    python scripts/screenshot.py --site SITE --prompt "The old lighthouse keeper" --out docs/screenshot.png
    python scripts/screenshot.py --model MODEL_DIR --prompt "..."      # builds the site first (temporary folder)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import bitnet_wasm
from bitnet_wasm.bench.chromium import CHROMIUM_ARGS, chromium_executable
from bitnet_wasm.serve import SiteServer

STATE_IS = "(states) => states.includes(document.documentElement.dataset.state)"
GENERATED = "() => document.documentElement.dataset.state !== 'generating' && document.getElementById('stats').textContent.includes('decode')"
TIMEOUT_MS = 120_000


def screenshot(site: Path, prompt: str, tokens: int, temperature: float, out: Path) -> str:
    """Loads the page, generates through the form, saves the PNG; returns the generated text."""
    with SiteServer(site, "127.0.0.1", 0, quiet=True) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(p), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
            page.goto(server.url)
            page.wait_for_function(STATE_IS, arg=["ready", "error"], timeout=TIMEOUT_MS)
            if page.evaluate("document.documentElement.dataset.state") == "error":
                raise SystemExit(f"the page failed to load the model: {page.text_content('#error-message')}")
            page.fill("#prompt", prompt)
            page.fill("#max-tokens", str(tokens))
            page.fill("#temperature", str(temperature))
            page.click("#generate")
            page.wait_for_function(GENERATED, timeout=TIMEOUT_MS)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            return page.text_content("#output")
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--site", type=Path, help="a folder written by `bitnet-wasm build`")
    source.add_argument("--model", type=Path, help="a model folder to build a site from first")
    parser.add_argument("--prompt", default="The old lighthouse keeper")
    parser.add_argument("--tokens", type=int, default=60, help="new tokens (default 60)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            bitnet_wasm.build(args.model, site, progress=False)
        if not (site / "index.html").is_file():
            raise SystemExit(f"--site {site}: no index.html; build it with `bitnet-wasm build MODEL --out {site}`")
        text = screenshot(site, args.prompt, args.tokens, args.temperature, args.out)
    print(f"wrote {args.out}; generated: {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
