"""Kernel benchmark: one-token GEMV time of every bitlinear variant in wasm (wasmtime) and native
(ctypes), the best variants again over a weight working set no cache can hold, and each runtime's
plain read bandwidth (bn_stream_read), so the roofline ratio comes from one run."""
from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitnet_wasm.wasm_kernels import NativeKernels, WasmKernels
from bitnet_wasm.wasm_kernels.abi import check_call
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS
from bitnet_wasm.wasm_kernels.toolchain import TARGETS, build_kernels
from bitnet_wasm.wasm_kernels.wasm import WasmArray


@dataclass(frozen=True)
class Variant:
    name: str
    layout: str
    function: str
    relaxed_build: bool


VARIANTS = (
    Variant("scalar", "mad", "bn_bitlinear_mad_ref", False),
    Variant("simd128", "mad", "bn_bitlinear_mad_simd128", False),
    Variant("relaxed", "mad", "bn_bitlinear_mad_relaxed", True),
    Variant("lut", "lut", "bn_bitlinear_lut", False),
    Variant("lut-relaxed", "lut", "bn_bitlinear_lut", True),
    Variant("binary", "binary", "bn_bitlinear_binary", False),
    Variant("binary-relaxed", "binary", "bn_bitlinear_binary", True),
)
STREAMING_VARIANTS = ("simd128", "relaxed", "lut", "lut-relaxed")  # again with a big working set
RUNTIMES = {"wasm": WasmKernels, "native": NativeKernels}  # runtime -> class; builds "<runtime>[-relaxed]"
SHAPES = ((2048, 2048), (2560, 2560), (2560, 6912), (6912, 2560))
BIG_SHAPE = (2560, 6912)
DEFAULT_BUILD_DIR = Path(tempfile.gettempdir()) / "bitnet-wasm" / "kernels"


def _address(arg):
    if isinstance(arg, WasmArray):
        return arg.address
    return arg.ctypes.data if isinstance(arg, np.ndarray) else arg


class _RawCall:
    """A kernel call whose arguments are placed and checked once: the per-call checks and copies of
    KernelLibrary.call cost more than a small GEMV. Keeps the arrays alive for the raw pointers."""

    def __init__(self, lib, name: str, args: list):
        check_call(lib.abi[name], tuple(args))
        self.args, self.raw = args, [_address(a) for a in args]
        self.func = lib.raw_function(name)

    def __call__(self, *override):
        """Run with the first len(override) arguments replaced (already raw)."""
        return self.func(*override, *self.raw[len(override):])


def _median_seconds(call, min_seconds: float, min_reps: int = 3, max_reps: int = 200) -> float:
    call()  # warm up
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_seconds and len(times) < max_reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _gemv_seconds(lib, variant: Variant, shape, weights: list, rng, min_seconds: float) -> float:
    """Median time of one GEMV, cycling through `weights`, minus the time of the same call with
    n = 0 (the Python -> runtime call overhead, which the generated forward pass does not pay)."""
    out, in_ = shape
    scratch = LAYOUTS[variant.layout].scratch_bytes(in_)
    args = [weights[0], 1.0, lib.resident(rng.integers(-128, 128, in_, dtype=np.int8)),
            lib.resident(np.ones(1, np.float32)), lib.resident(np.zeros(out, np.float32))]
    args += [lib.resident(np.zeros(scratch, np.uint8))] if scratch else []
    call = _RawCall(lib, variant.function, args + [out, in_, 1])
    turn = itertools.cycle([_address(w) for w in weights])
    busy = _median_seconds(lambda: call(next(turn)), min_seconds, min_reps=max(3, min(len(weights), 200)))
    idle = _median_seconds(lambda: call(*call.raw[:-3], 0, 0, 0), min_seconds / 4)
    return max(busy - idle, 1e-9)


class _Runtime:
    """The two builds of one runtime and the weight rings placed in them (one per byte size)."""

    def __init__(self, name: str, builds: dict[str, Path]):
        self.libs = {relaxed: RUNTIMES[name](builds[name + ("-relaxed" if relaxed else "")]) for relaxed in (False, True)}
        self._rings = {}

    def ring(self, relaxed: bool, pieces: int, nbytes: int, rng) -> list:
        """`pieces` distinct buffers of nbytes, back to back, in the memory the kernels read."""
        key = (relaxed, pieces, nbytes)
        if key not in self._rings:
            lib = self.libs[relaxed]
            data = rng.integers(0, 256, pieces * nbytes, dtype=np.uint8)  # the kernels' time does not depend on the values
            placed = lib.resident(data)
            if isinstance(placed, WasmArray):
                self._rings[key] = [WasmArray(lib, placed.address + i * nbytes, placed.dtype, nbytes) for i in range(pieces)]
            else:
                self._rings[key] = [placed[i * nbytes:(i + 1) * nbytes] for i in range(pieces)]
        return self._rings[key]


