"""The model as a small IR: named buffers with shapes, and the ops (kernel calls) between them.

One forward step takes n <= chunk tokens at positions pos0 .. pos0+n-1. The graph is a
prologue (embedding), one layer body that runs num_layers times with that layer's weights
(weights in the body are named by role, e.g. "q_proj" -> "layers.{l}.q_proj"), and an epilogue
(final norm, head). Op kinds name the C calls codegen emits; attrs hold their constant shapes.
Sampling is not an op: the runtime calls bn_sample on the logits between steps."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from bitnet_wasm.compiler.architectures import Architecture, architecture, linear_shapes
from bitnet_wasm.compiler.checkpoint import ModelConfig
from bitnet_wasm.wasm_kernels.abi import attention_scratch, defines, max_threads, q4_groups, q4_row_bytes
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

N = "n"  # symbolic row count of activations: the tokens of the current step
DTYPE_BYTES = {"f32": 4, "f16": 2, "i8": 1, "u8": 1, "i32": 4, "u64": 8}
REGIONS = ("weights", "kv", "activations", "io")  # arena order
STEP_WORDS = defines()["BN_STEP_WORDS"]  # bn_generate_step's chosen token and stop tokens
MAX_THREADS = max_threads()  # kernel scratch is kept once per thread that may share an op


class BuildOptionError(ValueError):
    pass


@dataclass(frozen=True)
class EmbeddingFormat:
    """How the embedding table (and the head, which reads the same kind of table) is stored."""

    embed_op: str
    head_op: str
    tensors: tuple[tuple[str, str, str], ...]  # (name suffix, packing, dtype)
    head_reads_quantized: bool


EMBEDDINGS = {
    "f16": EmbeddingFormat("embed_f16", "head_f16", (("", "f16", "f16"),), head_reads_quantized=False),
    "q8": EmbeddingFormat("embed_q8", "head_q8", (("", "q8", "i8"), (".row_scale", "q8_scale", "f32")), head_reads_quantized=True),
    "q7": EmbeddingFormat("embed_q7", "head_q7", (("", "q7", "u8"), (".row_scale", "q7_scale", "f32")), head_reads_quantized=True),
    "q4": EmbeddingFormat("embed_q4", "head_q4", (("", "q4", "u8"), (".group_scale", "q4_scale", "f32")), head_reads_quantized=True),
}
# packings of a quantized table's scales -> their shape, from the (vocab, dim) of the table they scale
TABLE_SCALES = {"q8_scale": lambda vocab, dim: (vocab,), "q7_scale": lambda vocab, dim: (vocab,),
                "q4_scale": lambda vocab, dim: (vocab, q4_groups(dim))}
# packings of a (vocab, dim) table that are not one dtype element per value -> their bytes (bitnet.h's 4-bit rows)
TABLE_BYTES = {"q4": lambda vocab, dim: vocab * q4_row_bytes(dim)}
# --embed auto: the 7-bit table from this vocabulary size on, where the head is a large share of a
# token's reads (on the shipped demo models it moves the loss by < 0.01 nats: tests/train/test_head_quality.py), f16 below.
Q7_FROM_VOCAB = 16384
DEFAULT_CONTEXT_CAP = 2048


@dataclass(frozen=True)
class KVFormat:
    """The KV cache's element type and the kernels that write and read it."""

    dtype: str
    store: str
    attention: str   # its threaded entry point is attention + "_parallel"


KV_CACHES = {
    "f16": KVFormat("f16", "bn_kv_store", "bn_attention"),          # half the memory; keys and values rounded to f16
    "f32": KVFormat("f32", "bn_kv_store_f32", "bn_attention_f32"),  # exact mode: logits as transformers float32
}


