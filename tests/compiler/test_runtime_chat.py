"""Model.chat in Python on a built site: the conversation's tokens are those of jinja2's rendering of
the model's template, later turns prefill only what is new since the cached prefix (and give the same
tokens as without the cache), and the context policy."""
import json

import pytest
from tokenizers import Tokenizer

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler.chat import jinja_renderer

SYSTEM = {"role": "system", "content": "You are a lighthouse keeper. Answer briefly."}
TURNS = ["Where is the lamp?", "  And the book of poems?\n", "Who made the tea?"]
GREEDY = {"temperature": 0, "max_new_tokens": 6}


@pytest.fixture(scope="session")
def site(chat_site):
    return chat_site


def conversation(model, turns: int, **options):
    """system + `turns` user messages, each answered by chat(); returns the messages and the results."""
    messages, results = [SYSTEM], []
    for text in TURNS[:turns]:
        messages.append({"role": "user", "content": text})
        results.append(model.chat(messages, **GREEDY, **options))
        messages.append({"role": "assistant", "content": results[-1].text})
    return messages, results


def test_chat_tokens_are_jinja2_rendering_of_the_template(site):
    model = bitnet_wasm.load(site)
    config = json.loads((site / "model" / "tokenizer_config.json").read_text())
    tokenizer = Tokenizer.from_file(str(site / "model" / "tokenizer.json"))
    messages = [SYSTEM, {"role": "user", "content": TURNS[0]}, {"role": "assistant", "content": "On top."}, {"role": "user", "content": TURNS[1]}]
    expected = tokenizer.encode(jinja_renderer(config)(messages), add_special_tokens=False).ids
    assert model.chat_tokens(messages) == expected
    assert model.chat_format["stop_tokens"] == [tokenizer.token_to_id("<|eot_id|>")]


def test_later_turns_prefill_only_what_is_new_and_give_the_same_tokens(site):
    model, fresh = bitnet_wasm.load(site), bitnet_wasm.load(site)
    messages, results = conversation(model, 3)
    assert results[0].reused_tokens == 0
    for earlier, later in zip(results, results[1:]):
        assert 0 < later.reused_tokens <= len(earlier.prompt_tokens) + len(earlier.tokens)
        assert later.prefilled_tokens == len(later.prompt_tokens) - later.reused_tokens < len(later.prompt_tokens) // 2
    _, uncached = conversation(fresh, 3, cache_prompt=False)
    assert [r.tokens for r in uncached] == [r.tokens for r in results]
    assert all(r.reused_tokens == 0 for r in uncached)


def test_streaming_chat_gives_the_same_text(site):
    model = bitnet_wasm.load(site)
    messages = [SYSTEM, {"role": "user", "content": TURNS[0]}]
    whole = model.chat(messages, **GREEDY)
    assert "".join(p.text for p in model.chat(messages, stream=True, **GREEDY)) == whole.text


def test_the_context_policy_refuses_or_drops_the_oldest_turns(site):
    model = bitnet_wasm.load(site)
    long_text = "The old lighthouse keeper climbed the stairs every evening. " * 3
    messages = [SYSTEM]
    for i in range(12):
        messages += [{"role": "user", "content": f"{i}: {long_text}"}, {"role": "assistant", "content": long_text}]
    messages.append({"role": "user", "content": "Who made the tea?"})
    with pytest.raises(ValueError, match="the context holds 256"):
        model.chat(messages, **GREEDY)
    result = model.chat(messages, context_policy="drop_oldest", **GREEDY)
    assert result.dropped_messages > 0 and result.dropped_messages % 2 == 0 and len(result.prompt_tokens) < 256
    kept = [messages[0]] + messages[1 + result.dropped_messages:]
    assert result.prompt_tokens == model.chat_tokens(kept)
    with pytest.raises(ValueError, match="context_policy is an option of chat"):
        model.generate("Hi", context_policy="drop_oldest")


def test_cli_chat_with_a_system_message(site, capsys):
    args = ["run", str(site), "--chat", "--system", SYSTEM["content"], "--prompt", TURNS[0], "--temperature", "0",
            "--max-new-tokens", "6", "--json"]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out)
    model = bitnet_wasm.load(site)
    assert out["prompt_tokens"] == model.chat_tokens([SYSTEM, {"role": "user", "content": TURNS[0]}])


@pytest.mark.parametrize("flag, value, words", [("--temperature", "-1", "temperature must be a number >= 0"),
                                                ("--top-p", "0", "top_p must be a number > 0"),
                                                ("--max-new-tokens", "lots", "'lots' is not a number")])
def test_cli_refuses_bad_options(site, capsys, flag, value, words):
    with pytest.raises(SystemExit) as exit_:
        cli(["run", str(site), "--prompt", "x", flag, value])
    assert exit_.value.code == 2 and words in capsys.readouterr().err
