"""Real browsers, every engine through one harness (bitnet_wasm.bench.engines): each test that takes
`page` runs in Chromium, Firefox and WebKit; sites served by bitnet_wasm.serve. pytest runs these
tests engine by engine (`engine` is a session parameter), so fixtures that build sites or load
models are session-scoped: a module-scoped one is made again for each engine."""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pages import FEATURES

import bitnet_wasm
from bitnet_wasm.bench import engines
from bitnet_wasm.compiler.writers import write_bitnet_packed
from bitnet_wasm.serve import SiteServer


def pytest_collection_modifyitems(items):
    """A Firefox test that fails is run once more, in a fresh page (a failure that repeats still fails):
    a guard kept from when Firefox ESR 153 hung inside a worker's `new Worker` now and then (README,
    Browser engines), which the page now starts instead; it has not stalled since in 240 pages."""
    for item in items:
        if "[firefox" in item.nodeid:
            item.add_marker(pytest.mark.flaky(reruns=1))


@pytest.fixture(scope="session")
def small_site(tmp_path_factory):
    """The session's small site (six ~10 KB shards, so loading is parallel and per shard), built once
    for the runtime, fault and damage tests."""
    root = tmp_path_factory.mktemp("small-site")
    write_bitnet_packed(root / "checkpoint", hidden=64, layers=2, vocab=320, seed=5)
    bitnet_wasm.build(root / "checkpoint", root / "site", shard_mb=0.01, layout="mad", progress=False)  # no kernel timing: any layout serves
    return root / "site"


@pytest.fixture(scope="session")
def page_site(tmp_path_factory):
    """The session's site for the page tests: a chat template, and large enough that 1000 greedy
    tokens (no early end) take over a second."""
    root = tmp_path_factory.mktemp("page-site")
    write_bitnet_packed(root / "model", hidden=128, layers=4, heads=4, kv_heads=2, intermediate=256, vocab=320, max_position=1024)
    bitnet_wasm.build(root / "model", root / "site", progress=False)
    return root / "site"


@pytest.fixture(scope="session")
def engine_pool():
    """get(name) -> the engine, launched once per session; a missing browser fails the test."""
    launched: dict[str, engines.Engine] = {}

    def get(name: str) -> engines.Engine:
        if name not in launched:
            try:
                launched[name] = engines.launch(name)
            except engines.EngineError as e:
                pytest.fail(str(e))
        return launched[name]

    yield get
    for engine in launched.values():
        engine.close()


@pytest.fixture(scope="session", params=list(engines.ENGINES))
def engine(request, engine_pool) -> engines.Engine:
    return engine_pool(request.param)


@pytest.fixture
def features(engine) -> Features:
    return FEATURES[engine.name]


@pytest.fixture
def page(engine):
    """A page in a fresh profile or context of each engine in turn."""
    with engine.new_page() as page:
        yield page


@pytest.fixture
def chromium_page(engine_pool):
    """A Chromium page for what only Chromium offers (DevTools Protocol): .playwright_page."""
    with engine_pool("chromium").new_page() as page:
        yield page


@dataclass(frozen=True)
class Served:
    url: str                # ends in '/'
    paths: list[str]        # every path requested so far


@pytest.fixture(scope="session")
def served():
    """served(folder) -> a Served: the folder served by bitnet_wasm.serve on 127.0.0.1 (any free
    port) until the end of the session."""
    servers: list[SiteServer] = []

    def serve(folder) -> Served:
        paths: list[str] = []
        servers.append(SiteServer(folder, "127.0.0.1", 0, quiet=True, on_request=paths.append).start())
        return Served(servers[-1].url, paths)

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def served_dir(served):
    """served_dir(folder) -> base URL ending in '/' of the folder served by bitnet_wasm.serve."""
    return lambda folder: served(folder).url


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
