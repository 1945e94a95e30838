"""Pure arithmetic and formatting of `bitnet-wasm bench --compare` results: the weight bytes a
decode step reads, the roofline, the targets, and the markdown table and plot of a results
dict (the JSON the bench writes)."""
from __future__ import annotations

import operator
import statistics
from dataclasses import dataclass, field
from typing import Callable

from bitnet_wasm.bench.browser import kernel_choices_label
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

OURS = "bitnet-wasm"
WLLAMA = "wllama"
NATIVE = "native"
LLAMA_CPP = "llama.cpp"
CPU_ENGINES = (NATIVE, LLAMA_CPP)  # outside the page: the page's read bandwidth is not their roofline
THREADS = (1, 2)
CACHE_RESIDENT_BYTES = 32 * 2**20  # weights per token below this stay in the CPU caches: no DRAM roofline


def bytes_per_token(manifest: dict) -> int:
    """Weight bytes one decode step reads, from a site manifest's tensor table: every tensor once,
    except the embedding table, of which the prologue reads one row (the head reads the whole
    table again when the embeddings are tied). The KV cache is not counted."""
    vocab, tied = manifest["model"]["vocab_size"], manifest["model"]["tie_embeddings"]
    total = 0
    for name, tensor in manifest["tensors"].items():
        if name == "embed" or name.startswith("embed."):
            total += tensor["bytes"] // vocab + (tensor["bytes"] if tied else 0)
        else:
            total += tensor["bytes"]
    return total


def prefill_ops_per_token(manifest: dict) -> int:
    """Integer operations (2 per multiply-add) of the ternary linears for one prompt token, from the
    manifest's shapes; attention and the head (run once per prompt) are left out."""
    return sum(2 * t["shape"][0] * t["shape"][1] for t in manifest["tensors"].values() if t["layout"] in LAYOUTS)


def _row(model: dict, engine: str, threads: int, simd: str | None = None) -> dict | None:
    for row in model["rows"]:
        if row["engine"] == engine and row["threads"] == threads and (simd is None or row["simd"] == simd) and not row.get("error"):
            return row
    return None


def _decode(model: dict, engine: str, threads: int, simd: str | None = None) -> float | None:
    row = _row(model, engine, threads, simd)
    return row["decode_tps"] if row else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _round_ratios(row: dict | None, other: dict | None) -> list[float]:
    """row / other decode tok/s in each round both measured (rows measured in turns carry their rounds)."""
    if not row or not other:
        return []
    return [a["decode_tps"] / b["decode_tps"] for a, b in zip(row.get("rounds", []), other.get("rounds", [])) if a["decode_tps"] and b["decode_tps"]]


def _paired_ratio(row: dict | None, other: dict | None) -> float | None:
    """The median of the rounds' ratios where the two rows were measured in turns, else the ratio of the rows."""
    ratios = _round_ratios(row, other)
    if ratios:
        return statistics.median(ratios)
    return _ratio(row["decode_tps"], other["decode_tps"]) if row and other else None


def bandwidth_gbps(results: dict, threads: int) -> float | None:
    return next((b["gbps"] for b in results["bandwidth"] if b["threads"] == threads and not b.get("error")), None)


def compute_gops(results: dict, threads: int) -> float | None:
    return next((c["gops"] for c in results.get("compute", []) if c["threads"] == threads and not c.get("error")), None)


def prefill_gops(model: dict, threads: int) -> float | None:
    row = next((p for p in model.get("prefill", []) if p["threads"] == threads and not p.get("error")), None)
    return row["prefill_tps"] * model["prefill_ops_per_token"] / 1e9 if row and row["prefill_tps"] else None


def roofline_tps(gbps: float | None, nbytes: int | None) -> float | None:
    """Decode tokens per second if every step only streamed its weights at the read bandwidth."""
    return gbps * 1e9 / nbytes if gbps and nbytes else None


