"""The browser peer, wllama (llama.cpp compiled to wasm): installed from npm into the cache on
first use (never committed), and the token ids it must not sample from a random model."""
from __future__ import annotations

import json
from pathlib import Path

from bitnet_wasm.bench import npm

WLLAMA = npm.NpmPackage("@wllama/wllama", "3.8.1")


class WllamaUnavailable(RuntimeError):
    pass


def ensure_installed(root: Path, log=print) -> Path:
    """WLLAMA under `root` (installed with npm when missing); returns its esm folder."""
    try:
        esm = npm.ensure(WLLAMA, root, log) / "esm"
    except npm.NpmError as e:
        raise WllamaUnavailable(str(e)) from None
    for needed in ("index.js", "wasm/wllama.wasm"):  # what the compare page loads
        if not (esm / needed).is_file():
            raise WllamaUnavailable(f"{esm / needed} is missing: delete {WLLAMA.prefix(root)} to reinstall {WLLAMA.name}")
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
