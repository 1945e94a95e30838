"""A checkpoint becomes a site: load -> graph -> memory plan -> generated C compiled to wasm ->
weight shards -> manifest.json. Everything model-specific goes to SITE/model/."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from bitnet_wasm.compiler.architectures import linear_shapes
from bitnet_wasm.compiler.chat import chat_format, end_of_turn_tokens
from bitnet_wasm.compiler.checkpoint import Checkpoint
from bitnet_wasm.compiler.codegen import ABI_BUFFERS, compile_sources
from bitnet_wasm.compiler.generation import manifest_table as generation_options
from bitnet_wasm.compiler.graph import AUTO, MAX_THREADS, BuildOptionError, BuildOptions, check_config
from bitnet_wasm.compiler.kernel_choice import choose, manifest_table
from bitnet_wasm.compiler.plan import plan_model
from bitnet_wasm.compiler.shards import write_shards
from bitnet_wasm.compiler.site import model_card, write_site
from bitnet_wasm.compiler.site_format import ALIGN, FORMAT, FORMAT_VERSION, MODEL_DIR, file_digests, write_manifest
from bitnet_wasm.compiler.sources import SOURCES_DIR, regenerate
from bitnet_wasm.compiler.sources import write as write_c
from bitnet_wasm.wasm_kernels.abi import step_abi
from bitnet_wasm.wasm_kernels.toolchain import TARGETS

# manifest["wasm"] key -> toolchain target; the threaded modules need a cross-origin isolated page
WASM_MODULES = {"simd128": "wasm", "relaxed": "wasm-relaxed", "simd128_threads": "wasm-threads", "relaxed_threads": "wasm-relaxed-threads"}
# What the hosts (web/worker.js, web/threads.js, runtime.py) call: all a site's modules export, unless built with sources=True
HOST_EXPORTS = ["bn_model_forward", "bn_model_prefill", "bn_model_step", "bn_threads_init", "bn_thread_main", "bn_checksum",
                "bn_set_dot_form", "bn_dot_form_probe", "bn_set_read_ahead"]


class MemoryWarning(UserWarning):
    pass


def _is_binary(checkpoint: Checkpoint) -> bool:
    kinds = {linear.binary for linear in checkpoint.linears.values()}
    if len(kinds) > 1:
        raise BuildOptionError(f"{checkpoint.source}: mixes 1-bit and ternary linear layers; one model uses one kind")
    return kinds == {True}


def _abi(graph, plan) -> dict:
    return {
        "arena_bytes": plan.total_bytes,
        "arena_align": ALIGN,
        "max_threads": MAX_THREADS,  # the threaded modules' kernel scratch is planned for this many
        "forward": "int bn_model_forward(uint8_t *arena, int n, int pos0, int all_logits)",
        "prefill": "int bn_model_prefill(uint8_t *arena, int n, int pos0)",
        "sample": "int bn_sample(logits, vocab, temperature, top_k, top_p, min_p, rng_state, sample_p, sample_idx)",
        "step": "int bn_model_step(uint8_t *arena, int position, int generated, int max_new_tokens, float temperature, int top_k, "
                "float top_p, float min_p, float repetition_penalty, float presence_penalty, float frequency_penalty)",
        **step_abi(),
        "buffers": {name: {"offset": plan.slots[name].offset, "bytes": plan.slots[name].nbytes, "dtype": graph.values[name].dtype}
                    for name in ABI_BUFFERS},
        "doc": "see forward.c: compiler/templates/forward.c.j2, or model/src/ of a site built with sources",
    }


def _check_regenerates(manifest: dict, sources_sha256: str) -> None:
    """A reader without model/src/ regenerates the C from the manifest (compiler/sources.py): it must be this C."""
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-src-") as tmp:
        if regenerate(manifest, Path(tmp)) != sources_sha256:
            raise AssertionError("the C regenerated from the manifest differs from the C just compiled: "
                                 "a build input is missing from manifest['model'], ['build'] or ['kernels']")


def _chat(checkpoint: Checkpoint) -> dict | None:
    chat = chat_format(checkpoint.tokenizer.config) if checkpoint.tokenizer else None
    if chat is None:
        return None
    from tokenizers import Tokenizer

    return {**chat, "stop_tokens": end_of_turn_tokens(chat, Tokenizer.from_str(checkpoint.tokenizer.tokenizer_json))}


def _write_tokenizer(checkpoint: Checkpoint, model_dir: Path) -> dict | None:
    if checkpoint.tokenizer is None:
        return None
    (model_dir / "tokenizer.json").write_text(checkpoint.tokenizer.tokenizer_json)
    (model_dir / "tokenizer_config.json").write_text(json.dumps(checkpoint.tokenizer.config, indent=1))
    return {"file": "tokenizer.json", "config": "tokenizer_config.json"}


def build(model: str | Path | Checkpoint, out_dir: str | Path, *, context: int | None = None, shard_mb: float = 32,
          embed: str = AUTO, kv: str = "f16", layout: str = AUTO, chunk: int = 32, wasm: bool = True, progress: bool = True,
          coi_service_worker: bool = False, page: bool = True, sources: bool = False) -> Path:
    """Build the site for `model` (a checkpoint directory or a loaded Checkpoint) into out_dir;
    returns the manifest's path. kv "f32": an f32 KV cache (exact mode, twice the cache memory). wasm=False skips compiling the wasm modules (the Python
    runtime compiles its native library from the site's C itself). layout "auto" picks each linear
    shape's layout from kernel times measured here (compiler/kernel_choice.py). coi_service_worker: the
    page registers coi-sw.js, for static hosts that cannot send the COOP/COEP headers threads need.
    page=False: the model folder alone, without the runtime and index.html. sources=True: also ship the C
    (model/src/) and wasm modules exporting every kernel, for debugging and tests; a visitor needs neither."""
    if isinstance(model, Checkpoint):
        checkpoint = model
    else:
        from bitnet_wasm.compiler.loaders import load_checkpoint

        checkpoint = load_checkpoint(Path(model))
    binary = _is_binary(checkpoint)
    check_config(checkpoint.config)
    if len(checkpoint.config.eos_token_ids) > step_abi()["max_stop_tokens"]:
        raise BuildOptionError(f"{checkpoint.source}: {len(checkpoint.config.eos_token_ids)} end-of-sequence tokens; the runtime stops on at most {step_abi()['max_stop_tokens']}")
    options = BuildOptions(context=context, chunk=chunk, embed=embed, kv=kv, layout=layout, shard_mb=shard_mb)
    options.resolved(checkpoint.config)  # bad options fail before any kernel is timed
    kernels = choose(linear_shapes(checkpoint.config).values(), layout, binary, progress)
    options = dataclasses.replace(options, shape_layouts=tuple((k.shape, k.layout) for k in kernels))
    graph, plan = plan_model(checkpoint.config, options, binary)
    if plan.warning:
        warnings.warn(plan.warning, MemoryWarning, stacklevel=2)

    model_dir = Path(out_dir) / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-src-") as tmp:
        src_dir = model_dir / SOURCES_DIR if sources else Path(tmp)
        sources_sha256 = write_c(graph, plan, src_dir)
        exports = None if sources else HOST_EXPORTS
        with ThreadPoolExecutor(len(WASM_MODULES)) as pool:  # each compile is a clang process
            list(pool.map(lambda target: compile_sources(src_dir, target, model_dir / TARGETS[target].filename, exports),
                          WASM_MODULES.values() if wasm else ()))

    with tqdm(total=sum(w.nbytes for w in graph.weights.values()), unit="B", unit_scale=True, desc="packing weights", disable=not progress) as bar:
        shards, tensors = write_shards(graph, plan, checkpoint, model_dir, progress=lambda w: bar.update(w.nbytes))

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dataclasses.asdict(checkpoint.config),
        "tokenizer": _write_tokenizer(checkpoint, model_dir),
        "chat": _chat(checkpoint),
        "generation": generation_options(),
        "wasm": {key: TARGETS[target].filename for key, target in WASM_MODULES.items()} if wasm else None,
        "sources": {"sha256": sources_sha256, "dir": SOURCES_DIR if sources else None},
        "abi": _abi(graph, plan),
        "plan": plan.to_json(),
        "tensors": tensors,
        "shards": shards,
        "kernels": manifest_table(kernels, layout),
        "build": {**{k: v for k, v in dataclasses.asdict(graph.options).items() if k != "shape_layouts"},  # see "kernels"
                  "linear_layout": graph.linear_layout, "source": str(checkpoint.source), "bitnet_wasm": importlib.metadata.version("bitnet-wasm")},
    }
    manifest["card"] = model_card(manifest)
    _check_regenerates(manifest, sources_sha256)
    manifest["files"] = file_digests(model_dir, [*(manifest["wasm"] or {}).values(), *(v for v in (manifest["tokenizer"] or {}).values())])
    path = write_manifest(model_dir, manifest)
    if wasm and page:
        write_site(Path(out_dir), manifest, coi_service_worker)
    return path
