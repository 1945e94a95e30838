"""Real headless Chromium (Playwright, sync API) and sites served by bitnet_wasm.serve."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import sync_playwright

from bitnet_wasm.bench.browser import CHROMIUM_ARGS, BrowserBenchError, chromium_executable
from bitnet_wasm.serve import SiteServer


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session (Playwright's own if installed, else Debian's); each launch
    gets a fresh temporary profile, each test a fresh context."""
    with sync_playwright() as p:
        try:
            executable = chromium_executable(p)
        except BrowserBenchError as e:
            pytest.fail(str(e))
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def served_dir():
    """served_dir(folder) -> base URL ending in '/': the folder served by bitnet_wasm.serve on
    127.0.0.1, any free port, until the end of the session."""
    servers: list[SiteServer] = []

    def serve(folder) -> str:
        server = SiteServer(folder, "127.0.0.1", 0, quiet=True).start()
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.stop()


class _PlainHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="session")
def plain_served_dir():
    """plain_served_dir(folder) -> base URL: the folder served by Python's http.server, a static
    host that sends no cross-origin isolation headers (like GitHub Pages)."""
    servers: list[ThreadingHTTPServer] = []

    def serve(folder) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_PlainHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
