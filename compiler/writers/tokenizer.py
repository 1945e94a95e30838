"""The byte-level BPE tokenizer of the test and benchmark checkpoints: trained on a fixed text to
exactly the model's vocabulary size, with Llama 3's special tokens at the end and a chat template.
Also a SentencePiece BPE vocabulary laid out as Llama 2's tokenizer.model (for GGUF writers)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}<|eot_id|>"
                 "{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}")
TRAINING_TEXT = """\
The old lighthouse keeper climbed the stairs every evening before the sun went down. He carried a small
lamp, a book of poems, and a flask of tea that his daughter had made for him. From the top of the tower
he could see the whole bay: the fishing boats coming home, the gulls circling over the harbour, and the
long line of hills that turned blue and then grey as the light faded. He liked to count the boats as
they passed the rocks, and he wrote their names in a notebook that he kept on the window sill.
In the spring the village held a market on the square. Farmers brought apples, cheese, honey and bread;
children ran between the stalls, and a man with a violin played the same three songs all afternoon.
Nobody minded, because the songs were cheerful and the weather was warm. When it rained, people stood
under the arches of the town hall and talked about the harvest, the price of wool, and the new school.
A computer reads a program one instruction at a time. It moves numbers between memory and registers,
adds and multiplies them, compares them, and jumps to another instruction when a condition is true.
Small programs can do surprising things when they run quickly and many times. A language model, for
example, predicts the next word of a sentence from the words that came before it. It learns from a
large amount of text, and then it can write stories, answer questions, and translate between languages.
What is the capital of France? Paris is the capital of France. How many days are there in a week? There
are seven days in a week. Which is larger, an elephant or a mouse? An elephant is much larger than a mouse.
Please write a short poem about the sea. The sea is wide, the sea is deep; it sings the sailors off to sleep.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14 42. Punctuation: commas, full stops; colons: and "quotes".
"""


def special_token_ids(vocab: int) -> dict[str, int]:
    """The special tokens sit at the end of the vocabulary, as in Llama 3."""
    return {token: vocab - len(SPECIAL_TOKENS) + i for i, token in enumerate(SPECIAL_TOKENS)}


@functools.lru_cache(maxsize=None)
def tokenizer_json(vocab: int) -> str:
    """A byte-level BPE tokenizer of exactly `vocab` tokens, trained on TRAINING_TEXT (padded with reserved tokens)."""
    learned = vocab - len(SPECIAL_TOKENS)
    if learned < 256:
        raise ValueError(f"vocab {vocab} is too small: byte-level BPE needs 256 + {len(SPECIAL_TOKENS)} special tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TRAINING_TEXT], trainers.BpeTrainer(
        vocab_size=learned, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.add_special_tokens([AddedToken(f"<|reserved_{i}|>", special=True) for i in range(learned - tok.get_vocab_size())])
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])
    ids = special_token_ids(vocab)
    assert tok.get_vocab_size() == vocab and tok.token_to_id(SPECIAL_TOKENS[0]) == ids[SPECIAL_TOKENS[0]]
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                       special_tokens=[("<|begin_of_text|>", ids["<|begin_of_text|>"])])
    return tok.to_str()


def write_tokenizer(path: str | Path, vocab: int) -> None:
    """tokenizer.json, tokenizer_config.json (special tokens, chat template) and generation_config.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    ids = special_token_ids(vocab)
    (path / "tokenizer.json").write_text(tokenizer_json(vocab))
    write_json(path / "tokenizer_config.json", {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": CHAT_TEMPLATE,
        "model_max_length": 4096, "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False})
    write_json(path / "generation_config.json", {
        "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": [ids["<|end_of_text|>"], ids["<|eot_id|>"]]})


def write_json(file: Path, value: dict) -> None:
    file.write_text(json.dumps(value, indent=2) + "\n")


BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
UNKNOWN, NORMAL, CONTROL, UNUSED, BYTE = 2, 1, 3, 5, 6  # llama.cpp token types (gguf.TokenType)


@functools.lru_cache(maxsize=None)
def sentencepiece_vocab(vocab: int) -> tuple[tuple[str, ...], tuple[float, ...], tuple[int, ...]]:
    """(pieces, scores, token types) of exactly `vocab` entries in Llama 2's tokenizer.model order:
    <unk> <s> </s>, the 256 <0xNN> byte pieces, merged pieces by merge order (score -rank), single
    characters last, unused [PADn] filling any rest. Learned on TRAINING_TEXT with ▁ for spaces."""
    specials = ("<unk>", "<s>", "</s>")
    learned = vocab - len(specials) - len(BYTE_TOKENS)
    if learned < 1:
        raise ValueError(f"vocab {vocab} is too small for a SentencePiece vocabulary with byte fallback (at least 260)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.train_from_iterator([TRAINING_TEXT], trainers.BpeTrainer(vocab_size=learned, show_progress=False))
    model = json.loads(tok.to_str())["model"]
    merged = [left + right for left, right in model["merges"]]
    characters = [t for t in sorted(model["vocab"], key=model["vocab"].get) if t not in set(merged)]
    pieces = list(dict.fromkeys(merged + characters))[:learned]
    pieces += [f"[PAD{i}]" for i in range(learned - len(pieces))]
    scores = [0.0] * (len(specials) + len(BYTE_TOKENS)) + [float(-i) for i in range(learned)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * len(BYTE_TOKENS) + [UNUSED if p.startswith("[PAD") else NORMAL for p in pieces]
    return specials + BYTE_TOKENS + tuple(pieces), tuple(scores), tuple(types)
