"""bitnet-wasm serve SITE: serve a built site locally with the headers the page needs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bitnet_wasm.serve import ServeError, SiteServer, add_address_arguments

HELP = "Serve a built site folder over HTTP (wasm MIME type, COOP/COEP headers, nothing outside SITE)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, metavar="SITE", help="the folder `bitnet-wasm build` wrote")
    add_address_arguments(parser)


def main(args: argparse.Namespace) -> int:
    try:
        server = SiteServer(args.site, args.host, args.port)
    except ServeError as e:
        print(f"bitnet-wasm serve: {e}", file=sys.stderr)
        return 2
    print(f"Serving {args.site} at {server.url} (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
