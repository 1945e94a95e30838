"""bitnet-wasm serve SITE: serve a built site locally with the headers the page needs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bitnet_wasm.serve import ServeError, SiteServer

HELP = "Serve a built site folder over HTTP (wasm MIME type, COOP/COEP headers, nothing outside SITE)."


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 = any free port)")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, metavar="SITE", help="the folder `bitnet-wasm build` wrote")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")


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
