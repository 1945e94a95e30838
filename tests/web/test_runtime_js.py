"""web/bitnet.js + worker.js + loader.js in every browser engine against the Python runtime on
the same built site: tokens, logits, seeded sampling, caching, corrupt shards, abort."""
from __future__ import annotations

import hashlib
import json
import re
import shutil

import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler.site import model_card
from bitnet_wasm.wasm_kernels.abi import defines

PROMPT = ("The old lighthouse keeper climbed the stairs every evening before the sun went down. "
          "He carried a small lamp, a book of poems, and a flask of tea.")
GREEDY_8 = {"maxNewTokens": 8, "temperature": 0}
LOAD = """async ([options]) => {
  const { BitNet } = await import("/bitnet.js");
  const progress = [];
  window.model = await BitNet.load("/model/manifest.json", { ...options, onProgress: (p) => progress.push(p) });
  return { info: window.model.info, progress };
}"""
GENERATE = """async ([prompt, options]) => {
  const pieces = [];
  for await (const piece of window.model.generate(prompt, options)) pieces.push(piece);
  const stats = { ...window.model.lastStats, seed: String(window.model.lastStats.seed) }; // a BigInt: not every driver carries it
  return { tokens: pieces.map((p) => p.token), text: pieces.map((p) => p.text).join(""), stats };
}"""
CACHED = """async () => { const { BitNet } = await import("/bitnet.js"); return BitNet.cached("/model/manifest.json"); }"""
LOAD_ERROR = """async () => {
  const { BitNet } = await import("/bitnet.js");
  try { await BitNet.load("/model/manifest.json"); return null; } catch (e) { return e.message; }
}"""


@pytest.fixture(scope="session")
def site(small_site):
    return small_site


