import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from chat_templates import LLAMA3

import bitnet_wasm
from bitnet_wasm.bench import llama_cpp, npm, wllama
from bitnet_wasm.compiler.writers import write_bitnet_packed
from bitnet_wasm.wasm_kernels import NativeKernels, WasmKernels
from bitnet_wasm.wasm_kernels.abi import defines
from bitnet_wasm.wasm_kernels.toolchain import build_kernels

# Every cache a test run may fill, ours and our dependencies', kept out of the user's home.
HOME_CACHES = ("BITNET_WASM_CACHE", "XDG_CACHE_HOME", "MPLCONFIGDIR", "HF_HOME", "npm_config_cache")


def pytest_configure(config):
    """Before collection (transformers reads HF_HOME at import): every cache in one temporary
    folder for the whole run; subprocesses inherit it."""
    root = Path(tempfile.mkdtemp(prefix="bitnet-wasm-test-caches-"))
    config.stash[_caches] = (root, {name: os.environ.get(name) for name in HOME_CACHES + ("HF_HUB_OFFLINE",)})
    for name in HOME_CACHES:
        os.environ[name] = str(root / name)
    os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_unconfigure(config):
    root, saved = config.stash[_caches]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(root, ignore_errors=True)


_caches = pytest.StashKey()


LIBRARY_CLASSES = {"wasm": WasmKernels, "wasm-relaxed": WasmKernels, "native": NativeKernels, "native-relaxed": NativeKernels}


@pytest.fixture(scope="session")
def kernel_builds(tmp_path_factory):
    return build_kernels(tmp_path_factory.mktemp("kernels"), list(LIBRARY_CLASSES))


@pytest.fixture(scope="session")
def libs(kernel_builds):
    """Every build of the kernel library, by target name: the same C four ways."""
    return {name: LIBRARY_CLASSES[name](path) for name, path in kernel_builds.items()}


# the library fixture's cases: every build, the relaxed ones once per dot form, and every build once without
# reading weights ahead (the same sums every way): (build, dot form, read-ahead)
LIBRARY_CASES = {**{name: (name, "BN_DOT_I16", 1) for name in LIBRARY_CLASSES},
                 **{f"{name}-i32": (name, "BN_DOT_I32", 1) for name in LIBRARY_CLASSES if name.endswith("relaxed")},
                 **{f"{name}-no-read-ahead": (name, "BN_DOT_I16", 0) for name in LIBRARY_CLASSES}}


@pytest.fixture(params=list(LIBRARY_CASES))
def lib(request, libs):
    build, form, read_ahead = LIBRARY_CASES[request.param]
    libs[build].bn_set_dot_form(defines()[form])
    libs[build].bn_set_read_ahead(read_ahead)
    return libs[build]


@pytest.fixture(scope="session")
def chat_site(tmp_path_factory):
    """A small site with the Llama-3 chat template, for the chat tests of the Python and JS runtimes."""
    root = tmp_path_factory.mktemp("chat")
    write_bitnet_packed(root / "hf", hidden=64, layers=2, vocab=320, seed=8)
    config_file = root / "hf" / "tokenizer_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "chat_template": LLAMA3}))
    bitnet_wasm.build(root / "hf", root / "site", progress=False)
    return root / "site"


@pytest.fixture(scope="session")
def wllama_esm():
    """wllama's esm folder (llama.cpp in wasm, the browser peer), installed on first use into the checkout's .cache/npm."""
    return wllama.ensure_installed(npm.checkout_root(Path(os.environ["npm_config_cache"]).parent / "npm-packages"), log=None)


@pytest.fixture(scope="session")
def node_llama_cpp():
    """node-llama-cpp's folder: native llama.cpp, installed on first use into the checkout's .cache/npm (like the Firefox driver)."""
    return llama_cpp.ensure_installed(npm.checkout_root(Path(os.environ["npm_config_cache"]).parent / "npm-packages"), log=None)
