"""The generated page (web/templates/index.html.j2 + page.js + style.css) in real headless Chromium
on a real tiny site, and `bitnet-wasm bench SITE --browser` against `bitnet-wasm run`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bitnet_wasm
from bitnet_wasm.runtime import load
from models import write_bitnet_packed

PROMPT = "The old lighthouse keeper"
READY_OR_ERROR = "() => ['ready', 'error'].includes(document.documentElement.dataset.state)"
LONG = 1000  # new tokens: most of the session site's context
CLI = [sys.executable, "-m", "bitnet_wasm.cli"]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """One tiny site for the session, large enough that LONG new tokens take over a second."""
    root = tmp_path_factory.mktemp("page")
    write_bitnet_packed(root / "model", hidden=128, layers=4, heads=4, kv_heads=2, intermediate=256, vocab=320, max_position=1024)
    bitnet_wasm.build(root / "model", root / "site", progress=False)
    return root / "site"


@pytest.fixture(scope="session")
def site_url(site, served_dir) -> str:
    return served_dir(site)


def open_ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY_OR_ERROR, timeout=30_000)
    state = page.evaluate("() => document.documentElement.dataset.state")
    assert state == "ready", page.text_content("#error-message")


def generate_through_ui(page, prompt: str, max_tokens: int, temperature: float = 0, chat: bool = False) -> None:
    page.set_checked("#chat", chat)
    page.fill("#prompt", prompt)
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", str(temperature))
    page.click("#generate")


def test_page_loads_the_model_and_shows_its_card(page, site, site_url):
    open_ready(page, site_url)
    manifest = json.loads((site / "model" / "manifest.json").read_text())
    assert page.evaluate("() => window.bitnet.info.vocabSize") == manifest["model"]["vocab_size"]
    assert page.text_content("#card-context").startswith(str(manifest["plan"]["context"]))
    assert page.text_content("#card-bits") == "1.58"
    assert page.text_content("#card-name") == manifest["model"]["name"] == "model"
    assert page.text_content("#card-download") == f"{sum(s['bytes'] for s in manifest['shards']) / 1e6:,.2f} MB"
    assert page.text_content("#card-runtime").startswith(page.evaluate("() => window.bitnet.info.simd"))
    assert page.is_hidden("#error-panel")
    assert page.is_enabled("#generate") and page.is_disabled("#stop")


def test_generate_streams_greedy_text_into_the_output(page, site, site_url):
    open_ready(page, site_url)
    page.evaluate("""() => {
      window.outputGrowth = [];
      new MutationObserver(() => window.outputGrowth.push([document.documentElement.dataset.state,
        document.getElementById("output").textContent.length]))
        .observe(document.getElementById("output"), {childList: true, characterData: true, subtree: true});
    }""")
    generate_through_ui(page, PROMPT, 24)
    page.wait_for_function("() => document.documentElement.dataset.state === 'ready'", timeout=30_000)

    while_generating = [length for state, length in page.evaluate("() => window.outputGrowth") if state == "generating"]
    assert len(set(while_generating)) >= 3, f"the output did not grow token by token: {while_generating}"
    expected = load(site).generate(PROMPT, max_new_tokens=24, temperature=0).text
    assert page.text_content("#output .prompt-echo") == PROMPT  # the prompt, then its continuation
    assert page.text_content("#output") == PROMPT + expected
    assert "decode" in page.text_content("#stats")


def test_chat_view_answers_in_the_models_template(page, site, site_url):
    open_ready(page, site_url)
    assert page.is_visible("#chat") and page.is_checked("#chat")
    generate_through_ui(page, PROMPT, 12, chat=True)
    page.wait_for_function("() => document.documentElement.dataset.state === 'ready'", timeout=30_000)
    reply = load(site).chat([{"role": "user", "content": PROMPT}], max_new_tokens=12, temperature=0)
    assert page.text_content("#history .user") == PROMPT
    assert page.text_content("#history .assistant") == reply.text


def test_stop_ends_generation_within_a_second(page, site_url):
    open_ready(page, site_url)
    generate_through_ui(page, PROMPT, LONG)  # greedy: deterministically no early end of text
    page.wait_for_function("() => document.getElementById('output').textContent.length > 0", timeout=30_000)
    stopped = page.evaluate("""async () => {
      const html = document.documentElement;
      const wasGenerating = html.dataset.state === "generating";
      const start = performance.now();
      document.getElementById("stop").click();
      while (html.dataset.state !== "ready" && performance.now() - start < 5000) await new Promise((r) => setTimeout(r, 5));
      return {wasGenerating, seconds: (performance.now() - start) / 1000, state: html.dataset.state};
    }""")
    assert stopped["wasGenerating"], "generation ended before Stop was clicked; the test needs a longer generation"
    assert stopped["state"] == "ready" and stopped["seconds"] < 1.0, stopped
    assert page.evaluate("() => window.bitnet.lastStats.stopReason") == "aborted"
    assert page.text_content("#stats").startswith("Stopped")


def test_a_bad_setting_is_named_in_the_error_panel_and_the_page_stays_usable(page, site_url):
    open_ready(page, site_url)
    generate_through_ui(page, PROMPT, 8, temperature=-1)
    page.wait_for_selector("#error-panel:not([hidden])", timeout=5_000)
    assert page.text_content("#error-message").startswith("Temperature:")
    assert page.evaluate("() => document.documentElement.dataset.state") == "ready"
    page.fill("#temperature", "0")
    page.click("#generate")
    page.wait_for_function("() => document.documentElement.dataset.state === 'ready' && window.bitnet.lastStats", timeout=30_000)
    assert page.is_hidden("#error-panel") and page.text_content("#output")


def test_page_works_under_its_content_security_policy(page, site_url):
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    page.add_init_script("document.addEventListener('securitypolicyviolation', (e) => "
                         "(window.cspViolations ??= []).push(e.violatedDirective + ' ' + e.blockedURI))")
    open_ready(page, site_url)
    csp = page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp
    generate_through_ui(page, PROMPT, 8)
    page.wait_for_function("() => document.documentElement.dataset.state === 'ready'", timeout=30_000)
    assert page.evaluate("() => window.cspViolations ?? []") == []
    assert not [m for m in messages if "Content Security Policy" in m]

    # the policy is in force: an inline script is refused and reported
    page.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.head.append(s); }""")
    page.wait_for_function("() => (window.cspViolations ?? []).length > 0", timeout=5_000)
    assert page.evaluate("() => window.inlineRan") is None


