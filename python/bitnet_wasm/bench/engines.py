"""The browser engines a site is tested and benchmarked in, behind one small interface: an Engine
opens fresh Pages (own profile: empty Cache Storage); a Page navigates, runs a JS function with a
JSON argument and returns its JSON result, and takes screenshots. Each engine lives in its own
module (chromium.py, firefox.py, webkit.py), imported only when launched."""
from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod

# name -> (module with launch(), the Debian package that provides the browser)
ENGINES = {
    "chromium": ("bitnet_wasm.bench.chromium", "chromium"),
    "firefox": ("bitnet_wasm.bench.firefox", "firefox-esr"),
    "webkit": ("bitnet_wasm.bench.webkit", "webkit2gtk-driver"),
}
POLL_S = 0.05


class EngineError(RuntimeError):
    """The engine cannot be launched or driven (missing browser, driver failure)."""


class Page(ABC):
    @abstractmethod
    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""

    @abstractmethod
    def evaluate(self, source: str, arg=None):
        """Call the JS function `source` (may be async) with `arg`; its awaited result as JSON."""

    @abstractmethod
    def screenshot(self, path) -> None:
        """A PNG of the whole page."""

    @abstractmethod
    def close(self) -> None: ...

    def wait_for(self, predicate: str, timeout_s: float) -> None:
        """Poll the JS function `predicate` until it returns true; errors while the page navigates
        count as false."""
        deadline = time.monotonic() + timeout_s
        last_error = None
        while time.monotonic() < deadline:
            try:
                if self.evaluate(predicate):
                    return
                last_error = None
            except Exception as e:  # noqa: BLE001 - a page mid-navigation rejects scripts in engine-specific ways
                last_error = e
            time.sleep(POLL_S)
        raise TimeoutError(f"{predicate} was not true within {timeout_s} s" + (f" (last error: {last_error})" if last_error else ""))

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Engine(ABC):
    name: str
    version: str  # the browser's own, e.g. "Firefox 153.8.0esr"

    @abstractmethod
    def new_page(self, viewport: dict | None = None) -> Page:
        """A page in a fresh profile or browser context; viewport: {"width", "height"} in CSS pixels."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def launch(name: str) -> Engine:
    if name not in ENGINES:
        raise EngineError(f"unknown browser engine {name!r}: choose one of {', '.join(ENGINES)}")
    module, _ = ENGINES[name]
    return importlib.import_module(module).launch()


def missing(what: str, engine: str, hint: str = "") -> EngineError:
    """The error for a browser part that is not installed, naming the Debian package."""
    return EngineError(f"{what} is missing, so {engine} cannot run: apt-get install -y {ENGINES[engine][1]}{hint}")
