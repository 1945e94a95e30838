"""bitnet-wasm: BitNet models as static web sites running on WebAssembly SIMD."""

import importlib.metadata

__version__ = importlib.metadata.version("bitnet-wasm")  # pyproject.toml holds it
__all__ = ["build", "load"]


def build(model_path, out_dir, **options):
    """Compile a checkpoint directory into a site in out_dir; returns the manifest's path.
    options: context, shard_mb, embed ("auto" | "f16" | "q8" | "q7" | "q4"), layout ("auto" | "mad" | "lut"), chunk, wasm, progress."""
    from bitnet_wasm.compiler.pipeline import build as build_site

    return build_site(model_path, out_dir, **options)


def load(site_dir, backend: str = "native"):
    """The site's model, run by its own compiled forward pass: a bitnet_wasm.runtime.Model."""
    from bitnet_wasm.runtime import load as load_site

    return load_site(site_dir, backend)
