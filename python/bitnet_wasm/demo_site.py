"""The site of an embedded demo model, built into a cache folder and rebuilt only when its inputs change."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import bitnet_wasm
from bitnet_wasm import compiler, wasm_kernels, web
from bitnet_wasm.models import embedded_model_dir

SOURCE_PACKAGES = (wasm_kernels, compiler, web)  # what the built site is made from, besides the model
SOURCE_SUFFIXES = {".c", ".h", ".py", ".js", ".ts", ".j2", ".html", ".css"}
DIGEST_FILE = "inputs.sha256"


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
