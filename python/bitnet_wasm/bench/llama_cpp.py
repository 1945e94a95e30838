"""Native llama.cpp, the CPU peer of our native build: the npm package node-llama-cpp with only its
prebuilt linux-x64 binary (nothing compiled), installed on first use, and greedy generation from
token ids timed by llama_cpp_generate.mjs in a Node process of its own."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bitnet_wasm.bench import npm

# 85 MB with the one prebuilt binary; all its optional builds (CUDA, Vulkan, ...) are 725 MB
NODE_LLAMA_CPP = npm.NpmPackage("node-llama-cpp", "3.22.1", also=("@node-llama-cpp/linux-x64@3.22.1",), flags=("--ignore-scripts", "--omit=optional"))
GENERATE_SCRIPT = Path(__file__).with_name("llama_cpp_generate.mjs")
GENERATE_TIMEOUT_S = 900


class LlamaCppUnavailable(RuntimeError):
    pass


def ensure_installed(root: Path, log=print) -> Path:
    """NODE_LLAMA_CPP under `root` (installed with npm when missing); returns its package folder."""
    if shutil.which("node") is None:
        raise LlamaCppUnavailable(f"node is missing, so {NODE_LLAMA_CPP.spec()} cannot run: apt-get install -y nodejs npm")
    try:
        return npm.ensure(NODE_LLAMA_CPP, root, log)
    except npm.NpmError as e:
        raise LlamaCppUnavailable(str(e)) from None


def generate(package: Path, gguf: Path, prompt_ids: list[int], tokens: int, warmup: tuple[list[int], int], threads: int, context: int) -> dict:
    """One greedy generation of `tokens` new tokens after `prompt_ids`, after an untimed one of
    warmup = (ids, new tokens), in a fresh Node process; the script's JSON answer (see llama_cpp_generate.mjs)."""
    request = {"model": str(gguf), "promptIds": prompt_ids, "tokens": tokens, "warmupIds": warmup[0], "warmupTokens": warmup[1],
               "threads": threads, "context": context}
    try:
        run = subprocess.run(["node", str(GENERATE_SCRIPT), str(package)], input=json.dumps(request),
                             capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"llama.cpp gave no answer after {GENERATE_TIMEOUT_S} s") from None
    if run.returncode != 0:
        error = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        raise RuntimeError(f"llama.cpp (node-llama-cpp) failed on {gguf.name}: {error}")
    return json.loads(run.stdout.strip().splitlines()[-1])
