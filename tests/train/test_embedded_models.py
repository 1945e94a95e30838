"""The shipped demo models: they predict English far better than chance, generate words, and
README command 1 (`bitnet-wasm demo`) serves a page on which Chromium generates text with them."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.bench.chromium import headless_chromium
from bitnet_wasm.models import EMBEDDED, MODELS_ENV, embedded_model_dir
from test_demo import start_demo, stop_demo, text_loss

README = Path(__file__).parents[2] / "README.md"
# Written for this test (not from the training corpus): plain narrative English.
PASSAGE = ("The night was cold, and the wind came down from the hills. She took the lamp from the table "
           "and went to the door, for she had heard a voice in the garden. There was no one there, only "
           "the trees and the dark water of the river, and far away the sound of a bell.")
MAX_LOSS = 5.5  # nats/token; chance is ln(vocab) ~ 7.6; the shipped models: 4.5-4.8 here, 3.75-3.79 on their validation split


def language_like(text: str, min_words: int) -> bool:
    words = re.findall(r"[A-Za-z]+", text)
    plain = sum(c.isalpha() or c.isspace() or c in ".,;:!?'\"-" for c in text)
    return len(words) >= min_words and plain >= 0.9 * len(text)


@pytest.fixture(scope="module")
def embedded_sites(tmp_path_factory):
    sites = {}

    def get(name: str) -> Path:
        if name not in sites:
            sites[name] = tmp_path_factory.mktemp(f"embedded-{name}")
            bitnet_wasm.build(embedded_model_dir(name), sites[name], wasm=False, progress=False)
        return sites[name]
    return get


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_model_predicts_english(embedded_sites, name):
    model = bitnet_wasm.load(embedded_sites(name))
    loss = text_loss(model, PASSAGE)
    assert loss < MAX_LOSS, (name, loss, np.log(model.vocab_size))


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_model_generates_words(embedded_sites, name):
    result = bitnet_wasm.load(embedded_sites(name)).generate("The king said", max_new_tokens=48, temperature=0)
    assert language_like(result.text, min_words=10), result.text


def test_readme_command_1_is_the_demo():
    block = README.read_text().split("<!-- main-command -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.strip().endswith("bitnet-wasm demo"), block


def test_demo_page_generates_text_in_chromium(tmp_path):
    """What a visitor of README command 1 sees: the embedded b1.58 model's page loads and generates."""
    env = {k: v for k, v in os.environ.items() if k != MODELS_ENV}
    proc, _, url = start_demo("b1.58", tmp_path / "cache", env)
    try:
        with headless_chromium() as (_, browser):
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("() => document.documentElement.dataset.state === 'ready'", timeout=60_000)
            page.fill("#temperature", "0")
            page.click("#generate")
            page.wait_for_function("() => document.documentElement.dataset.state === 'ready'"
                                   " && document.querySelector('#output').textContent.length > 0", timeout=60_000)
            text = page.text_content("#output")
    finally:
        stop_demo(proc)
    assert language_like(text, min_words=10), text