@dataclass(frozen=True)
class Target:
    name: str
    goal: float | None  # None: a ratio reported for information, no goal set
    compare: Callable[[float, float], bool] | None
    measure: Callable[[dict, dict], float | None]  # (results, model) -> the measured ratio
    model_goals: dict = field(default_factory=dict)  # model name -> its own goal (issue #12 sets them per shape)

    def goal_for(self, model: str) -> float | None:
        return self.model_goals.get(model, self.goal)

    def goal_text(self, model: str) -> str:
        goal = self.goal_for(model)
        return "" if goal is None else f"{'>=' if self.compare is operator.ge else '<='} {goal:g}"

    def met(self, model: str, value: float | None) -> bool | None:
        goal = self.goal_for(model)
        return None if value is None or goal is None else bool(self.compare(value, goal))


def _vs_wllama(threads: int):
    return lambda results, m: _paired_ratio(_row(m, OURS, threads, "relaxed"), _row(m, WLLAMA, threads))


def _of_roofline(threads: int):
    return lambda results, m: _ratio(_decode(m, OURS, threads, "relaxed"),
                                     roofline_tps(bandwidth_gbps(results, threads), m.get("bytes_per_token")))


def _load(model: dict) -> dict | None:
    """The model's load and memory measurement (load_memory.py), if made and not failed."""
    load = model.get("load")
    return load if load and not load.get("error") else None


def _cache_load_vs_copy(results: dict, model: dict) -> float | None:
    load = _load(model)
    all_cached = load and load["cached_bytes"] == load["loader_cached_bytes"] == load["shard_bytes"]
    return _ratio(load["loader_s"], load["copy_s"]) if all_cached else None


def _peak_memory_vs_wasm(results: dict, model: dict) -> float | None:
    load = _load(model)
    return _ratio(load["peak_above_idle_bytes"], load["wasm_memory_bytes"]) if load else None


TARGETS = (
    *(Target(f"decode vs wllama, {t} thread{'s' * (t > 1)} (relaxed)", 5.0, operator.ge, _vs_wllama(t), {"large": 12.0, "2b": 15.0})
      for t in THREADS),
    *(Target(f"decode / roofline, {t} thread{'s' * (t > 1)} (relaxed)", 0.70, operator.ge, _of_roofline(t)) for t in THREADS),
    *(Target(f"prefill / int8-dot peak, {t} thread{'s' * (t > 1)} (relaxed)", 0.80, operator.ge,
             lambda results, m, t=t: _ratio(prefill_gops(m, t), compute_gops(results, t))) for t in THREADS),
    Target("decode 2 threads / 1 thread (relaxed)", 1.7, operator.ge,
           lambda results, m: _paired_ratio(_row(m, OURS, 2, "relaxed"), _row(m, OURS, 1, "relaxed")), {"2b": 1.8}),
    Target("native decode / browser decode, 1 thread", 1.5, operator.le,
           lambda results, m: _ratio(_decode(m, NATIVE, 1), _decode(m, OURS, 1, "relaxed"))),
    Target("decode vs llama.cpp native, 1 thread (relaxed)", None, None,
           lambda results, m: _ratio(_decode(m, OURS, 1, "relaxed"), _decode(m, LLAMA_CPP, 1))),
    Target("weights from Cache Storage / plain copy of the same bytes (relaxed, 1 thread)", 2.0, operator.le, _cache_load_vs_copy),
    Target("peak browser memory above idle / wasm memory (relaxed, 1 thread)", 1.3, operator.le, _peak_memory_vs_wasm),
)


