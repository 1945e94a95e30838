"""The pure parts of `bitnet-wasm bench --compare`: roofline arithmetic from real manifests, the
derived ratios and targets, the markdown table and plot of a results dict, the random model
writer, wllama's token bias and install errors; and the rows that run outside the browser for real
(our native build; native llama.cpp on the demo model's GGUF). The browser run itself is not run here."""
from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import Tokenizer

import bitnet_wasm
from bitnet_wasm.bench import compare, compare_report, llama_cpp, wllama
from bitnet_wasm.bench.random_model import B2_4T, LARGE, Shape, write_random_bitnet
from bitnet_wasm.compiler.loaders import load_checkpoint
from bitnet_wasm.compiler.writers import tokenizer_json, write_1bitllm
from bitnet_wasm.models import embedded_model_dir
from bitnet_wasm.wasm_kernels import abi

TINY = Shape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=300, max_position=128)


def _row(engine, threads, decode, simd=None, prefill=100.0, error=None):
    row = {"engine": engine, "simd": simd, "threads": threads, "prompt_tokens": 40, "new_tokens": 32,
           "prefill_tps": prefill, "decode_tps": decode, "error": error}
    return {**row, "prefill_tps": None, "decode_tps": None} if error else row


def _results():
    ours, peer, native, llama = compare_report.OURS, compare_report.WLLAMA, compare_report.NATIVE, compare_report.LLAMA_CPP
    return {
        "bitnet_wasm": "0.1.0", "date": "2026-01-01 00:00 UTC",
        "machine": {"cpus": 2, "browser": "Chromium 1", "load_average": [0.1, 0.2], "note": "2 cores, quiet."},
        "settings": {"command": "bitnet-wasm bench --compare", "prompt": "Hi", "tokens": 32, "warmup_tokens": 2,
                     "wllama": "3.8.1", "node_llama_cpp": "3.22.1", "stream_mb": 256, "stream_seconds": 1.5,
                     "dot_peak": {"bytes": 4096, "reps": 20000, "seconds": 1.5, "rows": 3}, "prefill_tokens": 256},
        "bandwidth": [{"threads": 1, "gbps": 20.0, "error": None}, {"threads": 2, "gbps": 30.0, "error": None}],
        "compute": [{"threads": 1, "gops": 100.0, "error": None}, {"threads": 2, "gops": 180.0, "error": None}],
        "models": [{
            "name": "large", "description": "random", "error": None, "bytes_per_token": 200_000_000, "prefill_ops_per_token": 2_000_000_000,
            "prefill": [{"threads": 1, "prompt_tokens": 256, "ttft_s": 6.5, "prefill_tps": 40.0, "error": None},
                        {"threads": 2, "prompt_tokens": 256, "ttft_s": None, "prefill_tps": None, "error": "the worker failed"}],
            "rows": [_row(ours, 1, 80.0, "relaxed"), _row(ours, 2, 120.0, "relaxed"), _row(ours, 1, 50.0, "simd128"),
                     _row(ours, 2, None, "simd128", error="asked for simd128 SIMD on 2 thread(s), the runtime ran relaxed on 1"),
                     _row(peer, 1, 10.0, "simd128"), _row(peer, 2, 30.0, "simd128"), _row(native, 1, 100.0),
                     _row(llama, 1, 40.0), _row(llama, 2, 70.0)],
        }],
        "notes": ["a note"],
    }


def test_bytes_per_token_of_a_tied_site(tmp_path):
    write_random_bitnet(tmp_path / "m", TINY)
    manifest = json.loads(bitnet_wasm.build(tmp_path / "m", tmp_path / "site", wasm=False, progress=False).read_text())
    h, i, v, layers = TINY.hidden, TINY.intermediate, TINY.vocab, TINY.layers
    kv = TINY.kv_heads * h // TINY.heads
    linears = (h * h + 2 * kv * h + h * h + 3 * h * i) // 4           # 2-bit codes
    per_layer = linears + 4 * (3 * h + i) + 4 * 7                     # f32 norms, one f32 scale per linear
    expected = layers * per_layer + 4 * h + 2 * v * h + 2 * h          # final norm, f16 head table, one embedding row
    assert compare_report.bytes_per_token(manifest) == expected


