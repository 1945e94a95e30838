"""bitnet-wasm export-gguf SITE --out FILE.gguf: a built site's weights as a llama.cpp `bitnet` GGUF."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "export a built site's weights as a GGUF of llama.cpp's bitnet architecture (TQ2_0 or TQ1_0 ternary weights)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bitnet_wasm.compiler.gguf_export import WEIGHT_TYPES

    parser.add_argument("site", type=Path, help="a directory made by `bitnet-wasm build`")
    parser.add_argument("--out", required=True, type=Path, help="the GGUF file to write")
    parser.add_argument("--type", choices=list(WEIGHT_TYPES), default="tq2_0",
                        help="GGUF type of the ternary weights (default %(default)s); rows not a multiple of 256 use Q8_0 or F16")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bitnet_wasm.compiler.gguf_export import export_gguf, summary

    bars = []  # the bar starts with the first tensor, so an early error stays one line

    def progress(done: int, total: int, name: str) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="tensor", desc="exporting", disable=args.no_progress))
        bars[0].update(done - bars[0].n)

    try:
        path = export_gguf(args.site, args.out, args.type, progress=progress)
    except (OSError, ValueError) as e:  # GGUFExportError is a ValueError
        print(f"bitnet-wasm export-gguf: {e}", file=sys.stderr)
        return 2
    finally:
        for bar in bars:
            bar.close()
    print(summary(path))
    return 0
