"""Generation options: one table of names, defaults and limits. The Python runtime and the CLI read
it here; every site carries it in manifest["generation"], from which the browser runtime validates
and the page takes its defaults."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Option:
    name: str                  # Python and CLI spelling; JS uses the camelCase of it
    kind: str                  # "int" | "number" | "bool" | "strings" | "seed" | "choice"
    default: object            # None: no default (seed: a random one per generation)
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    chat_only: bool = False    # an option of chat(), not of generate()

    @property
    def js_name(self) -> str:
        head, *rest = self.name.split("_")
        return head + "".join(word.title() for word in rest)


OPTIONS = (
    Option("max_new_tokens", "int", 128, "the most tokens to generate", minimum=1),
    Option("temperature", "number", 0.8, "0 is greedy", minimum=0, maximum=100),
    Option("top_k", "int", 0, "keep the k most likely tokens (0 keeps all)", minimum=0),
    Option("top_p", "number", 0.95, "keep the smallest set whose probability reaches p", minimum=0, maximum=1, exclusive_minimum=True),
    Option("min_p", "number", 0.0, "drop tokens less likely than min_p times the most likely", minimum=0, maximum=1),
    Option("repetition_penalty", "number", 1.0, "divide the positive logits (multiply the negative) of tokens already in the context (1: off)",
           minimum=0, maximum=100, exclusive_minimum=True),
    Option("presence_penalty", "number", 0.0, "subtract from the logit of every token already in the context", minimum=-2, maximum=2),
    Option("frequency_penalty", "number", 0.0, "subtract, times its count, from the logit of every token in the context", minimum=-2, maximum=2),
    Option("seed", "seed", None, "the random stream of sampling (default: a random seed each time)"),
    Option("stop", "strings", (), "generation ends at the first of these strings, which is not part of the text"),
    Option("ignore_eos", "bool", False, "keep generating past the end-of-sequence token"),
    Option("cache_prompt", "bool", True, "reuse the keys and values of the longest prefix of the prompt already in the cache"),
    Option("context_policy", "choice", "error", "when a conversation outgrows the context: refuse it, or drop its oldest turns",
           choices=("error", "drop_oldest"), chat_only=True),
)
BY_NAME = {option.name: option for option in OPTIONS}


class OptionError(ValueError):
    pass


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(option: Option) -> str:
    low = "" if option.minimum is None else f"{'>' if option.exclusive_minimum else '>='} {option.minimum:g}"
    high = "" if option.maximum is None else f"<= {option.maximum:g}"
    return " and ".join(filter(None, (low, high)))


def check(option: Option, value):
    """value, normalized (stop: a tuple of strings), or OptionError naming the option and the rule."""
    kind, name = option.kind, option.name
    if kind == "seed":
        if not _is_int(value):
            raise OptionError(f"seed must be an integer (leave it out for a random seed), got {value!r}")
        return int(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise OptionError(f"{name} must be True or False, got {value!r}")
        return value
    if kind == "choice":
        if value not in option.choices:
            raise OptionError(f"{name} must be one of {', '.join(map(repr, option.choices))}, got {value!r}")
        return value
    if kind == "strings":
        stops = (value,) if isinstance(value, str) else value
        if not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) for s in stops):
            raise OptionError(f"stop must be a string or a list of strings, got {value!r}")
        if any(s == "" for s in stops):
            raise OptionError("stop strings must not be empty (an empty string would end generation at once)")
        return tuple(stops)
    if kind == "int" and not _is_int(value):
        raise OptionError(f"{name} must be an integer {_bounds(option)}, got {value!r}")
    if kind == "number" and not _is_number(value):
        raise OptionError(f"{name} must be a number {_bounds(option)}, got {value!r}")
    number = float(value)
    too_low = option.minimum is not None and (number <= option.minimum if option.exclusive_minimum else number < option.minimum)
    if not math.isfinite(number) or too_low or (option.maximum is not None and number > option.maximum):
        raise OptionError(f"{name} must be {'an integer' if kind == 'int' else 'a number'} {_bounds(option)}, got {value!r}")
    return int(value) if kind == "int" else number


def resolve(options: dict, chat: bool = False) -> dict:
    """Every option of generate() (or chat()) checked, the missing ones at their defaults (seed stays
    None: random)."""
    known = {name: option for name, option in BY_NAME.items() if chat or not option.chat_only}
    unknown = sorted(set(options) - set(known))
    if unknown and unknown[0] in BY_NAME:
        raise OptionError(f"{unknown[0]} is an option of chat(), not of generate()")
    if unknown:
        raise OptionError(f"unknown {'chat' if chat else 'generation'} option {unknown[0]!r}; the options are {', '.join(known)}")
    resolved = {name: option.default for name, option in known.items()}
    resolved.update({name: check(BY_NAME[name], value) for name, value in options.items()})
    return resolved


def manifest_table() -> dict:
    """manifest["generation"]: the options for the browser runtime and the page, by JS name."""
    table = {}
    for option in OPTIONS:
        row = {k: v for k, v in asdict(option).items() if k == "default" or not (v is None or v is False or v == ())}
        row["name"] = option.name
        row["default"] = list(option.default) if isinstance(option.default, tuple) else option.default
        table[option.js_name] = row
    return table
