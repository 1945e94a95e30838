"""web/checksum.js, the check of cached shards, in every browser engine against the definition written
out here with Python's integers: any length and byte offset, fed whole or in arbitrary pieces."""
from __future__ import annotations

import random

import pytest

from bitnet_wasm.web import WEB_DIR

LANES, WORD = 4, 4
MOD = 2**32

DIGESTS = """async ([cases]) => {
  const { checksum, runningChecksum } = await import("/checksum.js");
  return cases.map(({ bytes, offset, cuts }) => {
    const view = new Uint8Array(offset + bytes.length).subarray(offset);
    view.set(bytes);
    const running = runningChecksum();
    for (const cut of cuts) running.update(view, cut);
    return [checksum(view), running.digest(view)];
  });
}"""


def fletcher_lanes(data: bytes) -> str:
    """a += word, b += a per lane (word index mod 4), modulo 2^32, over little-endian words; zero-padded to 16 bytes."""
    padded = data + bytes(-len(data) % (LANES * WORD))
    a, b = [0] * LANES, [0] * LANES
    for at in range(0, len(padded), WORD):
        lane = at // WORD % LANES
        a[lane] = (a[lane] + int.from_bytes(padded[at:at + WORD], "little")) % MOD
        b[lane] = (b[lane] + a[lane]) % MOD
    return "".join(f"{s:08x}" for s in a + b)


def cases(seed: int):
    rng = random.Random(seed)
    for length in (0, 1, 3, 15, 16, 17, 63, 1000, 4099):
        data = bytes(rng.getrandbits(8) for _ in range(length))
        cuts = sorted(rng.randrange(length + 1) for _ in range(rng.randrange(6)))
        yield {"bytes": list(data), "offset": rng.randrange(4), "cuts": cuts}
    yield {"bytes": [0xFF] * 4096, "offset": 1, "cuts": [4096]}  # every sum wraps


@pytest.fixture
def on_web(page, served_dir):
    page.goto(served_dir(WEB_DIR) + "checksum.js")
    return page


def test_digest_matches_its_definition_at_any_offset_and_cut(on_web):
    every = list(cases(seed=5))
    got = on_web.evaluate(DIGESTS, [every])
    for case, (whole, running) in zip(every, got):
        assert whole == running == fletcher_lanes(bytes(case["bytes"])), (len(case["bytes"]), case["offset"], case["cuts"])


def damaged_copies(data: bytes) -> dict[str, bytes]:
    rng = random.Random(7)
    flipped = bytearray(data)
    flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    swapped = bytearray(data)
    swapped[16:20], swapped[32:36] = data[32:36], data[16:20]
    zeroed = bytearray(data)
    zeroed[4096:8192] = bytes(4096)
    return {"flip a bit": bytes(flipped), "swap two words": bytes(swapped), "zero a page": bytes(zeroed)}


def test_damage_changes_the_digest(on_web):
    rng = random.Random(3)
    data = bytes(rng.getrandbits(8) for _ in range(3 * 4096))
    damaged = damaged_copies(data)
    every = [{"bytes": list(d), "offset": 0, "cuts": []} for d in (data, *damaged.values())]
    (intact, _), *digests = on_web.evaluate(DIGESTS, [every])
    assert intact == fletcher_lanes(data)
    for (damage, copy), (digest, _) in zip(damaged.items(), digests):
        assert digest == fletcher_lanes(copy) != intact, damage
