"""`bench SITE --browser --profile`: a profiling build of the site's own C runs in Chromium and
times every kernel call of forward.c; the site's own module then runs the same steps."""
import json
import os
import re
import shutil

import pytest

import bitnet_wasm
from bitnet_wasm import cli
from bitnet_wasm.bench import chromium, profile
from bitnet_wasm.bench.browser import BrowserBenchError
from bitnet_wasm.compiler.site_format import read_manifest
from bitnet_wasm.compiler.sources import site_sources
from bitnet_wasm.compiler.writers import write_bitnet_packed
from bitnet_wasm.wasm_kernels.abi import dot_form_name


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile-site")
    # wide enough that the feed-forward linears are shared among threads (parallel.c MIN_SHARED_WORK)
    checkpoint = write_bitnet_packed(path / "checkpoint", layers=3, hidden=1024, intermediate=1040, heads=4, kv_heads=2)
    bitnet_wasm.build(checkpoint.path, path / "site", layout="mad", progress=False)
    return path / "site"


@pytest.mark.parametrize("threads", [1, 2])
def test_profile_times_every_op_of_the_forward_pass(site, threads):
    forward_c = (site_sources(*read_manifest(site)) / "forward.c").read_text()  # the site ships no src/: regenerated
    body = forward_c[forward_c.index("static int forward("):forward_c.index("int bn_model_forward(")]
    calls = re.findall(r"^\s+OP\((bn_\w+)\(", body, re.M)
    result = profile.run(site, tokens=3, threads=threads, prompt_tokens=5)
    kinds = [re.sub(r"^bn_(bitlinear|quantize)\d?_\w+|^bn_(\w+?)(_parallel)?$", lambda m: m[1] or m[2], c) for c in calls]
    assert [op.split()[0] for op in result["ops"]] == kinds
    assert len(result["decode"]) == len(result["prefill"]) == len(calls)
    assert all(ms >= 0 for ms in result["decode"] + result["prefill"]) and sum(result["decode"]) > 0
    assert sum(result["decode"]) <= result["decodeMsPerToken"] * 1.001  # the ops run inside the measured step
    assert result["dotForm"] in (0, 1)  # relaxed SIMD: the form the runtime's dot_form.js picked
    assert result["readAhead"] in (True, False) and result["site"]["readAhead"] == result["readAhead"]  # read_ahead.js's pick, kept for the site's module
    site_run = result["site"]  # the site's own module, the same steps: only the clock reads differ
    assert len(result["generated"]) == 3 and site_run["generated"] == result["generated"]
    assert site_run["decodeMsPerToken"] > 0 and site_run["prefillMsPerToken"] > 0
    text = profile.table(result)
    read_ahead = "read-ahead" if result["readAhead"] else "no read-ahead"
    assert "head_f16 embed" in text and f"relaxed SIMD ({dot_form_name(result['dotForm'])} dot, {read_ahead}), {threads} thread(s)" in text
    assert f"{profile.SITE_ROW:36} {site_run['prefillMsPerToken']:10.3f} {site_run['decodeMsPerToken']:10.3f}" in text


def test_profile_refuses_what_it_cannot_run(site, tmp_path):
    with pytest.raises(BrowserBenchError, match="exceed the site's context"):
        profile.run(site, tokens=1000)
    with pytest.raises(BrowserBenchError, match="does not exist"):
        profile.run(tmp_path / "nothing")
    with pytest.raises(BrowserBenchError, match="--prompt-tokens must be at least 1, got 3, 1 and 0"):
        profile.run(site, tokens=3, prompt_tokens=0)
    single = shutil.copytree(site, tmp_path / "single-threaded")
    manifest = json.loads((single / "model" / "manifest.json").read_text())
    del manifest["wasm"]["relaxed_threads"]
    (single / "model" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BrowserBenchError, match="has no relaxed module for 2 thread"):
        profile.run(single, tokens=3, threads=2)


@pytest.mark.parametrize("args, message", [
    (["--profile", "--prompt-tokens", "100000"], "100000 prompt + 16 new tokens exceed the site's context of"),
    (["--prompt-tokens", "8"], "--prompt-tokens is for --profile"),
])
def test_the_cli_passes_prompt_tokens_to_the_profile_only(site, args, message, capsys):
    assert cli.main(["bench", str(site), "--browser", *args]) == 1
    assert message in capsys.readouterr().err


def test_the_cli_says_when_chromium_is_missing(site, monkeypatch, capsys):
    if os.path.exists(chromium.playwright().chromium.executable_path):
        pytest.skip("Playwright's own Chromium is installed: the profile would run it")
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM", "/nonexistent/chromium")
    assert cli.main(["bench", str(site), "--browser", "--profile", "--tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bitnet-wasm bench: Chromium (looked for") and "unexpected error" not in err, err
