"""Multi-threaded inference in every engine: the threaded module over a shared memory gives the
same greedy tokens and logits as one thread and as the Python runtime; where threads cannot start
(no COOP/COEP, no SharedArrayBuffer, a follower that fails) the runtime falls back to one thread and
says why; the opt-in service worker isolates a page served without those headers."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from pages import open_ready

import bitnet_wasm
from bitnet_wasm.bench import webkit
from bitnet_wasm.bench.engines import EngineError
from bitnet_wasm.compiler.writers import write_bitnet_packed

PROMPT = "The old lighthouse keeper climbed the stairs every evening before the sun went down."
TOKENS = 24
LOAD_AND_GENERATE = """async ([options, prompt, tokens]) => {
  const { BitNet } = await import("/bitnet.js");
  const model = await BitNet.load("/model/manifest.json", options);
  const pieces = [];
  for await (const piece of model.generate(prompt, { maxNewTokens: tokens, temperature: 0 })) pieces.push(piece.token);
  const logits = (await model.logits(pieces.slice(0, 5))).map((row) => Array.from(row));
  model.dispose();
  return { info: model.info, tokens: pieces, logits };
}"""
LOAD_ERROR = """async ([options]) => {
  const { BitNet } = await import("/bitnet.js");
  try { await BitNet.load("/model/manifest.json", options); return null; } catch (e) { return e.message; }
}"""


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("threads")
    # GQA (6 query heads on 2 kv heads); sizes that split unevenly between threads, with decode
    # steps above parallel.c's MIN_SHARED_WORK for the q/k/v, o, gate/up and down jobs (the head: leader alone)
    write_bitnet_packed(root / "checkpoint", hidden=1056, layers=2, heads=6, kv_heads=2, intermediate=1000, vocab=333, seed=11)
    return root


@pytest.fixture(scope="session")
def site(checkpoint):
    bitnet_wasm.build(checkpoint / "checkpoint", checkpoint / "site", shard_mb=0.05, progress=False, coi_service_worker=True)
    return checkpoint / "site"


@pytest.fixture(scope="session")
def expected(site, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        model = bitnet_wasm.load(site)
        tokens = model.generate(PROMPT, max_new_tokens=TOKENS, temperature=0).tokens
        return tokens, model.logits(tokens[:5])


def test_the_default_page_is_ready_threaded_or_says_why_not(page, features, site, served_dir):
    info = open_ready(page, served_dir(site) + "?threads=2")
    assert info["crossOriginIsolated"] is True
    if features.threads:
        assert (info["threads"], info["threadsFallback"]) == (2, None)
    else:
        assert info["threads"] == 1 and "SharedArrayBuffer" in info["threadsFallback"], info


def test_a_follower_that_cannot_start_falls_back_to_one_thread(page, site, served_dir, expected, tmp_path):
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    (broken / "threads.js").unlink()
    page.goto(served_dir(broken) + "model/manifest.json")
    run = page.evaluate(LOAD_AND_GENERATE, [{"threads": 2}, PROMPT, TOKENS])
    assert run["info"]["threads"] == 1 and run["info"]["threadsFallback"], run["info"]
    assert run["tokens"] == expected[0]


def test_a_worker_stuck_in_the_threaded_start_is_replaced_by_one_thread(page, features, site, served_dir, expected, tmp_path):
    """A worker that never answers again while its threads start (Firefox ESR has hung inside a worker's
    own `new Worker`) is given up on. Here the worker spins where it would ask for its followers."""
    if not features.threads:
        pytest.skip("no threaded start in this engine")
    stuck = tmp_path / "site"
    shutil.copytree(site, stuck)
    worker = (stuck / "worker.js").read_text()
    (stuck / "worker.js").write_text(worker.replace("function startFollowers(module, memory, stacksBase, threads) {",
                                                    "function startFollowers(module, memory, stacksBase, threads) { for (;;);", 1))
    followers = (stuck / "followers.js").read_text()
    (stuck / "followers.js").write_text(followers.replace("FOLLOWER_START_MS = 30_000", "FOLLOWER_START_MS = 1_000", 1))  # the page waits 11 s, not 40
    assert (stuck / "worker.js").read_text() != worker and (stuck / "followers.js").read_text() != followers
    page.goto(served_dir(stuck) + "model/manifest.json")
    run = page.evaluate(LOAD_AND_GENERATE, [{"threads": 2}, PROMPT, TOKENS])
    assert run["info"]["threads"] == 1, run["info"]
    assert run["info"]["threadsFallback"] == "the threaded start did not finish within 11 s, so one thread runs"
    assert run["tokens"] == expected[0]


def test_threaded_generation_equals_single_thread_and_python(page, features, site, served_dir, expected):
    tokens, logits = expected
    page.goto(served_dir(site) + "model/manifest.json")
    runs = {threads: page.evaluate(LOAD_AND_GENERATE, [{"threads": threads}, PROMPT, TOKENS]) for threads in (2, 1)}
    info = runs[2]["info"]
    assert (info["threads"], info["crossOriginIsolated"]) == ((2, True) if features.threads else (1, True))
    assert (info["threadsFallback"] is None) == features.threads
    assert runs[1]["info"]["threads"] == 1 and runs[1]["info"]["threadsFallback"] is None
    for run in runs.values():
        assert run["tokens"] == tokens
        np.testing.assert_array_equal(np.array(run["logits"], np.float32), logits)


def test_webkit_with_safaris_shared_memory_runs_threads_that_equal_python(site, served_dir, expected):
    """WebKitGTK gives an isolated page no SharedArrayBuffer; Safari does. With JavaScriptCore's option set so, the
    threaded module runs in WebKit's engine (its wasm atomics, its workers) and gives Python's tokens and logits."""
    try:
        engine = webkit.launch(shared_memory=True)
    except EngineError as e:
        pytest.fail(str(e))
    with engine, engine.new_page() as page:
        page.goto(served_dir(site) + "model/manifest.json")
        run = page.evaluate(LOAD_AND_GENERATE, [{"threads": 2}, PROMPT, TOKENS])
    assert (run["info"]["threads"], run["info"]["crossOriginIsolated"], run["info"]["threadsFallback"]) == (2, True, None), run["info"]
    assert run["tokens"] == expected[0]
    np.testing.assert_array_equal(np.array(run["logits"], np.float32), expected[1])


def test_simd_option_forces_the_module_variant(page, features, site, served_dir, expected):
    page.goto(served_dir(site) + "model/manifest.json")
    run = page.evaluate(LOAD_AND_GENERATE, [{"threads": 3, "simd": "simd128"}, PROMPT, TOKENS])
    assert (run["info"]["simd"], run["info"]["threads"]) == ("simd128", 3 if features.threads else 1)
    assert run["tokens"] == expected[0]
    assert 'simd: "avx" is not one of "relaxed", "simd128"' in page.evaluate(LOAD_ERROR, [{"simd": "avx"}])
    assert "threads must be an integer from 1 to 8, got 9" in page.evaluate(LOAD_ERROR, [{"threads": 9}])


def test_without_isolation_headers_one_thread_runs_and_says_why(page, site, plain_served_dir, expected):
    page.goto(plain_served_dir(site) + "model/manifest.json")
    run = page.evaluate(LOAD_AND_GENERATE, [{"threads": 2}, PROMPT, TOKENS])
    info = run["info"]
    assert (info["threads"], info["crossOriginIsolated"]) == (1, False)
    assert "not cross-origin isolated" in info["threadsFallback"]
    assert run["tokens"] == expected[0]


def test_service_worker_isolates_a_page_served_without_headers(page, features, site, plain_served_dir, expected):
    page.goto(plain_served_dir(site) + "?threads=2")
    page.wait_for("() => ['ready', 'error'].includes(document.documentElement.dataset.state) && window.bitnet", 60)
    info = page.evaluate("() => window.bitnet.info")
    assert (info["threads"], info["crossOriginIsolated"], info["threadsFallback"] is None) == ((2, True, True) if features.threads else (1, True, False))
    assert page.evaluate("() => navigator.serviceWorker.controller?.scriptURL.endsWith('/coi-sw.js')") is True
    tokens = page.evaluate("""async ([prompt, tokens]) => {
      const out = [];
      for await (const piece of window.bitnet.generate(prompt, { maxNewTokens: tokens, temperature: 0 })) out.push(piece.token);
      return out;
    }""", [PROMPT, TOKENS])
    assert tokens == expected[0]
