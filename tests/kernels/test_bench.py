import json

import pytest

from bitnet_wasm import cli
from bitnet_wasm.bench import kernels

ROW_KEYS = {"runtime": str, "variant": str, "shape": list, "working_set_mb": float, "ms": float, "gops": float, "gbps": float}


@pytest.fixture(scope="module")
def tiny_result(kernel_builds):
    return kernels.run(shapes=((20, 70),), big_shape=(8, 130), big_working_set_mb=0.05, stream_mb=0.5,
                       build_dir=kernel_builds["wasm"].parent, min_seconds=0.001)


def test_bench_json_shape(tiny_result):
    result = json.loads(json.dumps(tiny_result))
    assert set(result) == {"rows", "stream_gbps"}
    assert set(result["stream_gbps"]) == {"wasm", "native"} and all(v > 0 for v in result["stream_gbps"].values())
    for row in result["rows"]:
        assert {k: type(v) for k, v in row.items()} == ROW_KEYS
        assert row["ms"] > 0 and row["gops"] > 0 and row["gbps"] > 0
    measured = {(r["runtime"], r["variant"], tuple(r["shape"])) for r in result["rows"]}
    for runtime in ("wasm", "native"):
        for variant in kernels.VARIANTS:
            assert (runtime, variant.name, (20, 70)) in measured
        for name in kernels.STREAMING_VARIANTS:
            assert (runtime, name, (8, 130)) in measured


def test_big_working_set_rows_cycle_distinct_matrices(tiny_result):
    big = [r for r in tiny_result["rows"] if r["shape"] == [8, 130]]
    assert big and all(r["working_set_mb"] >= 0.05 for r in big)
    small = [r for r in tiny_result["rows"] if r["shape"] == [20, 70]]
    assert all(r["working_set_mb"] < 0.01 for r in small)


def test_table_lists_every_row(tiny_result):
    text = kernels.table(tiny_result)
    assert len(text.splitlines()) == 1 + len(tiny_result["rows"]) + 2
    assert "read bandwidth, wasm" in text and "lut-relaxed" in text


def test_bench_without_a_mode_says_what_to_choose(capsys):
    assert cli.main(["bench"]) == 2
    assert "--kernels" in capsys.readouterr().err
