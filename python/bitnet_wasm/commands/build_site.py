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
    from bitnet_wasm.compiler.graph import AUTO, EMBED_CHOICES, LAYOUT_CHOICES, Q7_FROM_VOCAB

    parser.add_argument("model", help="a local Hugging Face model directory, or a hub id (downloaded when online)")
    parser.add_argument("--out", required=True, type=Path, help="site directory (the model goes to OUT/model/)")
    parser.add_argument("--context", type=int, help="KV cache length in tokens (default: min(model max, 2048))")
    parser.add_argument("--shard-mb", type=float, default=32, help="weight shard size in MiB (default 32)")
    parser.add_argument("--embed", choices=list(EMBED_CHOICES), default=AUTO,
                        help=f"embedding/head storage: f16, q8 (int8, half the bytes), q7 (7-bit through the relaxed dot, fastest); "
                        f"auto (default): q7 from a vocabulary of {Q7_FROM_VOCAB} on, else f16")
    parser.add_argument("--layout", choices=list(LAYOUT_CHOICES), default=AUTO,
                        help="ternary weight layout; auto (default): per matrix shape, the fastest measured here")
    parser.add_argument("--chunk", type=int, default=32, help="most tokens per forward step while prefilling")
    parser.add_argument("--coi-service-worker", action="store_true",
                        help="the page registers a service worker adding the COOP/COEP headers multi-threading needs "
                             "(for static hosts that cannot set headers, e.g. GitHub Pages; the first visit reloads once)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_model(name: str) -> Path:
    """A local directory as is; a hub id through huggingface_hub (its cache, when online)."""
    path = Path(name)
    if path.exists() or not HUB_ID.fullmatch(name):
        if not path.is_dir():
            raise FileNotFoundError(f"{name}: no such model directory")
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


def main(args: argparse.Namespace) -> int:
    from bitnet_wasm.compiler.pipeline import build

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manifest = build(resolve_model(args.model), args.out, context=args.context, shard_mb=args.shard_mb,
                             embed=args.embed, layout=args.layout, chunk=args.chunk, progress=not args.no_progress,
                             coi_service_worker=args.coi_service_worker)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"bitnet-wasm build: {e}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    plan = json.loads(manifest.read_text())["plan"]
    sizes = ", ".join(f"{name} {region['bytes'] / 2**20:,.1f}" for name, region in plan["regions"].items())
    print(f"built {manifest}\nwasm memory: {plan['total_bytes'] / 2**20:,.1f} MiB ({sizes} MiB; context {plan['context']})")
    return 0
