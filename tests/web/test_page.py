"""The generated page (web/templates/index.html.j2 + page.js + style.css) in every browser engine
on a real tiny site, and `bitnet-wasm bench SITE --browser` against `bitnet-wasm run`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from pages import FEATURES, READY_OR_ERROR, open_ready

from bitnet_wasm.runtime import load

PROMPT = "The old lighthouse keeper"
LONG = 1000  # new tokens: most of the session site's context
CLI = [sys.executable, "-m", "bitnet_wasm.cli"]
STATE = "() => document.documentElement.dataset.state"
IS_READY = "() => document.documentElement.dataset.state === 'ready'"
# what a user sees of the page: text of the parts, visibility and enabled buttons
VIEW = """() => {
  const $ = (id) => document.getElementById(id);
  const shown = (id) => !$(id).hidden && $(id).getClientRects().length > 0;
  return {
    output: $("output").textContent, stats: $("stats").textContent, error: $("error-message").textContent,
    errorShown: shown("error-panel"), chatShown: shown("chat"), chatChecked: $("chat").checked,
    generateEnabled: !$("generate").disabled, stopEnabled: !$("stop").disabled,
    card: Object.fromEntries(["context", "bits", "name", "download", "runtime"].map((k) => [k, $(`card-${k}`).textContent])),
  };
}"""
# fills the form as a user would, then clicks Generate
GENERATE_THROUGH_UI = """([prompt, maxTokens, temperature, chat]) => {
  const $ = (id) => document.getElementById(id);
  $("chat").checked = chat;
  for (const [id, value] of [["prompt", prompt], ["max-tokens", maxTokens], ["temperature", temperature]]) {
    $(id).value = String(value);
    $(id).dispatchEvent(new Event("input", { bubbles: true }));
  }
  $("generate").click();
}"""


@pytest.fixture(scope="session")
def site(page_site):
    return page_site


@pytest.fixture(scope="session")
def site_url(site, served_dir) -> str:
    return served_dir(site)


def view(page) -> dict:
    return page.evaluate(VIEW)


def generate_through_ui(page, prompt: str, max_tokens: int, temperature: float = 0, chat: bool = False) -> None:
    page.evaluate(GENERATE_THROUGH_UI, [prompt, max_tokens, temperature, chat])


def test_page_loads_the_model_and_shows_its_card(page, site, site_url):
    info = open_ready(page, site_url)
    manifest = json.loads((site / "model" / "manifest.json").read_text())
    card = view(page)["card"]
    assert info["vocabSize"] == manifest["model"]["vocab_size"]
    assert card["context"].startswith(str(manifest["plan"]["context"]))
    assert card["bits"] == "1.58"
    assert card["name"] == manifest["model"]["name"] == "model"
    assert card["download"] == f"{sum(s['bytes'] for s in manifest['shards']) / 1e6:,.2f} MB"
    assert card["runtime"].startswith(info["simd"])
    seen = view(page)
    assert not seen["errorShown"] and seen["generateEnabled"] and not seen["stopEnabled"]


def test_generate_streams_greedy_text_into_the_output(page, site, site_url):
    open_ready(page, site_url)
    page.evaluate("""() => {
      window.outputGrowth = [];
      new MutationObserver(() => window.outputGrowth.push([document.documentElement.dataset.state,
        document.getElementById("output").textContent.length]))
        .observe(document.getElementById("output"), {childList: true, characterData: true, subtree: true});
    }""")
    generate_through_ui(page, PROMPT, 24)
    page.wait_for(IS_READY, 30)

    while_generating = [length for state, length in page.evaluate("() => window.outputGrowth") if state == "generating"]
    assert len(set(while_generating)) >= 3, f"the output did not grow token by token: {while_generating}"
    expected = load(site).generate(PROMPT, max_new_tokens=24, temperature=0).text
    seen = view(page)
    assert page.evaluate("() => document.querySelector('#output .prompt-echo').textContent") == PROMPT  # the prompt, then its continuation
    assert seen["output"] == PROMPT + expected
    assert "decode" in seen["stats"]


def test_chat_view_answers_in_the_models_template(page, site, site_url):
    open_ready(page, site_url)
    seen = view(page)
    assert seen["chatShown"] and seen["chatChecked"]
    generate_through_ui(page, PROMPT, 12, chat=True)
    page.wait_for(IS_READY, 30)
    reply = load(site).chat([{"role": "user", "content": PROMPT}], max_new_tokens=12, temperature=0)
    turns = page.evaluate("() => ['user', 'assistant'].map((role) => document.querySelector(`#history .${role}`)?.textContent)")
    assert turns == [PROMPT, reply.text]


def test_stop_ends_generation_within_a_second(page, site_url):
    open_ready(page, site_url)
    generate_through_ui(page, PROMPT, LONG)  # greedy: deterministically no early end of text
    page.wait_for("() => document.getElementById('output').textContent.length > 0", 30)
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
    assert view(page)["stats"].startswith("Stopped")


def test_a_bad_setting_is_named_in_the_error_panel_and_the_page_stays_usable(page, site_url):
    open_ready(page, site_url)
    generate_through_ui(page, PROMPT, 8, temperature=-1)
    page.wait_for("() => !document.getElementById('error-panel').hidden", 5)
    assert view(page)["error"].startswith("Temperature:")
    assert page.evaluate(STATE) == "ready"
    generate_through_ui(page, PROMPT, 8, temperature=0)
    page.wait_for("() => document.documentElement.dataset.state === 'ready' && window.bitnet.lastStats", 30)
    seen = view(page)
    assert not seen["errorShown"] and seen["output"]


def test_page_works_under_its_content_security_policy(page, site, served_dir, tmp_path):
    watched = tmp_path / "site"
    shutil.copytree(site, watched)
    index = watched / "index.html"
    # a 'self' script ahead of the page's own sees every violation from the start, in any engine
    (watched / "csp-watch.js").write_text("document.addEventListener('securitypolicyviolation', (e) => "
                                          "(window.cspViolations ??= []).push(e.violatedDirective + ' ' + e.blockedURI));")
    index.write_text(index.read_text().replace("<head>", '<head><script src="csp-watch.js"></script>', 1))
    open_ready(page, served_dir(watched))
    csp = page.evaluate("() => document.querySelector(\"meta[http-equiv='Content-Security-Policy']\").content")
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp
    generate_through_ui(page, PROMPT, 8)
    page.wait_for(IS_READY, 30)
    assert page.evaluate("() => window.cspViolations ?? []") == []

    # the policy is in force: an inline script is refused and reported
    page.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.head.append(s); }""")
    page.wait_for("() => (window.cspViolations ?? []).length > 0", 5)
    assert page.evaluate("() => window.inlineRan ?? null") is None