def test_screenshot_after_generation(page, site_url, tmp_path):
    page.set_viewport_size({"width": 1000, "height": 1200})
    open_ready(page, site_url)
    generate_through_ui(page, PROMPT, 32)
    page.wait_for_function("() => document.documentElement.dataset.state === 'ready'", timeout=30_000)
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert page.text_content("#output").strip()


def test_a_broken_manifest_url_shows_the_error_panel(page, site, served_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    (broken / "model" / "manifest.json").unlink()
    page.goto(served_dir(broken))
    page.wait_for_function(READY_OR_ERROR, timeout=30_000)
    assert page.evaluate("() => document.documentElement.dataset.state") == "error"
    assert page.is_visible("#error-panel")
    assert "manifest.json" in page.text_content("#error-message")
    assert page.is_disabled("#generate")


def test_bench_browser_matches_run(site):
    bench = subprocess.run(CLI + ["bench", str(site), "--browser", "--json", "--tokens", "8", "--prompt", PROMPT,
                                  "--threads", "2", "--simd", "simd128"], capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert (result["info"]["threads"], result["info"]["simd"]) == (2, "simd128")
    run = subprocess.run(CLI + ["run", str(site), "--json", "--temperature", "0", "--max-new-tokens", "8", "--prompt", PROMPT],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expected = json.loads(run.stdout)
    assert result["tokens"] == expected["tokens"] and result["text"] == expected["text"]
    for field in ("load_s", "ttft_s", "prefill_tokens_per_second", "decode_tokens_per_second"):
        assert result[field] > 0, field
    assert result["load_s"] >= result["weight_load_s"] > 0


def test_bench_browser_names_a_folder_that_is_not_a_site(tmp_path):
    bench = subprocess.run(CLI + ["bench", str(tmp_path), "--browser"], capture_output=True, text=True, timeout=60)
    assert bench.returncode == 1
    assert str(tmp_path) in bench.stderr and "index.html" in bench.stderr
