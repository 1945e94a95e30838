"""Compiles the C kernels (plus, for a model, its generated forward pass) with clang from the
`ziglang` wheel: wasm32 + SIMD128 for the browser and a native shared library of the same code."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bitnet_wasm.wasm_kernels import SOURCE_DIR

# Same C for every target: no FP contraction, no fast-math, no auto-vectorisation (the scalar
# references must stay scalar; the SIMD paths are written by hand).
COMMON_FLAGS = [
    "-std=c11", "-O3", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
    "-ffp-contract=off", "-fno-fast-math", "-fno-vectorize", "-fno-slp-vectorize",
    "-fno-math-errno", "-fno-builtin",  # freestanding: no loop may turn into a libc/libm call
    "-nostdlib", "-s",
]
EXPORT_ALL = "-Wl,--export-dynamic"  # every BN_API function; a site's modules export only what its hosts call
WASM_FLAGS = [
    "--target=wasm32-freestanding", "-mcpu=generic", "-msimd128",
    "-Wl,--no-entry", EXPORT_ALL, "-Wl,--export=__heap_base",
    "-Wl,-z,stack-size=1048576",
]
# Threaded modules import one shared memory (a page can only share one it created); each instance
# moves its exported __stack_pointer to its own stack; wasm-ld's __wasm_init_memory fills the data
# segments once, for the first instance. 65535 pages: the largest --max-memory wasm-ld parses.
THREADS_FLAGS = [
    "-matomics", "-mbulk-memory", "-DBN_THREADS=1",
    "-Wl,--import-memory", "-Wl,--shared-memory", "-Wl,--max-memory=4294901760", "-Wl,--export=__stack_pointer",
]
NATIVE_FLAGS = ["-shared", "-fPIC", "-march=native"]


@dataclass(frozen=True)
class Target:
    name: str
    filename: str
    wasm: bool
    relaxed: bool
    threads: bool = False


TARGETS = {
    t.name: t
    for t in (
        Target("wasm", "bitnet.wasm", wasm=True, relaxed=False),
        Target("wasm-relaxed", "bitnet-relaxed.wasm", wasm=True, relaxed=True),
        Target("wasm-threads", "bitnet-mt.wasm", wasm=True, relaxed=False, threads=True),
        Target("wasm-relaxed-threads", "bitnet-relaxed-mt.wasm", wasm=True, relaxed=True, threads=True),
        Target("native", "libbitnet.so", wasm=False, relaxed=False),
        Target("native-relaxed", "libbitnet-relaxed.so", wasm=False, relaxed=True),
    )
}


class ToolchainError(RuntimeError):
    pass


def kernel_sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("*.c"))


def _simde_include() -> str:
    try:
        import simde_py
    except ImportError as e:
        raise ToolchainError("the native build needs SIMDe headers: pip install simde-py") from e
    return simde_py.get_include()


def _zig_cc() -> list[str]:
    try:
        import ziglang  # noqa: F401
    except ImportError as e:
        raise ToolchainError("the C compiler comes from the ziglang wheel: pip install ziglang==0.17.1") from e
    return [sys.executable, "-m", "ziglang", "cc"]


def compile_command(target: Target, sources: list[Path], out: Path, include_dirs: list[Path] = (), exports: list[str] | None = None) -> list[str]:
    """exports: the only functions a wasm module exports (and keeps); None: every BN_API function."""
    flags = list(COMMON_FLAGS)
    if target.wasm:
        exported = [EXPORT_ALL] if exports is None else [f"-Wl,--export={name}" for name in exports]
        flags += [f for f in WASM_FLAGS if f != EXPORT_ALL] + exported
        flags += (["-mrelaxed-simd"] if target.relaxed else []) + (THREADS_FLAGS if target.threads else [])
    else:
        flags += NATIVE_FLAGS + ["-I", _simde_include()]
    flags += [f"-DBN_RELAXED={int(target.relaxed)}", "-I", str(SOURCE_DIR)]
    for d in include_dirs:
        flags += ["-I", str(d)]
    return _zig_cc() + flags + ["-o", str(out)] + [str(s) for s in sources]


def compile_target(target: Target, sources: list[Path], out: Path, include_dirs: list[Path] = (), exports: list[str] | None = None) -> Path:
    """Compile `sources` for `target` into `out`. Raises ToolchainError with clang's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-zig-") as cache:
        env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=cache, ZIG_LOCAL_CACHE_DIR=cache)
        if not target.wasm and len(sources) > 1:
            # one translation unit: SIMDe's large headers are parsed once, not once per file (5x faster)
            unit = Path(cache) / "unit.c"
            unit.write_text("".join(f'#include "{Path(s).resolve()}"\n' for s in sources))
            sources = [unit]
        cmd = compile_command(target, sources, out, include_dirs, exports)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"compiling {target.filename} failed:\n{proc.stderr.strip()}")
    return out


def sources_digest(sources: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(sources) + sorted(SOURCE_DIR.glob("*.h")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(" ".join(COMMON_FLAGS + WASM_FLAGS + THREADS_FLAGS + NATIVE_FLAGS).encode())
    h.update(sysconfig.get_platform().encode())
    return h.hexdigest()[:16]


def build_kernels(out_dir: Path, targets: list[str] | None = None) -> dict[str, Path]:
    """Build the kernel library for each target into out_dir; unchanged inputs are not rebuilt."""
    out_dir = Path(out_dir)
    sources = kernel_sources()
    digest = sources_digest(sources)
    built = {}
    for name in targets or list(TARGETS):
        target = TARGETS[name]
        out = out_dir / target.filename
        stamp = out.with_name(out.name + ".digest")
        if not (out.exists() and stamp.exists() and stamp.read_text() == digest):
            compile_target(target, sources, out)
            stamp.write_text(digest)
        built[name] = out
    return built
