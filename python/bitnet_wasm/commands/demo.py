"""bitnet-wasm demo: build the site for an embedded tiny model (cached) and serve it locally."""
from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from bitnet_wasm.compiler.cache import CACHE_ENV, cache_dir
from bitnet_wasm.demo_site import cached_site
from bitnet_wasm.models import EMBEDDED, EmbeddedModelError
from bitnet_wasm.serve import ServeError, SiteServer, add_address_arguments

HELP = "Build the site for an embedded tiny BitNet model (cached) and serve it in your browser."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=list(EMBEDDED), default="b1.58", help="which embedded model (default: %(default)s)")
    add_address_arguments(parser)
    parser.add_argument("--no-open", action="store_true", help="do not open a browser")
    parser.add_argument("--cache", type=Path, default=None, help=f"where built sites are kept (default: ${CACHE_ENV} or ~/.cache/bitnet-wasm)")


def main(args: argparse.Namespace) -> int:
    try:
        site = cached_site(args.model, args.cache or cache_dir())
        server = SiteServer(site, args.host, args.port, quiet=True)
    except (EmbeddedModelError, ServeError) as e:
        print(f"bitnet-wasm demo: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bitnet-wasm demo: cannot use the cache folder: {e}", file=sys.stderr)
        return 2
    print(f"Serving the {args.model} demo at {server.url} (Ctrl+C to stop)", flush=True)
    if not args.no_open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0