def test_bytes_per_token_of_an_untied_site_reads_the_head_once_and_one_embedding_row(tmp_path):
    write_1bitllm(tmp_path / "m", hidden=64, layers=1, heads=4, intermediate=96, vocab=320, tied=False)
    site = bitnet_wasm.build(tmp_path / "m", tmp_path / "site", wasm=False, progress=False, embed="q8")
    manifest = json.loads(site.read_text())
    tables = {n: t["bytes"] for n, t in manifest["tensors"].items() if n.split(".")[0] in ("embed", "lm_head")}
    assert set(tables) == {"embed", "embed.row_scale", "lm_head", "lm_head.row_scale"}
    rest = sum(t["bytes"] for n, t in manifest["tensors"].items() if n not in tables)
    one_row = 64 + 4  # int8 row + its f32 scale
    assert compare_report.bytes_per_token(manifest) == rest + tables["lm_head"] + tables["lm_head.row_scale"] + one_row


def test_roofline_is_bandwidth_over_bytes():
    assert compare_report.roofline_tps(20.0, 200_000_000) == pytest.approx(100.0)
    assert compare_report.roofline_tps(None, 200_000_000) is None
    assert compare_report.roofline_tps(20.0, None) is None


def test_derive_ratios_and_targets():
    model = compare_report.derive(_results())["models"][0]
    rows = {(r["engine"], r["simd"], r["threads"]): r for r in model["rows"]}
    assert rows["bitnet-wasm", "relaxed", 1]["roofline_fraction"] == pytest.approx(0.8)   # 80 / (20 GB/s / 200 MB)
    assert rows["bitnet-wasm", "relaxed", 2]["roofline_fraction"] == pytest.approx(0.8)   # 120 / 150
    assert rows["bitnet-wasm", "relaxed", 1]["vs_wllama"] == pytest.approx(8.0)
    assert rows["bitnet-wasm", "simd128", 1]["vs_wllama"] == pytest.approx(5.0)
    assert rows["wllama", "simd128", 2]["roofline_fraction"] == pytest.approx(0.2)
    assert "vs_wllama" not in rows["wllama", "simd128", 1] and "roofline_fraction" not in rows["native", None, 1]
    assert not {"vs_wllama", "roofline_fraction"} & set(rows["llama.cpp", None, 1])  # the page's bandwidth is not its roofline
    assert model["roofline_tps"] == {"1": pytest.approx(100.0), "2": pytest.approx(150.0)}
    targets = {t["target"]: (t["value"], t["met"]) for t in model["targets"]}
    assert targets == {
        "decode vs wllama, 1 thread (relaxed)": (pytest.approx(8.0), False),  # issue #12: >= 12x on the large shape
        "decode vs wllama, 2 threads (relaxed)": (pytest.approx(4.0), False),
        "decode / roofline, 1 thread (relaxed)": (pytest.approx(0.8), True),
        "decode / roofline, 2 threads (relaxed)": (pytest.approx(0.8), True),
        "decode 2 threads / 1 thread (relaxed)": (pytest.approx(1.5), False),
        "native decode / browser decode, 1 thread": (pytest.approx(1.25), True),
        "decode vs llama.cpp native, 1 thread (relaxed)": (pytest.approx(2.0), None),
        "prefill / int8-dot peak, 1 thread (relaxed)": (pytest.approx(0.8), True),  # 40 tok/s x 2 GOP / 100 GOPS
        "prefill / int8-dot peak, 2 threads (relaxed)": (None, None),
        "weights from Cache Storage / plain copy of the same bytes (relaxed, 1 thread)": (None, None),  # no load measurement in these results
        "peak browser memory above idle / wasm memory (relaxed, 1 thread)": (None, None),
    }


@pytest.mark.parametrize("name, vs_wllama, two_threads", [("demo", (">= 5", True), ">= 1.7"), ("large", (">= 12", False), ">= 1.7"),
                                                         ("2b", (">= 15", False), ">= 1.8")])
def test_goals_are_the_shapes_own(name, vs_wllama, two_threads):
    results = _results()
    results["models"][0]["name"] = name
    targets = {t["target"]: t for t in compare_report.derive(results)["models"][0]["targets"]}
    assert (targets["decode vs wllama, 1 thread (relaxed)"]["goal"], targets["decode vs wllama, 1 thread (relaxed)"]["met"]) == vs_wllama
    assert targets["decode 2 threads / 1 thread (relaxed)"]["goal"] == two_threads


