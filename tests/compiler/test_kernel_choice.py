"""Kernel selection per matrix shape: the default layout, or measured in wasmtime and cached, recorded
in the manifest, and never a change of numbers (every layout computes the same int32 sums)."""
import json

import numpy as np
import pytest

import bitnet_wasm
from bitnet_wasm.cli import main as cli
from bitnet_wasm.compiler import kernel_choice
from bitnet_wasm.compiler.graph import BuildOptionError
from bitnet_wasm.compiler.kernel_choice import MEASURED_TARGETS, TimeCache, choose, format_table
from bitnet_wasm.compiler.site import model_card
from bitnet_wasm.compiler.writers import write_bitnet_1bit, write_bitnet_packed

SHAPE = dict(hidden=48, heads=3, kv_heads=1, intermediate=100, layers=2, vocab=320)
LINEAR_SHAPES = {"q_proj": (48, 48), "k_proj": (16, 48), "v_proj": (16, 48), "o_proj": (48, 48),
                 "gate_proj": (100, 48), "up_proj": (100, 48), "down_proj": (48, 100)}
MIXED = {(48, 48): "lut", (16, 48): "mad", (100, 48): "mad", (48, 100): "lut"}  # a choice with both layouts


@pytest.fixture
def timings(monkeypatch):
    """Every shape the real time_layouts measures, in order."""
    measured = []
    real = kernel_choice.time_layouts

    def counted(lib, layouts, shape, **kw):
        measured.append(shape)
        return real(lib, layouts, shape, **kw)

    monkeypatch.setattr(kernel_choice, "time_layouts", counted)
    return measured


def test_each_distinct_shape_is_measured_once_per_target_then_cached(tmp_path, timings):
    path = tmp_path / "times.json"
    shapes = list(LINEAR_SHAPES.values())
    choices = choose(shapes, "measured", cache=TimeCache(path))
    distinct = list(dict.fromkeys(shapes))
    assert [c.shape for c in choices] == distinct and sorted(timings) == sorted(distinct * len(MEASURED_TARGETS))
    for c in choices:
        assert c.how == "measured" and set(c.ms) == {"mad", "lut"}
        assert all(ms > 0 for by_target in c.ms.values() for ms in by_target.values()) and set(c.ms["mad"]) == set(MEASURED_TARGETS)
        assert c.layout == min(c.ms, key=lambda layout: sum(c.ms[layout].values()))
    digest = TimeCache(path).digest
    stored = json.loads(path.read_text())["ms"]
    assert set(stored) == {f"{digest}/{target}/{layout}/{o}x{i}" for target in MEASURED_TARGETS.values()
                           for layout in ("mad", "lut") for o, i in distinct}

    mtime, timings[:] = path.stat().st_mtime_ns, []
    assert choose(shapes, "measured", cache=TimeCache(path)) == choices  # a rebuild of the same shapes measures nothing
    assert timings == [] and path.stat().st_mtime_ns == mtime
    choose(shapes + [(32, 48)], "measured", cache=TimeCache(path))
    assert timings == [(32, 48)] * len(MEASURED_TARGETS)
    assert "48x100" in format_table(choices)


def test_default_forced_and_binary_layouts_measure_nothing(tmp_path, timings):
    cache = TimeCache(tmp_path / "times.json")
    assert {(c.layout, c.how, len(c.ms)) for c in choose(LINEAR_SHAPES.values(), cache=cache)} == {("mad", "default", 0)}
    assert {(c.layout, c.how, len(c.ms)) for c in choose(LINEAR_SHAPES.values(), "lut", cache=cache)} == {("lut", "forced", 0)}
    assert {(c.layout, c.how) for c in choose(LINEAR_SHAPES.values(), binary=True, cache=cache)} == {("binary", "only")}
    with pytest.raises(BuildOptionError, match="--layout mad: the model has 1-bit weights, whose only layout is binary"):
        choose(LINEAR_SHAPES.values(), "mad", binary=True, cache=cache)
    with pytest.raises(BuildOptionError, match="--layout measured: the model has 1-bit weights"):
        choose(LINEAR_SHAPES.values(), "measured", binary=True, cache=cache)
    with pytest.raises(BuildOptionError, match="--layout fast: choose one of auto, measured, mad, lut"):
        choose(LINEAR_SHAPES.values(), "fast", cache=cache)
    assert timings == [] and not cache.path.exists()


