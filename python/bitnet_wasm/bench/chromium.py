"""Chromium through Playwright: Playwright's own build if installed, else Debian's."""
from __future__ import annotations

import atexit
import contextlib
import os

from bitnet_wasm.bench.engines import Engine, EngineError, Page, missing

SYSTEM_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


_playwright = None


def playwright():
    """The process's one Playwright driver, started on first use: its sync API refuses a second one
    in a thread while one runs, so the engine, the profile and the compare share it."""
    global _playwright
    if _playwright is None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise EngineError("Playwright is not installed: pip install playwright (the browser itself: apt-get install -y chromium)") from None
        _playwright = sync_playwright().start()
        atexit.register(_playwright.stop)
    return _playwright


@contextlib.contextmanager
def headless_chromium():
    """(the Playwright driver, a headless Chromium browser), the browser closed on exit."""
    driver = playwright()
    browser = _launch_headless(driver)
    try:
        yield driver, browser
    finally:
        browser.close()


def _launch_headless(driver):
    return driver.chromium.launch(executable_path=chromium_executable(driver), args=CHROMIUM_ARGS, headless=True)


def chromium_executable(playwright) -> str:
    """Playwright's own Chromium if installed, else Debian's; a clear error if neither exists."""
    bundled = playwright.chromium.executable_path
    for candidate in (bundled, SYSTEM_CHROMIUM):
        if candidate and os.path.exists(candidate):
            return candidate
    raise missing(f"Chromium (looked for {bundled} and {SYSTEM_CHROMIUM})", "chromium", " (or `playwright install chromium`)")


def launch_on_disk(playwright, profile):
    """Chromium started on the `profile` folder (a persistent context): its storage on disk, as a returning visitor's."""
    return playwright.chromium.launch_persistent_context(profile, executable_path=chromium_executable(playwright), args=CHROMIUM_ARGS, headless=True)


class ChromiumPage(Page):
    def __init__(self, context):
        self.context = context
        self.playwright_page = context.new_page()  # for what only Chromium offers (CDP)

    def goto(self, url):
        self.playwright_page.goto(url)

    def evaluate(self, source, arg=None):
        from playwright.sync_api import Error

        try:
            return self.playwright_page.evaluate(source, arg)
        except Error as e:
            raise EngineError(f"Chromium: {e.message}") from e

    def screenshot(self, path):
        self.playwright_page.screenshot(path=str(path), full_page=True)

    def close(self):
        self.context.close()


class ChromiumEngine(Engine):
    name = "chromium"

    def __init__(self):
        self._playwright = playwright()
        self.browser = _launch_headless(self._playwright)
        self.version = f"Chromium {self.browser.version}"

    def new_page(self, viewport=None) -> ChromiumPage:
        return ChromiumPage(self.browser.new_context(viewport=viewport))

    def new_page_on_disk(self, profile) -> ChromiumPage:
        """A page of this Chromium started anew on the `profile` folder (launch_on_disk)."""
        return ChromiumPage(launch_on_disk(self._playwright, profile))

    def close(self):
        self.browser.close()


def launch() -> ChromiumEngine:
    return ChromiumEngine()
