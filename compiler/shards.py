"""Weights packed into their arena layout and written as fixed-size shards.

Shard i holds bytes [i * shard_bytes, (i + 1) * shard_bytes) of the arena's weights region, so
a loader writes each shard at its offset and every tensor lands where the plan put it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bitnet_wasm.compiler.checkpoint import Checkpoint
from bitnet_wasm.compiler.graph import TABLE_SCALES, Graph, Weight
from bitnet_wasm.compiler.plan import MemoryPlan
from bitnet_wasm.wasm_kernels.abi import defines
from bitnet_wasm.wasm_kernels.layouts import LAYOUTS

F16_MAX = float(np.finfo(np.float16).max)


class PackError(ValueError):
    pass


def q8_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: table ~= q * row_scale[:, None]."""
    amax = np.abs(table).max(axis=1)
    row_scale = np.where(amax > 0, amax / 127, 1).astype(np.float32)
    q = np.clip(np.rint(table / row_scale[:, None]), -127, 127).astype(np.int8)
    return q, row_scale


Q7_ZERO = defines()["BN_Q7_ZERO"]


def q7_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 7-bit per row, stored as codes q + Q7_ZERO in 1..127: table ~= (code - Q7_ZERO) * row_scale[:, None]."""
    amax = np.abs(table).max(axis=1)
    row_scale = np.where(amax > 0, amax / 63, 1).astype(np.float32)
    q = np.clip(np.rint(table / row_scale[:, None]), -63, 63).astype(np.int16)
    return (q + Q7_ZERO).astype(np.uint8), row_scale


TABLE_TILE_ROWS, TABLE_CHUNK = defines()["BN_TABLE_TILE_ROWS"], defines()["BN_TABLE_CHUNK"]


def tile_table(values: np.ndarray) -> np.ndarray:
    """An int8 or 7-bit table [vocab, dim] in bitnet.h's tiles: per tile of TABLE_TILE_ROWS rows, chunk by chunk
    of TABLE_CHUNK columns the rows side by side, then each row's last dim % TABLE_CHUNK columns; the rows after
    the last tile as they are. One byte per value, flat."""
    vocab, dim = values.shape
    tiled, whole = vocab - vocab % TABLE_TILE_ROWS, dim - dim % TABLE_CHUNK
    tiles = values[:tiled].reshape(tiled // TABLE_TILE_ROWS, TABLE_TILE_ROWS, dim)
    chunks = tiles[:, :, :whole].reshape(len(tiles), TABLE_TILE_ROWS, whole // TABLE_CHUNK, TABLE_CHUNK).transpose(0, 2, 1, 3)
    packed = np.concatenate([chunks.reshape(len(tiles), TABLE_TILE_ROWS * whole), tiles[:, :, whole:].reshape(len(tiles), TABLE_TILE_ROWS * (dim - whole))], axis=1)
    return np.concatenate([packed.reshape(-1), values[tiled:].reshape(-1)])


def untile_table(packed: np.ndarray, vocab: int, dim: int) -> np.ndarray:
    """The table [vocab, dim] of tile_table's bytes."""
    tiled, whole = vocab - vocab % TABLE_TILE_ROWS, dim - dim % TABLE_CHUNK
    tiles = packed.reshape(-1)[:tiled * dim].reshape(tiled // TABLE_TILE_ROWS, TABLE_TILE_ROWS * dim)
    chunks = tiles[:, :TABLE_TILE_ROWS * whole].reshape(len(tiles), whole // TABLE_CHUNK, TABLE_TILE_ROWS, TABLE_CHUNK).transpose(0, 2, 1, 3)
    rows = np.concatenate([chunks.reshape(len(tiles), TABLE_TILE_ROWS, whole), tiles[:, TABLE_TILE_ROWS * whole:].reshape(len(tiles), TABLE_TILE_ROWS, dim - whole)], axis=2)
    return np.concatenate([rows.reshape(tiled, dim), packed.reshape(-1)[tiled * dim:].reshape(vocab - tiled, dim)])


Q4_ZERO, Q4_GROUP, Q4_CHUNK = (defines()[f"BN_Q4_{name}"] for name in ("ZERO", "GROUP", "CHUNK"))
Q4_STEPS = Q4_ZERO - 1  # q in -Q4_STEPS..Q4_STEPS: codes 1..15


def q4_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit per group of Q4_GROUP columns of a row (the last group may be shorter), codes
    q + Q4_ZERO in 1..15: table ~= (codes - Q4_ZERO) * group_scale repeated over each group's columns."""
    vocab, dim = table.shape
    grouped = np.zeros((vocab, -(-dim // Q4_GROUP), Q4_GROUP), np.float32)  # a shorter last group padded with zeros
    grouped.reshape(vocab, -1)[:, :dim] = table
    amax = np.abs(grouped).max(axis=2)
    group_scale = np.where(amax > 0, amax / Q4_STEPS, 1).astype(np.float32)
    q = np.clip(np.rint(np.divide(grouped, group_scale[:, :, None], out=grouped), out=grouped), -Q4_STEPS, Q4_STEPS, out=grouped)
    return (q.reshape(vocab, -1)[:, :dim] + Q4_ZERO).astype(np.uint8), group_scale


def q4_pack(codes: np.ndarray) -> np.ndarray:
    """Codes [vocab, dim] in bitnet.h's 4-bit rows: whole chunks of Q4_CHUNK columns padded with
    Q4_ZERO, byte j of chunk m holding column Q4_CHUNK*m + j (low nibble) and Q4_CHUNK*m + Q4_CHUNK/2 + j (high)."""
    vocab, dim = codes.shape
    padded = np.full((vocab, -(-dim // Q4_CHUNK) * Q4_CHUNK), Q4_ZERO, np.uint8)
    padded[:, :dim] = codes
    planes = padded.reshape(vocab, -1, 2, Q4_CHUNK // 2)
    return (planes[:, :, 0] | planes[:, :, 1] << 4).reshape(vocab, -1)


def q4_unpack(packed: np.ndarray, dim: int) -> np.ndarray:
    """The codes [vocab, dim] of q4_pack's rows."""
    planes = packed.reshape(packed.shape[0], -1, 1, Q4_CHUNK // 2)
    return np.concatenate([planes & 0x0F, planes >> 4], axis=2).reshape(packed.shape[0], -1)[:, :dim]


def _f16(name: str, a: np.ndarray) -> np.ndarray:
    if np.abs(a).max(initial=0) > F16_MAX:
        raise PackError(f"{name}: values up to {np.abs(a).max():.3g} overflow f16; build with --embed q8")
    return a.astype("<f2")


TENSOR_PACKERS = {
    "f32": lambda name, a: a.astype("<f4"),
    "f16": _f16,
    "q8": lambda name, a: tile_table(q8_rows(a)[0]),
    "q8_scale": lambda name, a: q8_rows(a)[1],
    "q7": lambda name, a: tile_table(q7_rows(a)[0]),
    "q7_scale": lambda name, a: q7_rows(a)[1],
    "q4": lambda name, a: q4_pack(q4_rows(a)[0]),
    "q4_scale": lambda name, a: q4_rows(a)[1],
}


def _tensor(weight: Weight, checkpoint: Checkpoint) -> np.ndarray:
    source = checkpoint.tensors.get(weight.source)
    if source is None:
        raise PackError(f"{checkpoint.source}: tensor {weight.source} is missing")
    expected = weight.shape if weight.packing not in TABLE_SCALES else (weight.shape[0], checkpoint.config.hidden_size)
    if source.shape != expected:
        raise PackError(f"{checkpoint.source}: tensor {weight.source} has shape {source.shape}, expected {expected}")
    values = np.asarray(source, np.float32)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        index = np.unravel_index(bad[0], values.shape)
        raise PackError(f"{checkpoint.source}: tensor {weight.source} holds {values[index]} at index {list(map(int, index))} "
                        f"({bad.size} non-finite values); a model's weights must be finite")
    return TENSOR_PACKERS[weight.packing](f"{checkpoint.source}: tensor {weight.source}", values)


def _linear(weight: Weight, checkpoint: Checkpoint) -> np.ndarray:
    linear = checkpoint.linears.get(weight.source)
    if linear is None:
        raise PackError(f"{checkpoint.source}: linear layer {weight.source} is missing")
    if weight.packing == "wscale":
        if not (np.isfinite(linear.wscale) and linear.wscale > 0):
            raise PackError(f"{checkpoint.source}: linear {weight.source} has weight scale {linear.wscale}; expected a positive number")
        return np.array([linear.wscale], "<f4")
    if linear.shape != weight.shape:
        raise PackError(f"{checkpoint.source}: linear {weight.source} has shape {linear.shape}, expected {weight.shape}")
    return LAYOUTS[weight.packing].pack(linear.weights)


def pack_weight(weight: Weight, checkpoint: Checkpoint) -> np.ndarray:
    """The bytes of one weight exactly as the kernels read them."""
    packed = (_tensor if weight.packing in TENSOR_PACKERS else _linear)(weight, checkpoint)
    packed = np.ascontiguousarray(packed).reshape(-1).view(np.uint8)
    if packed.size != weight.nbytes:
        raise PackError(f"{weight.name}: packed to {packed.size} bytes, the plan expects {weight.nbytes}")
    return packed


class ShardWriter:
    """Streams bytes at increasing offsets into weights-00000.bin, weights-00001.bin, ..."""

    def __init__(self, out_dir: Path, shard_bytes: int):
        self.out_dir, self.shard_bytes = Path(out_dir), shard_bytes
        self.shards: list[dict] = []
        self.position = 0
        self._file = None
        self._hash = None

    def _open_next(self):
        self._close_current()
        name = f"weights-{len(self.shards):05d}.bin"
        self.shards.append({"file": name, "offset": self.position, "bytes": 0, "sha256": ""})
        self._file = open(self.out_dir / name, "wb")
        self._hash = hashlib.sha256()

    def _close_current(self):
        if self._file is not None:
            self._file.close()
            self.shards[-1]["sha256"] = self._hash.hexdigest()
            self._file = None

    def _emit(self, data: memoryview):
        while len(data):
            if self._file is None or self.shards[-1]["bytes"] == self.shard_bytes:
                self._open_next()
            room = self.shard_bytes - self.shards[-1]["bytes"]
            piece = data[:room]
            self._file.write(piece)
            self._hash.update(piece)
            self.shards[-1]["bytes"] += len(piece)
            self.position += len(piece)
            data = data[len(piece):]

    def write_at(self, offset: int, data: np.ndarray):
        if offset < self.position:
            raise ValueError(f"shard writes must not go backwards ({offset} < {self.position})")
        self._emit(memoryview(bytes(offset - self.position)))
        self._emit(memoryview(data).cast("B"))

    def finish(self, end: int) -> list[dict]:
        self._emit(memoryview(bytes(end - self.position)))
        self._close_current()
        return self.shards


def write_shards(graph: Graph, plan: MemoryPlan, checkpoint: Checkpoint, out_dir: Path, progress=None) -> tuple[list[dict], dict]:
    """Write the weights region as shards; returns (shard table, tensor table) for the manifest."""
    writer = ShardWriter(out_dir, int(graph.options.shard_mb * 2**20))
    tensors = {}
    weights = sorted(graph.weights.values(), key=lambda w: plan.slots[w.name].offset)
    for weight in weights:
        slot = plan.slots[weight.name]
        writer.write_at(slot.offset, pack_weight(weight, checkpoint))
        tensors[weight.name] = {
            "offset": slot.offset, "bytes": slot.nbytes, "layout": weight.packing, "dtype": weight.dtype,
            "shape": list(weight.shape), "shard": slot.offset // writer.shard_bytes, "shard_offset": slot.offset % writer.shard_bytes,
        }
        if progress is not None:
            progress(weight)
    return writer.finish(plan.regions["weights"].end), tensors
