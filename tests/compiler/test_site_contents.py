"""What a site ships: by default no model/src/ and wasm modules exporting only what the hosts call;
with sources=True (`--sources`) the C and every kernel. The Python runtime regenerates the C from
the manifest and runs it only if it is what the site was built from."""
import json
import shutil

import pytest
import wasmtime

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler.pipeline import HOST_EXPORTS
from bitnet_wasm.compiler.site_format import SiteError
from bitnet_wasm.compiler.sources import digest, site_sources
from bitnet_wasm.compiler.writers import write_bitnet_packed

GREEDY = dict(max_new_tokens=12, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module", autouse=True)
def native_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path_factory.mktemp("native-cache")))
        yield


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """(lean, with_sources): one checkpoint built both ways."""
    root = tmp_path_factory.mktemp("contents")
    written = write_bitnet_packed(root / "hf", hidden=48, heads=3, kv_heads=1, intermediate=100, layers=2, vocab=320)
    bitnet_wasm.build(written.path, root / "lean", layout="mad", progress=False)
    bitnet_wasm.build(written.path, root / "full", layout="mad", progress=False, sources=True)
    return root / "lean", root / "full"


def exports(path) -> set[str]:
    return {e.name for e in wasmtime.Module.from_file(wasmtime.Engine(), str(path)).exports}


def test_a_default_site_ships_no_c_and_only_the_host_exports(sites):
    lean, full = sites
    manifest = json.loads((lean / "model/manifest.json").read_text())
    assert not (lean / "model/src").exists() and manifest["sources"]["dir"] is None
    for key, name in manifest["wasm"].items():
        threaded = key.endswith("_threads")  # imports its memory; exports its stack pointer to the followers
        assert exports(lean / "model" / name) == {*HOST_EXPORTS, "__heap_base", *(["__stack_pointer"] if threaded else ["memory"])}, name
        assert {"bn_sample", "bn_argmax", "bn_bitlinear_mad_ref"} <= exports(full / "model" / name)
        assert (lean / "model" / name).stat().st_size < 0.75 * (full / "model" / name).stat().st_size
    assert manifest["sources"]["sha256"] == json.loads((full / "model/manifest.json").read_text())["sources"]["sha256"]


def test_sources_build_ships_the_c_the_manifest_names(sites):
    _, full = sites
    manifest = json.loads((full / "model/manifest.json").read_text())
    assert manifest["sources"]["dir"] == "src" and (full / "model/src/forward.c").is_file()
    assert digest(full / "model/src") == manifest["sources"]["sha256"]


def test_the_runtime_regenerates_the_c_and_both_sites_generate_alike(sites):
    lean, full = sites
    regenerated = site_sources(lean / "model", json.loads((lean / "model/manifest.json").read_text()))
    assert regenerated != lean / "model/src" and sorted(p.name for p in regenerated.iterdir()) == sorted(p.name for p in (full / "model/src").iterdir())
    for path in (full / "model/src").iterdir():
        assert (regenerated / path.name).read_bytes() == path.read_bytes(), path.name
    tokens = {(site.name, backend): bitnet_wasm.load(site, backend).generate([1, 2, 3], **GREEDY).tokens
              for site in sites for backend in ("native", "wasm")}
    assert len(set(map(tuple, tokens.values()))) == 1, tokens


def test_c_that_is_not_what_the_site_was_built_from_is_refused(sites, tmp_path):
    lean, full = sites
    other = tmp_path / "other"
    shutil.copytree(lean, other)
    path = other / "model/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sources"]["sha256"] = "0" * 64  # as if built by another bitnet-wasm, whose C this one cannot regenerate
    path.write_text(json.dumps(manifest))
    with pytest.raises(SiteError, match="differs from what the site was built from.*rebuild the site"):
        bitnet_wasm.load(other)
    manifest["kernels"]["shapes"] = ["48x48"]  # passes the manifest check, but names no layout per shape
    path.write_text(json.dumps(manifest))
    with pytest.raises(SiteError, match="cannot be regenerated from its manifest"):
        bitnet_wasm.load(other)
    edited = tmp_path / "edited"
    shutil.copytree(full, edited)
    forward_c = edited / "model/src/forward.c"
    forward_c.write_text(forward_c.read_text().replace("bn_rmsnorm(", "bn_rmsnorm_ref(", 1))
    with pytest.raises(SiteError, match="src: the C here differs from what the site was built from"):
        bitnet_wasm.load(edited)


def test_cli_sources_option(tmp_path, capsys):
    written = write_bitnet_packed(tmp_path / "hf", hidden=32, heads=2, kv_heads=1, intermediate=48, layers=1, vocab=300)
    assert cli(["build", str(written.path), "--out", str(tmp_path / "site"), "--layout", "mad", "--no-progress", "--sources"]) == 0
    assert (tmp_path / "site/model/src/forward.c").is_file()
    with pytest.raises(SystemExit):
        cli(["build", "--help"])
    assert "--sources" in capsys.readouterr().out
