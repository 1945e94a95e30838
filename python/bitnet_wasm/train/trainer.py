"""The training loop: AdamW, linear warm-up then cosine decay, gradient clipping, periodic
validation, resumable checkpoints, a progress bar; exports the model when it stops.

The run folder holds the export (export.py) plus checkpoint.pt and train_log.jsonl (one JSON row
per step: loss, lr, elapsed; a row with val_loss after each validation)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch.nn import functional as F
from tqdm import tqdm

from bitnet_wasm.train.data import Batches, Corpus, encode, load_corpus, validation_windows
from bitnet_wasm.train.export import export
from bitnet_wasm.train.model import BitNetForCausalLM, ModelConfig
from bitnet_wasm.train.presets import PRESETS
from bitnet_wasm.train.quant import WEIGHT_QUANTIZERS
from bitnet_wasm.train.tokenizer import train_tokenizer

CHECKPOINT, LOG = "checkpoint.pt", "train_log.jsonl"


class TrainError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    """What defines a run; saved in the checkpoint. The schedule ends at `steps` or after
    `minutes` of training, whichever comes first (at least one must be set)."""

    preset: str = "tiny"
    bits: str = "1.58"
    steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    lr: float | None = None           # None: the preset's
    batch_size: int | None = None     # None: the preset's
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1
    val_every: int = 200
    val_windows: int = 64
    save_every: int = 500

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise TrainError(f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        if self.bits not in WEIGHT_QUANTIZERS:
            raise TrainError(f"--bits {self.bits!r}: expected one of {', '.join(WEIGHT_QUANTIZERS)}")
        if self.steps is None and self.minutes is None:
            raise TrainError("give --steps or --minutes (or both): the schedule needs an end")
        for name in ("steps", "minutes", "lr", "batch_size", "val_every", "save_every"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise TrainError(f"--{name.replace('_', '-')} must be positive, got {value}")

    @property
    def peak_lr(self) -> float:
        return self.lr or PRESETS[self.preset].lr

    @property
    def batch(self) -> int:
        return self.batch_size or PRESETS[self.preset].batch_size

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the schedule done: the larger of the step and the time fractions."""
        by_steps = step / self.steps if self.steps else 0.0
        by_time = elapsed / (60 * self.minutes) if self.minutes else 0.0
        return max(by_steps, by_time)

    def lr_at(self, step: int, progress: float) -> float:
        """Linear warm-up over the preset's warm-up steps or 5% of the schedule, whichever ends first; then cosine."""
        warmup = min(1.0, max((step + 1) / PRESETS[self.preset].warmup_steps, progress / 0.05))
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return self.peak_lr * warmup * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)

    def resumed(self, asked: dict) -> Settings:
        """A resumed run keeps its settings; only the schedule's end (steps, minutes) may change."""
        changeable = {"steps", "minutes"}
        conflicts = [f for f, value in asked.items() if f not in changeable and value != getattr(self, f)]
        if conflicts:
            raise TrainError("--resume: the run was started with " + ", ".join(f"{f}={getattr(self, f)}" for f in conflicts)
                             + "; only --steps and --minutes may change when resuming")
        return dataclasses.replace(self, **{f: asked[f] for f in changeable & asked.keys()})


@dataclass
class Result:
    out: Path
    step: int
    train_loss: float
    val_loss: float
    tokens_per_second: float
    parameters: int


