"""web/tokenizer.js in real Chromium against Hugging Face `tokenizers` (Python) on hard strings:
encode ids, decode text, and streaming decode, for byte-level BPE, SentencePiece-style BPE with
byte fallback (also as a site built from a SentencePiece GGUF writes it), and the real Llama-3 tokenizer."""
from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tokenizers import (
    AddedToken,
    ByteLevelBPETokenizer,
    Regex,
    SentencePieceBPETokenizer,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from tokenizers.decoders import DecodeStream

import bitnet_wasm
from bitnet_wasm.compiler import writers
from bitnet_wasm.compiler.loaders import load_checkpoint
from bitnet_wasm.compiler.loaders.gguf_tokenizer import tokenizer_files
from bitnet_wasm.compiler.writers.gguf import tokenizer_metadata, write_gguf
from bitnet_wasm.web import WEB_DIR

LLAMA3_JSON_GZ = Path(__file__).parents[1] / "data" / "llama3-tokenizer.json.gz"

CORPUS = [
    "",
    " ",
    "Hello world",
    "Hello, world! How's it going? I'm fine; they're here, we've won, you'll see, he'd know, don't.",
    "HOW'S IT GOING? THEY'RE HERE. I'LL GO. 'S 'T 'Re 'vE",
    "it'Sam it'ſam I'LLbe WE'VEgone they'REady",  # contractions of any case, long s (U+017F) folds to s
    "emoji 👋🌍 family 👩‍👩‍👧‍👦 couple 👩‍❤️‍💋‍👨 skin tones 👍🏽👋🏿 flags 🏳️‍🌈🇯🇵 heart ❤️ keycap 1️⃣",
    "CJK 日本語のテキストです。中文文本，简体字。한국어 텍스트입니다. 漢字かな交じり文",
    "combining e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353\u0354 o\u0336 vs precomposed é ä ñ",
    "Arabic مرحبا بالعالم ١٢٣ and Hebrew שָׁלוֹם עוֹלָם mixed ltr",
    "whitespace    runs\t\ttabs\n\n\nnewlines\r\nCRLF\r\n\r\n  \n  trailing   ",
    "   leading spaces and a trailing tab\t",
    "\n\n\n",
    "\ufeffstarts with a byte order mark",
    "digits 1234567890 0000 12 3.14159 1,234,567.89 -42 1e10 ٣٤ ½ ² ①",
    "mixed123abc456 v2.0.1 0x1F 2024-06-01T12:34:56Z",
    "special spaces \u00a0nbsp \u3000ideographic \u2003em \u0085nel \ufeffbom \u200bzwsp \u2028ls",
    "punctuation!!! ??? ... --- ((( ))) [[ ]] {{ }} <<>> @#$%^&* «quotes» “curly” ‘single’",
    "url https://example.com/path?q=1&r=2#frag email a.b@c.de",
    "code:\ndef f(x):\n    return x ** 2  # comment\n\tpass\n",
    "a" * 3000,
    "ab" * 700 + " " + "xyz" * 400,
    "Ünïcödé ＦＵＬＬＷＩＤＴＨ ﬁ ligature Ⅻ roman ㎏ squared",
    "control \x00 \x01\x1f chars \x7f and \x0b\x0c",
    "ǅ Dz titlecase ß ẞ İstanbul ſ long s 'ſ 'K",
    "Tiếng Việt có dấu, Ελληνικά, Русский текст, हिन्दी, ไทย",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟙𝟚𝟛 astral 𠀀𪚥",
    "▁ already has metaspace ▁▁ and Ġ Ċ look byte-level",
    "<0x41> looks like a byte token, <s> and <unk> look special",
]

TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. It's a test; they're testing, we've tested. "
    "Numbers like 1,234 and 3.14 appear here. Hello world! Hello there, world. "
    "Tokenizers split text into pieces: words, sub-words and bytes. 日本語 and café too.\n"
) * 50


def trained_byte_level(add_prefix_space: bool) -> ByteLevelBPETokenizer:
    tok = ByteLevelBPETokenizer(add_prefix_space=add_prefix_space)
    tok.train_from_iterator([TRAINING_TEXT], vocab_size=500, min_frequency=2,
                            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    return tok


def byte_level_gpt2_style() -> str:
    """GPT-2 style: ByteLevel pre-tokenizer with its own regex, TemplateProcessing adds a BOS."""
    tok = trained_byte_level(add_prefix_space=False)._tokenizer
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]),
    ])
    return tok.to_str()