def seed(cache_dir, layouts: dict):
    """A time table in which layouts[shape] is the faster one on both targets."""
    cache = TimeCache(cache_dir / kernel_choice.CACHE_FILE)
    for shape, fast in layouts.items():
        for target in MEASURED_TARGETS.values():
            for layout in ("mad", "lut"):
                cache.put(target, layout, shape, 1.0 if layout == fast else 2.0)
    cache.save()


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """One checkpoint built with --layout mad, lut, auto, measured (here) and measured over a seeded
    time table that mixes both layouts (with its wasm modules)."""
    root = tmp_path_factory.mktemp("kernel-choice")
    written = write_bitnet_packed(root / "hf", seed=0, **SHAPE)
    built = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITNET_WASM_CACHE", str(root / "cache"))
        for layout in ("mad", "lut", "auto", "measured"):
            bitnet_wasm.build(written.path, root / layout, layout=layout, wasm=False, progress=False)
            built[layout] = root / layout
        seed(root / "seeded-cache", MIXED)
        mp.setenv("BITNET_WASM_CACHE", str(root / "seeded-cache"))
        bitnet_wasm.build(written.path, root / "mixed", layout="measured", progress=False)
        built["mixed"] = root / "mixed"
        yield built


def manifest(site):
    return json.loads((site / "model/manifest.json").read_text())


def test_every_layout_choice_gives_the_same_logits_bit_for_bit(sites):
    mixed = manifest(sites["mixed"])
    assert {mixed["tensors"][f"layers.1.{role}"]["layout"] for role in LINEAR_SHAPES} == {"mad", "lut"}
    ids = np.random.default_rng(0).integers(0, SHAPE["vocab"], 40)  # > one 32-token chunk
    expected = bitnet_wasm.load(sites["mad"]).logits(ids)
    for site, backend in [("lut", "native"), ("auto", "native"), ("measured", "native"), ("mixed", "native"), ("mixed", "wasm"), ("mixed", "wasm-relaxed")]:
        np.testing.assert_array_equal(bitnet_wasm.load(sites[site], backend).logits(ids), expected, err_msg=f"{site} {backend}")


def test_manifest_records_the_table_and_how_each_choice_was_made(sites):
    auto, measured, forced, mixed = (manifest(sites[name]) for name in ("auto", "measured", "lut", "mixed"))
    table = measured["kernels"]
    assert table["layout"] == "measured" and table["n"] == 1 and set(table["shapes"]) == {"48x48", "16x48", "100x48", "48x100"}
    for role, (out, in_) in LINEAR_SHAPES.items():
        entry = table["shapes"][f"{out}x{in_}"]
        assert entry["how"] == "measured" and measured["tensors"][f"layers.0.{role}"]["layout"] == entry["choice"]
        assert all(ms > 0 for layout in ("mad", "lut") for ms in entry["ms"][layout].values())
    assert measured["build"]["layout"] == "measured" and "shape_layouts" not in measured["build"]
    assert measured["build"]["linear_layout"] == "+".join(sorted({e["choice"] for e in table["shapes"].values()}))
    assert {(e["choice"], e["how"], len(e["ms"])) for e in auto["kernels"]["shapes"].values()} == {("mad", "default", 0)}
    assert auto["build"]["linear_layout"] == "mad" and auto["kernels"]["rule"].startswith("mad for every shape")
    assert {(e["choice"], e["how"], len(e["ms"])) for e in forced["kernels"]["shapes"].values()} == {("lut", "forced", 0)}
    assert forced["build"]["linear_layout"] == "lut" and forced["kernels"]["layout"] == "lut"
    assert {k: e["choice"] for k, e in mixed["kernels"]["shapes"].items()} == {f"{o}x{i}": layout for (o, i), layout in MIXED.items()}
    assert mixed["build"]["linear_layout"] == "lut+mad" and model_card(mixed)["bits_per_weight"] == 1.58


def test_cli_refuses_a_ternary_layout_for_a_binary_model(tmp_path, capsys):
    written = write_bitnet_1bit(tmp_path / "hf", seed=0, dtype="float16", **SHAPE)
    assert cli(["build", str(written.path), "--out", str(tmp_path / "site"), "--layout", "lut", "--no-progress"]) == 2
    assert "--layout lut: the model has 1-bit weights, whose only layout is binary" in capsys.readouterr().err
