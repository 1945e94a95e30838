"""A GGUF's tokenizer metadata (tokenizer.ggml.*) -> tokenizer.json + tokenizer_config.json, the
files the HF tokenizers library and the page's tokenizer read. Byte-level BPE ("gpt2") only."""
from __future__ import annotations

import json

from tokenizers import Tokenizer

from ..checkpoint import TokenizerFiles

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {  # tokenizer.ggml.pre -> (tokenizer.json pre_tokenizer, whether whole words in the vocab skip the merges)
    "gpt-2": (BYTE_LEVEL, False),
    "default": (BYTE_LEVEL, False),
    "llama-bpe": ({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
        {**BYTE_LEVEL, "use_regex": False}]}, True),  # llama.cpp sets ignore_merges for this pre-tokenizer, as Llama 3's file does
}
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of added tokens


def tokenizer_files(metadata: dict, vocab_size: int) -> TokenizerFiles:
    """Raises ValueError naming what is not supported."""
    kind = metadata.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"tokenizer.ggml.model {kind!r} is not converted (only 'gpt2' byte-level BPE)")
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"tokenizer.ggml.pre {pre!r} is not known here; known: {', '.join(PRE_TOKENIZERS)}")
    tokens, merges = metadata["tokenizer.ggml.tokens"], metadata.get("tokenizer.ggml.merges", [])
    types = metadata.get("tokenizer.ggml.token_type", [1] * len(tokens))
    if len(tokens) > vocab_size:
        raise ValueError(f"{len(tokens)} tokens, but the model's vocabulary has {vocab_size} rows")
    added = [i for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)]
    pre_tokenizer, ignore_merges = PRE_TOKENIZERS[pre]
    added_ids = set(added)
    spec = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": types[i] == CONTROL} for i in added],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _post_processor(metadata, tokens),
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": {t: i for i, t in enumerate(tokens) if i not in added_ids}, "merges": list(merges)},
    }
    text = json.dumps(spec, ensure_ascii=False)
    try:
        Tokenizer.from_str(text)
    except Exception as err:  # tokenizers raises a bare Exception
        raise ValueError(f"the converted tokenizer does not load: {err}") from None
    config = {key: tokens[metadata[f"tokenizer.ggml.{id_key}"]] for key, id_key in
              (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id")) if f"tokenizer.ggml.{id_key}" in metadata}
    if "tokenizer.ggml.eot_token_id" in metadata:  # chat models stop on end-of-turn
        config["eos_token"] = tokens[metadata["tokenizer.ggml.eot_token_id"]]
    if isinstance(metadata.get("tokenizer.chat_template"), str):
        config["chat_template"] = metadata["tokenizer.chat_template"]
    return TokenizerFiles(tokenizer_json=text, config=config)


def _post_processor(metadata: dict, tokens: list[str]) -> dict | None:
    bos = metadata.get("tokenizer.ggml.bos_token_id")
    if bos is None or not metadata.get("tokenizer.ggml.add_bos_token", False):
        return None
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {tokens[bos]: {"id": tokens[bos], "ids": [bos], "tokens": [tokens[bos]]}}}
