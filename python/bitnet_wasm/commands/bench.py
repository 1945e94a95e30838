"""`bitnet-wasm bench`: measure the kernels (--kernels), a built site in a browser engine
(SITE --browser [--engine E]), or our engine against wllama and the roofline (--compare); each mode is a
function in MODES."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bitnet_wasm.bench import browser, compare, compare_report, engines, kernels, profile
from bitnet_wasm.bench.wllama import WllamaUnavailable
from bitnet_wasm.wasm_kernels.toolchain import ToolchainError

HELP = ("Benchmark the kernels (GEMV per variant, wasm and native, against the read bandwidth), a built site in a browser, "
        "or bitnet-wasm against wllama (llama.cpp) in one browser session (--compare).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, nargs="?", metavar="SITE", help="a folder written by `bitnet-wasm build` (for --browser)")
    parser.add_argument("--kernels", action="store_true", help="time every bitlinear variant on model-sized GEMVs in wasmtime and natively")
    parser.add_argument("--browser", action="store_true", help="load SITE in a browser (--engine) and time loading, prefill and greedy decoding")
    parser.add_argument("--engine", choices=list(engines.ENGINES), default="chromium",
                        help="browser engine for --browser: Chromium, Firefox ESR or WebKitGTK (Safari's engine) (default: %(default)s)")
    parser.add_argument("--profile", action="store_true", help="with --browser: ms per token of every kernel call of the forward pass "
                        "(a profiling build of SITE's C, in Chromium, then the same steps on the site's own module; --threads default 1, --tokens decode tokens)")
    parser.add_argument("--compare", action="store_true", help="bitnet-wasm vs wllama, read-bandwidth roofline, native build and native llama.cpp, "
                        "on --models; writes benchmarks.json, benchmarks.md and benchmark.png to --out")
    parser.add_argument("--prompt", help=f"prompt (default for --browser: {browser.DEFAULT_PROMPT!r}; for --compare: two sentences)")
    parser.add_argument("--prompt-tokens", type=int, metavar="N",
                        help=f"with --profile: tokens of the profiled prompt (default: {profile.PROMPT_TOKENS}; attention's share grows with it)")
    parser.add_argument("--tokens", type=int, help=f"new tokens (default: {browser.DEFAULT_TOKENS} for --browser, {compare.DEFAULT_TOKENS} for --compare)")
    parser.add_argument("--threads", type=int, help="threads for --browser (default: the runtime's, min(cores, 4) where the page is isolated)")
    parser.add_argument("--simd", choices=["relaxed", "simd128"], help="force the module variant for --browser (default: relaxed where valid)")
    parser.add_argument("--models", default=",".join(compare.DEFAULT_MODELS),
                        help=f"for --compare: comma-separated, from {','.join(compare.MODELS)} (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="for --compare: folder of the results (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=compare.DEFAULT_ROUNDS,
                        help="for --compare: turns of our relaxed rows and wllama's, each row the median of its rounds (default: %(default)s)")
    parser.add_argument("--note", default="", help="for --compare: a sentence about the machine for the report (e.g. what else ran)")
    parser.add_argument("--cache", type=Path, help="for --compare: where models, sites, GGUF files, wllama and node-llama-cpp are kept "
                        "(default: $BITNET_WASM_CACHE or ~/.cache/bitnet-wasm)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--build-dir", type=Path, default=kernels.DEFAULT_BUILD_DIR, help="where the kernel builds are cached (default: %(default)s)")


def _kernels(args) -> dict:
    return kernels.run(build_dir=args.build_dir, log=None if args.json else kernels.log_to_stderr)


def _browser(args) -> dict:
    if args.site is None:
        raise browser.BrowserBenchError("--browser needs SITE: bitnet-wasm bench SITE --browser")
    if args.profile:
        if args.engine != "chromium":
            raise browser.BrowserBenchError(f"--profile runs in Chromium only (it serves its page through Playwright), not --engine {args.engine}")
        return profile.run(args.site, tokens=profile.DEFAULT_TOKENS if args.tokens is None else args.tokens, threads=args.threads, simd=args.simd,
                           prompt_tokens=profile.PROMPT_TOKENS if args.prompt_tokens is None else args.prompt_tokens)
    if args.prompt_tokens is not None:
        raise browser.BrowserBenchError("--prompt-tokens is for --profile (--browser times the text of --prompt)")
    return browser.run(args.site, prompt=args.prompt or browser.DEFAULT_PROMPT,
                       tokens=browser.DEFAULT_TOKENS if args.tokens is None else args.tokens, threads=args.threads, simd=args.simd,
                       engine=args.engine)


def _compare(args) -> dict:
    log = (lambda message: None) if args.json else kernels.log_to_stderr
    results = compare.run([m for m in args.models.split(",") if m], prompt=args.prompt or compare.DEFAULT_PROMPT,
                          tokens=compare.DEFAULT_TOKENS if args.tokens is None else args.tokens, cache=args.cache, note=args.note, rounds=args.rounds, log=log)
    for path in compare.write(results, args.out, log).values():
        log(f"wrote {path}")
    return results


def _compare_text(results: dict) -> str:
    return compare_report.markdown(results, plot_file=None)


def _browser_text(result: dict) -> str:
    return profile.table(result) if "ops" in result else browser.table(result)


MODES = {"kernels": (_kernels, kernels.table), "browser": (_browser, _browser_text),  # flag -> (run, format as text)
         "compare": (_compare, _compare_text)}


def main(args) -> int:
    chosen = [mode for mode in MODES if getattr(args, mode)]
    if not chosen:
        print("bitnet-wasm bench: choose what to measure: --kernels, SITE --browser or --compare", file=sys.stderr)
        return 2
    for mode in chosen:
        run, as_text = MODES[mode]
        try:
            result = run(args)
        except (ToolchainError, browser.BrowserBenchError, compare.CompareError, engines.EngineError, WllamaUnavailable, OSError) as e:
            print(f"bitnet-wasm bench: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result) if args.json else as_text(result))
    return 0
