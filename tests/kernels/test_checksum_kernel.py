"""bn_checksum (SIMD) and bn_checksum_ref, in every build, against the definition in Python integers:
any length, whole or in pieces of whole 16-byte groups, and sums that wrap."""
import numpy as np
import pytest
from shard_checksum import fletcher_lanes

from bitnet_wasm.wasm_kernels.abi import defines

KERNELS = ["bn_checksum", "bn_checksum_ref"]


def digest(lib, kernel: str, data: np.ndarray, pieces=()) -> str:
    sums = np.zeros(defines()["BN_CHECKSUM_SUMS"], np.uint32)
    start = 0
    for end in (*pieces, data.size):
        getattr(lib, kernel)(data[start:end], end - start, sums)
        start = end
    return "".join(f"{int(s):08x}" for s in sums)


@pytest.mark.parametrize("kernel", KERNELS)
def test_checksum_is_its_definition_at_any_length(lib, kernel):
    rng = np.random.default_rng(11)
    for size in (0, 1, 3, 15, 16, 17, 63, 64, 65, 1000, 4099, 70001):
        data = rng.integers(0, 256, size, dtype=np.uint8)
        assert digest(lib, kernel, data) == fletcher_lanes(data.tobytes()), size


@pytest.mark.parametrize("kernel", KERNELS)
def test_pieces_of_whole_groups_sum_as_the_whole(lib, kernel):
    data = np.random.default_rng(12).integers(0, 256, 5000, dtype=np.uint8)
    assert digest(lib, kernel, data, pieces=(16, 16, 1024, 4096)) == fletcher_lanes(data.tobytes())


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_sum_wraps(lib, kernel):
    data = np.full(1 << 16, 0xFF, np.uint8)
    assert digest(lib, kernel, data) == fletcher_lanes(data.tobytes())


def test_damage_changes_the_digest(lib):
    data = np.random.default_rng(13).integers(0, 256, 3 * 4096, dtype=np.uint8)
    intact = digest(lib, "bn_checksum", data)
    flipped = data.copy()
    flipped[777] ^= 4
    swapped = data.copy()
    swapped[16:20], swapped[32:36] = data[32:36], data[16:20]
    for damaged in (flipped, swapped):
        assert digest(lib, "bn_checksum", damaged) == fletcher_lanes(damaged.tobytes()) != intact