def test_screenshot_after_generation(engine, site_url, tmp_path):
    with engine.new_page(viewport={"width": 1000, "height": 1200}) as page:
        open_ready(page, site_url)
        generate_through_ui(page, PROMPT, 32)
        page.wait_for(IS_READY, 30)
        shot = tmp_path / "page.png"
        page.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        assert view(page)["output"].strip()


def test_a_broken_manifest_url_shows_the_error_panel(page, site, served_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    (broken / "model" / "manifest.json").unlink()
    page.goto(served_dir(broken))
    page.wait_for(READY_OR_ERROR, 30)
    assert page.evaluate(STATE) == "error"
    seen = view(page)
    assert seen["errorShown"] and "manifest.json" in seen["error"]
    assert not seen["generateEnabled"]


@pytest.mark.parametrize("engine_name", list(FEATURES))
def test_bench_browser_matches_run(site, engine_name):
    bench = subprocess.run(CLI + ["bench", str(site), "--browser", "--engine", engine_name, "--json", "--tokens", "8", "--prompt", PROMPT,
                                  "--threads", "2", "--simd", "simd128"], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert (result["info"]["threads"], result["info"]["simd"]) == (2 if FEATURES[engine_name].threads else 1, "simd128")
    assert result["engine"] == engine_name and result["limits"]["memoryMiB"] > 0
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
