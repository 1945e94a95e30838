"""The generation options (compiler/generation.py) and the text side of generation
(text_stream.py) in Python; tests/web/test_generation_js.py runs the same cases in the browser."""
import json
from pathlib import Path

import pytest
from bitnet_wasm.compiler.generation import OPTIONS, OptionError, manifest_table, resolve
from bitnet_wasm.text_stream import StopStrings, StreamDecoder

CASES = json.loads((Path(__file__).parents[1] / "data" / "text_stream_cases.json").read_text())["cases"]
BAD_OPTIONS = json.loads((Path(__file__).parents[1] / "data" / "bad_generation_options.json").read_text())["cases"]


def run_case(case):
    stops, shown = StopStrings(case["stop"]), []
    for i, piece in enumerate(case["pieces"]):
        shown.append(stops.push(piece, final=i == len(case["pieces"]) - 1))
        if stops.stopped:
            break
    return {"shown": shown, "text": stops.text, "stopped": stops.stopped}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_stop_strings_follow_the_shared_cases(case):
    assert run_case(case) == {k: case[k] for k in ("shown", "text", "stopped")}


def test_stream_decoder_pieces_add_up_to_the_whole_text():
    from tokenizers import Tokenizer

    import gzip
    tokenizer = Tokenizer.from_str(gzip.decompress((Path(__file__).parents[1] / "data" / "llama3-tokenizer.json.gz").read_bytes()).decode())
    text = "emoji 👋🌍 family 👩‍👩‍👧‍👦 CJK 日本語 combining e\u0301 and 𝔘𝔫𝔦"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    decoder = StreamDecoder(lambda window: tokenizer.decode(window, skip_special_tokens=True))
    pieces = [decoder.push(t) for t in ids]
    assert "".join(pieces) + decoder.flush() == text and not any("\ufffd" in p for p in pieces)
    cut = StreamDecoder(lambda window: tokenizer.decode(window, skip_special_tokens=True))
    partial = "".join(cut.push(t) for t in tokenizer.encode("👋", add_special_tokens=False).ids[:1])
    assert partial == "" and cut.flush() == "\ufffd"  # a character cut off at the end shows as such


def test_defaults_are_one_table():
    resolved = resolve({})
    assert resolved == {o.name: o.default for o in OPTIONS if not o.chat_only}
    assert resolve({}, chat=True)["context_policy"] == "error"
    table = manifest_table()
    assert table["maxNewTokens"]["default"] == resolved["max_new_tokens"] and table["topP"]["exclusive_minimum"] is True
    assert resolve({"stop": "the"})["stop"] == ("the",)  # one stop string, not three characters


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=[f"{c['option']}={c['value']!r}" for c in BAD_OPTIONS])
def test_bad_options_are_refused_clearly(case):
    with pytest.raises(OptionError) as error:
        resolve({case["option"]: case["value"]})
    assert all(w.format(name=case["option"]) in str(error.value) for w in case["words"]), str(error.value)
