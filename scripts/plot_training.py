"""Training curves and a results table from the train_log.jsonl of runs made by `bitnet-wasm train`.

    python scripts/plot_training.py --run b1.58=runs/tiny-b1.58 --run 1bit=runs/tiny-b1 --run float=runs/tiny-float --out docs/

writes OUT/training-loss.png and OUT/training.md (also printed). Parameters and tokens per step
come from the run's checkpoint.pt (needs torch); without it those columns show '?' and the plot
is per step."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SMOOTHING = 0.98  # exponential moving average of the noisy per-step training loss


@dataclass
class RunLog:
    name: str
    steps: list[int]
    losses: list[float]
    val_steps: list[int]
    val_losses: list[float]
    seconds: float
    parameters: int | None
    tokens_per_step: int | None


def _run_arg(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected NAME=DIR")
    return name, Path(folder)


def _checkpoint_facts(folder: Path) -> tuple[int | None, int | None]:
    if not (folder / "checkpoint.pt").is_file():
        return None, None
    import torch

    from bitnet_wasm.train.presets import PRESETS
    from bitnet_wasm.train.trainer import Settings

    state = torch.load(folder / "checkpoint.pt", weights_only=False, map_location="cpu")
    settings = Settings(**state["settings"])
    return sum(t.numel() for t in state["model"].values()), settings.batch * PRESETS[settings.preset].seq_len


def read_run(name: str, folder: Path) -> RunLog:
    log = folder / "train_log.jsonl"
    if not log.is_file():
        raise SystemExit(f"--run {name}={folder}: no train_log.jsonl in {folder}")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    if not train:
        raise SystemExit(f"--run {name}={folder}: {log} has no training rows yet")
    return RunLog(name, [r["step"] for r in train], [r["loss"] for r in train], [r["step"] for r in val],
                  [r["val_loss"] for r in val], train[-1]["elapsed"], *_checkpoint_facts(folder))


def smooth(values: list[float]) -> list[float]:
    """Bias-corrected exponential moving average (as Adam's moments), so the curve starts at the data."""
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = SMOOTHING * avg + (1 - SMOOTHING) * v
        out.append(avg / (1 - SMOOTHING ** (i + 1)))
    return out


def plot(runs: list[RunLog], path: Path) -> None:
    by_tokens = all(r.tokens_per_step for r in runs)
    scale = (lambda r, s: [x * r.tokens_per_step / 1e6 for x in s]) if by_tokens else (lambda r, s: s)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for i, run in enumerate(runs):
        colour = f"C{i}"
        ax.plot(scale(run, run.steps), smooth(run.losses), color=colour, lw=1.2, label=f"{run.name} train (smoothed)")
        if run.val_steps:
            ax.plot(scale(run, run.val_steps), run.val_losses, "o--", color=colour, ms=3, lw=1, label=f"{run.name} validation")
    ax.set_xlabel("tokens seen (millions)" if by_tokens else "step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(runs: list[RunLog]) -> str:
    def num(value, fmt):
        return "?" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

    lines = ["| run | parameters | steps | tokens seen | final train loss | best val loss | final val loss | val perplexity | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        final_val = r.val_losses[-1] if r.val_losses else None
        tokens = r.steps[-1] * r.tokens_per_step if r.tokens_per_step else None
        lines.append(" | ".join([
            f"| {r.name}", num(r.parameters, ","), str(r.steps[-1]), num(tokens, ","), num(sum(r.losses[-50:]) / len(r.losses[-50:]), ".3f"),
            num(min(r.val_losses) if r.val_losses else None, ".3f"), num(final_val, ".3f"),
            num(math.exp(final_val) if final_val is not None else None, ".1f"), f"{r.seconds / 60:.1f} |"]))
    return "\n".join(lines) + "\n\n(final train loss: mean of the last 50 steps; perplexity = exp(final validation loss))\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=_run_arg, action="append", required=True, metavar="NAME=DIR", help="a run folder (repeat)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for training-loss.png and training.md")
    args = parser.parse_args(argv)
    runs = [read_run(name, folder) for name, folder in args.run]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, args.out / "training-loss.png")
    text = table(runs)
    (args.out / "training.md").write_text(f"# Training runs\n\n![loss curves](training-loss.png)\n\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
