"""Chromium through Playwright: Playwright's own build if installed, else Debian's."""
from __future__ import annotations

import os

from bitnet_wasm.bench.engines import Engine, EngineError, Page, missing

SYSTEM_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


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
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise EngineError("Playwright is not installed: pip install playwright (the browser itself: apt-get install -y chromium)") from None
        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=chromium_executable(self._playwright), args=CHROMIUM_ARGS, headless=True)
        except BaseException:
            self._playwright.stop()
            raise
        self.version = f"Chromium {self.browser.version}"

    def new_page(self, viewport=None) -> ChromiumPage:
        return ChromiumPage(self.browser.new_context(viewport=viewport))

    def new_page_on_disk(self, profile) -> ChromiumPage:
        """A page of this Chromium started anew on the `profile` folder (launch_on_disk)."""
        return ChromiumPage(launch_on_disk(self._playwright, profile))

    def close(self):
        self.browser.close()
        self._playwright.stop()


def launch() -> ChromiumEngine:
    return ChromiumEngine()
