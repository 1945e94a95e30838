"""How many threaded pages one Firefox opens before a page's threaded module no longer starts.

Opens and closes pages of a small threaded site in ONE Firefox (no relaunch), each waiting until
the page is ready with the threads asked for; prints the page count at the first stall (a page not
ready within --timeout), or that none stalled.

    python scripts/firefox_threaded_pages.py --pages 60 [--threads 2] [--site DIR] [--generate TOKENS]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))
import bitnet_wasm
from bitnet_wasm.bench import firefox
from bitnet_wasm.compiler.writers import write_bitnet_packed
from bitnet_wasm.serve import SiteServer
from pages import PROGRESS, READY_OR_ERROR

GENERATE = """async (tokens) => {
  for await (const piece of window.bitnet.generate("Once upon a time", { maxNewTokens: tokens, temperature: 0 }));
}"""


def small_site(root: Path) -> Path:
    write_bitnet_packed(root / "checkpoint", hidden=64, layers=2, vocab=320, seed=5)
    bitnet_wasm.build(root / "checkpoint", root / "site", shard_mb=0.01, layout="mad", progress=False)
    return root / "site"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60, help="seconds a page may take to be ready")
    parser.add_argument("--site", type=Path, help="a built site (default: a small one built here)")
    parser.add_argument("--generate", type=int, default=0, help="greedy tokens each page generates before it closes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        site = args.site or small_site(Path(tmp))
        server = SiteServer(site, "127.0.0.1", 0, quiet=True).start()
        engine = firefox.launch()
        print(engine.version, flush=True)
        try:
            for n in range(1, args.pages + 1):
                started = time.monotonic()
                page = engine.new_page()
                try:
                    page.goto(f"{server.url}?threads={args.threads}")
                    try:
                        page.wait_for(READY_OR_ERROR, args.timeout)
                    except TimeoutError:
                        print(f"STALL at page {n}: not ready within {args.timeout} s, the page shows {page.evaluate(PROGRESS)!r}", flush=True)
                        return 1
                    info = page.evaluate("() => window.bitnet?.info ?? document.getElementById('error-message').textContent")
                    if not isinstance(info, dict) or info["threads"] != args.threads:
                        print(f"page {n}: not threaded: {info}", flush=True)
                        return 1
                    if args.generate:
                        page.evaluate(GENERATE, args.generate)
                finally:
                    page.close()
                print(f"page {n}: ready, {info['threads']} threads, {time.monotonic() - started:.1f} s", flush=True)
            print(f"no stall in {args.pages} pages", flush=True)
            return 0
        finally:
            engine.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
