"""model.chat in real Chromium against Model.chat in Python on the same site: a 3-turn conversation
with a system prompt gives the same tokens, later turns prefill only what is new (the same counts
as Python), the context policy, penalties, and option errors through the runtime."""
from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

import bitnet_wasm
from bitnet_wasm.compiler.chat import jinja_renderer

SYSTEM = {"role": "system", "content": "You are a lighthouse keeper. Answer briefly."}
TURNS = ["Where is the lamp?", "  And the book of poems?\n", "Who made the tea? 🙂"]
GREEDY = {"temperature": 0, "max_new_tokens": 6}
LOAD = """async () => {
  const { BitNet } = await import("/bitnet.js");
  window.model = await BitNet.load("/model/manifest.json");
  return window.model.info;
}"""
CONVERSATION = """async ([system, turns, options]) => {
  const messages = [system], replies = [];
  for (const content of turns) {
    messages.push({ role: "user", content });
    const reply = await window.model.chat(messages, options);
    replies.push({ tokens: reply.tokens, text: reply.text, stats: reply.stats, ids: await window.model.chatTokens(messages) });
    messages.push({ role: "assistant", content: reply.text });
  }
  return replies;
}"""
ERROR = """async ([method, input, options]) => {
  try {
    if (method === "chat") await window.model.chat(input, options);
    else for await (const piece of window.model.generate(input, options));
    return null;
  } catch (e) { return e.message; }
}"""


@pytest.fixture(scope="session")
def site(chat_site):
    return chat_site


@pytest.fixture
def loaded(page, site, served_dir):
    page.goto(served_dir(site) + "model/manifest.json")
    assert page.evaluate(LOAD)["chat"] is True
    return page


def python_conversation(site, **options):
    model, messages, results = bitnet_wasm.load(site), [SYSTEM], []
    for content in TURNS:
        messages.append({"role": "user", "content": content})
        results.append(model.chat(messages, **GREEDY, **options))
        messages.append({"role": "assistant", "content": results[-1].text})
    return messages, results


def test_three_turns_with_a_system_prompt_match_python_and_reuse_the_cache(loaded, site):
    replies = loaded.evaluate(CONVERSATION, [SYSTEM, TURNS, {"temperature": 0, "maxNewTokens": 6}])
    messages, expected = python_conversation(site)
    config = json.loads((site / "model" / "tokenizer_config.json").read_text())
    tokenizer = Tokenizer.from_file(str(site / "model" / "tokenizer.json"))
    for turn, (reply, result) in enumerate(zip(replies, expected)):
        jinja_ids = tokenizer.encode(jinja_renderer(config)(messages[:2 + 2 * turn]), add_special_tokens=False).ids
        assert reply["ids"] == result.prompt_tokens == jinja_ids
        assert reply["tokens"] == result.tokens and reply["text"] == result.text
        assert (reply["stats"]["reusedTokens"], reply["stats"]["prefillTokens"]) == (result.reused_tokens, result.prefilled_tokens)
    assert replies[0]["stats"]["reusedTokens"] == 0 and all(r["stats"]["prefillTokens"] < len(r["ids"]) // 2 for r in replies[1:])


def test_without_the_cache_every_turn_prefills_everything_and_gives_the_same_tokens(loaded):
    cached = loaded.evaluate(CONVERSATION, [SYSTEM, TURNS, {"temperature": 0, "maxNewTokens": 6}])
    uncached = loaded.evaluate(CONVERSATION, [SYSTEM, TURNS, {"temperature": 0, "maxNewTokens": 6, "cachePrompt": False}])
    assert [r["tokens"] for r in uncached] == [r["tokens"] for r in cached]
    assert all(r["stats"]["prefillTokens"] == len(r["ids"]) for r in uncached)


def test_streaming_chat(loaded):
    got = loaded.evaluate("""async ([messages]) => {
      const pieces = [];
      for await (const piece of window.model.chat(messages, { stream: true, temperature: 0, maxNewTokens: 6 })) pieces.push(piece);
      const whole = await window.model.chat(messages, { temperature: 0, maxNewTokens: 6 });
      return { streamed: pieces.map((p) => p.text).join(""), whole: whole.text };
    }""", [[SYSTEM, {"role": "user", "content": TURNS[0]}]])
    assert got["streamed"] == got["whole"]


def test_the_context_policy_matches_python(loaded, site):
    long_text = "The old lighthouse keeper climbed the stairs every evening. " * 3
    messages = [SYSTEM]
    for i in range(12):
        messages += [{"role": "user", "content": f"{i}: {long_text}"}, {"role": "assistant", "content": long_text}]
    messages.append({"role": "user", "content": "Who made the tea?"})
    error = loaded.evaluate(ERROR, ["chat", messages, {"temperature": 0}])
    assert "the context holds 256" in error and "shorten it" in error
    got = loaded.evaluate("async ([m]) => (await window.model.chat(m, { temperature: 0, maxNewTokens: 6, contextPolicy: 'drop_oldest' }))",
                          [messages])
    expected = bitnet_wasm.load(site).chat(messages, context_policy="drop_oldest", **GREEDY)
    assert got["stats"]["droppedMessages"] == expected.dropped_messages > 0
    assert got["tokens"] == expected.tokens


def test_penalties_and_sampling_match_python(loaded, site):
    options = {"temperature": 0.9, "seed": 3, "repetition_penalty": 1.3, "presence_penalty": 0.5, "frequency_penalty": 0.2,
               "max_new_tokens": 24, "ignore_eos": True}
    js_options = {"temperature": 0.9, "seed": 3, "repetitionPenalty": 1.3, "presencePenalty": 0.5, "frequencyPenalty": 0.2,
                  "maxNewTokens": 24, "ignoreEos": True}
    got = loaded.evaluate("""async ([prompt, options]) => {
      const tokens = [];
      for await (const piece of window.model.generate(prompt, options)) tokens.push(piece.token);
      return tokens;
    }""", ["The old lighthouse", js_options])
    model = bitnet_wasm.load(site)
    assert got == model.generate("The old lighthouse", **options).tokens
    assert got != model.generate("The old lighthouse", **{**options, "repetition_penalty": 1.0, "presence_penalty": 0.0,
                                                           "frequency_penalty": 0.0}).tokens


@pytest.mark.parametrize("method, input_, options, words", [
    ("generate", "Hi", {"temperature": -1}, "temperature must be a number >= 0"),
    ("generate", "Hi", {"maxNewTokens": "lots"}, 'maxNewTokens must be an integer >= 1, got "lots"'),
    ("generate", "Hi", {"stop": [""]}, "stop strings must not be empty"),
    ("generate", "Hi", {"contextPolicy": "drop_oldest"}, "contextPolicy is an option of chat()"),
    ("chat", [{"role": "assistant", "content": "Hi"}], {}, "ending with a user message"),
    ("chat", [{"role": "user", "content": "Hi"}], {"contextPolicy": "newest"}, "contextPolicy must be one of"),
])
def test_bad_options_and_messages_are_refused_clearly(loaded, method, input_, options, words):
    error = loaded.evaluate(ERROR, [method, input_, options])
    assert error and words in error, error