class Run:
    """A training run's state, which is what its checkpoint holds."""

    def __init__(self, settings: Settings, corpus: Corpus, tokenizer: Tokenizer, config: ModelConfig):
        preset = PRESETS[settings.preset]
        self.settings, self.corpus, self.tokenizer, self.config = settings, corpus, tokenizer, config
        torch.manual_seed(settings.seed)
        self.model = BitNetForCausalLM(config)
        matrices = [p for p in self.model.parameters() if p.dim() >= 2]
        vectors = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": matrices, "weight_decay": settings.weight_decay}, {"params": vectors, "weight_decay": 0.0}],
            lr=settings.peak_lr, betas=(0.9, 0.95), eps=1e-8)
        self.batches = Batches(encode(tokenizer, corpus.train), preset.seq_len, settings.batch, settings.seed)
        self.val_windows = validation_windows(encode(tokenizer, corpus.val), preset.seq_len, settings.val_windows)
        self.tokens_per_step = settings.batch * preset.seq_len
        self.step, self.elapsed, self.val_loss, self.val_step = 0, 0.0, math.nan, -1

    @classmethod
    def start(cls, settings: Settings, corpus: Corpus) -> Run:
        preset = PRESETS[settings.preset]
        tokenizer = train_tokenizer(corpus.train, preset.vocab_size)
        return cls(settings, corpus, tokenizer, preset.model_config(tokenizer.get_vocab_size(), settings.bits))

    @classmethod
    def resume(cls, path: Path, asked: dict, corpus: Corpus) -> Run:
        if not path.is_file():
            raise TrainError(f"--resume: {path} does not exist (no run to continue in {path.parent})")
        try:
            state = torch.load(path, weights_only=False)
        except Exception as e:
            raise TrainError(f"--resume: {path} is not a readable checkpoint ({e})") from None
        if state["corpus_sha256"] != corpus.digest():
            raise TrainError(f"--resume: the corpus differs from the one the run in {path.parent} was trained on")
        run = cls(Settings(**state["settings"]).resumed(asked), corpus, Tokenizer.from_str(state["tokenizer"]),
                  ModelConfig(**state["model_config"]))
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.batches.generator.set_state(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        run.step, run.elapsed, run.val_loss, run.val_step = state["step"], state["elapsed"], state["val_loss"], state["val_step"]
        return run

    def save(self, path: Path) -> None:
        state = {
            "settings": dataclasses.asdict(self.settings), "model_config": dataclasses.asdict(self.config),
            "tokenizer": self.tokenizer.to_str(), "corpus_sha256": self.corpus.digest(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "sampler_rng": self.batches.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "step": self.step, "elapsed": self.elapsed, "val_loss": self.val_loss, "val_step": self.val_step,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # a run killed while saving keeps its previous checkpoint

    def train_step(self, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = self.batches.next()
        loss = F.cross_entropy(self.model(inputs).flatten(0, 1), targets.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.item()

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        total = 0.0
        for chunk in self.val_windows.split(self.settings.batch):
            logits = self.model(chunk[:, :-1])
            total += F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum").item()
        self.model.train()
        self.val_loss, self.val_step = total / self.val_windows[:, 1:].numel(), self.step
        return self.val_loss


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint (a run stopped between saves repeats those steps)."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= last_step]
        path.write_text("".join(row + "\n" for row in rows))


def train(
    corpus: list[Path],
    out: Path,
    settings: dict,
    *,
    val: list[Path] = (),
    resume: bool = False,
    stop_at: int | None = None,
    export_dtype: str = "bf16",
    threads: int = 2,
    progress_bar: bool | None = None,
) -> Result:
    """Train (or, with resume, continue) the run in `out`. `settings`: the Settings fields to set (a
    resumed run takes the rest from its checkpoint). stop_at pauses at that step: resume later.
    progress_bar None shows it on a terminal only."""
    torch.set_num_threads(threads)
    out, texts = Path(out), load_corpus(corpus, val)
    if resume:
        run = Run.resume(out / CHECKPOINT, settings, texts)
    elif (out / CHECKPOINT).exists():
        raise TrainError(f"{out} already holds a training run ({CHECKPOINT}): pass --resume to continue it, or another --out")
    else:
        run = Run.start(Settings(**settings), texts)
    s = run.settings
    out.mkdir(parents=True, exist_ok=True)
    _truncate_log(out / LOG, run.step)

    session_start, session_steps, loss, elapsed_before = time.monotonic(), 0, math.nan, run.elapsed
    bar = tqdm(total=1.0, initial=min(s.progress(run.step, run.elapsed), 1.0), disable=None if progress_bar is None else not progress_bar,
               bar_format="{percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {desc}", dynamic_ncols=True)
    try:
        with (out / LOG).open("a", buffering=1) as log:  # line-buffered: follow a run with tail -f
            while (progress := s.progress(run.step, run.elapsed)) < 1.0 and (stop_at is None or run.step < stop_at):
                lr = s.lr_at(run.step, progress)
                loss = run.train_step(lr)
                session_steps += 1
                run.elapsed = elapsed_before + time.monotonic() - session_start
                log.write(json.dumps({"step": run.step, "loss": round(loss, 5), "lr": lr, "elapsed": round(run.elapsed, 2)}) + "\n")
                if run.step % s.val_every == 0:
                    log.write(json.dumps({"step": run.step, "val_loss": round(run.validate(), 5)}) + "\n")
                    bar.write(f"step {run.step}: train loss {loss:.4f}, val loss {run.val_loss:.4f}")
                if run.step % s.save_every == 0:
                    run.save(out / CHECKPOINT)
                tok_s = session_steps * run.tokens_per_step / (time.monotonic() - session_start)
                bar.set_description_str(f"step {run.step} loss {loss:.3f} val {run.val_loss:.3f} {tok_s:,.0f} tok/s", refresh=False)
                bar.update(min(s.progress(run.step, run.elapsed), 1.0) - bar.n)
            if run.val_step != run.step:
                log.write(json.dumps({"step": run.step, "val_loss": round(run.validate(), 5)}) + "\n")
    except BaseException:
        run.save(out / CHECKPOINT)  # Ctrl-C included: --resume continues from here
        raise
    finally:
        bar.close()
    run.save(out / CHECKPOINT)
    export(run.model, run.tokenizer, out, export_dtype)
    seconds = time.monotonic() - session_start
    return Result(out, run.step, loss, run.val_loss, session_steps * run.tokens_per_step / seconds, run.model.num_parameters())
