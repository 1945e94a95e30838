"""A GGUF file's metadata and tensor table, read with our own parser: gguf-py's GGUFReader rejects
bitnet.cpp's I2_S (type 36), the type of the published microsoft/bitnet-b1.58-2B-4T-gguf.

Layout (GGUF v2/v3, little endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata
count; metadata (string key, u32 value type, value); tensor infos (string name, u32 n_dims, u64
dims with dims[0] the row length, u32 type, u64 offset); padding to general.alignment (32); data."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .errors import CheckpointError

I2_S = 36  # bitnet.cpp: 2-bit codes in 128-value blocks + one f32 scale per tensor
I2_S_BLOCK = 128
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}  # GGUFValueType -> struct
STRING, ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]    # numpy order: (rows, row length), the reverse of GGUF's dims
    type: int                 # GGML type id
    offset: int               # absolute byte offset in the file
    nbytes: int

    @property
    def type_name(self) -> str:
        return "I2_S" if self.type == I2_S else gguf.GGMLQuantizationType(self.type).name


def tensor_bytes(file: Path, name: str, type_id: int, shape: tuple[int, ...]) -> int:
    count = int(np.prod(shape, dtype=np.int64))
    if type_id == I2_S:
        if count % I2_S_BLOCK:
            raise CheckpointError(f"{file}: tensor '{name}' (I2_S) has {count} values, not a multiple of {I2_S_BLOCK}")
        return count // 4 + 32  # codes, then the f32 scale in a 32-byte slot
    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(type_id)]
    except (ValueError, KeyError):
        raise CheckpointError(f"{file}: tensor '{name}' has type id {type_id}, which is no GGML type this reader knows "
                              f"(known: {', '.join(t.name for t in gguf.GGML_QUANT_SIZES)}, I2_S)") from None
    if shape[-1] % block:
        raise CheckpointError(f"{file}: tensor '{name}' rows of {shape[-1]} values are not whole {gguf.GGMLQuantizationType(type_id).name} blocks of {block}")
    return count // block * size


class _Cursor:
    def __init__(self, file: Path, data: bytes):
        self.file, self.data, self.pos = file, data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise CheckpointError(f"{self.file}: truncated: {what} needs bytes {self.pos}..{self.pos + n}, the file has {len(self.data)}")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def scalar(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = self.take(self.scalar("<Q", what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.file}: {what} is not UTF-8") from None

    def value(self, kind: int, what: str):
        if kind == STRING:
            return self.string(what)
        if kind == ARRAY:
            item, count = self.scalar("<I", what), self.scalar("<Q", what)
            if item in SCALARS:  # numbers in one read: token types and scores can be 100k+ long
                fmt = SCALARS[item]
                return np.frombuffer(self.take(struct.calcsize(fmt) * count, what), fmt).tolist()
            return [self.value(item, what) for _ in range(count)]
        if kind not in SCALARS:
            raise CheckpointError(f"{self.file}: {what} has value type {kind}, which GGUF does not define")
        return self.scalar(SCALARS[kind], what)


class GGUFFile:
    def __init__(self, path: Path):
        self.path = path
        try:
            data = path.read_bytes()  # the header is small, but tensor infos and metadata arrays come first
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read: {err}") from None
        self.size = len(data)
        c = _Cursor(path, data)
        if c.take(4, "the magic") != b"GGUF":
            raise CheckpointError(f"{path}: not a GGUF file (no GGUF magic)")
        self.version = c.scalar("<I", "the version")
        if self.version not in (2, 3):
            raise CheckpointError(f"{path}: GGUF version {self.version} is not supported (2 or 3)")
        tensors, entries = c.scalar("<Q", "the tensor count"), c.scalar("<Q", "the metadata count")
        self.metadata = {}
        for i in range(entries):
            key = c.string(f"metadata key {i}")
            self.metadata[key] = c.value(c.scalar("<I", f"metadata '{key}'"), f"metadata '{key}'")
        infos = []
        for i in range(tensors):
            name = c.string(f"tensor name {i}")
            dims = [c.scalar("<Q", f"tensor '{name}' dims") for _ in range(c.scalar("<I", f"tensor '{name}' dims"))]
            infos.append((name, tuple(reversed(dims)), c.scalar("<I", f"tensor '{name}' type"), c.scalar("<Q", f"tensor '{name}' offset")))
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        start = -(-c.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, type_id, offset in infos:
            info = TensorInfo(name, shape, type_id, start + offset, tensor_bytes(path, name, type_id, shape))
            if info.offset + info.nbytes > self.size:
                raise CheckpointError(f"{path}: tensor '{name}' ({info.type_name}, {info.nbytes} bytes at {info.offset}) "
                                      f"runs past the end of the file ({self.size} bytes): truncated?")
            self.tensors[name] = info
        self._data = data

    def raw(self, name: str) -> np.ndarray:
        info = self.tensors[name]
        return np.frombuffer(self._data, np.uint8, info.nbytes, info.offset)

    def floats(self, name: str) -> np.ndarray:
        """Any float or block-quantized tensor as float32 in its numpy shape."""
        info = self.tensors[name]
        if info.type == I2_S:
            codes, scale = i2_s_codes(self.raw(name), info.shape)
            return codes.astype(np.float32) * scale
        rows = self.raw(name).reshape(*info.shape[:-1], -1)
        return gguf.quants.dequantize(rows, gguf.GGMLQuantizationType(info.type)).astype(np.float32).reshape(info.shape)


def i2_s_codes(raw: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """bitnet.cpp quantize_i2_s: value j of each 128-value block at byte j % 32, bits 6 - 2 * (j // 32);
    codes 0/1/2 = -1/0/+1; the f32 scale (max|W|, it multiplies) right after the n/4 code bytes."""
    count = int(np.prod(shape))
    blocks = raw[:count // 4].reshape(-1, 1, 32)
    fields = (blocks >> np.array([6, 4, 2, 0], np.uint8)[None, :, None]) & 3  # [block, j // 32, j % 32]
    if (fields == 3).any():
        raise ValueError("code 3 (not -1/0/+1)")
    scale = float(raw[count // 4:count // 4 + 4].view("<f4")[0])
    return fields.reshape(shape).astype(np.int8) - 1, scale
