"""The `bitnet-wasm` command line. Each subcommand lives in bitnet_wasm/commands/<name>.py and
provides HELP, add_arguments(parser) and main(args) -> exit code."""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("build", "run", "serve", "bench", "train", "demo", "export-gguf")  # module: the name with "_" for "-"


def _load(name: str):
    module = f"bitnet_wasm.commands.{name.replace('-', '_')}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitnet-wasm", description="BitNet models as static web sites on WebAssembly SIMD.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    args = parser.parse_args(argv)
    try:
        return args._main(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
