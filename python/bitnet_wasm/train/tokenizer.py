"""A byte-level BPE tokenizer trained on the training split: every byte is a token, so any text
encodes; BOS is prepended by the post-processor, as Llama-3 (2B4T's tokenizer) does."""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS, EOS = "<|bos|>", "<|eos|>"
SPECIAL_TOKENS = (BOS, EOS)  # ids 0 and 1



def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is below the {len(alphabet) + len(SPECIAL_TOKENS)} tokens every byte-level BPE holds")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(t, tokenizer.token_to_id(t)) for t in (BOS,)]
    )
    return tokenizer


def special_ids(tokenizer: Tokenizer) -> tuple[int, int]:
    return tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)


def tokenizer_config(max_length: int) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
    }