def byte_level_featured() -> str:
    """Byte-level BPE behind a chain of normalizers and splits, with prefix space and added tokens
    with lstrip/rstrip/single_word/normalized."""
    tok = trained_byte_level(add_prefix_space=True)._tokenizer
    tok.normalizer = normalizers.Sequence([
        normalizers.NFD(), normalizers.StripAccents(), normalizers.NFKC(), normalizers.Lowercase(),
        normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(r"\d{4}"), "$&!"),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[\r\n]+"), behavior="merged_with_previous"),
        pre_tokenizers.Split("--", behavior="removed"),
        pre_tokenizers.Split(Regex(r"\p{P}"), behavior="contiguous", invert=True),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True),
    ])
    tok.add_tokens([
        AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=False),
        AddedToken("fox", single_word=True, normalized=True),
        AddedToken("ﬁx", normalized=True),  # matched after NFKC turns it into "fix"
    ])
    tok.add_special_tokens([AddedToken("<sep>", rstrip=True, normalized=False)])
    return tok.to_str()


def sentencepiece_llama2_style() -> str:
    """Llama-2 / Mistral style: Prepend+Replace normalizer, BPE with <0xNN> byte fallback,
    ByteFallback+Fuse+Strip decoders, BOS by TemplateProcessing."""
    trainer = trainers.BpeTrainer(vocab_size=300, min_frequency=2, show_progress=False)
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.Metaspace()
    learner.train_from_iterator([TRAINING_TEXT], trainer)
    learned = json.loads(learner.to_str())["model"]
    specials = ["<unk>", "<s>", "</s>"]
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)] + sorted(learned["vocab"], key=learned["vocab"].get)
    config = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                         for i, c in enumerate(specials)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {p: i for i, p in enumerate(dict.fromkeys(pieces))}, "merges": learned["merges"]},
    }
    return json.dumps(config)


def sentencepiece_metaspace_first() -> str:
    """Metaspace pre-tokenizer (prepend_scheme "first", no split) with byte fallback, decoded by
    ByteFallback then Metaspace; merges stored as "a b" strings."""
    config = json.loads(sentencepiece_llama2_style())
    config["normalizer"] = None
    config["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    config["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}
    config["model"]["merges"] = [" ".join(m) for m in config["model"]["merges"]]
    return json.dumps(config)


def sentencepiece_bpe_unk() -> str:
    """tokenizers' SentencePieceBPETokenizer: NFKC, Metaspace split on every ▁, unknown -> <unk>."""
    tok = SentencePieceBPETokenizer()
    tok.train_from_iterator([TRAINING_TEXT], vocab_size=300, min_frequency=2, special_tokens=["<unk>", "<pad>"], show_progress=False)
    return tok._tokenizer.to_str()


def bpe_with_affixes() -> str:
    """Word-piece style affixes: "##" continuing-subword prefix, "</w>" end-of-word suffix,
    split on whitespace, decoded by BPEDecoder; unknown characters are dropped (no unk)."""
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, continuing_subword_prefix="##",
                                  end_of_word_suffix="</w>", special_tokens=["<eos>", "<pad>"], show_progress=False)
    tok = Tokenizer(models.BPE(continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="removed")
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.train_from_iterator([TRAINING_TEXT], trainer)
    return tok.to_str()


def llama3() -> str:
    """The shipped file ("a b" merges, ignore_merges) with Meta's BOS template added, as in
    Meta's and BitNet 2B4T's tokenizer.json (the npm copy only has the ByteLevel processor)."""
    config = json.loads(gzip.decompress(LLAMA3_JSON_GZ.read_bytes()))
    config["post_processor"] = {"type": "Sequence", "processors": [
        config["post_processor"],
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}},
    ]}
    return json.dumps(config, ensure_ascii=False)


def llama3_through_gguf() -> str:
    """The Llama-3 tokenizer as GGUF metadata (what llama.cpp's converter writes), converted back by our GGUF loader."""
    text = llama3()
    metadata = tokenizer_metadata(text, Tokenizer.from_str(text).get_vocab_size(), 128000, (128001, 128009), pre="llama-bpe")
    return tokenizer_files(metadata, len(metadata["tokenizer.ggml.tokens"])).tokenizer_json


