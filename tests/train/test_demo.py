"""End to end: train a micro model, build its site, generate from it in Python and in Chromium;
and `bitnet-wasm demo` building (then reusing) and serving the site of an embedded model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.models import EMBEDDED, MODEL_FILES, MODELS_ENV, models_root
from test_train import STEPS, TEXT, corpus, log_rows, trained  # noqa: F401  (fixtures: one micro run per bits)

PROMPT = "The river ran"
CLI = [sys.executable, "-m", "bitnet_wasm.cli"]


@pytest.fixture(scope="module")
def sites(trained, tmp_path_factory):
    """bits -> the site built from the micro model trained with those bits."""
    built = {}

    def get(bits: str) -> Path:
        if bits not in built:
            built[bits] = tmp_path_factory.mktemp(f"site{bits}")
            bitnet_wasm.build(trained(bits), built[bits], progress=False)
        return built[bits]
    return get


def text_loss(model, text: str) -> float:
    """Mean next-token cross-entropy (nats) of the site's model on text (cut to its context)."""
    ids = model.encode(text)[: model.context]
    logits = model.logits(ids)[:-1].astype(np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    return -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()


@pytest.mark.parametrize("bits", ["1.58", "1"])
def test_trained_model_builds_and_generates(trained, sites, bits):
    losses = [row["loss"] for row in log_rows(trained(bits)) if "loss" in row]
    assert len(losses) == STEPS and np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.5
    model = bitnet_wasm.load(sites(bits))
    result = model.generate(PROMPT, max_new_tokens=12, temperature=0)
    assert len(result.tokens) == 12 and result.text == model.decode(result.tokens)
    # the site carries the trained model: on its training text it predicts about as well as the trainer measured
    loss = text_loss(model, TEXT)
    val = [row["val_loss"] for row in log_rows(trained(bits)) if "val_loss" in row][-1]
    assert loss < min(val + 0.5, np.log(model.vocab_size) - 1.5), (loss, val)


@pytest.mark.parametrize("bits", ["1.58", "1"])
def test_trained_site_generates_in_chromium(sites, bits):
    """The real page in headless Chromium (through `bitnet-wasm bench --browser`, a process of its
    own) reaches ready and generates the same greedy tokens as the Python runtime."""
    out = subprocess.run([*CLI, "bench", str(sites(bits)), "--browser", "--json", "--prompt", PROMPT, "--tokens", "12"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    browser = json.loads(out.stdout)
    python = bitnet_wasm.load(sites(bits)).generate(PROMPT, max_new_tokens=12, temperature=0)
    assert browser["tokens"] == list(python.tokens) and browser["text"] == python.text


@pytest.fixture(scope="module")
def micro_models(trained, tmp_path_factory) -> Path:
    """A models folder holding the micro b1.58 export under the embedded name of the b1.58 model."""
    root = tmp_path_factory.mktemp("models")
    (root / EMBEDDED["b1.58"]).mkdir()
    for name in MODEL_FILES:
        shutil.copy(trained("1.58") / name, root / EMBEDDED["b1.58"] / name)
    return root


def ctrl_c_default() -> None:
    """Ctrl-C as in a terminal's foreground: a runner that started the suite in the background without job
    control (`(cmd &)`) passes SIGINT down ignored, and Python keeps it ignored, so the demo never stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_demo(model: str, cache: Path, env: dict) -> tuple[subprocess.Popen, list[str], str]:
    """Runs `bitnet-wasm demo` until it prints its URL: the process, the lines before, the URL."""
    proc = subprocess.Popen([*CLI, "demo", "--no-open", "--port", "0", "--cache", str(cache), "--model", model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_default)
    lines = []
    for line in proc.stdout:
        if line.startswith("Serving"):
            return proc, lines, line.split(" at ")[1].split()[0]
        lines.append(line)
    proc.wait(timeout=10)
    pytest.fail(f"demo exited ({proc.returncode}) without serving: {lines} {proc.stderr.read()}")


def stop_demo(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(timeout=10) == 0, proc.stderr.read()


DEMO_MODELS = [("micro", "b1.58")] + [("embedded", m) for m in EMBEDDED if (models_root() / EMBEDDED[m]).is_dir()]


@pytest.mark.parametrize("source, model", DEMO_MODELS, ids=[f"{s}-{m}" for s, m in DEMO_MODELS])
def test_demo_builds_once_and_serves(request, tmp_path, source, model):
    env = {k: v for k, v in os.environ.items() if k != MODELS_ENV}
    if source == "micro":
        env[MODELS_ENV] = str(request.getfixturevalue("micro_models"))
    cache = tmp_path / "cache"
    for run, expected in enumerate(["building", "using cached site"]):
        proc, lines, url = start_demo(model, cache, env)
        try:
            assert any(line.startswith(expected) for line in lines), (run, lines)
            with urllib.request.urlopen(url + "index.html", timeout=10) as r:
                assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert b"<html" in r.read().lower()
            with urllib.request.urlopen(url + "model/manifest.json", timeout=10) as r:
                assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
                served = json.load(r)
        finally:
            stop_demo(proc)
        assert served == json.loads((cache / f"demo-{model}" / "site" / "model" / "manifest.json").read_text())


def test_demo_names_a_missing_model(tmp_path):
    env = {**os.environ, MODELS_ENV: str(tmp_path)}
    out = subprocess.run([*CLI, "demo", "--no-open", "--port", "0", "--cache", str(tmp_path / "c"), "--model", "1bit"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and EMBEDDED["1bit"] in out.stderr and "missing" in out.stderr


def test_demo_names_a_taken_port(micro_models, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, MODELS_ENV: str(micro_models)}
        out = subprocess.run([*CLI, "demo", "--no-open", "--port", str(port), "--cache", str(tmp_path / "c")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and f"127.0.0.1:{port} is already in use" in out.stderr
