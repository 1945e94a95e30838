"""Random BitNet checkpoints written in the published formats with numpy + safetensors (no torch):
the benchmark's stand-in for a model of a given shape (speed does not depend on the values), and
the helpers the tests' tiny models share (tests/models.py)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import TensorSpec, serialize_file
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


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_position: int = 2048


# 1bitLLM/bitnet_b1_58-large's dimensions (its tokenizer's 32000 + 2 added tokens).
LARGE = Shape(hidden=1536, layers=24, heads=16, kv_heads=16, intermediate=4096, vocab=32002)
# microsoft/bitnet-b1.58-2B-4T's dimensions.
B2_4T = Shape(hidden=2560, layers=30, heads=20, kv_heads=5, intermediate=6912, vocab=128256, max_position=4096)


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


def pack_output_dim(codes: np.ndarray) -> np.ndarray:
    """transformers' pack_weights: rows are cut into 4 chunks of ceil(out/4); chunk i goes to bits 2i..2i+1 as code+1."""
    out, in_ = codes.shape
    rows = -(-out // 4)
    padded = np.zeros((4 * rows, in_), np.uint8)  # slots past `out` stay 0, as pack_weights leaves them
    padded[:out] = codes + 1
    return np.bitwise_or.reduce([padded[i * rows:(i + 1) * rows] << (2 * i) for i in range(4)]).astype(np.uint8)


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = x.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], shards: int = 1) -> None:
    """model.safetensors, or `shards` files model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    names = list(tensors)
    groups = [names[i::shards] for i in range(shards)]
    files = ["model.safetensors"] if shards == 1 else [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    for file, group in zip(files, groups):
        arrays = {name: np.ascontiguousarray(tensors[name][1]) for name in group}
        specs = {name: TensorSpec(dtype=tensors[name][0], shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
                 for name, a in arrays.items()}
        serialize_file(specs, path / file, {"format": "pt"})
    if shards > 1:
        write_json(path / "model.safetensors.index.json", {
            "metadata": {"total_size": sum(a.nbytes for _, a in tensors.values())},
            "weight_map": {name: file for file, group in zip(files, groups) for name in group}})


def write_json(file: Path, value: dict) -> None:
    file.write_text(json.dumps(value, indent=2) + "\n")


def write_random_bitnet(path: str | Path, shape: Shape, seed: int = 0) -> Path:
    """A random BitNetForCausalLM of `shape` in microsoft/bitnet-b1.58-2B-4T's packed offline layout
    (ternary codes packed along the output dim, inverse weight_scale, bf16 norms and tied
    embeddings) with a byte-level BPE tokenizer of shape.vocab tokens. Returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    s, rng = shape, np.random.default_rng(seed)
    head_dim = s.hidden // s.heads
    ids = special_token_ids(s.vocab)
    write_json(path / "config.json", {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2", "hidden_size": s.hidden,
        "intermediate_size": s.intermediate, "num_hidden_layers": s.layers, "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads, "vocab_size": s.vocab, "max_position_embeddings": s.max_position,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True, "attention_bias": False,
        "torch_dtype": "bfloat16", "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|end_of_text|>"],
        "quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"},
    })
    q, kv = s.heads * head_dim, s.kv_heads * head_dim
    linears = {"self_attn.q_proj": (q, s.hidden), "self_attn.k_proj": (kv, s.hidden), "self_attn.v_proj": (kv, s.hidden),
               "self_attn.o_proj": (s.hidden, q), "mlp.gate_proj": (s.intermediate, s.hidden),
               "mlp.up_proj": (s.intermediate, s.hidden), "mlp.down_proj": (s.hidden, s.intermediate)}
    norms = {"input_layernorm": s.hidden, "post_attention_layernorm": s.hidden, "self_attn.attn_sub_norm": q,
             "mlp.ffn_sub_norm": s.intermediate}
    tensors = {"model.embed_tokens.weight": ("bfloat16", bfloat16_bits(rng.standard_normal((s.vocab, s.hidden), np.float32) * (3 / np.sqrt(s.hidden))))}
    for layer in range(s.layers):
        prefix = f"model.layers.{layer}"
        for name, (out, in_) in linears.items():
            codes = rng.integers(-1, 2, size=(out, in_), dtype=np.int8)
            tensors[f"{prefix}.{name}.weight"] = ("uint8", pack_output_dim(codes))
            tensors[f"{prefix}.{name}.weight_scale"] = ("bfloat16", bfloat16_bits(np.array([np.sqrt(in_)], np.float32)))
        for name, width in norms.items():
            tensors[f"{prefix}.{name}.weight"] = ("bfloat16", bfloat16_bits(np.ones(width, np.float32)))
    tensors["model.norm.weight"] = ("bfloat16", bfloat16_bits(np.ones(s.hidden, np.float32)))
    write_safetensors(path, tensors)
    write_tokenizer(path, s.vocab)
    return path