def sentencepiece_site_from_gguf() -> str:
    """The tokenizer.json of a site built from a llama-arch TQ2_0 GGUF with a Llama-2-style
    SentencePiece vocabulary (tokenizer.ggml.model "llama": scores, byte pieces, add_bos_token)."""
    with tempfile.TemporaryDirectory() as tmp:
        written = writers.write_llama_bitnet(Path(tmp) / "hf", hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=256,
                                             vocab=1024, tokenizer=False)
        model = write_gguf(load_checkpoint(written.path), Path(tmp) / "model.gguf", "tq2_0", "llama", tokenizer="llama")
        bitnet_wasm.build(model, Path(tmp) / "site", layout="mad", wasm=False, progress=False)
        return (Path(tmp) / "site/model/tokenizer.json").read_text(encoding="utf-8")


LOSSLESS = {"byte-level-gpt2", "llama3", "llama3-from-gguf"}  # no normalizer, no unknown characters
def many_added_tokens() -> str:
    """130 k added tokens (a random 2B-4T-shaped checkpoint's count; WebKit refused them as one
    regex alternation), some overlapping so that leftmost-longest matters."""
    tok = trained_byte_level(add_prefix_space=False)._tokenizer
    tok.add_special_tokens([f"<|reserved_special_token_{i}|>" for i in range(130_000)])
    tok.add_tokens(["brown", "brown fox", "own f", "wn fox jumps"])
    return tok.to_str()


TOKENIZERS = {
    "byte-level-gpt2": byte_level_gpt2_style,
    "byte-level-featured": byte_level_featured,
    "sentencepiece-llama2": sentencepiece_llama2_style,
    "sentencepiece-metaspace-first": sentencepiece_metaspace_first,
    "sentencepiece-unk": sentencepiece_bpe_unk,
    "bpe-affixes": bpe_with_affixes,
    "llama3": llama3,
    "llama3-from-gguf": llama3_through_gguf,
    "sentencepiece-from-gguf": sentencepiece_site_from_gguf,
    "many-added-tokens": many_added_tokens,
}  # name -> tokenizer.json text

# Runs the whole comparison for one tokenizer in one round trip to the page.
RUN_IN_PAGE = """async ({texts, idLists}) => {
  const { Tokenizer } = await import('./tokenizer.js');
  const tokenizer = Tokenizer.fromJSON(await (await fetch('tokenizer.json')).text());
  const stream = (ids, skipSpecialTokens) => {
    const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens });
    return [...ids.map((id) => decoder.push(id)), decoder.flush()];
  };
  return {
    encoded: texts.map((t) => tokenizer.encode(t)),
    encodedPlain: texts.map((t) => tokenizer.encode(t, { addSpecialTokens: false })),
    decoded: idLists.map((ids) => tokenizer.decode(ids)),
    decodedKeep: idLists.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: false })),
    streamed: idLists.map((ids) => stream(ids, true)),
    streamedKeep: idLists.map((ids) => stream(ids, false)),
  };
}"""


def added_tokens(tok: Tokenizer) -> list[str]:
    return [t.content for _, t in sorted(tok.get_added_tokens_decoder().items())]


def strip_added(tok: Tokenizer, text: str) -> str:
    for token in added_tokens(tok):
        text = text.replace(token, "")
    return text


def texts_for(tok: Tokenizer) -> list[str]:
    """The corpus plus strings with this tokenizer's added tokens inside text."""
    added = added_tokens(tok)[:6]
    a, b = added[0], added[-1]
    return CORPUS + [f"{a}Hello{b} world", f"x {a} y {b} z", f"{a}{b}{a}", f"  {b}  \n{a}\n", "".join(added),
                     " ".join(added), f"prefix{a}suffix foxes fox fix ﬁx [MASK] <sep> x", "the brown fox jumps, a brown fo"]


def random_id_lists(tok: Tokenizer, count: int = 40) -> list[list[int]]:
    """Arbitrary id sequences (split characters, lone bytes, specials anywhere): decoding
    them must fail the same way, with U+FFFD in the same places."""
    rng = random.Random(1234)
    vocab = tok.get_vocab_size()
    specials = sorted(tok.get_added_tokens_decoder())
    return [[rng.choice(specials) if rng.random() < 0.1 else rng.randrange(vocab) for _ in range(rng.randint(1, 24))]
            for _ in range(count)]