def _row(runtime: str, variant: str, shape, working_set: int, packed: int, seconds: float) -> dict:
    out, in_ = shape
    return {"runtime": runtime, "variant": variant, "shape": [out, in_], "working_set_mb": round(working_set / 2**20, 2),
            "ms": seconds * 1e3, "gops": 2 * out * in_ / seconds / 1e9, "gbps": packed / seconds / 1e9}


def run(shapes=SHAPES, big_shape=BIG_SHAPE, big_working_set_mb: float = 256, stream_mb: float = 256,
        runtimes=tuple(RUNTIMES), build_dir: Path = DEFAULT_BUILD_DIR, min_seconds: float = 0.15, log=None) -> dict:
    """The benchmark as data: {"rows": [{runtime, variant, shape, working_set_mb, ms, gops, gbps}],
    "stream_gbps": {runtime: GB/s}}. `log` (a callable) hears progress."""
    log = log or (lambda message: None)
    builds = build_kernels(build_dir, [name for name, target in TARGETS.items() if not target.threads])  # wasmtime-py cannot share memory
    rng = np.random.default_rng(0)
    rows, stream = [], {}
    for name in runtimes:
        runtime = _Runtime(name, builds)
        for variant in VARIANTS:
            lib = runtime.libs[variant.relaxed_build]
            if not lib.has(variant.function):
                continue
            for shape in shapes:
                log(f"{name} {variant.name} {shape[0]}x{shape[1]}")
                packed = LAYOUTS[variant.layout].packed_bytes(*shape)
                weights = runtime.ring(variant.relaxed_build, 1, packed, rng)
                rows.append(_row(name, variant.name, shape, packed, packed, _gemv_seconds(lib, variant, shape, weights, rng, min_seconds)))
        for variant in VARIANTS:
            lib = runtime.libs[variant.relaxed_build]
            if variant.name not in STREAMING_VARIANTS or not lib.has(variant.function):
                continue
            log(f"{name} {variant.name} {big_shape[0]}x{big_shape[1]} over {big_working_set_mb:.0f} MB")
            packed = LAYOUTS[variant.layout].packed_bytes(*big_shape)
            pieces = max(2, -(-int(big_working_set_mb * 2**20) // packed))
            weights = runtime.ring(variant.relaxed_build, pieces, packed, rng)
            rows.append(_row(name, variant.name, big_shape, pieces * packed, packed, _gemv_seconds(lib, variant, big_shape, weights, rng, min_seconds)))
        log(f"{name} read bandwidth over {stream_mb:.0f} MB")
        nbytes = int(stream_mb * 2**20)
        buf = runtime.ring(False, 1, nbytes, rng)[0]
        read = _RawCall(runtime.libs[False], "bn_stream_read", [buf, nbytes])
        stream[name] = nbytes / _median_seconds(read, min_seconds, min_reps=5) / 1e9
    return {"rows": rows, "stream_gbps": stream}


def table(result: dict) -> str:
    """The result as an aligned text table; weight GB/s also as a share of the runtime's read bandwidth."""
    lines = [f"{'runtime':8s} {'variant':15s} {'shape':>11s} {'set MB':>8s} {'ms':>8s} {'GOPS':>6s} {'GB/s':>6s} {'of read':>7s}"]
    for r in result["rows"]:
        bandwidth = result["stream_gbps"].get(r["runtime"])
        share = f"{100 * r['gbps'] / bandwidth:6.0f}%" if bandwidth else ""
        lines.append(f"{r['runtime']:8s} {r['variant']:15s} {r['shape'][0]:>5d}x{r['shape'][1]:<5d} {r['working_set_mb']:8.1f} "
                     f"{r['ms']:8.3f} {r['gops']:6.1f} {r['gbps']:6.2f} {share}")
    lines += [f"read bandwidth, {runtime} (bn_stream_read): {gbps:.1f} GB/s" for runtime, gbps in result["stream_gbps"].items()]
    return "\n".join(lines)


def log_to_stderr(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
