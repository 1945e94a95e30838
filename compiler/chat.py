"""A model's chat template, rendered at build time around one user turn, so the browser needs
no Jinja engine: the page wraps the visitor's text in the stored prefix and suffix."""
from __future__ import annotations

import warnings

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MARKER = "\x00USER\x00"


def _token_text(token) -> str:
    return token.get("content", "") if isinstance(token, dict) else (token or "")


def _template(config: dict) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates, as some tokenizer_config.json files have
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template or None


def _raise(message):
    raise TemplateError(message)


def single_turn(config: dict) -> dict | None:
    """{"prefix", "suffix"} around one user message with the generation prompt, or None when the
    tokenizer has no chat template (or one that cannot render a lone user turn)."""
    template = _template(config)
    if template is None:
        return None
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    try:
        text = env.from_string(template).render(
            messages=[{"role": "user", "content": MARKER}], add_generation_prompt=True,
            bos_token=_token_text(config.get("bos_token")), eos_token=_token_text(config.get("eos_token")))
    except TemplateError as e:
        warnings.warn(f"tokenizer_config.json: chat_template does not render a single user turn ({e}); the site has no chat format")
        return None
    prefix, found, suffix = text.partition(MARKER)
    if not found or MARKER in suffix:
        warnings.warn("tokenizer_config.json: chat_template does not place the user message exactly once; the site has no chat format")
        return None
    return {"prefix": prefix, "suffix": suffix}