@dataclass(frozen=True)
class BuildOptions:
    context: int | None = None   # KV cache length; None: min(model max_position, 2048)
    chunk: int = 32              # most tokens one forward step takes (prefill chunk)
    embed: str = "auto"          # storage of embedding table and head: a key of EMBEDDINGS, or "auto": by vocabulary size
    kv: str = "f16"              # KV cache element type: a key of KV_CACHES
    layout: str = "mad"          # kernels.layouts layout of ternary weights, or "auto" / "measured": per shape from shape_layouts
    shard_mb: float = 32         # weight shard size in MiB
    shape_layouts: tuple[tuple[tuple[int, int], str], ...] = ()  # ((out, in), layout) chosen per shape (kernel_choice)

    def resolved(self, config: ModelConfig) -> "BuildOptions":
        """Options with defaults filled in for this model; raises BuildOptionError naming the option."""
        context = self.context if self.context is not None else min(config.max_position, DEFAULT_CONTEXT_CAP)
        if not 1 <= context <= config.max_position:
            raise BuildOptionError(f"--context {context}: must be between 1 and the model's max_position {config.max_position}")
        if self.chunk < 1:
            raise BuildOptionError(f"chunk {self.chunk}: must be at least 1")
        embed = self.embed if self.embed != AUTO else ("q7" if config.vocab_size >= Q7_FROM_VOCAB else "f16")
        if embed not in EMBEDDINGS:
            raise BuildOptionError(f"--embed {self.embed}: choose one of {', '.join(EMBED_CHOICES)}")
        if self.kv not in KV_CACHES:
            raise BuildOptionError(f"--kv {self.kv}: choose one of {', '.join(KV_CACHES)}")
        if self.layout not in LAYOUT_CHOICES:
            raise BuildOptionError(f"--layout {self.layout}: choose one of {', '.join(LAYOUT_CHOICES)}")
        if not self.shard_mb * 2**20 >= 1:
            raise BuildOptionError(f"--shard-mb {self.shard_mb}: must be positive")
        return replace(self, context=context, chunk=min(self.chunk, context), embed=embed)


TERNARY_LAYOUTS = tuple(name for name, layout in LAYOUTS.items() if 0 in layout.values)
BINARY_LAYOUT = "binary"
AUTO = "auto"
MEASURED = "measured"
# layout auto for ternary weights: the fastest in the relaxed-SIMD engines (Chromium, Firefox), where one CPU
# instruction may do its int8 dot; lut is a few percent faster in Safari's simd128 (README: Kernel selection)
DEFAULT_TERNARY_LAYOUT = "mad"
LAYOUT_CHOICES = (AUTO, MEASURED) + TERNARY_LAYOUTS
EMBED_CHOICES = (AUTO,) + tuple(EMBEDDINGS)


@dataclass(frozen=True)
class Value:
    """A buffer in the arena. Shapes may start with N (one row per token of the step)."""

    name: str
    dtype: str
    shape: tuple
    region: str = "activations"
    per_layer: bool = False  # one copy per layer (the KV cache); the layer body sees its own

    def nbytes(self, chunk: int, num_layers: int) -> int:
        count = math.prod(chunk if d == N else d for d in self.shape)
        return count * DTYPE_BYTES[self.dtype] * (num_layers if self.per_layer else 1)


@dataclass(frozen=True)
class Weight:
    name: str                 # arena name: "embed", "embed.row_scale", "layers.0.q_proj", ...
    source: str               # the checkpoint tensor or linear it is packed from
    packing: str              # "f32" | "f16" | "q8" | "q7" | "q4" | one of TABLE_SCALES | "wscale" | a kernels.layouts name
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Op:
    kind: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)

    @property
    def buffers(self) -> tuple[str, ...]:
        return self.reads + self.writes


@dataclass
class Graph:
    config: ModelConfig
    arch: Architecture
    options: BuildOptions            # resolved
    linear_layouts: dict[tuple[int, int], str]  # (out, in) -> layout of the linears of that shape
    values: dict[str, Value]
    weights: dict[str, Weight]
    prologue: list[Op]
    layer: list[Op]
    epilogue: list[Op]

    def ops(self) -> list[Op]:
        return self.prologue + self.layer + self.epilogue

    def layer_weight(self, role: str, layer: int) -> Weight:
        return self.weights[f"layers.{layer}.{role}"]

    @property
    def linear_layout(self) -> str:
        """The linears' layout, or their layouts joined by "+" when shapes differ ("lut+mad")."""
        return "+".join(sorted(set(self.linear_layouts.values())))


def check_config(c: ModelConfig) -> None:
    positive = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "max_position")
    for name in positive:
        if getattr(c, name) < 1:
            raise BuildOptionError(f"model config: {name} = {getattr(c, name)} must be positive")
    if c.head_dim % 2:
        raise BuildOptionError(f"model config: head_dim {c.head_dim} must be even for rotate-half RoPE")
    if c.num_heads % c.num_kv_heads:
        raise BuildOptionError(f"model config: num_heads {c.num_heads} is not a multiple of num_kv_heads {c.num_kv_heads}")


