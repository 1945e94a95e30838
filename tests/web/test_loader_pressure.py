"""The shard loader reading from Cache Storage on disk in a worker while it allocates, in Chromium: each
read completes and each shard is checked. Chromium collects a byte-stream reader whose read is pending
unless the page holds it, and that read then never resolves (web/loader.js holds its readers)."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np

SHARDS, SHARD_BYTES = 7, 32 << 20
STALL_MS = 30_000
WORKER = """import { loadShards } from "./loader.js";
import { CHECKSUM_SCRATCH_BYTES, wasmChecksum } from "./checksum.js";
onmessage = async ({ data: [shards, stallMs] }) => {
  const totalBytes = shards.reduce((sum, s) => sum + s.bytes, 0);
  const { instance } = await WebAssembly.instantiate(await (await fetch("model/bitnet.wasm")).arrayBuffer(), {});
  const { memory, __heap_base } = instance.exports;
  const base = Math.ceil(__heap_base.value / 65536) * 65536;
  memory.grow(Math.ceil((base + totalBytes + CHECKSUM_SCRATCH_BYTES) / 65536) - memory.buffer.byteLength / 65536);
  let garbage = 0;
  const load = loadShards({ baseUrl: new URL("model/manifest.json", location.href).href, shards, target: (shard) => {
    garbage += new Uint8Array(4 << 20).fill(1)[garbage % 7]; // garbage at every piece read
    return new Uint8Array(memory.buffer, base + shard.offset, shard.bytes);
  }, checksum: wasmChecksum(instance.exports, memory, base + totalBytes) });
  const stalled = new Promise((resolve) => setTimeout(() => resolve({ stalled: true }), stallMs));
  postMessage(await Promise.race([load, stalled]));
};
"""
LOAD_IN_WORKER = """([shards, stallMs]) => new Promise((resolve, reject) => {
  const worker = new Worker("/pressure_worker.js", { type: "module" });
  worker.onmessage = ({ data }) => resolve(data);
  worker.onerror = (e) => reject(new Error(e.message));
  worker.postMessage([shards, stallMs]);
})"""


def test_a_load_from_cache_storage_on_disk_completes_while_the_worker_allocates(engine_pool, served, small_site, tmp_path):
    folder = tmp_path / "site"
    (folder / "model").mkdir(parents=True)
    for module in small_site.glob("*.js"):  # loader.js and what it imports (format.js is generated)
        shutil.copy(module, folder)
    shutil.copy(small_site / "model" / "bitnet.wasm", folder / "model")  # its bn_checksum
    (folder / "pressure_worker.js").write_text(WORKER)
    shards = []
    for i, data in enumerate(np.random.default_rng(5).integers(0, 256, (SHARDS, SHARD_BYTES), dtype=np.uint8)):
        name = f"weights-{i:05d}.bin"
        (folder / "model" / name).write_bytes(data.tobytes())
        shards.append({"file": name, "offset": i * SHARD_BYTES, "bytes": SHARD_BYTES, "sha256": hashlib.sha256(data.tobytes()).hexdigest()})
    url = served(folder).url + "loader.js"
    results = []
    for _visit in range(2):  # the first fills Cache Storage; the second, a new browser on the same profile, reads it from disk
        with engine_pool("chromium").new_page_on_disk(tmp_path / "profile") as page:
            page.goto(url)
            results.append(page.evaluate(LOAD_IN_WORKER, [shards, STALL_MS]))
    assert results == [{"cacheError": None, "cachedBytes": 0}, {"cacheError": None, "cachedBytes": SHARDS * SHARD_BYTES}]
