"""The kernel ABI read from wasm_kernels/bitnet.h, and the argument checks every call goes through.

Each pointer parameter in the header carries its element count, e.g. `float *y /*[n*dim]*/`.
Before a call, the binding checks dtype, contiguity and exact length of every array against
that count, so a kernel never touches memory it was not given."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from bitnet_wasm.wasm_kernels import SOURCE_DIR

C_DTYPES = {
    "float": np.float32,
    "int8_t": np.int8,
    "uint8_t": np.uint8,
    "int16_t": np.int16,
    "uint16_t": np.uint16,
    "int32_t": np.int32,
    "uint32_t": np.uint32,
    "uint64_t": np.uint64,
}
SCALAR_KINDS = {"int": "i32", "uint32_t": "u32", "float": "f32", "void": "void"}

_DECL = re.compile(r"BN_(?:REF_)?API\s+(\w+)\s+(bn_\w+)\s*\(([^;]*)\)\s*;")
_PARAM = re.compile(r"^(const\s+)?(\w+)\s*(\*)?\s*(\w+)\s*(?:/\*\[(.*)\]\*/)?$")


class KernelArgumentError(ValueError):
    pass


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str
    pointer: bool
    const: bool
    count: str | None  # element-count expression for pointers

    @property
    def dtype(self):
        return np.dtype(C_DTYPES[self.ctype])


@dataclass(frozen=True)
class Signature:
    name: str
    returns: str
    params: tuple[Param, ...]

    @property
    def scalars(self):
        return [p for p in self.params if not p.pointer]


def _split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([" and 1 or 0
        depth -= ch in ")]" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [" ".join(p.split()) for p in parts if p.strip()]


def parse_header(text: str) -> dict[str, Signature]:
    text = re.sub(r"/\*(?!\[).*?\*/", "", text, flags=re.S)  # drop prose comments, keep /*[..]*/
    sigs = {}
    for ret, name, params in _DECL.findall(text):
        parsed = []
        for raw in _split_params(params):
            m = _PARAM.match(raw.strip())
            if not m:
                raise ValueError(f"bitnet.h: cannot parse parameter {raw!r} of {name}")
            const, ctype, star, pname, count = m.groups()
            if star and count is None:
                raise ValueError(f"bitnet.h: pointer {pname} of {name} has no /*[count]*/")
            if (star and ctype not in C_DTYPES) or (not star and ctype not in SCALAR_KINDS):
                raise ValueError(f"bitnet.h: unsupported type {ctype} in {name}")
            parsed.append(Param(pname, ctype, bool(star), bool(const), count))
        sigs[name] = Signature(name, ret, tuple(parsed))
    return sigs


@functools.cache
def kernel_abi() -> dict[str, Signature]:
    return parse_header((SOURCE_DIR / "bitnet.h").read_text())


@functools.cache
def defines() -> dict[str, int]:
    """The integer #defines of bitnet.h (BN_MAX_THREADS, BN_STEP_*, ...)."""
    return {name: int(value) for name, value in re.findall(r"^#define (BN_\w+) (-?\d+)$", (SOURCE_DIR / "bitnet.h").read_text(), re.M)}


def max_threads() -> int:
    """BN_MAX_THREADS of bitnet.h: the most threads a forward pass splits its work among."""
    return defines()["BN_MAX_THREADS"]


DOT_FORMS = {"BN_DOT_I16": "i16", "BN_DOT_I32": "i32"}


def dot_form_name(form: int | None) -> str:
    """The name of a relaxed dot form (bn_set_dot_form's number, as a browser's info.dotForm), "" for None."""
    names = {defines()[name]: short for name, short in DOT_FORMS.items()}
    return "" if form is None else names.get(form, str(form))


STOP_REASONS = {"BN_STEP_CONTINUE": "", "BN_STEP_EOS": "eos", "BN_STEP_LENGTH": "length", "BN_STEP_CONTEXT": "context"}


def step_abi() -> dict:
    """How a host reads bn_generate_step's results (written into the manifest for the browser):
    the stop reason per return code, the words of the step buffer, and the code for NaN logits."""
    d = defines()
    reasons = [""] * len(STOP_REASONS)
    for name, reason in STOP_REASONS.items():
        reasons[d[name]] = reason
    return {"stop_reasons": reasons, "token_word": d["BN_STEP_TOKEN"], "stop_tokens_word": d["BN_STEP_STOP_TOKENS"],
            "max_stop_tokens": d["BN_MAX_STOP_TOKENS"], "words": d["BN_STEP_WORDS"], "bad_logits": d["BN_STEP_BAD_LOGITS"]}


