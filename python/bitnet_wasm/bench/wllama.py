"""The browser peer, wllama (llama.cpp compiled to wasm): installed from npm into the cache on
first use (never committed), and the token ids it must not sample from a random model."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

PACKAGE = "@wllama/wllama"
VERSION = "3.8.1"
ESM = Path("node_modules") / PACKAGE / "esm"  # index.js and wasm/wllama.wasm, under the npm prefix
NPM_TIMEOUT_S = 300


class WllamaUnavailable(RuntimeError):
    pass


def installed_version(prefix: Path) -> str | None:
    package_json = prefix / "node_modules" / PACKAGE / "package.json"
    try:
        return json.loads(package_json.read_text()).get("version")
    except (OSError, ValueError):
        return None


def ensure_installed(prefix: Path, log=print) -> Path:
    """PACKAGE@VERSION under `prefix` (installed with npm when missing); returns its esm folder."""
    if installed_version(prefix) != VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise WllamaUnavailable(f"npm is not installed, so {PACKAGE} cannot be fetched: install Node.js and npm "
                                    "(apt-get install -y npm)")
        log(f"installing {PACKAGE}@{VERSION} into {prefix} (npm)")
        prefix.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", f"{PACKAGE}@{VERSION}"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise WllamaUnavailable(f"`npm install {PACKAGE}@{VERSION}` did not finish in {NPM_TIMEOUT_S} s (is the npm registry reachable?)") from None
        if proc.returncode != 0 or installed_version(prefix) != VERSION:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise WllamaUnavailable(f"`npm install {PACKAGE}@{VERSION}` failed (is the npm registry reachable?): {tail}")
    esm = prefix / ESM
    for needed in ("index.js", "wasm/wllama.wasm"):
        if not (esm / needed).is_file():
            raise WllamaUnavailable(f"{esm / needed} is missing: delete {prefix} to reinstall {PACKAGE}")
    return esm


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(256 + i): b for i, b in enumerate(others)}}


def broken_utf8_tokens(tokenizer: dict) -> list[int]:
    """Ids of byte-level BPE tokens whose bytes are not whole UTF-8 characters. wllama 3.8.1 aborts
    when it samples one alone (as random weights do), so the bench biases them away."""
    if (tokenizer.get("model") or {}).get("type") != "BPE" or "ByteLevel" not in json.dumps(tokenizer.get("pre_tokenizer")):
        return []
    alphabet, broken = _byte_level_alphabet(), []
    for token, token_id in tokenizer["model"]["vocab"].items():
        try:
            bytes(alphabet[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            broken.append(token_id)
    return sorted(broken)
