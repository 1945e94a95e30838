"""bitnet-wasm demo: build the site for an embedded tiny model (cached) and serve it locally."""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import webbrowser
from pathlib import Path

import bitnet_wasm
from bitnet_wasm import compiler, wasm_kernels, web
from bitnet_wasm.commands.serve import _port
from bitnet_wasm.models import EMBEDDED, EmbeddedModelError, embedded_model_dir
from bitnet_wasm.runtime import CACHE_ENV, cache_dir
from bitnet_wasm.serve import ServeError, SiteServer

HELP = "Build the site for an embedded tiny BitNet model (cached) and serve it in your browser."
SOURCE_PACKAGES = (wasm_kernels, compiler, web)  # what the built site is made from, besides the model
SOURCE_SUFFIXES = {".c", ".h", ".py", ".js", ".ts", ".j2", ".html", ".css"}
DIGEST_FILE = "inputs.sha256"




def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=list(EMBEDDED), default="b1.58", help="which embedded model (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-open", action="store_true", help="do not open a browser")
    parser.add_argument("--cache", type=Path, default=None, help=f"where built sites are kept (default: ${CACHE_ENV} or ~/.cache/bitnet-wasm)")


def inputs_digest(model_dir: Path) -> str:
    """sha256 over the package version, the model's files and the kernel/compiler/web sources."""
    h = hashlib.sha256(f"bitnet-wasm {bitnet_wasm.__version__}\n".encode())
    files = [(f"model/{p.name}", p) for p in sorted(model_dir.iterdir()) if p.is_file()]
    for package in SOURCE_PACKAGES:
        root = Path(package.__path__[0])
        files += [(f"{package.__name__}/{p.relative_to(root)}", p) for p in sorted(root.rglob("*"))
                  if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts]
    for name, path in files:
        h.update(f"{name}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cached_site(model: str, cache: Path) -> Path:
    """The demo site for `model` under cache/demo-<model>/site, rebuilt only when its inputs changed."""
    model_dir = embedded_model_dir(model)
    folder = cache / f"demo-{model}"
    site, digest_file = folder / "site", folder / DIGEST_FILE
    digest = inputs_digest(model_dir)
    if digest_file.is_file() and digest_file.read_text().strip() == digest and (site / "model" / "manifest.json").is_file():
        print(f"using cached site {site}", flush=True)
        return site
    print(f"building {site} from {model_dir} ...", flush=True)
    digest_file.unlink(missing_ok=True)  # written last: an interrupted build is never taken as cached
    shutil.rmtree(site, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    bitnet_wasm.build(model_dir, site, progress=False)
    digest_file.write_text(digest + "\n")
    return site


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
