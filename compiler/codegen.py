"""Emits the model's forward step as readable C, one kernel call per graph op with constant
shapes and arena offsets (templates/forward.c.j2), and compiles it together with the kernels."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import jinja2
import numpy as np

from bitnet_wasm.compiler.graph import N, Graph, Op
from bitnet_wasm.compiler.plan import MemoryPlan
from bitnet_wasm.wasm_kernels import SOURCE_DIR
from bitnet_wasm.wasm_kernels.layouts import c_layout_id
from bitnet_wasm.wasm_kernels.toolchain import TARGETS, compile_target, kernel_sources

CTYPES = {"f32": "float", "f16": "uint16_t", "i8": "int8_t", "u8": "uint8_t", "i32": "int32_t", "u64": "uint64_t"}

# One C call per op kind (the template makes it a statement, OP(call);). Fields: r0.. the buffers read, w0.. written, W0.. the weights,
# plus the op's attrs; head_* read only the last `rows` rows (all of them for logits()). The
# *_parallel calls share their rows or heads among the threads of a threaded build (parallel.c).
CALLS = {
    "embed_f16": "bn_embed_f16({W0}, {r0}, {w0}, n, {dim}, {vocab})",
    "embed_q8": "bn_embed_q8({W0}, {W1}, {r0}, {w0}, n, {dim}, {vocab})",
    "embed_q7": "bn_embed_q7({W0}, {W1}, {r0}, {w0}, n, {dim}, {vocab})",
    "embed_q4": "bn_embed_q4({W0}, {W1}, {r0}, {w0}, n, {dim}, {vocab})",
    "rmsnorm": "bn_rmsnorm({r0}, {W0}, {w0}, n, {dim}, {eps})",
    "quantize": "bn_quantize_rows({r0}, {w0}, {w1}, n, {dim})",
    "bitlinear": "bn_bitlinear_parallel({layout}, {W0}, {W1}, {r0}, {r1}, {w0}, {scratch}, {out_dim}, {in_dim}, n)",
    "bitlinear2": "bn_bitlinear2_parallel({layout}, {parts}, {r0}, {r1}, {scratch}, {in_dim}, n)",
    "bitlinear3": "bn_bitlinear3_parallel({layout}, {parts}, {r0}, {r1}, {scratch}, {in_dim}, n)",
    "rope": "bn_rope({r0}, n, {heads}, {head_dim}, pos0, {theta})",
    "kv_store": "{kernel}({r0}, {w0}, n, {kv_heads}, {head_dim}, {context}, pos0)",
    "attention": "{kernel}_parallel({r0}, {r1}, {r2}, {w0}, {w1}, n, {heads}, {kv_heads}, {head_dim}, {context}, pos0)",
    "relu2_mul": "bn_relu2_mul({r0}, {r1}, {w0}, n * {dim})",
    "silu_mul": "bn_silu_mul({r0}, {r1}, {w0}, n * {dim})",
    "add": "bn_add({r0}, {r1}, {w0}, n * {dim})",
    "head_f16": "bn_head_f16_parallel({W0}, {r0} + (n - rows) * {dim}, {w0}, rows, {vocab}, {dim})",
    "head_q8": "bn_head_q8_parallel({W0}, {W1}, {r0} + (n - rows) * {dim}, {r1} + (n - rows), {w0}, rows, {vocab}, {dim})",
    "head_q7": "bn_head_q7_parallel({W0}, {W1}, {r0} + (n - rows) * {dim}, {r1} + (n - rows), {w0}, rows, {vocab}, {dim})",
    "head_q4": "bn_head_q4_parallel({W0}, {W1}, {r0} + (n - rows) * {dim}, {r1} + (n - rows), {w0}, rows, {vocab}, {dim})",
}
PART = "{W0}, {W1}, {w0}, {out_dim}"  # one linear of a bitlinearN call
MAX_FUSED = 3  # linears one call runs (parallel.c's MAX_PARTS)
# The width of each activation buffer (of its n rows) by the name of its #define; a quantized
# buffer (h_q, h_s) goes with its source. An op's shape attrs are written with these names.
WIDTHS = {"x": "HIDDEN", "h": "HIDDEN", "o": "HIDDEN", "down": "HIDDEN", "final": "HIDDEN", "q": "Q_DIM", "att": "Q_DIM",
          "att_norm": "Q_DIM", "k": "KV_DIM", "v": "KV_DIM", "gate": "FFN", "up": "FFN", "mlp": "FFN"}
HEADS_OF_WIDTH = {"Q_DIM": "HEADS", "KV_DIM": "KV_HEADS"}
ATTR_NAMES = {"vocab": "VOCAB", "kv_heads": "KV_HEADS", "head_dim": "HEAD_DIM", "context": "CONTEXT", "eps": "EPS", "theta": "ROPE_THETA"}
# One line above an op, llama2.c style; keyed by the op's profile label (_labels), "*" for any subject.
COMMENTS = {
    "embed_* embed": "token embeddings into the residual stream x", "embed_* lm_head": "token embeddings into the residual stream x",
    "rmsnorm input_norm": "attention: rmsnorm, then q, k, v for these positions (activations to int8 once, unless each linear has its own norm)",
    "rope q": "RoPE relative positional encoding of q and k",
    "kv_store k": "k and v of these positions into this layer's cache (f16)",
    "attention q": "multi-head attention over the cache; heads share kv heads (GQA)",
    "rmsnorm attn_sub_norm": "sub-norm, then the output projection",
    "add o": "residual connection back into x",
    "rmsnorm post_attention_norm": "feed-forward: rmsnorm, then gate and up",
    "relu2_mul gate": "relu(gate)^2 * up, into gate", "silu_mul gate": "silu(gate) * up, into gate",
    "rmsnorm ffn_sub_norm": "sub-norm, then the down projection",
    "add down": "residual connection back into x",
    "rmsnorm norm": "final rmsnorm, then the classifier into logits (only the last position's row unless all_logits)",
}
BUFFER_NOTES = {"x": "the residual stream", "scores": "attention scores, a slice per thread",
                "bitlinear_scratch": "the LUT kernel's tables, a slice per thread"}
# Buffers the template itself names (the rest are activations, declared from the plan).
TEMPLATE_BUFFERS = {"tokens": "tokens", "k_cache": "k_cache", "v_cache": "v_cache", "logits": "logits"}
ABI_BUFFERS = ("tokens", "logits", "rng_state", "sample_p", "sample_idx", "step", "k_cache", "v_cache")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("bitnet_wasm.compiler", "templates"),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
)


def c_float(x: float) -> str:
    """The shortest C literal that parses to exactly float32(x)."""
    value = np.float32(x)
    if not math.isfinite(value):
        raise ValueError(f"cannot emit the non-finite constant {x} into C")
    return f"{str(value)}f"


def c_name(name: str) -> str:
    return name.replace(".", "_")


def _attr(value) -> str:
    return c_float(value) if isinstance(value, float) else str(value)


def _width(buffer: str) -> str | None:
    return WIDTHS.get(buffer.removesuffix("_q").removesuffix("_s"))


def _attr_name(op: Op, key: str) -> str | None:
    """The #define an op's shape attr is written as, or None for its number."""
    widths = [w for w in map(_width, op.reads + op.writes) if w]
    by_key = {"out_dim": _width(op.writes[0]) if op.writes else None, "in_dim": _width(op.reads[0]) if op.reads else None,
              "dim": widths[0] if widths else None,
              "heads": HEADS_OF_WIDTH.get(widths[0]) if widths else None}
    return ATTR_NAMES.get(key) or by_key.get(key)


