"""The runtime as an npm package: packed with npm, installed offline into a fresh project, imported
from its node_modules (a bare specifier through an import map) by a page in Chromium."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import bitnet_wasm
from bitnet_wasm.compiler.site import write_npm_package

PROMPT = "The old lighthouse keeper climbed the stairs every evening"
PAGE = """<!doctype html>
<script type="importmap">{"imports": {"bitnet-wasm": "./node_modules/bitnet-wasm/bitnet.js"}}</script>
<script type="module">
import { BitNet } from "bitnet-wasm";
const model = await BitNet.load("model/manifest.json");
const tokens = [];
for await (const piece of model.generate(%s, { maxNewTokens: 12, temperature: 0 })) tokens.push(piece.token);
window.result = { tokens, info: model.info };
</script>
""" % json.dumps(PROMPT)
NPM_TIMEOUT_S = 120


def npm(*args, cwd) -> str:
    done = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return write_npm_package(tmp_path_factory.mktemp("npm") / "bitnet-wasm")


def test_npm_pack_ships_the_runtime_and_nothing_else(package):
    listing = json.loads(npm("pack", "--dry-run", "--json", cwd=package))[0]
    files = {f["path"] for f in listing["files"]}
    assert files == {*json.loads((package / "package.json").read_text())["files"], "package.json"}
    assert not any(name.endswith((".py", ".j2", ".html")) or "test" in name for name in files)
    assert {"bitnet.js", "worker.js", "threads.js", "format.js", "bitnet.d.ts"} <= files
    assert listing["name"] == "bitnet-wasm" and listing["version"] == bitnet_wasm.__version__  # pyproject's, the one place


def test_npm_tarball_installs_into_a_fresh_project_and_runs_in_chromium(package, small_site, tmp_path, served, chromium_page):
    dist = tmp_path / "dist"
    dist.mkdir()
    npm("pack", "--pack-destination", str(dist), cwd=package)
    tarball, = dist.glob("bitnet-wasm-*.tgz")
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "private": True}))
    npm("install", "--offline", "--no-audit", "--no-fund", str(tarball), cwd=app)  # no dependencies: nothing from a registry
    installed = app / "node_modules/bitnet-wasm"
    assert json.loads((installed / "package.json").read_text())["exports"]["."] == {"types": "./bitnet.d.ts", "default": "./bitnet.js"}
    shutil.copytree(small_site / "model", app / "model")
    (app / "index.html").write_text(PAGE)
    server = served(app)
    chromium_page.goto(server.url + "index.html")
    chromium_page.wait_for("() => window.result !== undefined", 60)
    result = chromium_page.evaluate("() => window.result")
    assert result["info"]["name"] == "checkpoint"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(tmp_path / "native-cache"))
        assert result["tokens"] == bitnet_wasm.load(small_site).generate(PROMPT, max_new_tokens=12, temperature=0).tokens
    assert any("/node_modules/bitnet-wasm/worker.js" in path for path in server.paths)
