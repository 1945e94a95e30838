#!/usr/bin/env python3
"""Build the kernel library from wasm_kernels/: bitnet.wasm (SIMD128), bitnet-relaxed.wasm
(+ relaxed SIMD) and the native shared libraries of the same C, into build/ (or --out)."""
import argparse
import sys
import time
from pathlib import Path

from bitnet_wasm.wasm_kernels.toolchain import TARGETS, ToolchainError, build_kernels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "build")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    args = ap.parse_args()
    t0 = time.perf_counter()
    try:
        built = build_kernels(args.out, args.target)
    except ToolchainError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 1
    for name, path in built.items():
        print(f"{name:15s} {path}  {path.stat().st_size / 1024:.1f} KB")
    print(f"built in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