def _comment(label: str) -> str | None:
    kind, subject = label.split(" ", 1)
    return COMMENTS.get(label) or COMMENTS.get(f"{kind.split('_')[0]}_* {subject}")


def _labels(ops: list[Op]) -> list[str]:
    """Each op's name in a profile: its kind and the weight or buffer that tells it apart; a
    quantize is named after the linears that follow it."""
    labels = []
    for i, op in enumerate(ops):
        if op.kind == "quantize":
            readers = []
            for later in ops[i + 1:]:
                if later.kind != "bitlinear" or later.reads[0] != op.writes[0]:
                    break
                readers.append(later.weights[0])
            subject = "+".join(readers) or op.reads[0]
        else:
            subject = op.weights[0] if op.weights else (op.reads[-1] if op.kind == "add" else op.buffers[0])
        labels.append(f"{op.kind} {subject}")
    return labels


def _fused(ops: list[Op]) -> list[list[Op]]:
    """The ops as calls: consecutive linears of one input and layout (q, k, v; gate, up) share one
    call, so the threads take them as one job."""
    calls: list[list[Op]] = []
    for op in ops:
        last = calls[-1] if calls else None
        if (op.kind == "bitlinear" and last and last[0].kind == "bitlinear" and len(last) < MAX_FUSED and last[0].reads == op.reads
                and last[0].attrs["layout"] == op.attrs["layout"] and last[0].writes[1:] == op.writes[1:]):
            last.append(op)
        else:
            calls.append([op])
    return calls


