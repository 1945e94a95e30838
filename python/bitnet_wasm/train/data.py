"""The corpus: text files -> a training and a validation text -> token streams -> batches of windows."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from bitnet_wasm.train.tokenizer import special_ids

SPLIT_FILES = ("train.txt", "val.txt")  # a folder holding both is a prepared corpus (scripts/prepare_corpus.py)


class CorpusError(ValueError):
    pass


@dataclass(frozen=True)
class Corpus:
    train: list[str]   # one text per document
    val: list[str]

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.val):
            for text in part:
                h.update(text.encode())
                h.update(b"\0")
            h.update(b"\1")
        return h.hexdigest()


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such corpus file") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise CorpusError(f"{path}: the file is empty")
    return text


def _split_tail(text: str, fraction: float) -> tuple[str, str]:
    """Hold out the last `fraction` of the text, cut at a line break."""
    cut = text.rfind("\n", 0, int(len(text) * (1 - fraction)))
    cut = cut + 1 if cut > 0 else int(len(text) * (1 - fraction))
    return text[:cut], text[cut:]


def load_corpus(paths: list[Path], val_paths: list[Path] = (), val_fraction: float = 0.05) -> Corpus:
    """Files are documents. A folder with train.txt and val.txt is a prepared split; any other folder
    contributes its *.txt. Without a validation text, the last val_fraction of each document is held out."""
    train, val = [], [_read(Path(p)) for p in val_paths]
    for path in map(Path, paths):
        if path.is_dir() and all((path / name).is_file() for name in SPLIT_FILES):
            train.append(_read(path / "train.txt"))
            val.append(_read(path / "val.txt"))
        elif path.is_dir():
            files = sorted(path.glob("*.txt"))
            if not files:
                raise CorpusError(f"{path}: the folder holds no *.txt files")
            train += [_read(f) for f in files]
        else:
            train.append(_read(path))
    if not train:
        raise CorpusError("no corpus given")
    if not val:
        pieces = [_split_tail(text, val_fraction) for text in train]
        train, val = [a for a, _ in pieces], [b for _, b in pieces if b.strip()]
    return Corpus(train, val)


def encode(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """One stream of token ids: BOS document EOS, BOS document EOS, ..."""
    bos, eos = special_ids(tokenizer)
    ids = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids += [bos, *encoding.ids, eos]
    return torch.tensor(ids, dtype=torch.long)


class Batches:
    """Random windows of length+1 tokens (input and shifted target) from a token stream."""

    def __init__(self, tokens: torch.Tensor, length: int, batch_size: int, seed: int):
        if len(tokens) < length + 2:
            raise CorpusError(f"the training text has {len(tokens)} tokens, fewer than one window of {length + 1}")
        self.tokens, self.length, self.batch_size = tokens, length, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(self.tokens) - self.length - 1, (self.batch_size,), generator=self.generator)
        windows = torch.stack([self.tokens[s : s + self.length + 1] for s in starts.tolist()])
        return windows[:, :-1], windows[:, 1:]


def validation_windows(tokens: torch.Tensor, length: int, max_windows: int) -> torch.Tensor:
    """Evenly spaced non-overlapping windows [n, length+1]: the same every time, so losses compare."""
    count = min(max_windows, (len(tokens) - 1) // length)
    if count == 0:
        raise CorpusError(f"the validation text has {len(tokens)} tokens, fewer than one window of {length + 1}")
    stride = (len(tokens) - 1 - length) // max(count - 1, 1)
    return torch.stack([tokens[i * stride : i * stride + length + 1] for i in range(count)])
