"""Which ternary layout each linear shape uses.

`auto` (the default) gives every shape graph.DEFAULT_TERNARY_LAYOUT: the build machine's speed says little
about a visitor's browser and CPU (wasmtime's compiler, for one, has no single-instruction int8 dot where V8
has one), so the default follows what was measured in the browsers. `measured` times them here instead:
for every distinct (out, in) shape, each candidate layout's kernel is timed at n = 1 (decode) in
the runtime it will run in: the kernels' bitnet.wasm and bitnet-relaxed.wasm under wasmtime.
Times are cached in the bitnet-wasm cache folder, keyed by shape, layout, target and the kernel
sources' digest, so rebuilding the same shapes measures nothing.

One layout per shape serves both wasm builds (a second packing of the weights would double the
download): the one with the lowest sum of its simd128 and relaxed times. All layouts compute the
same int32 sums, so the choice never changes the numbers, only the speed. The layouts' block
sizes (BN_PLANE_ROWS, BN_LUT_ROWS, ... in bitnet.h) are fixed by their packed formats, so there is nothing else
to choose per shape; threads are not part of this table."""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from bitnet_wasm.compiler.cache import cache_dir
from bitnet_wasm.compiler.graph import AUTO, BINARY_LAYOUT, DEFAULT_TERNARY_LAYOUT, LAYOUT_CHOICES, MEASURED, TERNARY_LAYOUTS, BuildOptionError
from bitnet_wasm.wasm_kernels import WasmKernels
from bitnet_wasm.wasm_kernels.abi import check_call
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS, layout_id
from bitnet_wasm.wasm_kernels.toolchain import build_kernels, kernel_sources, sources_digest

MEASURED_TARGETS = {"simd128": "wasm", "relaxed": "wasm-relaxed"}  # manifest name -> toolchain target
RULES = {AUTO: f"{DEFAULT_TERNARY_LAYOUT} for every shape: the fastest in relaxed-SIMD browsers",
         MEASURED: "lowest sum of the simd128 and relaxed ms (one packing serves both wasm builds)"}
SAMPLE_WEIGHTS = 2**22   # a timed sample repeats small matrices in the module up to this many weights
REPS = 9                 # timed samples per layout, shape and target (the fastest counts)
MIN_REPS = 3             # ... at least this many when the budget runs out first
SHAPE_BUDGET_S = 0.5     # per shape and target: big shapes stop early
CACHE_FILE = "kernel-times.json"
CACHE_FORMAT = 1

Shape = tuple[int, int]


@dataclass(frozen=True)
class ShapeChoice:
    shape: Shape
    layout: str
    how: str  # "default" (auto) | "measured" | "forced" (by --layout mad|lut) | "only" (the one layout of binary weights)
    ms: dict[str, dict[str, float]] = field(default_factory=dict)  # layout -> manifest target -> ms at n = 1


def shape_key(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}"


class TimeCache:
    """The JSON table {"format": 1, "ms": {"<digest>/<target>/<layout>/<out>x<in>": ms}}."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / CACHE_FILE
        self.digest = sources_digest(kernel_sources())
        try:
            data = json.loads(self.path.read_text())
            self.ms = data["ms"] if data.get("format") == CACHE_FORMAT else {}
        except (OSError, ValueError, KeyError, AttributeError):
            self.ms = {}  # absent or damaged: measure again

    def key(self, target: str, layout: str, shape: Shape) -> str:
        return f"{self.digest}/{target}/{layout}/{shape_key(shape)}"

    def get(self, target: str, layout: str, shape: Shape) -> float | None:
        return self.ms.get(self.key(target, layout, shape))

    def put(self, target: str, layout: str, shape: Shape, ms: float) -> None:
        self.ms[self.key(target, layout, shape)] = ms

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, suffix=".tmp", delete=False) as f:
            json.dump({"format": CACHE_FORMAT, "ms": self.ms}, f, indent=1)
        os.replace(f.name, self.path)  # atomic: a concurrent build reads the old table or the new one


def _repeated_gemv(lib: WasmKernels, layout: str, shape: Shape, rng) -> Callable[[int], None]:
    """The layout's kernel on one [out, in] matrix, placed once; call it with a repetition count."""
    spec, (out, in_) = LAYOUTS[layout], shape
    weights = rng.integers(0, 256, spec.packed_bytes(out, in_), dtype=np.uint8)  # the time does not depend on the values
    args = [layout_id(layout), lib.resident(weights), 1.0, lib.resident(rng.integers(-128, 128, in_, dtype=np.int8)),
            lib.resident(np.ones(1, np.float32)), lib.resident(np.zeros(out, np.float32)),
            lib.resident(np.zeros(spec.scratch_bytes(in_), np.uint8))]
    name = "bn_bitlinear_repeat"  # wasm_kernels/repeat.c
    check_call(lib.abi[name], tuple(args + [out, in_, 1]))
    raw = [a if isinstance(a, (int, float)) else a.address for a in args]
    func = lib.raw_function(name)
    return lambda reps: func(*raw, out, in_, reps)


