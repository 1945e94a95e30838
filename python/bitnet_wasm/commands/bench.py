"""`bitnet-wasm bench`: measure the kernels (--kernels); each mode is a function in MODES."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bitnet_wasm.bench import kernels
from bitnet_wasm.toolchain import ToolchainError

HELP = "Benchmark the kernels (GEMV per variant, wasm and native, against the read bandwidth)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernels", action="store_true", help="time every bitlinear variant on model-sized GEMVs in wasmtime and natively")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--build-dir", type=Path, default=kernels.DEFAULT_BUILD_DIR, help="where the kernel builds are cached (default: %(default)s)")


def _kernels(args) -> dict:
    return kernels.run(build_dir=args.build_dir, log=None if args.json else kernels.log_to_stderr)


MODES = {"kernels": (_kernels, kernels.table)}  # flag -> (run, format as text)


def main(args) -> int:
    chosen = [mode for mode in MODES if getattr(args, mode)]
    if not chosen:
        print("bitnet-wasm bench: choose what to measure: --kernels", file=sys.stderr)
        return 2
    for mode in chosen:
        run, as_text = MODES[mode]
        try:
            result = run(args)
        except ToolchainError as e:
            print(f"bitnet-wasm bench: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result) if args.json else as_text(result))
    return 0
