"""The site's C: the kernels it was compiled with, forward.c and model.h. The build records their
digest in the manifest and ships them as SITE/model/src/ only when asked (`--sources`); a reader
that needs them (the Python runtime, the profiler) takes that folder, or regenerates the C from the
manifest, and uses it only if its digest is the one the site's wasm was built from."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.compiler.codegen import generate, write_sources
from bitnet_wasm.compiler.graph import BINARY_LAYOUT, BuildOptions
from bitnet_wasm.compiler.plan import plan_model
from bitnet_wasm.compiler.site_format import SiteError

SOURCES_DIR = "src"  # SITE/model/src/ when the site ships its C


def digest(src_dir: Path) -> str:
    """sha256 over the names and bytes of the C files of src_dir (manifest["sources"]["sha256"])."""
    h = hashlib.sha256()
    for path in sorted(Path(src_dir).glob("*.[ch]")):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def write(graph, plan, src_dir: Path) -> str:
    """The C of `graph` laid out by `plan` into src_dir; returns its digest."""
    write_sources(Path(src_dir), *generate(graph, plan))
    return digest(src_dir)


def _build_inputs(manifest: dict) -> tuple[ModelConfig, BuildOptions, bool]:
    """(config, options, binary) the build planned the model with, read back from its manifest."""
    config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["model"].items()})
    built = manifest["build"]
    shapes = manifest["kernels"]["shapes"]
    layouts = tuple((tuple(int(d) for d in key.split("x")), row["choice"]) for key, row in shapes.items())
    options = BuildOptions(**{f.name: built[f.name] for f in dataclasses.fields(BuildOptions) if f.name in built},
                           shape_layouts=layouts)
    return config, options, bool(layouts) and all(layout == BINARY_LAYOUT for _, layout in layouts)


def regenerate(manifest: dict, src_dir: Path) -> str:
    """The site's C, generated again from its manifest into src_dir; returns its digest."""
    graph, plan = plan_model(*_build_inputs(manifest))
    return write(graph, plan, src_dir)


def site_sources(model_dir: Path, manifest: dict) -> Path:
    """A folder holding the site's C, checked against the manifest's digest: SITE/model/src/ if the
    site ships it, else the C regenerated from the manifest (kept in the cache folder)."""
    expected = manifest["sources"]["sha256"]
    shipped = Path(model_dir) / manifest["sources"]["dir"] if manifest["sources"]["dir"] else None
    if shipped is not None and shipped.is_dir():
        if digest(shipped) != expected:
            raise SiteError(f"{shipped}: the C here differs from what the site was built from (its sha256 is not the manifest's "
                            "sources.sha256); rebuild the site, or delete the folder to have it regenerated")
        return shipped
    cached = cache_dir() / f"sources-{expected[:16]}"
    if cached.is_dir() and digest(cached) == expected:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        try:
            got = regenerate(manifest, Path(tmp) / SOURCES_DIR)
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise SiteError(f"{model_dir}: the site's C cannot be regenerated from its manifest ({type(e).__name__}: {e}); "
                            "rebuild the site with this version of bitnet-wasm, or with --sources") from None
        if got != expected:
            raise SiteError(f"{model_dir}: the C this bitnet-wasm generates from the manifest differs from what the site was built from "
                            f"(by bitnet-wasm {manifest['build'].get('bitnet_wasm', '?')}); rebuild the site with this version, "
                            "or build it with --sources to ship its C")
        shutil.rmtree(cached, ignore_errors=True)
        try:
            os.replace(Path(tmp) / SOURCES_DIR, cached)
        except OSError:  # a concurrent reader put the same folder there first
            pass
    return cached