def derive(results: dict) -> dict:
    """results with, per model, each row's roofline share and ratio to wllama, and the targets."""
    models = []
    for model in results["models"]:
        rows = []
        for row in model["rows"]:
            extra = {}
            if row["engine"] not in CPU_ENGINES and not row.get("error"):
                roofline = roofline_tps(bandwidth_gbps(results, row["threads"]), model.get("bytes_per_token"))
                extra["roofline_fraction"] = _ratio(row["decode_tps"], roofline)
                if row["engine"] == OURS:
                    extra["vs_wllama"] = _paired_ratio(row, _row(model, WLLAMA, row["threads"]))
            rows.append({**row, **extra})
        targets = []
        for target in TARGETS:
            value = target.measure(results, model)
            targets.append({"target": target.name, "goal": target.goal_text(model["name"]), "value": value, "met": target.met(model["name"], value)})
        models.append({**model, "rows": rows, "targets": targets,
                       "roofline_tps": {str(t): roofline_tps(bandwidth_gbps(results, t), model.get("bytes_per_token")) for t in THREADS}})
    return {**results, "models": models}


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.{1 if value < 0.1 else 0}f}%"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


MET = {True: "met", False: "**not met**", None: "not measured"}


def _status(target: dict) -> str:
    return "information (no goal)" if target["value"] is not None and not target["goal"] else MET[target["met"]]


