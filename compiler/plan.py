"""The static memory plan: every byte the model touches, at an offset fixed at build time.

The arena is four regions, in order: weights (each tensor 64-byte aligned, in graph order),
the f16 KV cache (all layers), activations (buffers share space when their lifetimes do not
overlap: llama2.c's RunState made exact), and io (tokens in, logits out, sampling state)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.compiler.graph import REGIONS, BuildOptions, Graph, build_graph
from bitnet_wasm.compiler.site_format import ALIGN

MIB = 2**20
WASM32_BYTES = 4 * 2**30           # a wasm32 memory holds at most 65536 pages of 64 KiB
BROWSER_COMFORT_BYTES = 2 * 2**30  # above this many browsers refuse or struggle to allocate
MODULE_RESERVE_BYTES = 2 * MIB     # below the arena: the module's 1 MiB stack and static data


class PlanError(ValueError):
    pass


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Slot:
    offset: int   # from the arena base
    nbytes: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


@dataclass
class MemoryPlan:
    context: int
    chunk: int
    regions: dict[str, Slot]               # region name -> its span of the arena
    slots: dict[str, Slot]                 # weight or buffer name -> its bytes

    @property
    def total_bytes(self) -> int:
        return self.regions[REGIONS[-1]].end

    @property
    def required_bytes(self) -> int:
        return self.total_bytes + MODULE_RESERVE_BYTES

    @property
    def warning(self) -> str | None:
        if self.required_bytes > BROWSER_COMFORT_BYTES:
            return (f"the model needs {self.required_bytes / MIB:,.0f} MiB of wasm memory; many browsers cannot "
                    f"allocate more than {BROWSER_COMFORT_BYTES / MIB:,.0f} MiB (try --embed q8 or a shorter --context)")
        return None

    def summary(self) -> str:
        rows = [f"{name:12s} {slot.nbytes / MIB:10,.1f} MiB" for name, slot in self.regions.items()]
        rows.append(f"{'total':12s} {self.total_bytes / MIB:10,.1f} MiB  (context {self.context}, chunk {self.chunk})")
        return "\n".join(rows)

    def to_json(self) -> dict:
        return {
            "align": ALIGN,
            "context": self.context,
            "chunk": self.chunk,
            "total_bytes": self.total_bytes,
            "regions": {name: {"offset": s.offset, "bytes": s.nbytes} for name, s in self.regions.items()},
            "buffers": {name: {"offset": s.offset, "bytes": s.nbytes} for name, s in self.slots.items()
                        if s.offset >= self.regions["kv"].offset},
        }


def _lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """First and last op index touching each activation. A value carried from one layer to the
    next (read in the body before the body writes it, or used outside the body) lives through
    the whole body."""
    ops = graph.ops()
    body = range(len(graph.prologue), len(graph.prologue) + len(graph.layer))
    touched: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        for name in op.buffers:
            if graph.values[name].region == "activations":
                touched.setdefault(name, []).append(i)
    first_access_in_body = {}
    for i in body:
        for name in ops[i].reads:
            first_access_in_body.setdefault(name, "read")
        for name in ops[i].writes:
            first_access_in_body.setdefault(name, "write")
    spans = {}
    for name, where in touched.items():
        start, end = min(where), max(where)
        in_body = any(i in body for i in where)
        outside = any(i not in body for i in where)
        if in_body and (outside or first_access_in_body.get(name) == "read"):
            start, end = min(start, body[0]), max(end, body[-1])
        spans[name] = (start, end)
    return spans


def _place_activations(sizes: dict[str, int], spans: dict[str, tuple[int, int]]) -> tuple[dict[str, int], int]:
    """Greedy by size: biggest first, each at the lowest offset clear of every placed buffer
    whose lifetime overlaps its own."""
    placed: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], spans[n], n)):
        lo, hi = spans[name]
        busy = sorted((placed[o], placed[o] + sizes[o]) for o in placed if spans[o][0] <= hi and lo <= spans[o][1])
        offset = 0
        for start, end in busy:
            if offset + sizes[name] <= start:
                break
            offset = max(offset, align(end))
        placed[name] = offset
    top = max((placed[n] + sizes[n] for n in placed), default=0)
    return placed, align(top)


def _side_by_side(sizes: dict[str, int]) -> tuple[dict[str, int], int]:
    offsets, top = {}, 0
    for name, nbytes in sizes.items():
        offsets[name] = top
        top = align(top + nbytes)
    return offsets, top


def plan_memory(graph: Graph) -> MemoryPlan:
    chunk, layers = graph.options.chunk, graph.config.num_layers
    sizes = {"weights": {w.name: w.nbytes for w in graph.weights.values()}}
    for region in REGIONS[1:]:
        sizes[region] = {v.name: v.nbytes(chunk, layers) for v in graph.values.values() if v.region == region}
    slots: dict[str, Slot] = {}
    regions: dict[str, Slot] = {}
    cursor = 0
    for region in REGIONS:
        if region == "activations":
            offsets, size = _place_activations(sizes[region], _lifetimes(graph))
        else:
            offsets, size = _side_by_side(sizes[region])
        slots.update({name: Slot(cursor + offsets[name], nbytes) for name, nbytes in sizes[region].items()})
        regions[region] = Slot(cursor, size)
        cursor += size
    return MemoryPlan(graph.options.context, chunk, regions, slots)


def _fits(plan: MemoryPlan) -> bool:
    return plan.required_bytes <= WASM32_BYTES


def _largest_fitting_context(config: ModelConfig, options: BuildOptions, binary: bool) -> int | None:
    lo, hi = 0, options.resolved(config).context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(plan_memory(build_graph(config, replace(options, context=mid), binary))):
            lo = mid
        else:
            hi = mid - 1
    return lo or None


def _remedies(config: ModelConfig, options: BuildOptions, binary: bool) -> list[str]:
    found = []
    for embed in dict.fromkeys([options.embed, "q8"]):
        flags = [f"--embed {embed}"] if embed != options.embed else []
        opts = replace(options, embed=embed)
        plan = plan_memory(build_graph(config, opts, binary))
        if not _fits(plan):
            context = _largest_fitting_context(config, opts, binary)
            if context is None:
                continue
            flags.append(f"--context {context}")
            plan = plan_memory(build_graph(config, replace(opts, context=context), binary))
        found.append(f"{' '.join(flags)} ({plan.required_bytes / MIB:,.0f} MiB)")
    return found


def plan_model(config: ModelConfig, options: BuildOptions = BuildOptions(), binary: bool = False) -> tuple[Graph, MemoryPlan]:
    """Graph and memory plan of a model; raises PlanError, with the numbers and the options
    that would make it fit, when it does not fit wasm32 memory."""
    graph = build_graph(config, options, binary)
    plan = plan_memory(graph)
    if _fits(plan):
        return graph, plan
    r = plan.regions
    remedies = _remedies(config, options, binary)
    advice = ("it fits with: " + "; ".join(remedies)) if remedies else "no build option makes it fit: the weights alone are too large"
    raise PlanError(
        f"{config.name or 'the model'} does not fit wasm32 memory: it needs {plan.required_bytes / MIB:,.0f} MiB "
        f"(weights {r['weights'].nbytes / MIB:,.0f} MiB, KV cache {r['kv'].nbytes / MIB:,.0f} MiB at context {plan.context}, "
        f"activations {r['activations'].nbytes / MIB:,.1f} MiB, io {r['io'].nbytes / MIB:,.1f} MiB, module {MODULE_RESERVE_BYTES / MIB:.0f} MiB) "
        f"but a wasm32 memory holds at most {WASM32_BYTES / MIB:,.0f} MiB; {advice}")
