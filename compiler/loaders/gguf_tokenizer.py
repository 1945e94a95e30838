"""A GGUF's tokenizer metadata (tokenizer.ggml.*) -> tokenizer.json + tokenizer_config.json, the
files the HF tokenizers library and the page's tokenizer read: byte-level BPE ("gpt2") and
SentencePiece BPE ("llama": Llama 2, Mistral, TinyLlama vocabularies). The SentencePiece file is
the one transformers' GGUF loader builds (integrations/gguf/gguf_tokenizer_mapping.py
sentencepiece_tokenizer: a LlamaTokenizer, merges recovered from the scores; tests compare the
two), plus the BOS that llama.cpp adds."""
from __future__ import annotations

import json

from tokenizers import Tokenizer

from ..checkpoint import TokenizerFiles

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
LLAMA3 = ({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
    {**BYTE_LEVEL, "use_regex": False}]}, True)  # llama.cpp sets ignore_merges for these pre-tokenizers, as Llama 3's file does
PRE_TOKENIZERS = {  # tokenizer.ggml.pre -> (tokenizer.json pre_tokenizer, whether whole words in the vocab skip the merges)
    "gpt-2": (BYTE_LEVEL, False),
    "default": (BYTE_LEVEL, False),
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3", "falcon3", "falcon_e"), LLAMA3),  # llama.cpp's LLAMA3 group; falcon_e: bitnet.cpp
}
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values of added tokens
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")  # LlamaTokenizer's own unk/bos/eos: special wherever the vocabulary has them
METASPACE = "\u2581"


def tokenizer_files(metadata: dict, vocab_size: int) -> TokenizerFiles:
    """Raises ValueError naming what is not supported."""
    kind = metadata.get("tokenizer.ggml.model")
    if kind not in MODELS:
        raise ValueError(f"tokenizer.ggml.model {kind!r} is not converted (supported: {', '.join(map(repr, MODELS))})")
    tokens = metadata["tokenizer.ggml.tokens"]
    types = metadata.get("tokenizer.ggml.token_type", [1] * len(tokens))
    if len(tokens) > vocab_size:
        raise ValueError(f"{len(tokens)} tokens, but the model's vocabulary has {vocab_size} rows")
    spec = MODELS[kind](metadata, tokens, types)
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


def _byte_level_bpe(metadata: dict, tokens: list[str], types: list[int]) -> dict:
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"tokenizer.ggml.pre {pre!r} is not known here; known: {', '.join(PRE_TOKENIZERS)}")
    added = [i for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)]
    pre_tokenizer, ignore_merges = PRE_TOKENIZERS[pre]
    added_ids = set(added)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [_added(i, tokens[i], types[i] == CONTROL) for i in added],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _post_processor(metadata, tokens, add_bos_default=False),
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": _bpe({t: i for i, t in enumerate(tokens) if i not in added_ids}, metadata.get("tokenizer.ggml.merges", []),
                      ignore_merges=ignore_merges),
    }


def _sentencepiece_bpe(metadata: dict, tokens: list[str], types: list[int]) -> dict:
    """transformers' LlamaTokenizer over the file's vocabulary: Metaspace, BPE with byte fallback."""
    if "tokenizer.ggml.merges" in metadata:
        merges = [m.split(" ") for m in metadata["tokenizer.ggml.merges"]]
    elif len(metadata.get("tokenizer.ggml.scores", ())) == len(tokens):
        merges = merges_from_scores(tokens, metadata["tokenizer.ggml.scores"])
    else:
        raise ValueError("a SentencePiece vocabulary needs tokenizer.ggml.scores (one per token) or tokenizer.ggml.merges")
    vocab = {t: i for i, t in enumerate(tokens)}
    special = {vocab[t]: True for t in LLAMA_SPECIALS if t in vocab} | {i: t == CONTROL for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)}
    added = sorted(special.items())
    prefix = metadata.get("tokenizer.ggml.add_space_prefix", True)
    strip = [{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if prefix else []
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [_added(i, tokens[i], special) for i, special in added],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "first" if prefix else "never", "split": False},
        "post_processor": _post_processor(metadata, tokens, add_bos_default=True),
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": METASPACE}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, *strip]},
        "model": _bpe(vocab, merges, fuse_unk=True, byte_fallback=True),
    }


MODELS = {"gpt2": _byte_level_bpe, "llama": _sentencepiece_bpe}  # tokenizer.ggml.model -> its tokenizer.json


def merges_from_scores(tokens: list[str], scores: list[float]) -> list[list[str]]:
    """transformers' generate_merges(vocab, scores): every split of a token into two tokens, best score first."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for token, score in dict(zip(tokens, scores)).items():
        pairs = [(token[:k], token[k:]) for k in range(1, len(token)) if token[:k] in vocab and token[k:] in vocab]
        merges += [(left, right, score) for left, right in sorted(pairs, key=lambda p: (vocab[p[0]], vocab[p[1]]))]
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [[left, right] for left, right, _ in merges]


def _added(i: int, content: str, special: bool) -> dict:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": special}


def _bpe(vocab: dict, merges: list, ignore_merges: bool = False, fuse_unk: bool = False, byte_fallback: bool = False) -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": fuse_unk, "byte_fallback": byte_fallback, "ignore_merges": ignore_merges, "vocab": vocab, "merges": list(merges)}


def _post_processor(metadata: dict, tokens: list[str], add_bos_default: bool) -> dict | None:
    """BOS first when tokenizer.ggml.add_bos_token says so (llama.cpp's default: on for SentencePiece vocabularies)."""
    bos = metadata.get("tokenizer.ggml.bos_token_id")
    if bos is None or not metadata.get("tokenizer.ggml.add_bos_token", add_bos_default):
        return None
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {tokens[bos]: {"id": tokens[bos], "ids": [bos], "tokens": [tokens[bos]]}}}
