"""Issue #12's load and memory measurement of `bitnet-wasm bench --compare` (bench/load_memory.py and
compare_page/load.js), for real in Chromium on the demo model, and its targets and section in the report;
and, on the same page and site, the int8-dot peak and the long-prompt rows."""
from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from test_compare import _results  # the results dict of the report tests, to which these add a measured model

import bitnet_wasm
from bitnet_wasm.bench import compare, compare_report, load_memory
from bitnet_wasm.bench.chromium import headless_chromium, playwright
from bitnet_wasm.models import embedded_model_dir
from bitnet_wasm.serve import SiteServer

ROOT = Path(__file__).parents[2]
CACHE_TARGET = "weights from Cache Storage / plain copy of the same bytes (relaxed, 1 thread)"
MEMORY_TARGET = "peak browser memory above idle / wasm memory (relaxed, 1 thread)"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """(playwright, session, the demo model prepared): the compare page and the demo site served from one folder, as the compare serves its cache."""
    root = tmp_path_factory.mktemp("compare-cache")
    compare._write_page(root)
    bitnet_wasm.build(embedded_model_dir("b1.58"), root / "demo" / "site", layout="mad", progress=False)  # no kernel timing: any layout serves
    with SiteServer(root, "127.0.0.1", 0, quiet=True) as server:
        yield playwright(), compare._Session(None, server.url, root), compare.Prepared("demo", "the demo model", root / "demo" / "site")


@pytest.fixture(scope="module")
def measured(bench):
    return compare._load_and_memory(*bench, compare.DEFAULT_PROMPT, log=lambda message: None)


def test_load_and_memory_of_the_demo_model(bench, measured):
    manifest = json.loads((bench[2].site / "model" / "manifest.json").read_text())
    shard_bytes = sum(shard["bytes"] for shard in manifest["shards"])
    assert measured["error"] is None, measured["error"]
    assert (measured["simd"], measured["threads"]) == ("relaxed", 1)
    assert measured["shard_bytes"] == measured["cached_bytes"] == measured["loader_cached_bytes"] == shard_bytes
    assert measured["first_cached_bytes"] == 0 and measured["cache_error"] is None  # the first visit came from the network
    assert measured["wasm_memory_bytes"] >= manifest["abi"]["arena_bytes"] and measured["wasm_memory_bytes"] % 65536 == 0
    for key in ("first_load_s", "second_load_s", "loader_s", "copy_s", "copy_resident_s", "checksum_s", "sha256_s"):
        assert 0 < measured[key] < 60, (key, measured[key])
    assert measured["checksum_s"] < measured["loader_s"] and measured["loader_s"] < measured["second_load_s"]  # parts of the load
    for side in ("loader", "copy"):  # the loader and the copy into new pages, in rounds: each side's median
        rounds = measured[f"{side}_rounds_s"]
        assert len(rounds) == load_memory.REFERENCE_ROUNDS and all(0 < s < 60 for s in rounds), (side, rounds)
        assert measured[f"{side}_s"] == statistics.median(rounds)
    assert set(measured["second_phases_s"]) == {"manifest", "wasm", "tokenizer", "weights"}
    for visit in ("first", "second"):
        idle, peak = measured[f"{visit}_idle_bytes"], measured[f"{visit}_peak_bytes"]
        assert 50e6 < idle < peak < 10e9, (visit, idle, peak)  # a headless Chromium's processes alone take tens of MB
    above = max(measured[f"{v}_peak_bytes"] - measured[f"{v}_idle_bytes"] for v in ("first", "second"))
    assert measured["peak_above_idle_bytes"] == above and 0 < above < math.inf


