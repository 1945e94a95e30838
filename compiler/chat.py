"""A model's chat template, turned at build time into the text between messages, so the browser
needs no Jinja engine. Probe conversations rendered with marker contents give the fragments:

    text = start[first role] + content + between["role>next role"] + content + ... + end

for conversations that may open with a system message, then alternate user / assistant and end with
a user message (the generation prompt included in `end`). The fragments are then VERIFIED against
full renders of several conversations; a template they cannot reproduce gets no chat format (or none
for system messages), with a warning that says why."""
from __future__ import annotations

import warnings

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MARKERS = ("\x00A\x00", "\x00B\x00", "\x00C\x00")
TRIM_PROBE = " \n\t"
# What chat() renders: contents with edges that a template may trim, markup, and other scripts.
CONTENTS = ("Hello there!", "  spaced out \n", "two\nlines", "unicode é 日本 🙂", "{{ not_jinja }} {% raw %}", "ok")
VERIFY = (
    ("user",),
    ("system", "user"),
    ("user", "assistant", "user"),
    ("system", "user", "assistant", "user"),
    ("user", "assistant", "user", "assistant", "user"),
    ("system", "user", "assistant", "user", "assistant", "user"),
)


class ChatFormatError(ValueError):
    pass


def _token_text(token) -> str:
    return token.get("content", "") if isinstance(token, dict) else (token or "")


def _template(config: dict) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates, as some tokenizer_config.json files have
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None)
    if template is not None and not isinstance(template, str):
        raise ChatFormatError(f"chat_template is {type(template).__name__}, not a template's text")
    return template or None


def _raise(message):
    raise TemplateError(message)


def jinja_renderer(config: dict):
    """render(messages) -> text: the template itself, in a sandbox, with the generation prompt."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    template = env.from_string(_template(config))
    tokens = {"bos_token": _token_text(config.get("bos_token")), "eos_token": _token_text(config.get("eos_token"))}
    return lambda messages: template.render(messages=messages, add_generation_prompt=True, **tokens)


def _split(text: str, contents: list[str]) -> list[str]:
    """The text around each content, in order: len(contents) + 1 pieces."""
    pieces, rest = [], text
    for content in contents:
        before, found, rest = rest.partition(content)
        if not found or content in rest:
            raise ChatFormatError("the template does not place each message's content exactly once")
        pieces.append(before)
    return pieces + [rest]


def _probe(render, roles: tuple[str, ...], padded: bool = False) -> list[str]:
    contents = [TRIM_PROBE + m + TRIM_PROBE if padded else m for m in MARKERS[:len(roles)]]
    return _split(render([{"role": r, "content": c} for r, c in zip(roles, contents)]), MARKERS[:len(roles)])


def render_fragments(chat: dict, messages: list[dict]) -> str:
    """The conversation in the model's template, from the fragments (the browser does the same)."""
    roles = [m["role"] for m in messages]
    text = chat["start"][roles[0]]
    for i, message in enumerate(messages):
        content = message["content"].strip() if chat["trim"] else message["content"]
        text += content + (chat["between"][f"{roles[i]}>{roles[i + 1]}"] if i + 1 < len(messages) else chat["end"])
    return text


def check_messages(chat: dict, messages) -> None:
    """ChatFormatError unless messages are [{role, content}] in an order the chat format renders."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatFormatError("messages must be a non-empty list of {role, content}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ChatFormatError(f"messages[{i}] must be {{'role': str, 'content': str}}, got {m!r}")
    roles = [m["role"] for m in messages]
    unknown = next((r for r in roles if r not in ("system", "user", "assistant")), None)
    if unknown:
        raise ChatFormatError(f"unknown role {unknown!r}: the roles are system, user and assistant")
    if "system" in roles and "system" not in chat["start"]:
        raise ChatFormatError("this model's chat template takes no system message")
    order_ok = roles[0] in chat["start"] and roles[-1] == "user" and all(f"{a}>{b}" in chat["between"] for a, b in zip(roles, roles[1:]))
    if not order_ok:
        raise ChatFormatError("messages must be: an optional system message, then user and assistant in turn, ending with a user message")


def _fragments(render) -> dict:
    trim = not _probe(render, ("user",), padded=True)[0].endswith(TRIM_PROBE)
    user = _probe(render, ("user",))
    turns = _probe(render, ("user", "assistant", "user"))
    if (turns[0], turns[-1]) != (user[0], user[1]):
        raise ChatFormatError("the text before the first or after the last message changes with the conversation")
    chat = {"start": {"user": user[0]}, "between": {"user>assistant": turns[1], "assistant>user": turns[2]}, "end": user[1], "trim": trim}
    try:
        system = _probe(render, ("system", "user"))
    except (TemplateError, ChatFormatError):
        return chat
    if system[2] == chat["end"]:
        chat["start"]["system"], chat["between"]["system>user"] = system[0], system[1]
    return chat


def _verify(chat: dict, render) -> dict:
    """chat, without system messages if only they fail; ChatFormatError if user turns fail."""
    for roles in VERIFY:
        if "system" in roles and "system" not in chat["start"]:
            continue
        messages = [{"role": r, "content": CONTENTS[(i * 5 + len(roles)) % len(CONTENTS)]} for i, r in enumerate(roles)]
        if render_fragments(chat, messages) == render(messages):
            continue
        if "system" not in roles:
            raise ChatFormatError(f"a {' > '.join(roles)} conversation renders differently from the template's own rendering")
        warnings.warn(f"tokenizer_config.json: the chat template's system messages cannot be reproduced ({' > '.join(roles)}); the site's chat takes none")
        chat = {**chat, "start": {"user": chat["start"]["user"]},
                "between": {k: v for k, v in chat["between"].items() if not k.startswith("system")}}
    return chat


def end_of_turn_tokens(chat: dict, tokenizer) -> list[int]:
    """The special token that ends an assistant turn (ChatML's <|im_end|>, Llama-3's <|eot_id|>), which
    generation stops on like an end-of-sequence token; [] if that text starts with no special token."""
    ids = tokenizer.encode(chat["between"]["assistant>user"], add_special_tokens=False).ids
    return ids[:1] if ids and tokenizer.decode(ids[:1], skip_special_tokens=True) == "" else []


def chat_format(config: dict) -> dict | None:
    """manifest["chat"]: the fragments of the tokenizer's chat template, verified; None when there is
    no template or one they cannot reproduce (with a warning saying why)."""
    try:
        if _template(config) is None:
            return None
        renderer = jinja_renderer(config)
        return _verify(_fragments(renderer), renderer)
    except Exception as e:  # noqa: BLE001  (a user's template may fail in any way on our probe conversations)
        warnings.warn(f"tokenizer_config.json: chat_template cannot be reproduced from per-message fragments ({e}); the site has no chat format")
        return None
