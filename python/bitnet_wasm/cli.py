"""The `bitnet-wasm` command line. Each subcommand lives in a module of bitnet_wasm/commands/ (SUBCOMMANDS) and
provides HELP, add_arguments(parser) and main(args) -> exit code."""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {  # command -> module in bitnet_wasm/commands/
    "build": "build_site", "run": "run", "serve": "serve", "bench": "bench", "train": "train", "demo": "demo",
    "export-gguf": "export_gguf",
}


def _load(name: str):
    module = f"bitnet_wasm.commands.{SUBCOMMANDS[name]}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitnet-wasm", description="BitNet models as static web sites on WebAssembly SIMD.")
    parser.add_argument("--debug", action="store_true", help="on an unexpected error, show the Python traceback")
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
    except Exception as e:  # each command reports the errors it expects; anything else still gets one line
        if args.debug:
            raise
        print(f"bitnet-wasm {args.command}: {type(e).__name__}: {e} (an unexpected error: please report it; "
              f"`bitnet-wasm --debug {args.command} ...` shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
