"""The page's shard loader under network faults, in real Chromium against a real server that fails on
purpose: a failed request or a connection broken mid-shard is retried after a pause and resumes
with a Range request where the bytes stopped; a shard that keeps failing is named with the reason."""
from __future__ import annotations

import functools
import re
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import bitnet_wasm

SHARD = "weights-00001.bin"
LOAD = """async () => {
  const { BitNet } = await import("/bitnet.js");
  try {
    window.model = await BitNet.load("/model/manifest.json", { threads: 1 });
  } catch (e) {
    return { error: e.message };
  }
  const pieces = [];
  for await (const piece of window.model.generate([1, 2, 3], { maxNewTokens: 8, temperature: 0 })) pieces.push(piece.token);
  return { tokens: pieces };
}"""


class FaultyHandler(SimpleHTTPRequestHandler):
    """Serves a folder; requests for SHARD take the next fault from `faults` ("ok" when none is left)."""

    faults: list[str]
    log: list[tuple[str, str | None]]

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self):
        if not self.path.endswith(SHARD):
            return super().do_GET()
        self.log.append((self.command, self.headers.get("Range")))
        fault = self.faults.pop(0) if self.faults else "ok"
        data = (self.server.folder / "model" / SHARD).read_bytes()
        if fault == "500":
            self.send_error(500, "injected")
        elif fault == "close":  # the connection closes before any answer
            self.close_connection = True
            self.connection.shutdown(2)
        elif fault == "half":  # headers promise the whole shard, half of it arrives, then the connection breaks
            self._send(200, data, len(data))
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(1)  # the browser hands the half that arrived to the reader before the break
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"]).group(1)) if self.headers.get("Range") else 0
            self._send(206 if start else 200, data, len(data) - start, start)
            self.wfile.write(data[start:])

    def _send(self, status, data, length, start=0):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()


@pytest.fixture(scope="session")
def site(small_site):
    return small_site


@pytest.fixture
def faulty_server(site):
    """faulty_server(faults) -> (base URL, request log of SHARD)."""
    servers = []

    def start(faults):
        handler = type("Handler", (FaultyHandler,), {"faults": list(faults), "log": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
        server.folder = site
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", handler.log

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def python_tokens(site):
    return bitnet_wasm.load(site).generate([1, 2, 3], max_new_tokens=8, temperature=0).tokens


def load_through(page, url):
    page.goto(url + "model/manifest.json")
    return page.evaluate(LOAD)


def test_transient_faults_are_retried_and_a_broken_transfer_resumes(page, faulty_server, python_tokens):
    url, log = faulty_server(["500", "close", "half"])
    result = load_through(page, url)
    assert result == {"tokens": python_tokens}
    ranges = [r for _, r in log]
    assert ranges[:3] == [None, None, None] and re.fullmatch(r"bytes=[1-9]\d*-", ranges[3] or ""), log


@pytest.mark.parametrize("fault, reason", [("500", "HTTP 500"), ("close", "the request failed")])
def test_a_shard_that_keeps_failing_is_named_with_the_reason(page, faulty_server, fault, reason):
    url, log = faulty_server([fault] * 100)  # some engines retry a closed connection themselves
    error = load_through(page, url).get("error", "")
    assert SHARD in error and reason in error and "gave up after 5 attempts" in error
    assert 5 <= len(log) < 100
