"""bitnet-wasm run SITE --prompt TEXT: generate from a built site with its own compiled forward pass."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bitnet_wasm.compiler.generation import OPTIONS, Option, OptionError, check

HELP = "generate text from a built site (natively, with the site's compiled forward pass)"
PARSERS = {"int": int, "number": float, "seed": int}


def _option_type(option: Option):
    def parse(text: str):
        try:
            return check(option, PARSERS[option.kind](text))
        except (ValueError, OptionError) as e:
            raise argparse.ArgumentTypeError(str(e) if isinstance(e, OptionError) else f"{option.name}: {text!r} is not a number") from e
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="a directory made by `bitnet-wasm build`")
    parser.add_argument("--prompt", required=True)
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        default = "random" if option.kind == "seed" else option.default
        if option.kind == "bool":
            parser.add_argument(flag, action="store_true", default=None, help=option.help)
        elif option.kind == "choice":
            parser.add_argument(flag, choices=option.choices, default=None, help=f"{option.help} (default {default}; with --chat)")
        elif option.kind == "strings":
            parser.add_argument(flag, action="append", default=None, help=f"{option.help} (repeat for several)")
        else:
            parser.add_argument(flag, type=_option_type(option), default=None, help=f"{option.help} (default {default})")
    parser.add_argument("--chat", action="store_true", help="send the prompt as a user message in the model's chat template")
    parser.add_argument("--system", help="with --chat: a system message before it")
    parser.add_argument("--json", action="store_true", help='print {"prompt_tokens", "tokens", "text", "stop_reason", "seed"} after generating')


def main(args: argparse.Namespace) -> int:
    from bitnet_wasm.runtime import Generation, load

    options = {o.name: getattr(args, o.name) for o in OPTIONS if getattr(args, o.name) is not None}
    try:
        model = load(args.site)
        result = Generation([])
        if args.chat:
            messages = ([{"role": "system", "content": args.system}] if args.system is not None else []) + [{"role": "user", "content": args.prompt}]
            pieces = model.chat(messages, stream=True, result=result, **options)
        elif args.system is not None:
            raise ValueError("--system needs --chat")
        else:
            pieces = model.stream(args.prompt, result=result, **options)
        for piece in pieces:
            if not args.json:
                print(piece.text, end="", flush=True)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"bitnet-wasm run: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"prompt_tokens": result.prompt_tokens, "tokens": result.tokens, "text": result.text,
                          "stop_reason": result.stop_reason, "seed": result.seed}))
    else:
        print()
    return 0