class _Builder:
    """Collects values as ops mention them, so every buffer is declared where it is first used."""

    def __init__(self, config: ModelConfig, arch: Architecture, layouts: dict[tuple[int, int], str], kv: str):
        self.c, self.arch, self.layouts, self.kv = config, arch, layouts, kv
        self.values: dict[str, Value] = {}

    def act(self, name: str, width: int, dtype: str = "f32") -> str:
        self.values[name] = Value(name, dtype, (N, width))
        return name

    def rmsnorm(self, src: str, dst: str, role: str, dim: int, eps: float | None = None) -> Op:
        eps = self.c.rms_norm_eps if eps is None else eps
        return Op("rmsnorm", (src,), (self.act(dst, dim),), (role,), dict(dim=dim, eps=eps))

    def quantize(self, src: str, dim: int) -> Op:
        q, s = self.act(src + "_q", dim, "i8"), src + "_s"
        self.values[s] = Value(s, "f32", (N,))
        return Op("quantize", (src,), (q, s), attrs=dict(dim=dim))

    def bitlinears(self, src: str, in_dim: int, outputs: list[tuple[str, str, int]]) -> list[Op]:
        """Quantize src once, then one bitlinear per (role, destination, out_dim), each in its shape's layout.
        A linear with its own input norm (architectures.linear_norm) norms and quantizes its own copy of src."""
        normed = {role for role, _, _ in outputs if self.arch.has(role + "_norm")}
        ops = [self.quantize(src, in_dim)] if len(normed) < len(outputs) else []
        for role, dst, out_dim in outputs:
            x = src
            if role in normed:
                x = f"{src}_{role}"
                ops += [self.rmsnorm(src, x, role + "_norm", in_dim, self.c.linear_norm_eps), self.quantize(x, in_dim)]
            layout = LAYOUTS[self.layouts[(out_dim, in_dim)]]
            scratch = self.scratch(layout.scratch_bytes(in_dim))
            ops.append(Op("bitlinear", (x + "_q", x + "_s"), (self.act(dst, out_dim),) + scratch, (role, role + ".wscale"),
                          dict(layout=layout.name, out_dim=out_dim, in_dim=in_dim)))
        return ops

    def scratch(self, nbytes: int) -> tuple[str, ...]:
        """The bitlinear kernels' working memory (one slice per thread, sized for the largest need), if they need any."""
        if not nbytes:
            return ()
        old = self.values.get("bitlinear_scratch")
        self.values["bitlinear_scratch"] = Value("bitlinear_scratch", "u8", (max(MAX_THREADS * nbytes, old.shape[0] if old else 0),))
        return ("bitlinear_scratch",)


def _layer(b: _Builder, context: int) -> list[Op]:
    c = b.c
    H, I, hd = c.hidden_size, c.intermediate_size, c.head_dim
    q_dim, kv_dim = c.num_heads * hd, c.num_kv_heads * hd
    b.values["scores"] = Value("scores", "f32", (MAX_THREADS * attention_scratch(c.num_heads, c.num_kv_heads, c.head_dim, context),))  # per thread
    kv = KV_CACHES[b.kv]
    ops = [
        b.rmsnorm("x", "h", "input_norm", H),
        *b.bitlinears("h", H, [("q_proj", "q", q_dim), ("k_proj", "k", kv_dim), ("v_proj", "v", kv_dim)]),
        Op("rope", ("q",), ("q",), attrs=dict(heads=c.num_heads, head_dim=hd, theta=c.rope_theta)),
        Op("rope", ("k",), ("k",), attrs=dict(heads=c.num_kv_heads, head_dim=hd, theta=c.rope_theta)),
        Op("kv_store", ("k",), ("k_cache",), attrs=dict(kernel=kv.store, kv_heads=c.num_kv_heads, head_dim=hd, context=context)),
        Op("kv_store", ("v",), ("v_cache",), attrs=dict(kernel=kv.store, kv_heads=c.num_kv_heads, head_dim=hd, context=context)),
        Op("attention", ("q", "k_cache", "v_cache"), (b.act("att", q_dim), "scores"),
           attrs=dict(kernel=kv.attention, heads=c.num_heads, kv_heads=c.num_kv_heads, head_dim=hd, context=context)),
    ]
    att = "att"
    if b.arch.has("attn_sub_norm"):  # ops are built in order: values are declared, and the C written, in that order
        ops.append(b.rmsnorm("att", "att_norm", "attn_sub_norm", q_dim))
        att = "att_norm"
    ops += [
        *b.bitlinears(att, q_dim, [("o_proj", "o", H)]),
        Op("add", ("x", "o"), ("x",), attrs=dict(dim=H)),
        b.rmsnorm("x", "h", "post_attention_norm", H),
        *b.bitlinears("h", H, [("gate_proj", "gate", I), ("up_proj", "up", I)]),
        Op(b.arch.gated_mlp, ("gate", "up"), ("gate",), attrs=dict(dim=I)),
    ]
    mlp = "gate"
    if b.arch.has("ffn_sub_norm"):
        ops.append(b.rmsnorm("gate", "mlp", "ffn_sub_norm", I))
        mlp = "mlp"
    return ops + [
        *b.bitlinears(mlp, I, [("down_proj", "down", H)]),
        Op("add", ("x", "down"), ("x",), attrs=dict(dim=H)),
    ]