def test_targets_of_missing_measurements_are_not_measured_not_guessed():
    results = _results()
    model = results["models"][0]
    model["rows"] = [r if r["engine"] not in ("wllama", "llama.cpp") else {**r, "error": "npm failed", "decode_tps": None} for r in model["rows"]]
    results["bandwidth"][1] = {"threads": 2, "gbps": None, "error": "worker failed"}
    targets = {t["target"]: t for t in compare_report.derive(results)["models"][0]["targets"]}
    for name in ("decode vs wllama, 1 thread (relaxed)", "decode vs wllama, 2 threads (relaxed)", "decode / roofline, 2 threads (relaxed)",
                 "decode vs llama.cpp native, 1 thread (relaxed)"):
        assert targets[name]["value"] is None and targets[name]["met"] is None
    assert targets["decode / roofline, 1 thread (relaxed)"]["met"] is True


def test_markdown_table_from_results_json():
    results = json.loads(json.dumps(_results()))
    before = copy.deepcopy(results)
    text = compare_report.markdown(results)
    assert results == before  # formatting does not change the results
    assert "| large | bitnet-wasm | relaxed | 1 | 40 | 32 | 100.0 | 80.0 | 80% | 8.00x |" in text
    assert "| large | bitnet-wasm | simd128 | 2 | not measured: asked for simd128 SIMD on 2 thread(s), the runtime ran relaxed on 1 |" in text
    assert "| large | wllama | simd128 | 2 | 40 | 32 | 100.0 | 30.0 | 20% |  |" in text
    assert "| large | native |  | 1 | 40 | 32 | 100.0 | 100.0 |  |  |" in text
    assert "| 1 | 20.0 | 100.0 |" in text and "| 2 | 30.0 | 150.0 |" in text
    assert "| large | decode vs wllama, 2 threads (relaxed) | 4.00 | >= 12 | **not met** |" in text
    assert "| large | native decode / browser decode, 1 thread | 1.25 | <= 1.5 | met |" in text
    assert "| large | llama.cpp |  | 2 | 40 | 32 | 100.0 | 70.0 |  |  |" in text
    assert "| large | decode vs llama.cpp native, 1 thread (relaxed) | 2.00 |  | information (no goal) |" in text
    assert "llama.cpp natively through node-llama-cpp 3.22.1" in text
    assert "2 cores, quiet." in text and "- a note" in text and "![decode tokens per second](benchmark.png)" in text
    assert "| large | 1 | 100.0 | 256 | 6.50 | 40.0 | 80.0 | 80% |" in text
    assert "| large | 2 | 180.0 | not measured: the worker failed |" in text
    assert "| large | prefill / int8-dot peak, 1 thread (relaxed) | 0.80 | >= 0.8 | met |" in text
    assert "4096 bytes of activations in L1, 3 weight rows)" in text  # the kernel's own row count, recorded with the results
    del results["settings"]["dot_peak"]["rows"]
    assert "4096 bytes of activations in L1)" in compare_report.markdown(results)  # results from before it was recorded
    results["models"][0]["rows"][0]["dot_form"] = abi.defines()["BN_DOT_I32"]  # the form the runtime timed fastest
    assert "| large | bitnet-wasm | relaxed (i32 dot) | 1 | 40 |" in compare_report.markdown(results)  # results from before read-ahead was timed
    results["models"][0]["rows"][0]["read_ahead"] = False
    assert "| large | bitnet-wasm | relaxed (i32 dot, no read-ahead) | 1 | 40 |" in compare_report.markdown(results)


def _with_rounds(results, ours_1t, peer_1t):
    """results whose relaxed 1-thread row and wllama's were measured in rounds of these decode tok/s (None: the round failed)."""
    model = results["models"][0]
    for row, rounds in ((model["rows"][0], ours_1t), (model["rows"][4], peer_1t)):
        row["rounds"] = [{"prefill_tps": 100.0 if d else None, "decode_tps": d, "error": None if d else "it failed"} for d in rounds]
    return results


