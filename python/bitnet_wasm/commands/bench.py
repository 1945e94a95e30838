"""`bitnet-wasm bench`: measure the kernels (--kernels) or a built site in headless Chromium
(SITE --browser); each mode is a function in MODES."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bitnet_wasm.bench import browser, kernels
from bitnet_wasm.toolchain import ToolchainError

HELP = "Benchmark the kernels (GEMV per variant, wasm and native, against the read bandwidth) or a built site in a browser."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, nargs="?", metavar="SITE", help="a folder written by `bitnet-wasm build` (for --browser)")
    parser.add_argument("--kernels", action="store_true", help="time every bitlinear variant on model-sized GEMVs in wasmtime and natively")
    parser.add_argument("--browser", action="store_true", help="load SITE in headless Chromium and time loading, prefill and greedy decoding")
    parser.add_argument("--prompt", default=browser.DEFAULT_PROMPT, help="prompt for --browser (default: %(default)r)")
    parser.add_argument("--tokens", type=int, default=browser.DEFAULT_TOKENS, help="new tokens for --browser (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="threads for --browser (default: the runtime's, min(cores, 4) where the page is isolated)")
    parser.add_argument("--simd", choices=["relaxed", "simd128"], help="force the module variant for --browser (default: relaxed where valid)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--build-dir", type=Path, default=kernels.DEFAULT_BUILD_DIR, help="where the kernel builds are cached (default: %(default)s)")


def _kernels(args) -> dict:
    return kernels.run(build_dir=args.build_dir, log=None if args.json else kernels.log_to_stderr)


def _browser(args) -> dict:
    if args.site is None:
        raise browser.BrowserBenchError("--browser needs SITE: bitnet-wasm bench SITE --browser")
    return browser.run(args.site, prompt=args.prompt, tokens=args.tokens, threads=args.threads, simd=args.simd)


MODES = {"kernels": (_kernels, kernels.table), "browser": (_browser, browser.table)}  # flag -> (run, format as text)


def main(args) -> int:
    chosen = [mode for mode in MODES if getattr(args, mode)]
    if not chosen:
        print("bitnet-wasm bench: choose what to measure: --kernels or SITE --browser", file=sys.stderr)
        return 2
    for mode in chosen:
        run, as_text = MODES[mode]
        try:
            result = run(args)
        except (ToolchainError, browser.BrowserBenchError) as e:
            print(f"bitnet-wasm bench: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result) if args.json else as_text(result))
    return 0
