"""Issue #12's load and memory targets, measured for `bitnet-wasm bench --compare`: a second visit's
load from Cache Storage against a plain memory copy of the same bytes, and the browser's peak
memory (PSS of every process of its own Chromium) against the model's wasm memory."""
from __future__ import annotations

import statistics
import tempfile
import threading
import time

from bitnet_wasm.bench.chromium import launch_on_disk

SIMD, THREADS = "relaxed", 1
TOKENS = 8  # the short generation of each visit: the KV cache and activations it touches become resident
SAMPLE_S = 0.05
IDLE_S = 1.0  # the idle page sampled this long before each visit
REFERENCE_ROUNDS = 3  # of the loader and the plain copy in turn: how fast new pages fault in moves from minute to minute
STEP_TIMEOUT_S = 600
NOTES = [
    f"Load and memory (bitnet-wasm, {SIMD} SIMD, {THREADS} thread): two visits of the bench page, each in a Chromium of their "
    "own started on one fresh persistent profile (so Cache Storage is on disk, as for a returning visitor). Each visit: `BitNet.load`, a "
    f"{TOKENS}-token greedy generation, dispose; the first loads from the network and fills Cache Storage, the second must "
    "take all shard bytes from it (`info.cachedBytes`). Then, on the second visit's page thread, "
    f"{REFERENCE_ROUNDS} rounds of: the site's own loader "
    "(`loadShards` as the worker runs it: Cache Storage read, copy into the newly grown memory of a fresh instance of the site's module, the checksum of "
    "each shard (the module's `bn_checksum`, wasm SIMD) against the one stored with it, up to 4 shards at once) timed alone, then a plain copy of the same bytes "
    "from that memory into a fresh WebAssembly.Memory (its pages new, as the loader's are: page faults are part of any load); each is the median of its "
    "rounds (all of them are listed under the table). Then the copy again into the now resident pages; and, shard after shard, the loader's checksum alone and WebCrypto's sha256 (which "
    "checks a download, and checked cached shards too before the checksum). The target is the loader's time over the plain copy into new pages; the "
    "whole `BitNet.load` (worker start, wasm compile, tokenizer) is reported beside it.",
    f"Memory: the proportional set size (PSS: a shared page counted once) of every process of that Chromium, summed every "
    f"{SAMPLE_S * 1000:.0f} ms from Python (psutil) in a thread; idle = the median over {IDLE_S:g} s of the loaded bench page "
    "before the visit; peak = the largest sum during the visit (load, generation, dispose; a copy that lives less than a "
    "sampling interval can be missed). The target compares the larger peak above idle of the two visits with the model's "
    "WebAssembly.Memory (`info.memoryBytes`): the browser's own few hundred MB would swamp a small model's ratio, and what "
    "the target asks, no duplicate copies of the shards, is the memory a visit adds. Wasm pages never touched (most of an "
    "unused KV cache) are not resident, so a ratio below 1 is possible; on the tiny demo model the worker's own few tens of "
    "MB dominate, so judge this target on the large model.",
]


class LoadMemoryError(RuntimeError):
    pass


class TreeSampler:
    """The summed PSS of the processes under `roots` (found again each time: renderers come and go),
    every SAMPLE_S in a thread, filed under the phase the caller sets."""

    def __init__(self, roots):
        self.roots, self.phase, self.samples = roots, None, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def pss(self) -> int:
        import psutil

        total = 0
        for root in self.roots:
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    total += process.memory_full_info().pss
                except psutil.NoSuchProcess:  # it ended between the listing and the reading
                    pass
        return total

    def _run(self):
        while not self._stop.is_set():
            phase = self.phase  # read once: the caller may end the phase meanwhile
            if phase:
                self.samples.setdefault(phase, []).append(self.pss())
            self._stop.wait(SAMPLE_S)

    def during(self, phase: str, seconds: float | None = None, run=None):
        """Samples filed under `phase` while run() runs (or for `seconds`); run()'s result."""
        self.phase = phase
        try:
            return run() if run else time.sleep(seconds)
        finally:
            self.samples.setdefault(phase, []).append(self.pss())  # at least one sample, however short the phase
            self.phase = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _new_processes(before: set[int]) -> list:
    """The processes under this one that were not there before, without their descendants: the roots of what started since."""
    import psutil

    new = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    pids = {p.pid for p in new}
    return [p for p in new if p.ppid() not in pids]