def _fused_call(ops: list[Op], weight_expr, names: dict) -> str:
    if len(ops) == 1:
        return _call(ops[0], weight_expr, names)
    fields = _fields(ops[0], weight_expr, names)
    fields["parts"] = ", ".join(PART.format(**_fields(op, weight_expr, names)) for op in ops)
    return CALLS[f"bitlinear{len(ops)}"].format(**fields)


def _fields(op: Op, weight_expr, names: dict) -> dict:
    """The op's C call fields; names: #define -> value, used for a shape attr where the value matches."""
    fields = {k: _attr(v) for k, v in op.attrs.items()}
    fields.update({k: name for k, v in op.attrs.items() if (name := _attr_name(op, k)) and names.get(name) == v})
    fields.update({f"r{i}": TEMPLATE_BUFFERS.get(r, r) for i, r in enumerate(op.reads)})
    fields.update({f"w{i}": TEMPLATE_BUFFERS.get(w, w) for i, w in enumerate(op.writes)})
    fields.update({f"W{i}": weight_expr(name) for i, name in enumerate(op.weights)})
    if op.kind == "bitlinear":  # the layout's row of wasm_kernels/layouts.c; working memory if it takes any
        fields["layout"] = c_layout_id(op.attrs["layout"])
        fields["scratch"] = op.writes[1] if len(op.writes) > 1 else "0"
    return fields


def _call_labels(ops: list[Op]) -> list[str]:
    """One profile label per call: a fused call's linears joined by "+" ("bitlinear q_proj+k_proj+v_proj")."""
    labels, names = [], iter(_labels(ops))
    for call in _fused(ops):
        parts = [next(names) for _ in call]
        labels.append(parts[0] + "".join("+" + part.split(" ", 1)[1] for part in parts[1:]))
    return labels


def _call(op: Op, weight_expr, names: dict) -> str:
    return CALLS[op.kind].format(**_fields(op, weight_expr, names))


