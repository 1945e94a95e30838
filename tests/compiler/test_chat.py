import warnings

import pytest

from bitnet_wasm.compiler.chat import single_turn

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def test_llama3_template_splits_around_the_user_turn():
    chat = single_turn({"chat_template": LLAMA3_TEMPLATE, "bos_token": {"content": "<|begin_of_text|>"}})
    assert chat == {
        "prefix": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
        "suffix": "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    }


def test_named_templates_use_the_default_one():
    config = {"chat_template": [{"name": "tool_use", "template": "T{{ messages[0]['content'] }}"},
                                {"name": "default", "template": "User: {{ messages[0]['content'] }}\nBot:"}]}
    assert single_turn(config) == {"prefix": "User: ", "suffix": "\nBot:"}


def test_no_template_means_no_chat():
    assert single_turn({}) is None


@pytest.mark.parametrize("template, problem", [
    ("{{ raise_exception('system message required') }}", "system message required"),
    ("{% for m in messages %}{{ m['content'] }}{{ m['content'] }}{% endfor %}", "exactly once"),
    ("no messages at all", "exactly once"),
])
def test_templates_that_cannot_frame_one_user_turn_are_dropped_with_a_warning(template, problem):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert single_turn({"chat_template": template}) is None
    assert any(problem in str(w.message) for w in caught)


def test_sandbox_refuses_unsafe_templates():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert single_turn({"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}) is None
    assert caught