def markdown(results: dict, plot_file: str | None = "benchmark.png") -> str:
    """docs/benchmarks.md from a results dict (as written to benchmarks.json)."""
    r = derive(results)
    s, machine = r["settings"], r["machine"]
    lines = [
        "# Benchmarks: bitnet-wasm vs wllama (llama.cpp) in the browser", "",
        f"Generated by `{s['command']}` on {r['date']}: one headless Chromium ({machine.get('browser', '?')}) session, "
        f"bitnet-wasm {r['bitnet_wasm']}, {WLLAMA} {s['wllama']}, {LLAMA_CPP} natively through node-llama-cpp {s['node_llama_cpp']}, "
        f"{machine['cpus']} CPU cores.",
        f"Prompt: {s['prompt']!r}; {s['tokens']} new tokens, greedy, after a {s['warmup_tokens']}-token warm-up generation per engine.",
        "",
        f"Machine: {machine['note']}", "",
        "## Read bandwidth and decode roofline", "",
        f"Wasm streaming read (`bn_stream_read`, v128 loads) of a {s['stream_mb']} MB buffer per thread (its own module "
        f"instance in a Web Worker), in the same page, for {s['stream_seconds']:g} s in rounds: every thread starts its read "
        "together (a barrier in shared memory), so no read runs while another thread idles; GB/s = the bytes of all threads "
        "over the fastest round, from its first read's start to its last read's end (one clock for all workers). Roofline = GB/s / weight bytes read per decode token.", "",
        "| threads | read GB/s | " + " | ".join(f"{m['name']}: roofline tok/s ({m['bytes_per_token'] / 1e6:.1f} MB/token)"
                                             if m.get("bytes_per_token") else f"{m['name']}: roofline tok/s" for m in r["models"]) + " |",
        "|---|---|" + "---|" * len(r["models"]),
    ]
    for b in r["bandwidth"]:
        cells = [f"not measured: {b['error']}"] if b.get("error") else [_num(b["gbps"])]
        cells += [_num(m["roofline_tps"][str(b["threads"])]) for m in r["models"]]
        lines.append(f"| {b['threads']} | " + " | ".join(cells) + " |")
    lines += _prefill_section(r)
    lines += ["", "## Results", "",
              "| model | engine | SIMD | threads | prompt tokens | new tokens | prefill tok/s | decode tok/s | of roofline | vs wllama |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        if m.get("error"):
            lines.append(f"| {m['name']} | all | | | not measured: {m['error']} | | | | | |")
        for row in m["rows"]:
            head = f"| {m['name']} | {row['engine']} | {row.get('simd') or ''}{kernel_choices_label(row.get('dot_form'), row.get('read_ahead'))} | {row['threads']} |"
            if row.get("error"):
                lines.append(f"{head} not measured: {row['error']} | | | | | |")
            else:
                lines.append(f"{head} {row['prompt_tokens']} | {row['new_tokens']} | {_num(row['prefill_tps'])} | {_num(row['decode_tps'])} | "
                             f"{_pct(row.get('roofline_fraction'))} | {_x(row.get('vs_wllama'))} |")
    lines += _rounds_section(r)
    lines += ["", "## Targets", "", "| model | target | measured | goal | |", "|---|---|---|---|---|"]
    for m in r["models"]:
        for t in m["targets"]:
            lines.append(f"| {m['name']} | {t['target']} | {_num(t['value'], 2)} | {t['goal']} | {_status(t)} |")
    lines += _load_memory_section(r["models"])
    if plot_file:
        lines += ["", f"![decode tokens per second]({plot_file})"]
    lines += ["", "## Models", ""] + [f"- **{m['name']}**: {m['description']}" for m in r["models"]]
    lines += ["", "## How it was measured", ""] + [f"- {note}" for note in r["notes"]]
    return "\n".join(lines) + "\n"


def _round_cell(row: dict | None) -> str:
    return ", ".join(_num(t["decode_tps"]) if t["decode_tps"] else "failed" for t in row.get("rounds", [])) if row else ""


def _rounds_section(r: dict) -> list[str]:
    """Decode tok/s of each round of the rows measured in turns (ours relaxed, wllama), and their ratio per round (absent in older results)."""
    lines = []
    for m in r["models"]:
        for threads in THREADS:
            ours, peer = _row(m, OURS, threads, "relaxed"), _row(m, WLLAMA, threads)
            if not ours or "rounds" not in ours:
                continue
            ratios = ", ".join(_x(x) for x in _round_ratios(ours, peer))
            lines.append(f"| {m['name']} | {threads} | {_round_cell(ours)} | {_round_cell(peer)} | {ratios} | {_x(_paired_ratio(ours, peer))} |")
    if not lines:
        return []
    return ["", "## Rounds", "",
            f"Our relaxed rows and wllama's were measured in turns, {r['settings']['rounds']} rounds of (ours, wllama) at 1 thread then at 2, "
            "so that the machine's drifting speed moves both sides of a ratio alike; the rows above give each configuration's median, "
            "the ratios to wllama (and 2 threads / 1 thread) are the medians of the rounds' ratios. Decode tok/s by round:", "",
            "| model | threads | bitnet-wasm | wllama | bitnet-wasm / wllama | median |", "|---|---|---|---|---|---|", *lines]


def _prefill_section(r: dict) -> list[str]:
    """The int8-dot peak per thread count and, per model, time to first token on a long prompt (absent in older results)."""
    if not r.get("compute"):
        return []
    s = r["settings"]
    rows = f", {s['dot_peak']['rows']} weight rows" if "rows" in s["dot_peak"] else ""  # results from before it was recorded
    lines = ["", "## Prefill and the int8-dot peak", "",
             f"`bn_dot_peak` (relaxed SIMD, {s['dot_peak']['bytes']} bytes of activations in L1{rows}) per thread in its own "
             f"Web Worker, all at once; prefill on a {s['prefill_tokens']}-token prompt (the context minus one where smaller), one new token.", "",
             "| model | threads | int8-dot peak GOPS | prompt tokens | time to first token s | prefill tok/s | prefill GOPS | of peak |",
             "|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        for p in m.get("prefill", []):
            peak = compute_gops(r, p["threads"])
            head = f"| {m['name']} | {p['threads']} | {_num(peak)} |"
            if p.get("error"):
                lines.append(f"{head} not measured: {p['error']} | | | | |")
            else:
                gops = prefill_gops(m, p["threads"])
                lines.append(f"{head} {p['prompt_tokens']} | {_num(p['ttft_s'], 2)} | {_num(p['prefill_tps'])} | {_num(gops)} | {_pct(_ratio(gops, peak))} |")
    return lines


def _mb(nbytes: float | None) -> str:
    return "" if nbytes is None else f"{nbytes / 1e6:,.1f}"


def _s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.3f}"


def _load_memory_section(models: list[dict]) -> list[str]:
    """Issue #12's load and memory measurement per model (see load_memory.NOTES); "not measured" for results without it."""
    load_rows, memory_rows, round_lines = [], [], []
    for m in models:
        load = m.get("load")
        if not load or load.get("error"):
            why = f"not measured: {load['error']}" if load else "not measured"
            load_rows.append(f"| {m['name']} | {why} |" + " |" * 8)
            memory_rows.append(f"| {m['name']} | {why} |" + " |" * 5)
            continue
        cached = "all" if load["cached_bytes"] == load["shard_bytes"] else f"**only {_mb(load['cached_bytes'])} MB**"
        checksum_s = load.get("checksum_s")  # None in results from before the checksum
        checksum_share = f" ({_pct(_ratio(checksum_s, load['loader_s']))})" if checksum_s is not None else ""
        load_rows.append(f"| {m['name']} | {_mb(load['shard_bytes'])} | {_s(load['first_load_s'])} | {_s(load['second_load_s'])} | {cached} | "
                         f"{_s(load['loader_s'])} | {_s(checksum_s)}{checksum_share} | {_s(load['sha256_s'])} | {_s(load['copy_s'])} | {_s(load['copy_resident_s'])} |")
        if "loader_rounds_s" in load:  # absent in results from before the rounds
            round_lines.append(f"- {m['name']}: loader {', '.join(map(_s, load['loader_rounds_s']))}; plain copy, new pages "
                               f"{', '.join(map(_s, load['copy_rounds_s']))}")
        memory_rows.append(f"| {m['name']} | {_mb(load['wasm_memory_bytes'])} | {_mb(load['first_idle_bytes'])} | {_mb(load['first_peak_bytes'])} | "
                           f"{_mb(load['second_idle_bytes'])} | {_mb(load['second_peak_bytes'])} | {_mb(load['peak_above_idle_bytes'])} |")
    return ["", "## Load and memory", "",
            "Our engine, relaxed SIMD, 1 thread, two visits in a fresh Chromium each on one profile (how: see the notes). Seconds:", "",
            "| model | shard MB | first visit `BitNet.load` (network) | second visit `BitNet.load` | from Cache Storage | "
            "loader alone (Cache Storage) | checksum of the shards | sha256 of the shards | plain copy, new pages | plain copy, resident pages |",
            "|---|---|---|---|---|---|---|---|---|---|", *load_rows, "",
            *(["The loader and the plain copy, round by round (s; the table gives their medians):", "", *round_lines, ""] if round_lines else []),
            "Memory of all the browser's processes (PSS, MB):", "",
            "| model | wasm memory | first visit: idle | first visit: peak | second visit: idle | second visit: peak | largest peak above idle |",
            "|---|---|---|---|---|---|---|", *memory_rows]


def plot(results: dict, out_file) -> None:
    """Decode tok/s per engine configuration, one panel per model, with the roofline per thread
    count where DRAM bounds decode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = derive(results)
    models = r["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    colors = {OURS: "tab:blue", WLLAMA: "tab:orange", NATIVE: "tab:green", LLAMA_CPP: "tab:red"}
    for ax, m in zip(axes[0], models):
        rows = [row for row in m["rows"] if not row.get("error")]
        labels = [f"{row['engine']} {row.get('simd') or ''} {row['threads']}T".replace("  ", " ") for row in rows]
        bars = ax.barh(labels, [row["decode_tps"] for row in rows], color=[colors[row["engine"]] for row in rows])
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
        if (m.get("bytes_per_token") or 0) >= CACHE_RESIDENT_BYTES:
            for (threads, roofline), style in zip(m["roofline_tps"].items(), ("--", ":")):
                if roofline:
                    ax.axvline(roofline, color="gray", linestyle=style, label=f"roofline {threads}T ({roofline:.0f} tok/s)")
            ax.legend(loc="lower right", fontsize=8)
        ax.invert_yaxis()
        ax.set_title(m["name"])
        ax.set_xlabel("decode tokens / s")
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