def _seconds(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_layouts(lib: WasmKernels, layouts: Iterable[str], shape: Shape, budget_s: float = SHAPE_BUDGET_S) -> dict[str, float]:
    """ms of one n = 1 GEMV per layout. A sample runs it `inner` times inside the module (enough
    for SAMPLE_WEIGHTS weights), minus the same call with 0 repetitions (wasmtime's per-call
    overhead, which the generated forward pass does not pay); the fastest of REPS samples of each
    (on a shared machine noise only adds time: medians of a few samples swung 2x between builds),
    interleaved so that noise hits every layout alike."""
    rng = np.random.default_rng(0)
    gemvs = {layout: _repeated_gemv(lib, layout, shape, rng) for layout in layouts}
    inner = max(1, SAMPLE_WEIGHTS // (shape[0] * shape[1]))
    busy: dict[str, list[float]] = {layout: [] for layout in gemvs}
    idle: dict[str, list[float]] = {layout: [] for layout in gemvs}
    for gemv in gemvs.values():
        gemv(1)  # warm up
    start = time.perf_counter()
    for rep in range(REPS):
        if rep >= MIN_REPS and time.perf_counter() - start > budget_s:
            break
        for layout, gemv in gemvs.items():
            busy[layout].append(_seconds(lambda: gemv(inner)))
            idle[layout].append(_seconds(lambda: gemv(0)))
    return {layout: max(min(busy[layout]) - min(idle[layout]), 1e-9) / inner * 1e3 for layout in gemvs}


def measure(shapes: Iterable[Shape], layouts: Iterable[str] = TERNARY_LAYOUTS, progress: bool = False,
            cache: TimeCache | None = None) -> dict[Shape, dict[str, dict[str, float]]]:
    """{shape: {layout: {manifest target: ms}}}, from the cache where it has them; measures (and
    caches) the rest."""
    cache = cache or TimeCache()
    shapes, layouts = list(dict.fromkeys(shapes)), list(layouts)
    missing = [(name, shape) for name, target in MEASURED_TARGETS.items() for shape in shapes
               if any(cache.get(target, layout, shape) is None for layout in layouts)]
    if missing:
        builds = build_kernels(cache.path.parent / "kernels", list(MEASURED_TARGETS.values()))
        libs = {target: WasmKernels(path) for target, path in builds.items()}
        for name, shape in tqdm(missing, desc="timing kernels", unit="shape", disable=not progress):
            target = MEASURED_TARGETS[name]
            for layout, ms in time_layouts(libs[target], layouts, shape).items():
                cache.put(target, layout, shape, ms)
        cache.save()
    return {shape: {layout: {name: cache.get(target, layout, shape) for name, target in MEASURED_TARGETS.items()}
                    for layout in layouts} for shape in shapes}


def choose(shapes: Iterable[Shape], layout: str = AUTO, binary: bool = False, progress: bool = False,
           cache: TimeCache | None = None) -> list[ShapeChoice]:
    """The layout of every distinct shape: the default for "auto", timed for "measured", else the forced
    one (binary weights have one layout and accept only "auto")."""
    shapes = list(dict.fromkeys(shapes))
    if layout not in LAYOUT_CHOICES:
        raise BuildOptionError(f"--layout {layout}: choose one of {', '.join(LAYOUT_CHOICES)}")
    if binary:
        if layout != AUTO:
            raise BuildOptionError(f"--layout {layout}: the model has 1-bit weights, whose only layout is "
                                   f"{BINARY_LAYOUT}; --layout {'|'.join((MEASURED,) + TERNARY_LAYOUTS)} applies to ternary models")
        return [ShapeChoice(shape, BINARY_LAYOUT, "only") for shape in shapes]
    if layout == AUTO:
        return [ShapeChoice(shape, DEFAULT_TERNARY_LAYOUT, "default") for shape in shapes]
    if layout != MEASURED:
        return [ShapeChoice(shape, layout, "forced") for shape in shapes]
    times = measure(shapes, progress=progress, cache=cache)
    return [ShapeChoice(shape, min(ms, key=lambda name: (sum(ms[name].values()), name)), "measured", ms)
            for shape, ms in times.items()]


def _rounded(ms: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {layout: {target: float(f"{t:.4g}") for target, t in by_target.items()} for layout, by_target in ms.items()}


def manifest_table(choices: list[ShapeChoice], layout: str) -> dict:
    """manifest["kernels"]: the flag, the rule, and per "OUTxIN" shape its times (if measured), choice and how."""
    return {
        "layout": layout,
        "rule": RULES.get(layout, f"--layout {layout}"),
        "n": 1,
        "kernels_digest": sources_digest(kernel_sources()),
        "shapes": {shape_key(c.shape): {"choice": c.layout, "how": c.how, "ms": _rounded(c.ms)} for c in choices},
    }


def format_table(choices: list[ShapeChoice]) -> str:
    """An aligned text table: shape, ms per layout and target, the choice and the ratio it wins by."""
    names = [(layout, target) for layout in TERNARY_LAYOUTS for target in MEASURED_TARGETS]
    lines = [f"{'shape':>11s} " + " ".join(f"{layout + ' ' + target:>13s}" for layout, target in names) + "  choice   other/chosen"]
    for c in choices:
        cells = " ".join(f"{c.ms[layout][target]:13.4f}" if layout in c.ms else f"{'-':>13s}" for layout, target in names)
        totals = {layout: sum(ms.values()) for layout, ms in c.ms.items()}
        others = [t for layout, t in totals.items() if layout != c.layout]
        ratio = f"{min(others) / totals[c.layout]:.2f}" if others else ""
        lines.append(f"{c.shape[0]:>5d}x{c.shape[1]:<5d} {cells}  {c.layout:6s}   {ratio}")
    return "\n".join(lines)
