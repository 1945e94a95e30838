"""Firefox ESR over WebDriver BiDi: npm puppeteer-core (installed on first use, no browser
download) in a Node process (firefox_bridge.mjs) that this module drives over JSON lines."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from bitnet_wasm.bench import npm
from bitnet_wasm.bench.engines import Engine, EngineError, Page, missing
from bitnet_wasm.runtime import cache_dir

FIREFOX = "/usr/bin/firefox-esr"
PUPPETEER = npm.NpmPackage("puppeteer-core", "24.43.1", env={"PUPPETEER_SKIP_DOWNLOAD": "1"})  # the last line that runs on Node 18 (Debian 12's)
BRIDGE = Path(__file__).with_name("firefox_bridge.mjs")
REPLY_TIMEOUT_S = 600  # one generation on a large model in one evaluate


def ensure_puppeteer() -> Path:
    try:
        return npm.ensure(PUPPETEER, npm.checkout_root(cache_dir() / "npm"))
    except npm.NpmError as e:
        raise EngineError(f"{e} (puppeteer-core drives Firefox)") from None


class Bridge:
    """The Node process: one request at a time, answered in order."""

    def __init__(self, package: Path):
        node = shutil.which("node")
        if node is None:
            raise EngineError("node is missing, so Firefox cannot be driven: apt-get install -y nodejs")
        self.process = subprocess.Popen([node, str(BRIDGE), str(package), FIREFOX], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)
        self._lock = threading.Lock()
        self._next = 0

    def call(self, op: str, **args):
        with self._lock:
            self._next += 1
            try:
                self.process.stdin.write(json.dumps({"id": self._next, "op": op, **args}) + "\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                raise EngineError(f"the Firefox bridge exited: {self.process.stderr.read().strip()}") from None
            line = self._read_line()
        reply = json.loads(line)
        if "error" in reply:
            raise EngineError(f"Firefox {op}: {reply['error']}")
        return reply["result"]

    def _read_line(self) -> str:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(REPLY_TIMEOUT_S)
        if not lines:
            self.process.kill()
            raise EngineError(f"the Firefox bridge did not answer within {REPLY_TIMEOUT_S} s")
        if not lines[0]:
            raise EngineError(f"the Firefox bridge exited: {self.process.stderr.read().strip()[-2000:]}")
        return lines[0]

    def close(self):
        if self.process.poll() is None:
            try:
                self.call("close")
            except EngineError:
                pass
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class FirefoxPage(Page):
    def __init__(self, bridge: Bridge, viewport=None):
        self.bridge = bridge
        self.id = bridge.call("newPage")
        if viewport:
            bridge.call("setViewport", page=self.id, **viewport)

    def goto(self, url):
        self.bridge.call("goto", page=self.id, url=url)

    def evaluate(self, source, arg=None):
        return self.bridge.call("evaluate", page=self.id, source=source, arg=arg)

    def screenshot(self, path):
        self.bridge.call("screenshot", page=self.id, path=str(path))

    def close(self):
        self.bridge.call("closePage", page=self.id)


class FirefoxEngine(Engine):
    name = "firefox"

    def __init__(self):
        if not os.path.exists(FIREFOX):
            raise missing(f"Firefox ({FIREFOX})", "firefox")
        self.bridge = Bridge(ensure_puppeteer())
        try:
            self.version = self.bridge.call("launch")["version"].replace("/", " ")
        except BaseException:
            self.bridge.close()
            raise

    def new_page(self, viewport=None) -> FirefoxPage:
        return FirefoxPage(self.bridge, viewport)

    def close(self):
        self.bridge.close()


def launch() -> FirefoxEngine:
    return FirefoxEngine()