def generate(graph: Graph, plan: MemoryPlan) -> tuple[str, str]:
    """(forward.c, model.h) for `graph` laid out by `plan`. Weight values, inverse weight scales
    included, live in the arena: the C depends only on the shapes and the plan."""
    c, slots = graph.config, plan.slots
    roles = [name.split(".", 2)[2] for name in graph.weights if name.startswith("layers.0.") and not name.endswith(".wscale")]
    linears = [r for r in roles if graph.layer_weight(r, 0).packing in graph.linear_layouts.values()]
    norms = [r for r in roles if r not in linears]

    def layer_fields(i: int) -> list[str]:
        fields = [f".{r} = {slots[f'layers.{i}.{r}'].offset}u" for r in norms]
        fields += [f".{r} = {{ {slots[f'layers.{i}.{r}'].offset}u, {slots[f'layers.{i}.{r}.wscale'].offset}u }}" for r in linears]
        return fields

    def ctype(name: str) -> str:
        return CTYPES[(graph.weights.get(name) or graph.values[name]).dtype]

    def layer_weight(role: str) -> str:  # role: "input_norm", "q_proj", "q_proj.wscale", ...: the template's macros
        if role in linears:
            return f"WEIGHTS({role})"
        if role.endswith(".wscale"):
            return f"WSCALE({role.removesuffix('.wscale')})"
        return f"NORM({role})"

    names = {"VOCAB": c.vocab_size, "HIDDEN": c.hidden_size, "Q_DIM": c.num_heads * c.head_dim, "KV_DIM": c.num_kv_heads * c.head_dim,
             "FFN": c.intermediate_size, "HEADS": c.num_heads, "KV_HEADS": c.num_kv_heads, "HEAD_DIM": c.head_dim,
             "EPS": c.rms_norm_eps, "ROPE_THETA": c.rope_theta, "CONTEXT": plan.context}

    def shape(value) -> str:
        dims = ["n" if d == N else next((k for k in WIDTHS.values() if k == _width(value.name) and names[k] == d), str(d)) for d in value.shape]
        return f"[{', '.join(dims)}]"

    def declarations_of(values) -> list[str]:
        """One line per buffer with its shape; buffers sharing bytes under one comment."""
        lines = []
        for i, v in enumerate(values):
            offset = slots[v.name].offset
            sharing = [o.name for o in values if slots[o.name].offset == offset]
            if len(sharing) > 1 and (i == 0 or slots[values[i - 1].name].offset != offset):
                lines.append(f"/* {', '.join(sharing)}: the same bytes, as no two of them are live at once (plan.py) */")
            notes = "; ".join([shape(v)] + ([BUFFER_NOTES[v.name]] if v.name in BUFFER_NOTES else []))
            lines.append(f"{ctype(v.name)} *{v.name} = ({ctype(v.name)} *)(arena + {offset}u);  /* {notes} */")
        return lines

    kv_ctype = ctype("k_cache")
    activations = sorted((v for v in graph.values.values() if v.region == "activations"), key=lambda v: slots[v.name].offset)
    global_weights = sorted({w for op in graph.prologue + graph.epilogue for w in op.weights}, key=lambda w: slots[w].offset)
    declarations = (
        declarations_of(activations)
        + [f"{kv_ctype} *k_caches = ({kv_ctype} *)(arena + K_CACHE);  /* [NUM_LAYERS, KV_HEADS, CONTEXT, HEAD_DIM] */",
           f"{kv_ctype} *v_caches = ({kv_ctype} *)(arena + V_CACHE);  /* [NUM_LAYERS, KV_HEADS, CONTEXT, HEAD_DIM] */",
           "float *logits = (float *)(arena + LOGITS);  /* [rows, VOCAB] */"]
        + [f"const {ctype(w)} *{c_name(w)} = (const {ctype(w)} *)(arena + {slots[w].offset}u);" for w in global_weights]
    )
    constants = {
        **{name: _attr(value) for name, value in names.items()}, "NUM_LAYERS": c.num_layers,
        "CHUNK": plan.chunk, "ARENA_BYTES": f"{plan.total_bytes}u",
        "KV_LAYER_ELEMS": "((size_t)CONTEXT * KV_DIM)",
        **{name.upper(): f"{slots[name].offset}u" for name in ABI_BUFFERS},
    }

    def statements(ops: list[Op], weight_expr) -> list[tuple[str | None, str]]:
        return [(_comment(label), _fused_call(call, weight_expr, names)) for call, label in zip(_fused(ops), _call_labels(ops))]
    forward_c = _templates.get_template("forward.c.j2").render(
        model_name=c.name or c.architecture,
        constants=constants,
        layer_norms=norms,
        layer_linears=linears,
        kv_ctype=kv_ctype,
        layers=[layer_fields(i) for i in range(c.num_layers)],
        declarations=declarations,
        prologue=statements(graph.prologue, c_name),
        layer=statements(graph.layer, layer_weight),
        epilogue=statements(graph.epilogue, c_name),
        labels=_call_labels(graph.prologue) + _call_labels(graph.layer) + _call_labels(graph.epilogue),
    )
    model_h = _templates.get_template("model.h.j2").render(model_name=c.name or c.architecture, arena_bytes=plan.total_bytes)
    return forward_c, model_h


def write_sources(src_dir: Path, forward_c: str, model_h: str) -> list[Path]:
    """The site's C: the kernels it was compiled with, plus forward.c and model.h."""
    src_dir.mkdir(parents=True, exist_ok=True)
    for path in kernel_sources() + sorted(SOURCE_DIR.glob("*.h")):
        shutil.copyfile(path, src_dir / path.name)
    (src_dir / "forward.c").write_text(forward_c)
    (src_dir / "model.h").write_text(model_h)
    return sorted(src_dir.glob("*.c"))


def compile_sources(src_dir: Path, target: str, out: Path, exports: list[str] | None = None) -> Path:
    return compile_target(TARGETS[target], sorted(Path(src_dir).glob("*.c")), out, exports=exports)
