"""bitnet-wasm serve SITE: serve a built site locally with the headers the page needs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bitnet_wasm.compiler.site_format import MANIFEST, MODEL_DIR
from bitnet_wasm.serve import ServeError, SiteServer, add_address_arguments

HELP = "Serve a built site folder over HTTP (wasm MIME type, COOP/COEP headers, byte ranges, nothing outside SITE)."

NOT_A_SITE = (  # (what the folder holds instead, what to tell the user), first match wins
    (lambda folder: folder.name == MODEL_DIR and (folder / MANIFEST).is_file(),
     "is the model folder inside a site; serve the site itself: bitnet-wasm serve {parent}"),
    (lambda folder: (folder / "config.json").is_file(),
     "is a model checkpoint, not a site; build one first: bitnet-wasm build {folder} --out SITE, then bitnet-wasm serve SITE"),
    (lambda folder: True,
     f"is not a site (no {MODEL_DIR}/{MANIFEST}); build one with `bitnet-wasm build MODEL --out {{folder}}`, or pass the folder build wrote"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, metavar="SITE", help="the folder `bitnet-wasm build` wrote")
    add_address_arguments(parser)
    parser.add_argument("--cors", action="store_true",
                        help="let pages of other origins import the runtime and fetch the model (Access-Control-Allow-Origin: *)")


def site_problem(site: Path) -> str | None:
    """Why SITE is not a folder `bitnet-wasm build` wrote, with what to do instead; None if it is one."""
    if not site.is_dir() or (site / MODEL_DIR / MANIFEST).is_file():
        return None  # SiteServer names a missing folder itself
    return next(f"{site} {advice.format(folder=site, parent=site.parent)}" for holds, advice in NOT_A_SITE if holds(site))


def main(args: argparse.Namespace) -> int:
    try:
        if problem := site_problem(args.site):
            raise ServeError(problem)
        server = SiteServer(args.site, args.host, args.port, cors=args.cors)
    except ServeError as e:
        print(f"bitnet-wasm serve: {e}", file=sys.stderr)
        return 2
    print(f"Serving {args.site} at {server.url}{' for every origin (CORS)' if args.cors else ''} (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
