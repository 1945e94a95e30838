"""compiler/chat.py: per-message fragments from real chat templates, identical to jinja2's own
rendering for multi-turn conversations with a system prompt; templates they cannot reproduce are
refused with a warning."""
import warnings

import pytest
from chat_templates import FAMILIES, LLAMA3, NUMBERED, SPECIAL_TOKENS, SYSTEM_EVERY_TURN

from bitnet_wasm.compiler.chat import ChatFormatError, chat_format, check_messages, jinja_renderer, render_fragments

CONVERSATION = [
    {"role": "system", "content": "You are terse. Answer in one line."},
    {"role": "user", "content": "  What is a ternary weight?\n"},
    {"role": "assistant", "content": "One of -1, 0 or +1."},
    {"role": "user", "content": "And 1.58 bits? 🙂"},
    {"role": "assistant", "content": "log2(3) ≈ 1.58."},
    {"role": "user", "content": "Thanks {{ x }}"},
]


@pytest.mark.parametrize("family", FAMILIES)
def test_fragments_render_like_jinja_for_multi_turn_conversations(family):
    config = {"chat_template": FAMILIES[family], **SPECIAL_TOKENS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat = chat_format(config)
    render = jinja_renderer(config)
    for turns in (1, 3, 5):
        for messages in (CONVERSATION[:turns + 1], CONVERSATION[1:turns + 1]):
            assert render_fragments(chat, messages) == render(messages)


def test_llama3_fragments():
    chat = chat_format({"chat_template": LLAMA3, **SPECIAL_TOKENS})
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert chat == {
        "start": {"user": "<|begin_of_text|>" + header.format("user"), "system": "<|begin_of_text|>" + header.format("system")},
        "between": {"user>assistant": "<|eot_id|>" + header.format("assistant"), "assistant>user": "<|eot_id|>" + header.format("user"),
                    "system>user": "<|eot_id|>" + header.format("user")},
        "end": "<|eot_id|>" + header.format("assistant"),
        "trim": True,
    }


def test_a_template_without_system_messages_keeps_user_turns():
    config = {"chat_template": SYSTEM_EVERY_TURN, **SPECIAL_TOKENS}
    with pytest.warns(UserWarning, match="system messages cannot be reproduced"):
        chat = chat_format(config)
    assert "system" not in chat["start"]
    messages = CONVERSATION[1:4]
    assert render_fragments(chat, messages) == jinja_renderer(config)(messages)
    with pytest.raises(ChatFormatError, match="takes no system message"):
        check_messages(chat, CONVERSATION)


def test_no_template_means_no_chat():
    assert chat_format({}) is None


@pytest.mark.parametrize("template, problem", [
    ("{{ raise_exception('system message required') }}", "system message required"),
    ("{% for m in messages %}{{ m['content'] }}{{ m['content'] }}{% endfor %}", "exactly once"),
    ("no messages at all", "exactly once"),
    (NUMBERED, "renders differently"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
])
def test_templates_the_fragments_cannot_reproduce_are_refused_with_a_warning(template, problem):
    with pytest.warns(UserWarning, match="cannot be reproduced") as caught:
        assert chat_format({"chat_template": template}) is None
    assert any(problem in str(w.message) for w in caught), [str(w.message) for w in caught]


@pytest.mark.parametrize("messages, problem", [
    ([], "non-empty list"),
    ([{"role": "user"}], "must be {'role': str, 'content': str}"),
    ([{"role": "robot", "content": "hi"}], "unknown role 'robot'"),
    ([{"role": "assistant", "content": "hi"}], "ending with a user message"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "in turn"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "optional system message"),
])
def test_bad_messages_are_refused_clearly(messages, problem):
    chat = chat_format({"chat_template": LLAMA3, **SPECIAL_TOKENS})
    with pytest.raises(ChatFormatError) as error:
        check_messages(chat, messages)
    assert problem in str(error.value)


@pytest.mark.parametrize("template", [-1099511627776, 3.5, {"a": 1}, "{% for i in range(10**12) %}x{% endfor %}", "{{ 1/0 }}",
                                      "{{ messages.__class__.__mro__ }}"])
def test_a_template_that_cannot_render_means_no_chat_with_a_warning(template):
    with pytest.warns(UserWarning, match="chat_template cannot be reproduced"):
        assert chat_format({"chat_template": template}) is None