def _linear_layouts(c: ModelConfig, options: BuildOptions, binary: bool) -> dict[tuple[int, int], str]:
    shapes = set(linear_shapes(c).values())
    if binary:
        return {shape: BINARY_LAYOUT for shape in shapes}
    chosen = {shape: layout for shape, layout in options.shape_layouts}
    layouts = {shape: chosen.get(shape, options.layout) for shape in shapes}
    unknown = sorted(f"{shape}: {layout}" for shape, layout in layouts.items() if layout not in TERNARY_LAYOUTS)
    if unknown:
        raise BuildOptionError(f"--layout {options.layout}: no ternary layout for the linear shapes {', '.join(unknown)} "
                               f"(layouts auto and measured take them from compiler.kernel_choice)")
    return layouts


def _weights(c: ModelConfig, arch: Architecture, embedding: EmbeddingFormat, layouts: dict[tuple[int, int], str]) -> dict[str, Weight]:
    weights: list[Weight] = []

    def tensor(name, source, packing, dtype, shape):
        weights.append(Weight(name, source, packing, dtype, shape, math.prod(shape) * DTYPE_BYTES[dtype]))

    def table(name):
        V, H = c.vocab_size, c.hidden_size
        for suffix, packing, dtype in embedding.tensors:
            if packing in TABLE_BYTES:
                weights.append(Weight(name + suffix, name, packing, dtype, (V, H), TABLE_BYTES[packing](V, H)))
            else:
                tensor(name + suffix, name, packing, dtype, TABLE_SCALES[packing](V, H) if packing in TABLE_SCALES else (V, H))

    table("embed")
    for i in range(c.num_layers):
        for norm in arch.norms():
            tensor(f"layers.{i}.{norm.role}", f"layers.{i}.{norm.role}", "f32", "f32", norm.dims(c))
        for linear in arch.linears():
            name, shape = f"layers.{i}.{linear.role}", linear.dims(c)
            weights.append(Weight(name, name, layouts[shape], "u8", shape, LAYOUTS[layouts[shape]].packed_bytes(*shape)))
            tensor(name + ".wscale", name, "wscale", "f32", (1,))
    tensor("norm", "norm", "f32", "f32", (c.hidden_size,))
    if not c.tie_embeddings:
        table("lm_head")
    return {w.name: w for w in weights}


def build_graph(config: ModelConfig, options: BuildOptions = BuildOptions(), binary: bool = False) -> Graph:
    """The forward step of `config` under `options`; binary: 1-bit weights (original BitNet)."""
    check_config(config)
    arch = architecture(config.architecture)
    options = options.resolved(config)
    c, embedding = config, EMBEDDINGS[options.embed]
    linear_layouts = _linear_layouts(c, options, binary)
    H, V = c.hidden_size, c.vocab_size
    kv_shape = (c.num_kv_heads, options.context, c.head_dim)  # a kv head's rows in one stream (attention.c)
    b = _Builder(c, arch, linear_layouts, options.kv)
    for value in (
        Value("tokens", "i32", (options.context,), "io"),
        Value("logits", "f32", (N, V), "io"),
        Value("rng_state", "u64", (1,), "io"),
        Value("sample_p", "f32", (V,), "io"),
        Value("sample_idx", "i32", (V,), "io"),
        Value("step", "i32", (STEP_WORDS,), "io"),
        Value("k_cache", KV_CACHES[options.kv].dtype, kv_shape, "kv", per_layer=True),
        Value("v_cache", KV_CACHES[options.kv].dtype, kv_shape, "kv", per_layer=True),
    ):
        b.values[value.name] = value

    suffixes = [suffix for suffix, _, _ in embedding.tensors]
    head = "embed" if c.tie_embeddings else "lm_head"
    prologue = [Op(embedding.embed_op, ("tokens",), (b.act("x", H),), tuple("embed" + s for s in suffixes), dict(dim=H, vocab=V))]
    layer = _layer(b, options.context)
    epilogue = [b.rmsnorm("x", "final", "norm", H)]
    head_input = ("final",)
    if embedding.head_reads_quantized:
        epilogue.append(b.quantize("final", H))
        head_input = ("final_q", "final_s")
    epilogue.append(Op(embedding.head_op, head_input, ("logits",), tuple(head + s for s in suffixes), dict(dim=H, vocab=V)))
    return Graph(c, arch, options, linear_layouts, b.values, _weights(c, arch, embedding, linear_layouts), prologue, layer, epilogue)