@pytest.fixture(scope="session")
def python_model(site, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        yield bitnet_wasm.load(site)


@pytest.fixture(scope="session")
def manifest(site):
    return json.loads((site / "model" / "manifest.json").read_text())


@pytest.fixture
def loaded(page, site, served_dir):
    page.goto(served_dir(site) + "model/manifest.json")
    return page, page.evaluate(LOAD, [{}])


def shard_requests(server) -> list[str]:
    """The weight shards a served site has been asked for so far, by file name."""
    return [path.rsplit("/", 1)[1] for path in server.paths if "/weights-" in path]


def test_load_reaches_ready_with_sane_info(loaded, manifest, features):
    page, result = loaded
    info, progress = result["info"], result["progress"]
    card = model_card(manifest)
    assert info["name"] == card["name"] == "checkpoint"
    assert info["parameters"] == card["parameters"] > 0
    assert info["bitsPerWeight"] == card["bits_per_weight"] == 1.58
    assert info["downloadBytes"] == sum(s["bytes"] for s in manifest["shards"])
    assert info["simd"] == features.simd  # relaxed where the engine validates the relaxed-SIMD probe
    forms = {defines()["BN_DOT_I16"], defines()["BN_DOT_I32"]}
    assert info["dotForm"] in forms if features.simd == "relaxed" else info["dotForm"] is None  # the faster, timed at load
    assert info["readAhead"] in (True, False)  # the faster, timed at load on the model
    assert info["vocabSize"] == 320 and info["context"] == manifest["plan"]["context"]
    default_threads = min(page.evaluate("() => navigator.hardwareConcurrency"), 4)  # the default, on an isolated page
    assert info["threads"] == (default_threads if features.threads else 1)
    assert info["crossOriginIsolated"] is True and (info["threadsFallback"] is None) == features.threads
    assert info["cacheError"] is None
    weights = [p for p in progress if p["phase"] == "weights"]
    assert weights[-1]["loadedBytes"] == weights[-1]["totalBytes"] == info["downloadBytes"]
    assert all(p["mbPerSecond"] >= 0 for p in weights)


def test_greedy_tokens_and_text_match_python_and_cli(loaded, python_model, site, capsys):
    page, _ = loaded
    expected = python_model.generate(PROMPT, max_new_tokens=40, temperature=0)
    got = page.evaluate(GENERATE, [PROMPT, {"maxNewTokens": 40, "temperature": 0}])
    assert len(expected.prompt_tokens) > 32  # the prompt spans more than one prefill chunk
    assert got["tokens"] == expected.tokens
    assert got["text"] == expected.text
    assert got["stats"]["promptTokens"] == len(expected.prompt_tokens)
    assert got["stats"]["newTokens"] == len(expected.tokens)
    assert got["stats"]["stopReason"] == expected.stop_reason
    assert cli(["run", str(site), "--prompt", PROMPT, "--max-new-tokens", "40", "--temperature", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == got["tokens"]
    assert page.evaluate("(text) => window.model.tokenize(text)", PROMPT) == expected.prompt_tokens
    assert page.evaluate("(ids) => window.model.detokenize(ids)", expected.tokens) == python_model.decode(expected.tokens)


@pytest.mark.parametrize("sampling", [
    {"temperature": 0.9, "top_p": 0.9, "top_k": 0, "min_p": 0.0, "seed": 1234},
    {"temperature": 1.3, "top_p": 1.0, "top_k": 20, "min_p": 0.02, "seed": 2**63 + 7},
])
def test_seeded_sampling_matches_python(loaded, python_model, sampling):
    page, _ = loaded
    expected = python_model.generate(PROMPT, max_new_tokens=48, **sampling)
    options = {"maxNewTokens": 48, "temperature": sampling["temperature"], "topP": sampling["top_p"],
               "topK": sampling["top_k"], "minP": sampling["min_p"]}
    # seeds above 2^53 cannot be JS numbers: pass it as a BigInt
    got = page.evaluate("([prompt, options, seed]) => (" + GENERATE + ")([prompt, { ...options, seed: BigInt(seed) }])",
                        [PROMPT, options, str(sampling["seed"])])
    assert got["tokens"] == expected.tokens


def test_logits_match_python_native(loaded, python_model):
    page, _ = loaded
    ids = python_model.encode(PROMPT)[:45]
    rows = page.evaluate("async (ids) => (await window.model.logits(ids)).map((row) => Array.from(row))", ids)
    expected = python_model.logits(ids)
    got = np.array(rows, np.float32)
    assert got.shape == expected.shape == (45, 320)
    np.testing.assert_array_equal(got, expected)  # the same C: bit-identical


def test_stop_strings_and_bad_requests(loaded, python_model):
    page, _ = loaded
    full = python_model.generate(PROMPT, max_new_tokens=40, temperature=0)
    stop = full.text[len(full.text) // 2:][:3]
    expected = python_model.generate(PROMPT, max_new_tokens=40, temperature=0, stop=[stop])
    got = page.evaluate(GENERATE, [PROMPT, {"maxNewTokens": 40, "temperature": 0, "stop": [stop]}])
    assert (got["text"], got["tokens"], got["stats"]["stopReason"]) == (expected.text, expected.tokens, "stop")
    too_long = [1] * 256
    error = page.evaluate("async (ids) => { try { await (" + GENERATE + ")([ids, {}]); } catch (e) { return e.message; } }", too_long)
    assert "256 tokens" in error and "context holds 256" in error
    error = page.evaluate("async () => { try { await window.model.logits([1, 320]); } catch (e) { return e.message; } }")
    assert "token id 320 is outside the vocabulary" in error


def test_abort_stops_generation_promptly(loaded):
    page, _ = loaded
    result = page.evaluate("""async () => {
      const controller = new AbortController();
      let pieces = 0, abortedAt = 0;
      for await (const piece of window.model.generate([1, 2, 3], { maxNewTokens: 250, temperature: 1, seed: 3, signal: controller.signal })) {
        if (++pieces === 2) { controller.abort(); abortedAt = performance.now(); }
      }
      return { pieces, ms: performance.now() - abortedAt, stats: window.model.lastStats };
    }""")
    assert result["stats"]["stopReason"] == "aborted"
    assert result["pieces"] == 2 and result["stats"]["newTokens"] < 250
    assert result["ms"] < 1000


def test_reload_is_served_from_cache(page, features, site, served, manifest):
    server = served(site)
    url = server.url + "model/manifest.json"
    page.goto(url)
    page.evaluate(LOAD, [{}])
    assert len(shard_requests(server)) == len(manifest["shards"]) == 6
    first = page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"]
    again = 0 if features.persistent_cache else 6
    page.evaluate("() => window.model.dispose()")
    page.evaluate(LOAD, [{}])  # a second load in the same document
    assert len(shard_requests(server)) == 6 + again
    page.goto(url)
    info = page.evaluate(LOAD, [{}])["info"]
    assert len(shard_requests(server)) == 6 + 2 * again
    assert info["cacheError"] is None and info["downloadBytes"] == sum(s["bytes"] for s in manifest["shards"])
    assert page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"] == first


DAMAGE_NAMED = {"flip": "sha256", "truncate": "truncated", "append": "sent more than the manifest's"}


@pytest.mark.parametrize("damage", list(DAMAGE_NAMED))
def test_bad_shard_is_refetched_once_then_named(page, site, served, tmp_path, damage):
    bad = tmp_path / "site"
    shutil.copytree(site, bad)
    shard = bad / "model" / "weights-00002.bin"
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[-100:]
    else:
        data += bytes(100)
    shard.write_bytes(bytes(data))
    server = served(bad)
    page.goto(server.url + "model/manifest.json")
    error = page.evaluate(LOAD_ERROR)
    assert error is not None and "weights-00002.bin" in error
    assert DAMAGE_NAMED[damage] in error
    assert shard_requests(server).count("weights-00002.bin") == 2


def test_simd128_module_when_relaxed_is_absent(page, site, served_dir, tmp_path, python_model):
    plain = tmp_path / "site"
    shutil.copytree(site, plain)
    path = plain / "model" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "wasm": {"simd128": "bitnet.wasm", "relaxed": None}}))
    page.goto(served_dir(plain) + "model/manifest.json")
    info = page.evaluate(LOAD, [{}])["info"]
    assert (info["simd"], info["dotForm"]) == ("simd128", None)
    got = page.evaluate(GENERATE, [PROMPT, {"maxNewTokens": 16, "temperature": 0}])
    assert got["tokens"] == python_model.generate(PROMPT, max_new_tokens=16, temperature=0).tokens


def test_quota_error_is_reported_and_load_still_works(chromium_page, site, served_dir):
    """Chromium only: the quota is set through the DevTools Protocol."""
    page = chromium_page
    base = served_dir(site)
    page.goto(base + "model/manifest.json")
    cdp = page.context.new_cdp_session(page.playwright_page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": base.rstrip("/"), "quotaSize": 15000})
    info = page.evaluate(LOAD, [{}])["info"]
    assert "quota" in info["cacheError"] and "weights-0000" in info["cacheError"]
    assert page.evaluate(GENERATE, [PROMPT, {"maxNewTokens": 4, "ignoreEos": True}])["stats"]["newTokens"] == 4


def test_load_abort_rejects_with_abort_error(page, site, served_dir):
    page.goto(served_dir(site) + "model/manifest.json")
    result = page.evaluate("""async () => {
      const { BitNet } = await import("/bitnet.js");
      const controller = new AbortController();
      const loading = BitNet.load("/model/manifest.json", { signal: controller.signal, onProgress: () => controller.abort() });
      try { await loading; return "loaded"; } catch (e) { return e.name; }
    }""")
    assert result == "AbortError"


def test_corrupt_cached_shard_is_evicted_and_fetched_again(page, site, served):
    server = served(site)
    url = server.url + "model/manifest.json"
    page.goto(url)
    page.evaluate(LOAD, [{}])
    first = page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"]
    page.evaluate("""async () => {
      const cache = await caches.open("bitnet-wasm-shards-v1");
      const key = new URL("/model/weights-00001.bin", location.href).href;
      const cached = await cache.match(key);
      const bytes = new Uint8Array(await cached.arrayBuffer());
      bytes[7] ^= 1;
      await cache.put(key, new Response(bytes, { headers: cached.headers }));  // damaged where it lies: its record of itself kept
    }""")
    fetched_before = len(shard_requests(server))
    page.evaluate("() => window.model.dispose()")
    page.evaluate(LOAD, [{}])  # the page holds the cache open: WebKitGTK's ephemeral one lives on
    assert shard_requests(server)[fetched_before:] == ["weights-00001.bin"]
    assert page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"] == first


def test_cached_shard_of_an_earlier_build_is_fetched_again(page, site, served, tmp_path, python_model):
    """A rebuilt site reuses its shards' names: a cached shard stored for another sha256 is not this build's."""
    folder = tmp_path / "site"
    shutil.copytree(site, folder)
    shard, manifest_path = folder / "model" / "weights-00003.bin", folder / "model" / "manifest.json"
    this_build = shard.read_bytes(), manifest_path.read_text()
    earlier = bytearray(this_build[0])
    earlier[len(earlier) // 2] ^= 0x40
    manifest = json.loads(this_build[1])
    manifest["shards"][3]["sha256"] = hashlib.sha256(earlier).hexdigest()
    shard.write_bytes(bytes(earlier))
    manifest_path.write_text(json.dumps(manifest))
    server = served(folder)
    page.goto(server.url + "model/manifest.json")
    assert page.evaluate(CACHED)["cachedBytes"] == 0  # and the page holds the cache open: WebKitGTK's ephemeral one lives on
    page.evaluate(LOAD, [{}])
    page.evaluate("() => window.model.dispose()")
    shard.write_bytes(this_build[0])
    manifest_path.write_text(this_build[1])
    status = page.evaluate(CACHED)
    assert status["cachedBytes"] == status["totalBytes"] - len(this_build[0])
    fetched_before = len(shard_requests(server))
    page.evaluate(LOAD, [{}])
    assert shard_requests(server)[fetched_before:] == ["weights-00003.bin"]
    assert page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"] == python_model.generate(PROMPT, max_new_tokens=8, temperature=0).tokens
    assert page.evaluate(CACHED)["complete"]


@pytest.mark.parametrize("change", ["bytes.subarray(0, bytes.length - 5)", "new Uint8Array([...bytes, 1, 2, 3])"], ids=["short", "long"])
def test_cached_shard_of_the_wrong_length_is_evicted_and_fetched_again(page, site, served, change):
    server = served(site)
    page.goto(server.url + "model/manifest.json")
    page.evaluate(LOAD, [{}])
    first = page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"]
    page.evaluate(f"""async () => {{
      const cache = await caches.open("bitnet-wasm-shards-v1");
      const key = new URL("/model/weights-00002.bin", location.href).href;
      const cached = await cache.match(key);
      const bytes = new Uint8Array(await cached.arrayBuffer());
      await cache.put(key, new Response({change}, {{ headers: cached.headers }}));
    }}""")
    fetched_before = len(shard_requests(server))
    page.evaluate("() => window.model.dispose()")
    page.evaluate(LOAD, [{}])
    assert shard_requests(server)[fetched_before:] == ["weights-00002.bin"]
    assert page.evaluate(GENERATE, [PROMPT, GREEDY_8])["tokens"] == first


def test_a_model_too_large_for_the_engine_names_the_memory_it_needs(page, site, served_dir, tmp_path):
    large = tmp_path / "site"
    shutil.copytree(site, large)
    path = large / "model" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["abi"]["arena_bytes"] = manifest["plan"]["total_bytes"] = 5 * 2**30  # beyond wasm32's 4 GiB in every engine
    path.write_text(json.dumps(manifest))
    page.goto(served_dir(large) + "model/manifest.json")
    error = page.evaluate(LOAD_ERROR)
    needed = re.search(r"the model needs (\d+) MiB of WebAssembly memory and this browser refused it: it grants (\d+) MiB", error or "")
    assert needed and 5 * 1024 <= int(needed[1]) < 5 * 1024 + 64, error
    assert 0 < int(needed[2]) <= 4096, error  # wasm32's ceiling at most