def stream_pieces(tok: Tokenizer, ids: list[int], skip: bool) -> tuple[list[str], bool]:
    """tokenizers' DecodeStream pieces, and False if it gave up: it raises when an invalid byte
    run rewrites text it already emitted (web/tokenizer.js carries on instead)."""
    stream = DecodeStream(skip_special_tokens=skip)
    pieces = []
    for i in ids:
        try:
            pieces.append(stream.step(tok, i) or "")
        except Exception as e:
            assert "Invalid prefix" in str(e)
            return pieces, False
    return pieces, True


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def case(request, engine, served_dir, tmp_path_factory):
    name = request.param
    tokenizer_json = TOKENIZERS[name]()
    tok = Tokenizer.from_str(tokenizer_json)  # Python and JS read the very same file
    folder = tmp_path_factory.mktemp(name)
    shutil.copy(WEB_DIR / "tokenizer.js", folder / "tokenizer.js")
    (folder / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    (folder / "index.html").write_text("<!doctype html><meta charset=utf-8><title>tokenizer</title>")
    texts = texts_for(tok)
    encoded = [tok.encode(t).ids for t in texts]
    id_lists = encoded + random_id_lists(tok)
    with engine.new_page() as page:
        page.goto(served_dir(folder) + "index.html")
        js = page.evaluate(RUN_IN_PAGE, {"texts": texts, "idLists": id_lists})
    return {"name": name, "tok": tok, "texts": texts, "encoded": encoded, "id_lists": id_lists, "valid": len(texts), "js": js}


def check(inputs, expected, actual):
    assert len(expected) == len(actual)
    bad = [(i, e, a) for i, e, a in zip(inputs, expected, actual) if e != a]

    def first_difference(e, a):
        at = next((k for k, (x, y) in enumerate(zip(e, a)) if x != y), min(len(e), len(a)))
        return f"from [{at}]: python {e[at:at + 12]!r}, js {a[at:at + 12]!r}"

    assert not bad, f"{len(bad)} of {len(expected)} differ, first ones:\n" + "\n".join(
        f"input {i!r:.200}\n  {first_difference(e, a)}" for i, e, a in bad[:3])


def test_encode_matches_python(case):
    tok, texts = case["tok"], case["texts"]
    check(texts, case["encoded"], case["js"]["encoded"])
    plain = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    check(texts, plain, case["js"]["encodedPlain"])


@pytest.mark.parametrize("skip", [True, False])
def test_decode_matches_python(case, skip):
    tok, id_lists = case["tok"], case["id_lists"]
    expected = [tok.decode(ids, skip_special_tokens=skip) for ids in id_lists]
    check(id_lists, expected, case["js"]["decoded" if skip else "decodedKeep"])
    if skip and case["name"] in LOSSLESS:  # the reference itself: decode(encode(t)) == t
        texts = case["texts"]
        check(texts, [strip_added(tok, t) for t in texts], expected[: len(texts)])


@pytest.mark.parametrize("skip", [True, False])
def test_stream_decoder(case, skip):
    tok, id_lists = case["tok"], case["id_lists"]
    streamed = case["js"]["streamed" if skip else "streamedKeep"]
    # The same pieces as tokenizers' DecodeStream (up to where it gives up), then a flush, ...
    reference = [stream_pieces(tok, ids, skip) for ids in id_lists]
    assert all(complete for _, complete in reference[: case["valid"]])
    check(id_lists, [p for p, _ in reference], [js[: len(p)] for (p, _), js in zip(reference, streamed)])
    # ... adding up to decode() of the whole sequence: always for valid text; for arbitrary ids
    # wherever an invalid byte run did not rewrite text already emitted.
    whole = [tok.decode(ids, skip_special_tokens=skip) for ids in id_lists]
    faithful = [i for i, (w, js) in enumerate(zip(whole, streamed)) if i < case["valid"] or w.startswith("".join(js[:-1]))]
    assert len(faithful) >= case["valid"] + (len(id_lists) - case["valid"]) // 2
    check([id_lists[i] for i in faithful], [whole[i] for i in faithful], ["".join(streamed[i]) for i in faithful])
    # and for valid text no piece ever carries a broken character.
    broken = [(ids, p) for ids, p in zip(id_lists[:case["valid"]], streamed) if any("\ufffd" in x for x in p)]
    assert not broken, broken[:2]


def bpe_json(**parts) -> dict:
    model = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
    return {"model": {**model, **parts.pop("model", {})}, **parts}


BAD_FILES = [
    ({"version": "1.0"}, 'expected an object with a "model"'),
    (bpe_json(model={"type": "Unigram", "vocab": [["a", 0.0]]}), 'model type "Unigram" is not supported (only BPE)'),
    (bpe_json(model={"merges": None}), 'a BPE model needs "vocab" {token: id} and "merges" [...]'),
    (bpe_json(model={"vocab": [["a", 0]]}), 'a BPE model needs "vocab" {token: id} and "merges" [...]'),
    (bpe_json(model={"merges": ["a c"]}), 'merge #0 "a c" does not name two vocab tokens'),
    (bpe_json(model={"merges": [["a", "b", "c"]]}), 'merge #0 ["a","b","c"] does not name two vocab tokens'),
    (bpe_json(model={"unk_token": "<unk>"}), 'unk_token "<unk>" is not in the vocab'),
    (bpe_json(normalizer={"type": "Precompiled", "precompiled_charsmap": ""}), 'unsupported normalizer type "Precompiled"'),
    (bpe_json(pre_tokenizer={"type": "Sequence", "pretokenizers": [{"type": "BertPreTokenizer"}]}), 'unsupported pre_tokenizer type "BertPreTokenizer"'),
    (bpe_json(pre_tokenizer={"type": "Split", "pattern": {"Regex": "(?<x"}, "behavior": "Isolated"}), 'Split pre_tokenizer: regex "(?<x" is not supported here'),
    (bpe_json(pre_tokenizer={"type": "Split", "pattern": {"Regex": " "}, "behavior": "Sideways"}), 'unknown split behavior "Sideways"'),
    (bpe_json(pre_tokenizer={"type": "Split", "pattern": " ", "behavior": "Isolated"}), 'pattern must be {"String": ...} or {"Regex": ...}'),
    (bpe_json(decoder={"type": "WordPiece", "prefix": "##"}), 'unsupported decoder type "WordPiece"'),
    (bpe_json(post_processor={"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {}}),
     'TemplateProcessing uses undefined special token "<s>"'),
    ("{not json", "tokenizer.json is not valid JSON"),
]


def test_bad_files_and_inputs_raise_clear_errors(page, served_dir, tmp_path):
    shutil.copy(WEB_DIR / "tokenizer.js", tmp_path / "tokenizer.js")
    (tmp_path / "index.html").write_text("<!doctype html><title>errors</title>")
    page.goto(served_dir(tmp_path) + "index.html")
    messages = page.evaluate("""async (files) => {
      const { Tokenizer } = await import('./tokenizer.js');
      const message = (f) => { try { f(); return null; } catch (e) { return e.message; } };
      const ok = Tokenizer.fromJSON(files.ok);
      return {
        files: files.bad.map((json) => message(() => Tokenizer.fromJSON(json).encode('ab'))),
        encodeNumber: message(() => ok.encode(42)),
        okIds: ok.encode('abba'),
      };
    }""", {"bad": [f for f, _ in BAD_FILES], "ok": bpe_json()})
    assert messages["okIds"] == [2, 1, 0]
    for (_, expected), got in zip(BAD_FILES, messages["files"]):
        assert got is not None and expected in got, (expected, got)
    assert "Tokenizer.encode: text must be a string, got number" in messages["encodeNumber"]


# web/tokenizer.js as a module of its own in Node, encoding texts with a tokenizer.json: argv[2..4]
NODE_ENCODE = """
import { readFileSync } from "node:fs";
const { Tokenizer } = await import(process.argv[2]);
const tokenizer = Tokenizer.fromJSON(readFileSync(process.argv[3], "utf8"));
console.log(JSON.stringify(JSON.parse(readFileSync(process.argv[4], "utf8")).map((text) => tokenizer.encode(text))));
"""


def test_llama3_encodes_in_an_engine_without_regex_modifiers(tmp_path):
    """Node 18-22 (V8 before 12.5) reject (?i:...), as Chromium < 125, Firefox < 132 and Safari < 18.4
    do: the REGEX_REWRITES of web/tokenizer.js must make Llama-3's pre-tokenizer compile anyway."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: apt-get install -y nodejs")
    rejects = subprocess.run([node, "-e", "new RegExp(\"(?i:a)\", \"u\")"], capture_output=True, text=True, timeout=60)
    assert rejects.returncode != 0, "this Node compiles regex modifiers, so it cannot show the rewrite at work; use Node 18-22"
    shutil.copy(WEB_DIR / "tokenizer.js", tmp_path / "tokenizer.mjs")
    (tmp_path / "tokenizer.json").write_text(llama3(), encoding="utf-8")
    (tmp_path / "texts.json").write_text(json.dumps(CORPUS), encoding="utf-8")
    (tmp_path / "encode.mjs").write_text(NODE_ENCODE)
    run = subprocess.run([node, str(tmp_path / "encode.mjs"), (tmp_path / "tokenizer.mjs").as_uri(), str(tmp_path / "tokenizer.json"),
                          str(tmp_path / "texts.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    tok = Tokenizer.from_str(llama3())
    check(CORPUS, [tok.encode(t).ids for t in CORPUS], json.loads(run.stdout))
