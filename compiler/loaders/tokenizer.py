"""tokenizer.json (+ tokenizer_config.json, chat_template.jinja) -> TokenizerFiles."""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from ..checkpoint import TokenizerFiles
from .errors import CheckpointError


def read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file}: malformed JSON: {err}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(value).__name__}")
    return value


def read_tokenizer(model_dir: Path, vocab_size: int) -> TokenizerFiles | None:
    """None when the folder has no tokenizer.json (e.g. a sentencepiece-only repository)."""
    file = model_dir / "tokenizer.json"
    if not file.exists():
        if file.is_symlink():
            raise CheckpointError(f"{file}: a link to {file.readlink()}, which does not exist")
        return None
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: cannot be read as UTF-8 text: {err}") from None
    try:
        ids = Tokenizer.from_str(text).get_vocab(with_added_tokens=True).values()
    except Exception as err:  # tokenizers raises a bare Exception for files it cannot parse
        raise CheckpointError(f"{file}: not a tokenizers file: {err}") from None
    if max(ids, default=-1) >= vocab_size:
        raise CheckpointError(f"{file}: token id {max(ids)} is outside the model's vocabulary (vocab_size {vocab_size})")
    config_file = model_dir / "tokenizer_config.json"
    config = read_json(config_file) if config_file.is_file() else {}
    template = model_dir / "chat_template.jinja"  # newer repositories keep the template out of tokenizer_config.json
    if "chat_template" not in config and template.is_file():
        config["chat_template"] = template.read_text(encoding="utf-8")
    return TokenizerFiles(tokenizer_json=text, config=config)