def test_rows_measured_in_turns_give_the_median_of_the_rounds_ratios():
    results = _with_rounds(_results(), [80.0, 20.0, 90.0, 70.0], [10.0, 2.0, 9.0, None])  # rows: medians 80 and 10
    model = compare_report.derive(results)["models"][0]
    targets = {t["target"]: t["value"] for t in model["targets"]}
    assert targets["decode vs wllama, 1 thread (relaxed)"] == pytest.approx(10.0)  # rounds 8, 10, 10 (the fourth has no wllama)
    assert model["rows"][0]["vs_wllama"] == pytest.approx(10.0) and model["rows"][2]["vs_wllama"] == pytest.approx(5.0)  # simd128: no rounds
    assert targets["decode vs wllama, 2 threads (relaxed)"] == pytest.approx(4.0)  # no rounds: the rows' ratio
    text = compare_report.markdown({**results, "settings": {**results["settings"], "rounds": 4}})
    assert "| large | 1 | 80.0, 20.0, 90.0, 70.0 | 10.0, 2.0, 9.0, failed | 8.00x, 10.00x, 10.00x | 10.00x |" in text
    assert "4 rounds of (ours, wllama)" in text
    assert "## Rounds" not in compare_report.markdown(_results())  # results from before the rounds


def test_a_paired_row_is_the_median_of_the_rounds_it_measured():
    turns = [_row("wllama", 1, 3.0, "simd128", prefill=30.0), _row("wllama", 1, None, "simd128", error="no answer after 900 s"),
             _row("wllama", 1, 1.0, "simd128", prefill=10.0), _row("wllama", 1, 2.0, "simd128", prefill=50.0)]
    row = compare._median_row(turns)
    assert (row["decode_tps"], row["prefill_tps"], row["error"]) == (2.0, 30.0, None)  # each the median of its own rounds
    assert [t["decode_tps"] for t in row["rounds"]] == [3.0, None, 1.0, 2.0] and row["rounds"][1]["error"] == "no answer after 900 s"
    assert compare._median_row(turns[1:2]) == turns[1]  # no round measured: the error is the row


def test_results_from_before_the_prefill_rows_still_render():
    results = _results()
    del results["compute"], results["models"][0]["prefill"], results["models"][0]["prefill_ops_per_token"]
    text = compare_report.markdown(results)
    assert "## Prefill" not in text and "| large | prefill / int8-dot peak, 1 thread (relaxed) |  | >= 0.8 | not measured |" in text


def test_prefill_ops_are_two_per_multiply_add_of_the_ternary_linears(tmp_path):
    write_random_bitnet(tmp_path / "m", TINY)
    manifest = json.loads(bitnet_wasm.build(tmp_path / "m", tmp_path / "site", wasm=False, progress=False).read_text())
    h, i, kv = TINY.hidden, TINY.intermediate, TINY.kv_heads * TINY.hidden // TINY.heads
    assert compare_report.prefill_ops_per_token(manifest) == 2 * TINY.layers * (h * h + 2 * kv * h + h * h + 3 * h * i)


def test_markdown_reports_a_model_that_could_not_be_built():
    results = _results()
    results["models"].append({"name": "demo", "description": "", "error": "EmbeddedModelError: missing", "bytes_per_token": None, "rows": []})
    text = compare_report.markdown(results)
    assert "| demo | all | | | not measured: EmbeddedModelError: missing |" in text
    assert "| demo | decode vs wllama, 1 thread (relaxed) |  | >= 5 | not measured |" in text
    assert "| demo | decode vs llama.cpp native, 1 thread (relaxed) |  |  | not measured |" in text


