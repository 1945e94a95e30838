"""`bitnet-wasm build` cannot destroy work: it refuses a non-empty folder that is not a site (unless
--force) and the model folder itself; --no-page builds the model alone; common mistakes say what to do."""
import pytest

from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler.writers import write_bitnet_packed


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_bitnet_packed(tmp_path_factory.mktemp("safety") / "hf", hidden=64, layers=2, vocab=320).path


def build(model, out, *extra):
    return cli(["build", str(model), "--out", str(out), "--layout", "mad", "--no-progress", *extra])


def test_a_folder_with_other_files_is_refused_unless_forced(model, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    assert build(model, out) == 2
    assert "not empty and holds no bitnet-wasm site" in capsys.readouterr().err and (out / "index.html").read_text() == "my own page"
    assert build(model, out, "--force") == 0 and (out / "model" / "manifest.json").is_file()
    assert build(model, out) == 0  # an earlier site is rebuilt without --force


def test_the_model_folder_is_never_written(model, capsys):
    before = sorted(p.name for p in model.iterdir())
    for out in (model, model / "site", model.parent):
        assert build(model, out, "--force") == 2
        assert "into or around the model folder" in capsys.readouterr().err
    assert sorted(p.name for p in model.iterdir()) == before


def test_no_page_builds_the_model_alone(model, tmp_path):
    assert build(model, tmp_path / "site", "--no-page") == 0
    assert (tmp_path / "site" / "model" / "manifest.json").is_file() and not (tmp_path / "site" / "index.html").exists()
    assert not list((tmp_path / "site").glob("*.js"))


@pytest.mark.parametrize("given, words", [
    (lambda m, tmp: m / "config.json", "pass the model folder, not its config.json"),
    (lambda m, tmp: (tmp / "model.gguf").write_bytes(b"GGUF") and tmp / "model.gguf", "model.gguf: truncated: the version needs bytes 4..8"),
    (lambda m, tmp: m.parent / "typo" / "model", "no such model directory"),
])
def test_common_mistakes_say_what_to_do(model, tmp_path, capsys, given, words):
    assert build(given(model, tmp_path), tmp_path / "site") == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("bitnet-wasm 0.")
