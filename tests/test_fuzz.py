"""Seeded fuzzing of what users hand us: checkpoints to `build`, sites to `load` and `export-gguf`,
options to `generate`.
Every outcome must be a clear error naming the file at fault, or a result identical to the
undamaged input's: never another exception (a traceback for the user), a hang, or a silent change.

CI runs a few dozen cases per target; BITNET_WASM_FUZZ=N runs N (the soak)."""
from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal

import numpy as np
import pytest
from fuzzing import REPLACEMENTS, cases, mutate_file, names_a_file

import bitnet_wasm
from bitnet_wasm.compiler.generation import OPTIONS, OptionError
from bitnet_wasm.compiler.gguf_export import export_gguf
from bitnet_wasm.compiler.writers import write_bitnet_packed

IDS = [1, 5, 9, 200, 17, 3]
CASE_SECONDS = 60  # a case slower than this on a loaded 2-core machine counts as a hang
CLEAR = (ValueError, OSError)  # the errors our readers raise with a message (CheckpointError, SiteError, ... are ValueErrors)


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(run, folder):
    """("ok", result) | ("clear", message) | ("vague", message) | ("crash", repr) | ("hang", message)."""
    try:
        with time_limit(CASE_SECONDS):
            return "ok", run()
    except Hang as e:
        return "hang", str(e)
    except CLEAR as e:
        return ("clear" if names_a_file(str(e), folder) else "vague"), f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001  (what we are looking for)
        return "crash", f"{type(e).__name__}: {e}"


def fuzz(count, seed0, make_case, run, expected):
    """Run `count` seeded cases; returns the failures as (seed, mutation, kind, detail)."""
    failures = []
    for seed in range(seed0, seed0 + count):
        rng = np.random.default_rng(seed)
        folder, what = make_case(rng, seed)
        kind, detail = outcome(lambda: run(folder), folder)
        if kind == "ok" and detail != expected:
            kind, detail = "silent", "result differs from the undamaged input's"
        if kind not in ("ok", "clear"):
            failures.append((seed, what, kind, str(detail)[:300]))
        shutil.rmtree(folder, ignore_errors=True)
    return failures


def copy_and_mutate(source, root, files):
    def make_case(rng, seed):
        folder = root / f"case-{seed}"
        shutil.copytree(source, folder)
        candidates = sorted(p for p in folder.rglob("*") if p.is_file() and p.name in files or p.name.startswith("weights-"))
        return folder, mutate_file(candidates[rng.integers(len(candidates))], rng)
    return make_case


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    written = write_bitnet_packed(root / "hf", hidden=48, layers=2, heads=3, kv_heads=1, intermediate=80, vocab=300, shards=2)
    return written.path


@pytest.fixture(scope="module")
def site(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz-site") / "site"
    bitnet_wasm.build(checkpoint, out, shard_mb=0.02, layout="mad", wasm=False, progress=False)
    return out


def site_result(folder):
    model = bitnet_wasm.load(folder)
    return model.logits(IDS).tobytes(), model.generate(IDS, max_new_tokens=4, temperature=0).tokens


def test_fuzz_sites(site, tmp_path):
    files = {"manifest.json", "tokenizer.json", "tokenizer_config.json"}
    failures = fuzz(cases(120), 0, copy_and_mutate(site, tmp_path, files), site_result, site_result(site))
    assert not failures, "\n".join(map(str, failures))


def test_fuzz_gguf_export(site, tmp_path):
    def exported(folder):
        return hashlib.sha256(export_gguf(folder, folder / "m.gguf").read_bytes()).hexdigest()

    expected = exported(site)
    (site / "m.gguf").unlink()
    files = {"manifest.json", "tokenizer.json", "tokenizer_config.json"}
    failures = fuzz(cases(60), 10_000, copy_and_mutate(site, tmp_path, files), exported, expected)
    assert not failures, "\n".join(map(str, failures))


def test_fuzz_checkpoints(checkpoint, tmp_path):
    """A mutated checkpoint may be a different valid model (a weight changed, a config value that still
    makes sense): then the site it builds must load and give finite logits. Anything else is an error
    naming the file."""
    def runs(folder):
        site = folder.parent / (folder.name + "-site")
        bitnet_wasm.build(folder, site, layout="mad", wasm=False, progress=False)
        logits = bitnet_wasm.load(site).logits(IDS)
        shutil.rmtree(site)
        return "runs" if np.isfinite(logits).all() else "the site gives non-finite logits"

    files = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors.index.json"}
    files |= {p.name for p in checkpoint.glob("*.safetensors")}
    failures = fuzz(cases(40), 20_000, copy_and_mutate(checkpoint, tmp_path, files), runs, "runs")
    assert not failures, "\n".join(map(str, failures))


def test_fuzz_generation_options(site):
    """Random option sets (known names with values of every type, and unknown names): an OptionError
    naming the option, or a generation whose tokens lie in the vocabulary and whose end is a known reason."""
    model = bitnet_wasm.load(site)
    names = [option.name for option in OPTIONS if not option.chat_only] + ["temprature"]
    vocab = model.vocab_size
    failures = []
    for seed in range(30_000, 30_000 + cases(200)):
        rng = np.random.default_rng(seed)
        options = {names[i]: REPLACEMENTS[rng.integers(len(REPLACEMENTS))] for i in rng.choice(len(names), rng.integers(1, 4), replace=False)}
        if "max_new_tokens" not in options:
            options["max_new_tokens"] = 4
        try:
            with time_limit(CASE_SECONDS):
                result = model.generate(IDS, **options)
        except OptionError as e:
            if not any(name in str(e) for name in options):
                failures.append((seed, options, f"vague: {e}"))
        except Exception as e:  # noqa: BLE001  (what we are looking for)
            failures.append((seed, options, f"{type(e).__name__}: {e}"))
        else:
            if not (all(0 <= t < vocab for t in result.tokens) and result.stop_reason in ("eos", "stop", "length", "context")):
                failures.append((seed, options, f"result {result.tokens} {result.stop_reason!r}"))
    assert not failures, "\n".join(map(str, failures[:20]))
