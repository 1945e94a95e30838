"""The one site-format reader refuses a damaged manifest with an error naming the file and the key,
before any of it is used (issue: a manifest without its last shard loaded and generated zeros)."""
import copy
import hashlib
import json
import shutil
import subprocess

import pytest

import bitnet_wasm
from bitnet_wasm.compiler.site import format_module
from bitnet_wasm.compiler.site_format import SiteError, read_json_file, read_manifest
from bitnet_wasm.compiler.writers import write_bitnet_packed
from bitnet_wasm.web import WEB_DIR


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site of several shards (20 KiB each)."""
    root = tmp_path_factory.mktemp("site-format")
    written = write_bitnet_packed(root / "hf", hidden=96, layers=2, heads=4, kv_heads=2, intermediate=160, vocab=320)
    bitnet_wasm.build(written.path, root / "site", shard_mb=0.02, wasm=False, progress=False)
    assert len(json.loads((root / "site/model/manifest.json").read_text())["shards"]) >= 3
    return root / "site"


def shrink_last_shard(site, m):
    """A shorter last shard whose size and sha256 the manifest agrees with."""
    last = m["shards"][-1]
    data = (site / "model" / last["file"]).read_bytes()[:-64]
    (site / "model" / last["file"]).write_bytes(data)
    last.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def nest(site, m):
    """A manifest whose text nests 100,000 arrays deep (returned as the text to write)."""
    return json.dumps(m)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"


MUTATIONS = {  # what is done to a copy of the site -> what the error must say
    "last shard dropped": (lambda site, m: m["shards"].pop(), "shards cover the weights region only up to byte"),
    "no shards": (lambda site, m: m.update(shards=[]), "shards cover the weights region only up to byte 0 of"),
    "shard offset shifted": (lambda site, m: m["shards"][1].update(offset=m["shards"][1]["offset"] + 64), r"shards\[1\] covers"),
    "shorter last shard, size and sha256 updated": (shrink_last_shard, "a shard is missing"),
    "tokens buffer moved": (lambda site, m: m["abi"]["buffers"]["tokens"].update(offset=m["abi"]["buffers"]["tokens"]["offset"] + 64),
                            "abi.buffers.tokens .* differs from plan.buffers.tokens"),
    "logits buffer too small": (lambda site, m: [b.update(bytes=64) for b in (m["abi"]["buffers"]["logits"], m["plan"]["buffers"]["logits"])],
                                "abi.buffers.logits.bytes is 64, expected at least"),
    "context key missing": (lambda site, m: m["plan"].pop("context"), "plan.context is missing"),
    "context a string": (lambda site, m: m["plan"].update(context="256"), "plan.context is str"),
    "vocab zero": (lambda site, m: m["model"].update(vocab_size=0), "model.vocab_size is 0, expected at least 1"),
    "eos beyond the vocabulary": (lambda site, m: m["model"].update(eos_token_ids=[10**6]), "not a token id below the vocabulary size"),
    "rms_norm_eps NaN": (lambda site, m: m["model"].update(rms_norm_eps=float("nan")), "model.rms_norm_eps is nan"),
    "tensor outside the weights": (lambda site, m: m["tensors"]["norm"].update(offset=m["plan"]["regions"]["kv"]["offset"]),
                                   "tensors.norm .* lies outside"),
    "tensors overlap": (lambda site, m: m["tensors"]["layers.0.input_norm"].update(offset=m["tensors"]["embed"]["offset"]),
                        "overlap"),
    "shard file outside the folder": (lambda site, m: m["shards"][0].update(file="../../etc/passwd"), "is not a shard file name"),
    "shards not a list": (lambda site, m: m.update(shards={}), "shards is dict"),
    "regions out of order": (lambda site, m: m["plan"]["regions"]["kv"].update(offset=0), "plan.regions.kv"),
    "deeply nested JSON": (nest, "not valid JSON"),
    "tokenizer config not a file name": (lambda site, m: m["tokenizer"].update(config=[]), "tokenizer.config is list"),
    "sources digest not hex": (lambda site, m: m["sources"].update(sha256="src"), "sources.sha256 is not 64 hex digits"),
    "sources folder outside model/": (lambda site, m: m["sources"].update(dir="../.."), "sources.dir '../..' is not the name of a folder"),
    "sources missing": (lambda site, m: m.pop("sources"), "sources is missing"),
    "step word not an integer": (lambda site, m: m["abi"].update(stop_tokens_word="x"), "abi.stop_tokens_word is"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_damaged_manifest_is_refused_naming_file_and_key(site, tmp_path, mutation):
    damaged = tmp_path / "site"
    shutil.copytree(site, damaged)
    path = damaged / "model/manifest.json"
    manifest = json.loads(path.read_text())
    mutate, message = MUTATIONS[mutation]
    text = mutate(damaged, manifest)
    path.write_text(text if isinstance(text, str) else json.dumps(manifest))
    with pytest.raises(SiteError, match=message) as error:
        bitnet_wasm.load(damaged)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"[1, 2]", "the manifest is list, expected an object"),
    (b'{"format": "bitnet-wasm-site"', "not valid JSON"),
])
def test_a_manifest_that_is_not_a_manifest_is_refused(site, tmp_path, content, message):
    damaged = tmp_path / "site"
    shutil.copytree(site, damaged)
    (damaged / "model/manifest.json").write_bytes(content)
    with pytest.raises(SiteError, match=message):
        read_manifest(damaged)


def test_the_undamaged_manifest_reads_back_as_written(site):
    model_dir, manifest = read_manifest(site)
    assert model_dir == site / "model" and manifest == json.loads((model_dir / "manifest.json").read_text())
    assert copy.deepcopy(manifest) == read_manifest(model_dir)[1]


@pytest.mark.parametrize("damage", [
    lambda data: data[:-10],                                  # truncated
    lambda data: data.replace(b'"', b"'", 1),                  # one byte changed
])
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_a_damaged_site_file_is_refused_before_use(site, tmp_path, damage, name):
    damaged = tmp_path / "site"
    shutil.copytree(site, damaged)
    path = damaged / "model" / name
    path.write_bytes(damage(path.read_bytes()))
    _, manifest = read_manifest(damaged)
    with pytest.raises(SiteError, match=f"{name}: sha256 does not match the manifest"):
        read_json_file(damaged / "model", manifest, name)
    if name == "tokenizer.json":
        with pytest.raises(SiteError, match=f"{name}: sha256 does not match the manifest"):
            bitnet_wasm.load(damaged)


def test_a_damaged_wasm_module_is_refused_before_wasmtime_compiles_it(tmp_path):
    written = write_bitnet_packed(tmp_path / "hf", hidden=32, layers=1, heads=2, kv_heads=1, intermediate=48, vocab=300)
    bitnet_wasm.build(written.path, tmp_path / "site", progress=False)
    wasm = tmp_path / "site/model/bitnet.wasm"
    wasm.write_bytes(wasm.read_bytes()[:-100])
    with pytest.raises(SiteError, match="bitnet.wasm: sha256 does not match the manifest"):
        bitnet_wasm.load(tmp_path / "site", backend="wasm")


RUN_JS_CHECKS = """
import { readFileSync } from "node:fs";
import { checkManifest } from "./manifest.js";
const results = JSON.parse(readFileSync(process.argv[2], "utf8")).map((text) => {
  let manifest;
  try { manifest = JSON.parse(text); } catch (e) { return `invalid JSON: ${e.message}`; }
  try { checkManifest(manifest, "manifest.json"); return null; } catch (e) { return e.message; }
});
console.log(JSON.stringify(results));
"""


def js_check(tmp_path, texts: list[str]) -> list[str | None]:
    """web/manifest.js's verdict on each manifest text, run by Node (an ES module, as in the page)."""
    shutil.copy(WEB_DIR / "manifest.js", tmp_path / "manifest.js")
    (tmp_path / "format.js").write_text(format_module())
    (tmp_path / "run.mjs").write_text(RUN_JS_CHECKS)
    (tmp_path / "manifests.json").write_text(json.dumps(texts))
    out = subprocess.run(["node", str(tmp_path / "run.mjs"), str(tmp_path / "manifests.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_page_refuses_the_same_damaged_manifests_naming_the_same_key(site, tmp_path):
    """One table, both readers: for every damage the JS check fails on the key the Python check names."""
    cases, texts = [], [(site / "model/manifest.json").read_text()]
    for name, (mutate, _) in MUTATIONS.items():
        damaged = tmp_path / name.replace(" ", "-")
        shutil.copytree(site, damaged)
        manifest = json.loads((damaged / "model/manifest.json").read_text())
        text = mutate(damaged, manifest)
        texts.append(text if isinstance(text, str) else json.dumps(manifest))
        (damaged / "model/manifest.json").write_text(texts[-1])
        with pytest.raises(SiteError) as error:
            read_manifest(damaged)
        cases.append((name, str(error.value).split(": ", 1)[1]))
    verdicts = js_check(tmp_path, texts)
    assert verdicts[0] is None  # the undamaged manifest passes
    for (name, python_error), js_error in zip(cases, verdicts[1:], strict=True):
        key = python_error.split(" ")[0]
        if name == "deeply nested JSON" and js_error is None:
            continue  # V8 parses deep nesting that Python's recursion limit refuses; the extra key is ignored
        assert js_error is not None, (name, python_error)
        # NaN is JSON to Python, not to JSON.parse: the page refuses the text itself
        assert key in js_error or js_error.startswith("invalid JSON") and name in ("rms_norm_eps NaN", "deeply nested JSON"), (name, python_error, js_error)