def test_targets_and_section_of_a_measured_model(measured):
    results = _results()
    results["models"][0]["load"] = measured
    targets = {t["target"]: t for t in compare_report.derive(results)["models"][0]["targets"]}
    assert targets[CACHE_TARGET]["value"] == pytest.approx(measured["loader_s"] / measured["copy_s"])
    assert targets[MEMORY_TARGET]["value"] == pytest.approx(measured["peak_above_idle_bytes"] / measured["wasm_memory_bytes"])
    assert (targets[CACHE_TARGET]["goal"], targets[MEMORY_TARGET]["goal"]) == ("<= 2", "<= 1.3")
    text = compare_report.markdown(results)
    assert text.index("## Targets") < text.index("## Load and memory") < text.index("## Models")
    assert f"| large | {CACHE_TARGET} | {targets[CACHE_TARGET]['value']:,.2f} | <= 2 |" in text
    assert f"| large | {measured['wasm_memory_bytes'] / 1e6:,.1f} | {measured['first_idle_bytes'] / 1e6:,.1f} |" in text
    assert f"| large | {measured['shard_bytes'] / 1e6:,.1f} | {measured['first_load_s']:.3f} | {measured['second_load_s']:.3f} | all |" in text
    assert f"| {measured['loader_s']:.3f} | {measured['checksum_s']:.3f} (" in text
    rounds = ", ".join(f"{s:.3f}" for s in measured["loader_rounds_s"]), ", ".join(f"{s:.3f}" for s in measured["copy_rounds_s"])
    assert f"- large: loader {rounds[0]}; plain copy, new pages {rounds[1]}\n" in text


def test_a_load_that_did_not_come_from_cache_storage_meets_no_load_target(measured):
    results = _results()
    results["models"][0]["load"] = {**measured, "cached_bytes": measured["shard_bytes"] // 2}
    targets = {t["target"]: t for t in compare_report.derive(results)["models"][0]["targets"]}
    assert targets[CACHE_TARGET]["value"] is None and targets[CACHE_TARGET]["met"] is None
    assert targets[MEMORY_TARGET]["value"] is not None
    assert f"**only {measured['shard_bytes'] // 2 / 1e6:,.1f} MB**" in compare_report.markdown(results)


def test_a_failed_measurement_is_the_models_error_entry(bench):
    playwright, session, _ = bench
    missing = compare.Prepared("demo", "", session.root / "no-site")
    entry = compare._load_and_memory(playwright, session, missing, "Hi", log=lambda message: None)
    assert set(entry) == {"error"} and "no-site/bitnet.js" in entry["error"], entry
    results = _results()
    results["models"][0]["load"] = entry
    text = compare_report.markdown(results)
    assert f"| large | not measured: {entry['error']} | | | | | | | | |\n" in text
    assert f"| large | {MEMORY_TARGET} |  | <= 1.3 | not measured |" in text


def test_results_from_before_the_measurement_still_render():
    text = compare_report.markdown(_results())
    assert "| large | not measured | | | | | | | | |\n" in text and "| large | not measured | | | | | |\n" in text
    assert f"| large | {CACHE_TARGET} |  | <= 2 | not measured |" in text
    docs = compare_report.markdown(json.loads((ROOT / "docs" / "benchmarks.json").read_text()))
    assert "## Load and memory" in docs


def test_the_int8_dot_peak_and_the_long_prompt_rows_run_in_chromium(bench, kernel_builds):
    _, session, demo = bench
    shutil.copy(kernel_builds["wasm-relaxed"], session.root / "kernels-relaxed.wasm")
    with headless_chromium() as (_, browser):
        live = compare._Session(browser, session.server_url, session.root)
        peaks = [compare._compute(live, live.url(session.root / "kernels-relaxed.wasm"), threads)["gops"] for threads in compare_report.THREADS]
        rows = compare._prefill_rows(live, demo, compare.DEFAULT_PROMPT, log=lambda message: None)
        missing = compare._prefill_rows(live, compare.Prepared("demo", "", session.root / "no-site"), "Hi", log=lambda message: None)
    assert all(1 < gops < 10_000 for gops in peaks), peaks  # this machine's cores do tens to hundreds of GOPS
    context = json.loads((demo.site / "model" / "manifest.json").read_text())["plan"]["context"]
    assert [(r["threads"], r["error"], r["prompt_tokens"]) for r in rows] == [(t, None, min(compare.PREFILL_TOKENS, context - 1)) for t in compare_report.THREADS]
    assert all(0 < r["ttft_s"] < 60 and r["prefill_tps"] > 0 for r in rows), rows
    assert [r["threads"] for r in missing] == list(compare_report.THREADS) and all("no-site" in r["error"] for r in missing)  # a row's error, not a crash
