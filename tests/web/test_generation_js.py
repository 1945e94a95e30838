"""web/textstream.js and web/options.js in real Chromium, on the same case tables as the Python
runtime's tests (tests/compiler/test_generation.py): stop strings and option checks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bitnet_wasm.compiler.generation import manifest_table
from bitnet_wasm.web import WEB_DIR

DATA = Path(__file__).parents[1] / "data"
CASES = json.loads((DATA / "text_stream_cases.json").read_text())["cases"]
BAD_OPTIONS = json.loads((DATA / "bad_generation_options.json").read_text())["cases"]
RUN_CASES = """async (cases) => {
  const { StopStrings } = await import("/textstream.js");
  return cases.map((c) => {
    const stops = new StopStrings(c.stop), shown = [];
    for (const [i, piece] of c.pieces.entries()) {
      shown.push(stops.push(piece, i === c.pieces.length - 1));
      if (stops.stopped) break;
    }
    return { shown, text: stops.text, stopped: stops.stopped };
  });
}"""
CHECK_OPTIONS = """async ([table, cases]) => {
  const { resolveOptions } = await import("/options.js");
  const errors = cases.map(([name, value]) => {
    try { resolveOptions(table, { [name]: value }); return null; } catch (e) { return e.message; }
  });
  return { errors, defaults: resolveOptions(table, {}), stop: resolveOptions(table, { stop: "the" }).stop };
}"""


def js_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


@pytest.fixture
def web_page(page, served_dir):
    page.goto(served_dir(WEB_DIR) + "textstream.js")
    return page


def test_stop_strings_follow_the_shared_cases(web_page):
    got = web_page.evaluate(RUN_CASES, CASES)
    for case, result in zip(CASES, got):
        assert result == {k: case[k] for k in ("shown", "text", "stopped")}, case["name"]


def test_options_are_checked_like_python(web_page):
    table = manifest_table()
    result = web_page.evaluate(CHECK_OPTIONS, [table, [[js_name(c["option"]), c["value"]] for c in BAD_OPTIONS]])
    for case, message in zip(BAD_OPTIONS, result["errors"]):
        assert message and all(w.format(name=js_name(case["option"])) in message for w in case["words"]), (case, message)
    assert result["defaults"] == {name: row["default"] for name, row in table.items() if not row.get("chat_only")}
    assert result["stop"] == ["the"]
