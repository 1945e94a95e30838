"""The runtime embedded in other sites: bitnet.js imported from another origin (its Worker started
from a same-origin blob), and the Cache Storage API (BitNet.cached, BitNet.evict)."""
from __future__ import annotations

import json
import shutil

import pytest

import bitnet_wasm
from bitnet_wasm.serve import SiteServer

PROMPT = "The old lighthouse keeper climbed the stairs every evening"
LOAD_AND_GENERATE = """async ([base, prompt]) => {
  const { BitNet } = await import(base + "bitnet.js");
  const model = await BitNet.load(base + "model/manifest.json", { threads: 2 });
  const tokens = [];
  for await (const piece of model.generate(prompt, { maxNewTokens: 12, temperature: 0 })) tokens.push(piece.token);
  const info = model.info;
  model.dispose();
  return { tokens, threads: info.threads, threadsFallback: info.threadsFallback };
}"""


@pytest.fixture(scope="session")
def python_model(small_site, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        yield bitnet_wasm.load(small_site)


def shard_requests(server) -> int:
    return sum("/weights-" in path for path in server.paths)


def test_cross_origin_import_loads_and_generates_as_python(small_site, served_dir, page, features, python_model):
    """A page of one origin (an isolated one: COEP require-corp) imports bitnet.js and the model from
    another port, served with --cors; its worker and, where threads run, their followers start."""
    page.goto(served_dir(small_site) + "model/manifest.json")
    expected = python_model.generate(PROMPT, max_new_tokens=12, temperature=0).tokens
    with SiteServer(small_site, "127.0.0.1", 0, quiet=True, cors=True) as cors:
        assert cors.url != served_dir(small_site)
        got = page.evaluate(LOAD_AND_GENERATE, [cors.url, PROMPT])
    assert got["tokens"] == expected
    assert (got["threads"], got["threadsFallback"] is None) == ((2, True) if features.threads else (1, False))


def test_cross_origin_without_cors_fails_with_an_error(small_site, served_dir, page):
    page.goto(served_dir(small_site) + "model/manifest.json")
    with SiteServer(small_site, "127.0.0.1", 0, quiet=True) as plain:
        with pytest.raises(Exception, match="dynamically imported module|Cross-Origin|import"):
            page.evaluate(LOAD_AND_GENERATE, [plain.url, PROMPT])


CACHED = """async (url) => { const { BitNet } = await import("/bitnet.js"); return BitNet.cached(url); }"""
EVICT = """async (url) => { const { BitNet } = await import("/bitnet.js"); return BitNet.evict(url); }"""
LOAD = """async (url) => {
  const { BitNet } = await import("/bitnet.js");
  window.model?.dispose();
  window.model = await BitNet.load(url);
  return window.model.info.cachedBytes;
}"""


def test_cache_api_reports_and_evicts_the_shards(page, small_site, served, features, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(small_site, site)  # its own origin's cache untouched by other tests: a fresh server
    server = served(site)
    url = server.url + "model/manifest.json"
    total = sum(s["bytes"] for s in json.loads((site / "model/manifest.json").read_text())["shards"])
    page.goto(url)
    assert page.evaluate(CACHED, url) == {"complete": False, "cachedBytes": 0, "totalBytes": total}
    assert page.evaluate(LOAD, url) == 0 and shard_requests(server) == 6
    status = page.evaluate(CACHED, url)
    if features.persistent_cache:
        assert status == {"complete": True, "cachedBytes": total, "totalBytes": total}
        assert page.evaluate(LOAD, url) == total and shard_requests(server) == 6  # a reload from the cache
    assert page.evaluate(EVICT, url) == (6 if status["complete"] else 0)
    assert page.evaluate(CACHED, url)["cachedBytes"] == 0
    before = shard_requests(server)
    assert page.evaluate(LOAD, url) == 0 and shard_requests(server) == before + 6  # evicted: fetched again
    assert page.evaluate(EVICT, "model/other/manifest.json") == 0  # another folder's shards are not this site's
    assert page.evaluate(CACHED, url)["complete"] or not features.persistent_cache
