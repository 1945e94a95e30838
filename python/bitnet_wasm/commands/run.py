"""bitnet-wasm run SITE --prompt TEXT: generate from a built site with its own compiled forward pass."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "generate text from a built site (natively, with the site's compiled forward pass)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="a directory made by `bitnet-wasm build`")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="0 keeps all")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat", action="store_true", help="wrap the prompt as one user turn of the model's chat template")
    parser.add_argument("--json", action="store_true", help='print {"prompt_tokens", "tokens", "text"} after generating')


def main(args: argparse.Namespace) -> int:
    from bitnet_wasm.runtime import Generation, load

    try:
        model = load(args.site)
        result = Generation([])
        sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, seed=args.seed, result=result)
        prompt = model.format_chat(args.prompt) if args.chat else args.prompt
        for piece in model.stream(prompt, **sampling):
            if not args.json:
                print(piece.text, end="", flush=True)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"bitnet-wasm run: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"prompt_tokens": result.prompt_tokens, "tokens": result.tokens, "text": result.text}))
    else:
        print()
    return 0
