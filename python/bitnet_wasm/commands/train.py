"""`bitnet-wasm train`: quantization-aware training of a small BitNet on a text corpus."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train a small BitNet (b1.58 or 1-bit) on text files and export it as an HF BitNetForCausalLM folder (needs torch: pip install -e '.[train]')"

BITS = ("1.58", "1", "16")  # the keys of train.quant.WEIGHT_QUANTIZERS (not imported: --help works without torch)
# options that are fields of trainer.Settings (unset ones take the defaults, or a resumed run's values)
SETTINGS = ("preset", "bits", "steps", "minutes", "seed", "lr", "batch_size", "val_every", "save_every")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, nargs="+", required=True, metavar="PATH",
                   help="text files, folders of *.txt, or a prepared folder with train.txt and val.txt (scripts/prepare_corpus.py)")
    p.add_argument("--val", type=Path, nargs="+", default=[], metavar="PATH",
                   help="validation text files (default: val.txt of a prepared folder, else the last 5%% of each file)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder: the export, checkpoint.pt and train_log.jsonl")
    p.add_argument("--preset", help="model size: micro (tests), tiny (~2 M parameters) or small (~8 M); default tiny")
    p.add_argument("--bits", choices=BITS, help="1.58 ternary (default), 1 binary, 16 float baseline (same model, plain linear layers)")
    p.add_argument("--float", dest="bits", action="store_const", const="16", help="same as --bits 16")
    p.add_argument("--steps", type=int, help="length of the schedule in optimizer steps")
    p.add_argument("--minutes", type=float, help="length of the schedule in minutes of training (with --steps: whichever ends first)")
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's)")
    p.add_argument("--val-every", type=int, help="steps between validation losses (default 200)")
    p.add_argument("--save-every", type=int, help="steps between checkpoints (default 500)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out on the same --corpus (--steps / --minutes may extend it)")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="pause at this step (checkpoint and export); continue later with --resume")
    p.add_argument("--dtype", choices=("bf16", "f32"), default="bf16", help="dtype of the exported non-ternary tensors (default bf16, as 2B4T)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def main(args: argparse.Namespace) -> int:
    try:
        from bitnet_wasm.train.data import CorpusError
        from bitnet_wasm.train.trainer import TrainError, train
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        print("bitnet-wasm train needs torch: pip install -e '.[train]' (torch==2.13.0)", file=sys.stderr)
        return 2
    settings = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    try:
        result = train(args.corpus, args.out, settings, val=args.val, resume=args.resume,
                       stop_at=args.stop_at, export_dtype=args.dtype, threads=args.threads)
    except (TrainError, CorpusError) as e:
        print(f"bitnet-wasm train: {e}", file=sys.stderr)
        return 2
    print(f"{result.parameters:,} parameters, step {result.step}: train loss {result.train_loss:.4f}, "
          f"val loss {result.val_loss:.4f}, {result.tokens_per_second:,.0f} tok/s; exported to {result.out}")
    return 0
