"""The page's chat and completion views in real Chromium: a conversation through the UI (regenerate,
clear), random and fixed seeds, keyboard, errors that reset the stats and say what to do, a phone
viewport, file://, and "loaded from cache" on reload. Chromium only: these drive the page as a user
does, through Playwright's API (fill, click, keyboard, viewports)."""
from __future__ import annotations

import pytest

import bitnet_wasm

READY = "() => document.documentElement.dataset.state === 'ready'"
SETTLED = "() => ['ready', 'error'].includes(document.documentElement.dataset.state)"


@pytest.fixture
def page(chromium_page):
    return chromium_page.playwright_page


@pytest.fixture(scope="session")
def browser(engine_pool):
    return engine_pool("chromium").browser


@pytest.fixture(scope="session")
def site(page_site):
    return page_site


def open_ready(page, url):
    page.goto(url)
    page.wait_for_function(SETTLED, timeout=30_000)
    assert page.evaluate("() => document.documentElement.dataset.state") == "ready", page.text_content("#error-message")


def settings(page, tokens, temperature):
    page.fill("#max-tokens", str(tokens))
    page.fill("#temperature", str(temperature))


def send(page, text):
    page.fill("#prompt", text)
    page.click("#generate")
    page.wait_for_function(READY, timeout=30_000)


def test_a_conversation_through_the_chat_view(page, site, served_dir):
    open_ready(page, served_dir(site))
    assert page.is_checked("#chat") and page.is_visible("#system") is False  # the system prompt is folded away
    settings(page, 8, 0)
    page.click("#system-setting summary")
    page.fill("#system", "You are terse.")
    send(page, "Hello there")
    send(page, "Tell me more")
    model = bitnet_wasm.load(site)
    first = model.chat([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"}], temperature=0, max_new_tokens=8)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"},
                {"role": "assistant", "content": first.text}, {"role": "user", "content": "Tell me more"}]
    second = model.chat(messages, temperature=0, max_new_tokens=8)
    assert page.eval_on_selector_all("#history li", "items => items.map((i) => [i.dataset.role, i.textContent])") == [
        ["user", "Hello there"], ["assistant", first.text], ["user", "Tell me more"], ["assistant", second.text]]
    assert "reused" in page.text_content("#stats")  # the second turn prefilled only what was new
    page.click("#regenerate")
    page.wait_for_function(READY, timeout=30_000)
    assert page.eval_on_selector_all("#history li", "items => items.length") == 4
    assert page.text_content("#history li:last-child") == second.text  # greedy: the same reply again
    page.click("#clear")
    assert page.is_hidden("#history") and page.eval_on_selector_all("#history li", "items => items.length") == 0


def test_seeds_are_random_unless_fixed(page, site, served_dir):
    open_ready(page, served_dir(site))
    page.set_checked("#chat", False)
    settings(page, 12, 1.5)
    seeds, texts = [], []
    for _ in range(2):
        send(page, "The old lighthouse keeper")
        seeds.append(page.input_value("#seed"))
        texts.append(page.text_content("#output"))
    assert seeds[0] != seeds[1] and f"seed {seeds[1]}" in page.text_content("#stats")
    page.check("#fixed-seed")
    page.fill("#seed", seeds[0])
    send(page, "The old lighthouse keeper")
    assert page.text_content("#output") == texts[0]


def test_keyboard_generates_and_stops(page, site, served_dir):
    open_ready(page, served_dir(site))
    page.set_checked("#chat", False)
    settings(page, 1000, 0)
    page.fill("#prompt", "The old lighthouse keeper")
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.getElementById('output').textContent.length > 30", timeout=30_000)
    page.keyboard.press("Escape")
    page.wait_for_function(READY, timeout=10_000)
    assert page.text_content("#stats").startswith("Stopped")


def test_errors_reset_the_stats_and_say_what_to_do(page, site, served_dir):
    open_ready(page, served_dir(site))
    page.set_checked("#chat", False)
    settings(page, 4, 0)
    send(page, "The old lighthouse keeper")
    assert "decode" in page.text_content("#stats")
    page.fill("#prompt", "The old lighthouse keeper climbed the stairs. " * 200)
    page.click("#generate")
    page.wait_for_function(READY, timeout=30_000)
    message = page.text_content("#error-message")
    assert "the context holds 1024" in message and "shorten it" in message
    assert page.text_content("#stats") == ""


def test_a_phone_shows_generate_and_the_output_without_scrolling(browser, site, served_dir):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_ready(page, served_dir(site))
        page.set_checked("#chat", False)
        settings(page, 8, 0)
        send(page, "The old lighthouse keeper")
        for selector in ("#generate", "#output"):
            box = page.locator(selector).bounding_box()
            assert box["y"] + min(box["height"], 40) <= 844, (selector, box)
        assert page.locator("#card-title").bounding_box()["y"] > page.locator("#output").bounding_box()["y"]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_opened_from_a_file_the_page_says_it_must_be_served(page, site):
    page.goto((site / "index.html").as_uri())
    page.wait_for_function("() => document.documentElement.dataset.state === 'error'", timeout=10_000)
    assert "bitnet-wasm serve" in page.text_content("#error-message")


def test_a_reload_says_loaded_from_cache(browser, site, served_dir):
    context = browser.new_context()
    try:
        url = served_dir(site)
        first = context.new_page()
        open_ready(first, url)
        assert "downloaded" in first.text_content("#download-text")
        second = context.new_page()
        open_ready(second, url)
        assert "loaded from cache" in second.text_content("#download-text")
    finally:
        context.close()
