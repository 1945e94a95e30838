"""The text side of generation, the same as web/textstream.js and web/tokenizer.js's stream
decoder: token ids become text incrementally, and stop strings end it. The shared specification
is tests/data/text_stream_cases.json, which the Python and the browser tests both run."""
from __future__ import annotations

from typing import Callable, Sequence


class StreamDecoder:
    """Text of one token at a time: decodes a short window of recent tokens and returns what it adds,
    holding back a character until its last byte arrives (tokenizer.js's createStreamDecoder)."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self._window: list[int] = []
        self._prefix, self._context = "", 0

    def push(self, token: int) -> str:
        self._window.append(token)
        text = self._decode(self._window)
        if len(text) <= len(self._prefix) or text.endswith("\ufffd"):
            return ""
        piece = text[len(self._prefix):]
        self._window = self._window[self._context:]
        self._context = len(self._window)
        self._prefix = self._decode(self._window)
        return piece

    def flush(self) -> str:
        """The rest that was held back (a character cut off at the end of generation)."""
        rest = self._decode(self._window)[len(self._prefix):]
        self._window, self._prefix, self._context = [], "", 0
        return rest


class StopStrings:
    """Text arrives in pieces; push returns what may be shown: it holds back a tail that could begin
    a stop string, and cuts the text where the first stop string starts."""

    def __init__(self, stop: Sequence[str]):
        self.stop = tuple(stop)
        self.text = ""         # all text so far, up to the stop string once one is found
        self.stopped = False
        self._emitted = 0

    def push(self, piece: str, final: bool = False) -> str:
        start = self._emitted  # a stop string cannot begin in text already shown
        self.text += piece
        hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            self.text = self.text[:min(hits)]
            end = len(self.text)
        else:
            end = len(self.text) if final else len(self.text) - self._held_back()
        shown = self.text[self._emitted:max(end, self._emitted)]
        self._emitted = max(end, self._emitted)
        return shown

    def _held_back(self) -> int:
        held = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.text)), held, -1):
                if self.text.endswith(s[:k]):
                    held = k
                    break
        return held