def _call(page, argument: dict) -> dict:
    return page.evaluate(
        f"""(a) => Promise.race([window.bench.loadAndMemory(a), new Promise((_, reject) =>
              setTimeout(() => reject(new Error('no answer after {STEP_TIMEOUT_S} s')), {STEP_TIMEOUT_S * 1000}))])""",
        argument)


def _visit(playwright, profile: str, page_url: str, visit: dict, reference: dict | None = None) -> tuple[dict, dict, dict | None]:
    """One visit in a Chromium started on `profile`: (the page's answer, the memory samples by phase,
    the reference step's answer if asked for, run after the visit and outside the sampling)."""
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    context = launch_on_disk(playwright, profile)
    try:
        roots = _new_processes(before)
        if not roots:
            raise LoadMemoryError("found no process of the Chromium just started under this one; its memory cannot be read")
        page = context.pages[0] if context.pages else context.new_page()
        with TreeSampler(roots) as sampler:
            page.goto(page_url)
            page.wait_for_function("() => window.bench !== undefined")
            sampler.during("idle", IDLE_S)
            answer = sampler.during("visit", run=lambda: _call(page, visit))
        return answer, sampler.samples, reference and _call(page, reference)
    finally:
        context.close()


def measure(playwright, page_url: str, site_url: str, prompt: str) -> dict:
    """The load and memory entry of the model of the site at site_url (ending in '/'), driven through
    the compare page at page_url (same origin): two visits, each in a fresh Chromium on one persistent
    profile (the second a returning visitor's, its shards in Cache Storage on disk)."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise LoadMemoryError("psutil is not installed (pip install psutil); it reads the browser's memory") from None
    visit = {"step": "visit", "siteUrl": site_url, "simd": SIMD, "threads": THREADS, "prompt": prompt, "tokens": TOKENS}
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-load-profile-") as profile:
        first, first_samples, _ = _visit(playwright, profile, page_url, visit)
        second, second_samples, reference = _visit(playwright, profile, page_url, visit,
                                                   {"step": "reference", "siteUrl": site_url, "simd": SIMD, "rounds": REFERENCE_ROUNDS})
    if (second["simd"], second["threads"]) != (SIMD, THREADS):
        raise LoadMemoryError(f"asked for {SIMD} SIMD on {THREADS} thread(s), the runtime ran {second['simd']} on {second['threads']}")
    idle = {name: statistics.median(samples["idle"]) for name, samples in (("first", first_samples), ("second", second_samples))}
    peak = {name: max(samples["visit"]) for name, samples in (("first", first_samples), ("second", second_samples))}
    return {
        "simd": SIMD, "threads": THREADS, "shard_bytes": second["shardBytes"], "wasm_memory_bytes": second["memoryBytes"],
        "first_load_s": first["loadSeconds"], "second_load_s": second["loadSeconds"], "second_phases_s": second["phaseSeconds"],
        "first_cached_bytes": first["cachedBytes"], "cached_bytes": second["cachedBytes"], "cache_error": second["cacheError"] or first["cacheError"],
        "loader_s": statistics.median(reference["loaderSeconds"]), "loader_rounds_s": reference["loaderSeconds"], "loader_cached_bytes": reference["cachedBytes"],
        "copy_s": statistics.median(reference["copySeconds"]), "copy_rounds_s": reference["copySeconds"],
        "copy_resident_s": reference["copyTouchedSeconds"], "checksum_s": reference["checksumSeconds"],
        "sha256_s": reference["sha256Seconds"],
        "first_idle_bytes": idle["first"], "first_peak_bytes": peak["first"], "second_idle_bytes": idle["second"], "second_peak_bytes": peak["second"],
        "peak_above_idle_bytes": max(peak[name] - idle[name] for name in peak),
    }
