"""bitnet-wasm build MODEL --out SITE: a checkpoint becomes a static site."""
from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from pathlib import Path

HELP = "compile a BitNet checkpoint into a site: wasm forward pass, weight shards, manifest"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bitnet_wasm.compiler.graph import AUTO, EMBED_CHOICES, KV_CACHES, LAYOUT_CHOICES, Q7_FROM_VOCAB

    parser.add_argument("model", help="a local Hugging Face model directory, a GGUF file, or a hub id (downloaded when online)")
    parser.add_argument("--out", required=True, type=Path, help="site directory (the model goes to OUT/model/)")
    parser.add_argument("--context", type=int, help="KV cache length in tokens (default: min(model max, 2048))")
    parser.add_argument("--shard-mb", type=float, default=32, help="weight shard size in MiB (default 32)")
    parser.add_argument("--embed", choices=list(EMBED_CHOICES), default=AUTO,
                        help=f"embedding/head storage: f16, q8 (int8, half the bytes), q7 (7-bit through the relaxed dot), "
                        f"q4 (4-bit, a scale per 64 columns: a quarter of the bytes, moves the loss more; opt-in); "
                        f"auto (default): q7 from a vocabulary of {Q7_FROM_VOCAB} on, else f16")
    parser.add_argument("--kv", choices=list(KV_CACHES), default="f16",
                        help="KV cache type: f16 (default, half the memory) or f32 (exact: logits as transformers float32)")
    parser.add_argument("--layout", choices=list(LAYOUT_CHOICES), default=AUTO,
                        help="ternary weight layout; auto (default): mad, the fastest in relaxed-SIMD browsers; "
                             "measured: per matrix shape, the fastest of mad and lut timed here in wasmtime")
    parser.add_argument("--chunk", type=int, default=32, help="most tokens per forward step while prefilling")
    parser.add_argument("--coi-service-worker", action="store_true",
                        help="the page registers a service worker adding the COOP/COEP headers multi-threading needs "
                             "(for static hosts that cannot set headers, e.g. GitHub Pages; the first visit reloads once)")
    parser.add_argument("--sources", action="store_true",
                        help="also ship the model's generated C (OUT/model/src/) and wasm modules that export every kernel "
                             "function, for debugging, profiling and kernel tests; visitors need neither (default: left out)")
    parser.add_argument("--no-page", action="store_true", help="the model folder alone (OUT/model/), without index.html and the JS runtime")
    parser.add_argument("--force", action="store_true", help="build into OUT even if it holds files that are not a bitnet-wasm site")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_model(name: str) -> Path:
    """A local directory or GGUF file as is; a hub id through huggingface_hub (its cache, when online)."""
    path = Path(name)
    if path.is_file() and path.name == "config.json":
        raise ValueError(f"{name}: pass the model folder, not its config.json: bitnet-wasm build {path.parent} --out SITE")
    if path.exists() or not HUB_ID.fullmatch(name) or path.parent.is_dir() and path.parent != Path("."):
        if not path.is_dir() and not path.is_file():
            raise FileNotFoundError(f"{name}: no such model directory or GGUF file")
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"{name}: not a local directory, and huggingface_hub is not installed to download it") from None
    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "tokenizer*"]))
    except Exception as e:  # offline, unknown repo, gated: all end the same way for the user
        raise FileNotFoundError(f"{name}: not a local directory, and downloading it from the Hugging Face hub failed "
                                f"({type(e).__name__}: {e}); pass a local model directory") from None


def check_out(out: Path, model: Path, force: bool) -> None:
    """Refuse to write where the build could destroy work: into the model folder (or around it), or
    into a folder with other files than an earlier site's, unless forced."""
    out, model = out.resolve(), model.resolve()
    if out == model or model in out.parents or out in model.parents:
        raise ValueError(f"--out {out}: the site would be written into or around the model folder {model}; choose another folder")
    if out.is_file():
        raise ValueError(f"--out {out}: is a file; choose a folder")
    earlier_site = (out / "model" / "manifest.json").is_file()
    if out.is_dir() and any(out.iterdir()) and not earlier_site and not force:
        raise ValueError(f"--out {out}: the folder is not empty and holds no bitnet-wasm site; the build would overwrite its files "
                         "(index.html, *.js, model/). Choose an empty or new folder, or pass --force")


def main(args: argparse.Namespace) -> int:
    from bitnet_wasm.compiler.pipeline import build

    try:
        model = resolve_model(args.model)
        check_out(args.out, model, args.force)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manifest = build(model, args.out, context=args.context, shard_mb=args.shard_mb,
                             embed=args.embed, kv=args.kv, layout=args.layout, chunk=args.chunk, progress=not args.no_progress,
                             coi_service_worker=args.coi_service_worker, page=not args.no_page, sources=args.sources)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"bitnet-wasm build: {e}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    plan = json.loads(manifest.read_text())["plan"]
    sizes = ", ".join(f"{name} {region['bytes'] / 2**20:,.1f}" for name, region in plan["regions"].items())
    print(f"built {manifest}\nwasm memory: {plan['total_bytes'] / 2**20:,.1f} MiB ({sizes} MiB; context {plan['context']})")
    return 0
