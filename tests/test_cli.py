"""Every failure of a command reaches the user as one line on stderr and a non-zero exit code,
never a traceback (`--debug` shows it for unexpected errors)."""
import struct
import subprocess
import sys

import pytest
from models import write_bitnet_packed


def safetensors_with_header(path, header: bytes):
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def bad_header_model(tmp_path):
    model = write_bitnet_packed(tmp_path / "hf", hidden=32, layers=1, heads=2, kv_heads=1, intermediate=48, vocab=300).path
    safetensors_with_header(model / "model.safetensors", b"[1, 2, 3]")
    return model


CASES = {  # name -> (arguments from tmp_path, what stderr must name)
    "build: safetensors header not an object": (lambda tmp: ["build", str(bad_header_model(tmp)), "--out", str(tmp / "site")], "model.safetensors"),
    "build: config.json not JSON": (lambda tmp: ["build", str(_folder_with(tmp, "config.json", b"{nope")), "--out", str(tmp / "s")], "config.json"),
    "run: not a site": (lambda tmp: ["run", str(tmp), "--prompt", "hi"], "no model/manifest.json here"),
    "run: manifest not JSON": (lambda tmp: ["run", str(_folder_with(tmp, "model/manifest.json", b"\xff")), "--prompt", "hi"], "manifest.json"),
    "export-gguf: not a site": (lambda tmp: ["export-gguf", str(tmp), "--out", str(tmp / "m.gguf")], "manifest.json"),
}


def _folder_with(tmp, name, content):
    folder = tmp / "folder"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_a_failure_is_one_line_naming_the_problem(tmp_path, case):
    arguments, named = CASES[case]
    result = subprocess.run([sys.executable, "-m", "bitnet_wasm.cli", *arguments(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (1, 2), result
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert named in result.stderr


def test_debug_is_accepted_before_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bitnet_wasm.cli", "--debug", "run", str(tmp_path), "--prompt", "hi"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no model/manifest.json here" in result.stderr
