"""web/checksum.js, the check of cached shards, in every browser engine: the site module's bn_checksum
over bytes in its memory, against the definition written out with Python's integers (tests/shard_checksum.py),
at any length and byte offset."""
from __future__ import annotations

import random

import pytest
from shard_checksum import fletcher_lanes

DIGESTS = """async ([cases]) => {
  const { CHECKSUM_SCRATCH_BYTES, wasmChecksum } = await import("/checksum.js");
  const { instance } = await WebAssembly.instantiate(await (await fetch("/model/bitnet.wasm")).arrayBuffer(), {});
  const { memory, __heap_base } = instance.exports;
  const base = Math.ceil(__heap_base.value / 16) * 16, scratch = base, data = base + CHECKSUM_SCRATCH_BYTES;
  const room = data + Math.max(...cases.map(({ bytes, offset }) => offset + bytes.length));
  if (room > memory.buffer.byteLength) memory.grow(Math.ceil((room - memory.buffer.byteLength) / 65536));
  const checksum = wasmChecksum(instance.exports, memory, scratch);
  return cases.map(({ bytes, offset }) => {
    const view = new Uint8Array(memory.buffer, data + offset, bytes.length);
    view.set(bytes);
    return checksum(view);
  });
}"""
OUTSIDE = """async () => {
  const { wasmChecksum } = await import("/checksum.js");
  const { instance } = await WebAssembly.instantiate(await (await fetch("/model/bitnet.wasm")).arrayBuffer(), {});
  try {
    wasmChecksum(instance.exports, instance.exports.memory, 0)(new Uint8Array(64));
    return null;
  } catch (e) {
    return e.message;
  }
}"""


def cases(seed: int):
    rng = random.Random(seed)
    for length in (0, 1, 3, 15, 16, 17, 63, 1000, 4099):
        yield {"bytes": list(rng.getrandbits(8) for _ in range(length)), "offset": rng.randrange(4)}
    yield {"bytes": [0xFF] * 4096, "offset": 1}  # every sum wraps


@pytest.fixture
def on_site(page, served_dir, small_site):
    page.goto(served_dir(small_site) + "checksum.js")
    return page


def test_digest_matches_its_definition_at_any_offset(on_site):
    every = list(cases(seed=5))
    got = on_site.evaluate(DIGESTS, [every])
    for case, digest in zip(every, got):
        assert digest == fletcher_lanes(bytes(case["bytes"])), (len(case["bytes"]), case["offset"])


def damaged_copies(data: bytes) -> dict[str, bytes]:
    rng = random.Random(7)
    flipped = bytearray(data)
    flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    swapped = bytearray(data)
    swapped[16:20], swapped[32:36] = data[32:36], data[16:20]
    zeroed = bytearray(data)
    zeroed[4096:8192] = bytes(4096)
    return {"flip a bit": bytes(flipped), "swap two words": bytes(swapped), "zero a page": bytes(zeroed)}


def test_damage_changes_the_digest(on_site):
    rng = random.Random(3)
    data = bytes(rng.getrandbits(8) for _ in range(3 * 4096))
    damaged = damaged_copies(data)
    intact, *digests = on_site.evaluate(DIGESTS, [[{"bytes": list(d), "offset": 0} for d in (data, *damaged.values())]])
    assert intact == fletcher_lanes(data)
    for (damage, copy), digest in zip(damaged.items(), digests):
        assert digest == fletcher_lanes(copy) != intact, damage


def test_bytes_outside_the_modules_memory_are_refused(on_site):
    assert on_site.evaluate(OUTSIDE) == "checksum: the bytes are not in the module's memory"