def test_plot_writes_a_png(tmp_path):
    compare_report.plot(_results(), tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_random_model_has_the_shape_and_ternary_weights(tmp_path):
    checkpoint = load_checkpoint(write_random_bitnet(tmp_path / "m", TINY, seed=3))
    c = checkpoint.config
    assert (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size, c.vocab_size) == (64, 2, 4, 2, 128, 300)
    assert c.tie_embeddings and checkpoint.tokenizer is not None
    codes = np.concatenate([linear.weights.ravel() for linear in checkpoint.linears.values()])
    values, counts = np.unique(codes, return_counts=True)
    assert values.tolist() == [-1, 0, 1] and counts.min() > 0.25 * codes.size
    assert len(checkpoint.linears) == 7 * 2
    first = (tmp_path / "m" / "model.safetensors").read_bytes()
    write_random_bitnet(tmp_path / "again", TINY, seed=3)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == first  # deterministic: the bench caches it


def test_large_shape_is_1bitllm_large_and_2b_is_2b4t():
    assert (LARGE.hidden, LARGE.layers, LARGE.heads, LARGE.intermediate, LARGE.vocab) == (1536, 24, 16, 4096, 32002)
    assert (B2_4T.hidden, B2_4T.layers, B2_4T.heads, B2_4T.kv_heads, B2_4T.intermediate, B2_4T.vocab) == (2560, 30, 20, 5, 6912, 128256)


def test_broken_utf8_tokens_are_the_ones_that_decode_to_a_replacement_character():
    text = tokenizer_json(400)
    tokenizer = Tokenizer.from_str(text)
    broken = wllama.broken_utf8_tokens(json.loads(text))
    decoded_broken = [i for i in range(tokenizer.get_vocab_size()) if "\ufffd" in tokenizer.decode([i], skip_special_tokens=False)]
    assert broken == decoded_broken and len(broken) >= 128  # at least the lone bytes 0x80..0xff


def test_wllama_install_without_npm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(wllama.WllamaUnavailable, match="npm is missing, so @wllama/wllama@3.8.1 cannot be installed"):
        wllama.ensure_installed(tmp_path / "npm")


def test_cached_products_are_remade_only_when_their_inputs_change(tmp_path):
    made = []

    def make(path):
        made.append(path)
        path.write_text(str(len(made)))

    product = tmp_path / "thing"
    for digest in ("a", "a", "b"):
        compare._cached(product, digest, make, log=lambda message: None)
    assert len(made) == 2 and product.read_text() == "2"


@pytest.mark.parametrize("args, message", [
    (["--models", "demo,nope"], "--models demo,nope: choose from demo, large, 2b"),
    (["--tokens", "1"], "--tokens must be at least 2"),
    (["--rounds", "0"], "--rounds must be at least 1"),
])
def test_cli_rejects_bad_arguments_before_measuring(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bitnet_wasm.cli", "bench", "--compare", "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr and not list(tmp_path.iterdir())


def test_notes_name_differing_prompt_counts_and_cache_resident_models():
    results = _results()
    model = results["models"][0]
    model["rows"][4] = {**model["rows"][4], "prompt_tokens": 41}
    tiny = {**copy.deepcopy(model), "name": "demo", "bytes_per_token": 1_200_000}
    notes = compare._model_notes([model, tiny])
    assert notes[0] == "large: the engines saw different prompt token counts: bitnet-wasm 40, llama.cpp 40, native 40, wllama 40, wllama 41"
    assert notes[-1].startswith("demo: its 1.2 MB of weights per token stay in the CPU caches")
    assert not any(n.startswith("large: its") for n in notes)


def test_native_row_times_the_python_runtime_on_the_same_prompt(tmp_path):
    write_random_bitnet(tmp_path / "m", TINY)
    bitnet_wasm.build(tmp_path / "m", tmp_path / "site", wasm=False, progress=False)
    row = compare._native(tmp_path / "site", "The old lighthouse keeper", 5)
    expected_prompt = len(bitnet_wasm.load(tmp_path / "site").encode("The old lighthouse keeper"))
    assert (row["prompt_tokens"], row["new_tokens"]) == (expected_prompt, 5)
    assert row["prefill_tps"] > 0 and row["decode_tps"] > 0


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """The demo model's site and its GGUF, as the compare prepares them."""
    site = tmp_path_factory.mktemp("demo") / "site"
    bitnet_wasm.build(embedded_model_dir("b1.58"), site, progress=False)
    return compare._with_gguf("demo", site, "the demo model", log=lambda message: None)


def test_llama_cpp_rows_run_the_demo_gguf_natively(demo_model, node_llama_cpp):
    assert demo_model.gguf_error is None
    rows = compare._llama_cpp_rows(compare.Peers(llama_cpp=node_llama_cpp), demo_model, compare.DEFAULT_PROMPT, 12, log=lambda message: None)
    assert [(r["engine"], r["threads"], r["error"]) for r in rows] == [("llama.cpp", threads, None) for threads in compare_report.THREADS]
    expected_prompt = len(bitnet_wasm.load(demo_model.site).encode(compare.DEFAULT_PROMPT))  # the prompt tokens our row runs
    for row in rows:
        assert (row["prompt_tokens"], row["new_tokens"]) == (expected_prompt, 12)
        assert all(0 < row[rate] < math.inf for rate in ("prefill_tps", "decode_tps")), row


def test_llama_cpp_that_cannot_load_the_gguf_is_its_rows_error(demo_model, node_llama_cpp, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(demo_model.gguf.read_bytes()[:4096])
    model = compare.Prepared("demo", "", demo_model.site, broken)
    rows = compare._llama_cpp_rows(compare.Peers(llama_cpp=node_llama_cpp), model, "Hi", 4, log=lambda message: None)
    assert [r["error"] for r in rows] == ["llama.cpp (node-llama-cpp) failed on broken.gguf: Failed to load model (llama.cpp: gguf_init_from_reader: "
                                         "failed to read key-value pairs)"] * 2


def test_peers_that_cannot_be_installed_are_their_rows_errors(demo_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    peers = compare._install_peers(tmp_path / "npm", log=lambda message: None)
    assert peers.wllama_error.startswith("npm is missing, so @wllama/wllama@3.8.1 cannot be installed")
    assert peers.llama_cpp_error.startswith("node is missing, so node-llama-cpp@3.22.1 cannot run")
    rows = compare._llama_cpp_rows(peers, demo_model, "Hi", 4, log=lambda message: None)
    assert [(r["threads"], r["error"]) for r in rows] == [(threads, peers.llama_cpp_error) for threads in compare_report.THREADS]
    assert llama_cpp.NODE_LLAMA_CPP.spec() in rows[0]["error"]


def test_our_rows_and_wllamas_run_in_turns_on_the_demo_gguf_in_chromium_on_a_profile_on_disk(demo_model, wllama_esm, tmp_path):
    from bitnet_wasm.bench.chromium import headless_chromium
    from bitnet_wasm.serve import SiteServer

    root = tmp_path / "cache"  # laid out as the compare's cache folder: everything the page loads is under the served root
    compare._write_page(root)
    shutil.copytree(wllama_esm, root / "wllama")
    shutil.copytree(demo_model.site, root / "demo" / "site")
    shutil.copy(demo_model.gguf, root / "demo" / "model.gguf")
    demo = compare.Prepared("demo", "the demo model", root / "demo" / "site", root / "demo" / "model.gguf")
    labels = []
    with SiteServer(root, "127.0.0.1", 0, quiet=True) as server, headless_chromium() as (p, browser):
        session = compare._Session(browser, server.url, root, p)
        rows = compare._paired_rows(session, compare.Peers(wllama_esm=root / "wllama"), demo, compare.DEFAULT_PROMPT, 8, 2, labels.append)
    turns = [label for label in labels if not label.endswith("...")]
    assert [label.split(":")[1] for label in turns] == [f" {engine} {how}{threads} thread(s), round {r}/2" for r in (1, 2) for threads in compare_report.THREADS
                                                        for engine, how in ((compare_report.OURS, "relaxed "), (compare_report.WLLAMA, ""))]
    assert sorted(rows) == sorted((engine, threads) for engine in (compare_report.OURS, compare_report.WLLAMA) for threads in compare_report.THREADS)
    for row in rows.values():
        assert row["error"] is None and row["new_tokens"] == 8 and row["prompt_tokens"] > 1, row
        assert len(row["rounds"]) == 2 and all(r["decode_tps"] > 0 and r["prefill_tps"] > 0 for r in row["rounds"]), row
        assert row["decode_tps"] == pytest.approx(sum(r["decode_tps"] for r in row["rounds"]) / 2), row  # the median of two


def test_roofline_probes_run_in_chromium(tmp_path):
    from bitnet_wasm.bench.chromium import headless_chromium
    from bitnet_wasm.serve import SiteServer
    from bitnet_wasm.wasm_kernels.toolchain import build_kernels

    root = tmp_path / "cache"
    compare._write_page(root)
    with SiteServer(root, "127.0.0.1", 0, quiet=True) as server, headless_chromium() as (p, browser):
        session = compare._Session(browser, server.url, root, p)
        libraries = {name: session.url(path) for name, path in build_kernels(root / "kernels", ["wasm", "wasm-relaxed"]).items()}
        probes = [(compare._bandwidth(session, libraries["wasm"], threads), compare._compute(session, libraries["wasm-relaxed"], threads)) for threads in (1, 2)]
    for bandwidth, compute in probes:  # two threads finish every round together (a lost barrier would hang the page)
        assert 0.1 < bandwidth["gbps"] < 1000 and 0.1 < compute["gops"] < 10_000, (bandwidth, compute)
        assert bandwidth["rounds"] >= 1 and compute["rounds"] >= 1, (bandwidth, compute)