def attention_scratch(heads: int, kv_heads: int, head_dim: int, positions: int) -> int:
    """Floats of one attention call's scratch: bn_attention_scratch in bitnet.h."""
    group = -(-heads // kv_heads) if kv_heads > 0 else 0
    return group * (positions + 1) + 4 * head_dim + 2 * positions * head_dim


def q4_groups(dim: int) -> int:
    """Scales of one row of a 4-bit table: bn_q4_groups in bitnet.h."""
    return -(-dim // defines()["BN_Q4_GROUP"])


def q4_row_bytes(dim: int) -> int:
    """Bytes of one row of a 4-bit table, padded to whole chunks: bn_q4_row_bytes in bitnet.h."""
    chunk = defines()["BN_Q4_CHUNK"]
    return -(-dim // chunk) * (chunk // 2)


def _size_functions() -> dict:
    from bitnet_wasm.wasm_kernels import layouts

    return {"attention_scratch": attention_scratch, "q4_groups": q4_groups, "q4_row_bytes": q4_row_bytes,
            **{name: getattr(layouts, name) for name in layouts.SIZE_FUNCTIONS}}


def check_call(sig: Signature, args: tuple) -> dict[str, int]:
    """Validate args against sig; returns {pointer name: element count}. Raises KernelArgumentError."""
    if len(args) != len(sig.params):
        raise KernelArgumentError(f"{sig.name} takes {len(sig.params)} arguments ({', '.join(p.name for p in sig.params)}), got {len(args)}")
    scope = {}
    for p, a in zip(sig.params, args):
        if p.pointer:
            continue
        if p.ctype == "float":
            if not isinstance(a, (int, float, np.floating, np.integer)):
                raise KernelArgumentError(f"{sig.name}: {p.name} must be a number, got {type(a).__name__}")
            scope[p.name] = float(a)
        else:
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise KernelArgumentError(f"{sig.name}: {p.name} must be an integer, got {a!r}")
            if not -(2**31) <= int(a) < 2**31:
                raise KernelArgumentError(f"{sig.name}: {p.name}={a} does not fit in int32")
            scope[p.name] = int(a)
    counts = {}
    for p, a in zip(sig.params, args):
        if not p.pointer:
            continue
        env = dict(scope, **defines())
        if re.search(r"[a-z_]+\(", p.count):
            env.update(_size_functions())
        try:
            expected = int(eval(p.count, {"__builtins__": {}}, env))  # expressions come from our own header
        except ValueError as e:  # a size function refusing its arguments (an unknown layout id)
            raise KernelArgumentError(f"{sig.name}: {e}") from None
        if expected < 0:
            raise KernelArgumentError(f"{sig.name}: {p.name} would have a negative length ({p.count} = {expected})")
        dtype = getattr(a, "dtype", None)
        if dtype is None or np.dtype(dtype) != p.dtype:
            raise KernelArgumentError(f"{sig.name}: {p.name} must be a {p.dtype} array, got {dtype if dtype is not None else type(a).__name__}")
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise KernelArgumentError(f"{sig.name}: {p.name} must be C-contiguous")
            if not p.const and not a.flags.writeable:
                raise KernelArgumentError(f"{sig.name}: {p.name} is written by the kernel but the array is read-only")
        if a.size != expected:
            raise KernelArgumentError(f"{sig.name}: {p.name} must have {p.count} = {expected} elements, got {a.size}")
        counts[p.name] = expected
    return counts


class KernelLibrary:
    """A built kernel library. `lib.bn_rmsnorm(x, w, y, n, dim, eps)` calls the C function after
    checking the arguments against bitnet.h; subclasses only move the data."""

    abi: dict[str, Signature]

    def __init__(self, abi: dict[str, Signature] | None = None):
        self.abi = abi or kernel_abi()

    def has(self, name: str) -> bool:
        return name in self.abi and self._has_symbol(name)

    def call(self, name: str, *args):
        sig = self.abi.get(name)
        if sig is None:
            raise KernelArgumentError(f"{name} is not declared in bitnet.h")
        if not self._has_symbol(name):
            raise KernelArgumentError(f"{name} is not in {self.path.name}")
        counts = check_call(sig, args)
        result = self._invoke(sig, args, counts)
        if sig.returns == "uint32_t":
            return int(result) & 0xFFFFFFFF
        return None if sig.returns == "void" else int(result)

    def __getattr__(self, name: str):
        if name.startswith("bn_"):
            return lambda *args: self.call(name, *args)
        raise AttributeError(name)

    def raw_function(self, name: str):
        """The C function itself, taking raw addresses and scalars: no checks. For hot loops whose
        arguments went through check_call once (benchmarks)."""
        raise NotImplementedError

    def _has_symbol(self, name: str) -> bool:
        raise NotImplementedError

    def _invoke(self, sig: Signature, args: tuple, counts: dict[str, int]):
        raise NotImplementedError
