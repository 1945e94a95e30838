"""The tensors of one checkpoint: model.safetensors, or the shards listed in model.safetensors.index.json."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from .errors import CheckpointError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str                  # safetensors dtype: "BF16", "F16", "F32", "U8", ...
    shape: tuple[int, ...]


class TensorFiles:
    def __init__(self, model_dir: Path):
        self.source = _source_file(model_dir)  # what errors about the tensor set name
        self.infos: dict[str, TensorInfo] = {}
        for file in _weight_files(model_dir):
            for name, info in _infos(file).items():
                if name in self.infos:
                    raise CheckpointError(f"{file}: tensor '{name}' is also in {self.infos[name].file}")
                self.infos[name] = info
        if self.source.name == INDEX_FILE:
            _check_weight_map(self.source, self.infos)

    def read(self, name: str) -> np.ndarray:
        info = self.infos[name]
        if info.dtype == "BF16":
            return _read_bf16(info, name)
        with safe_open(info.file, framework="numpy") as f:
            return f.get_tensor(name)


def _source_file(model_dir: Path) -> Path:
    for name in (INDEX_FILE, SINGLE_FILE):
        if (model_dir / name).is_file():
            return model_dir / name
    raise CheckpointError(f"{model_dir}: no {SINGLE_FILE} or {INDEX_FILE}")


def _weight_map(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index}: not a safetensors index with a 'weight_map' ({err})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: 'weight_map' must map tensor names to shard file names")
    return weight_map


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_FILE
    if not index.is_file():
        return [model_dir / SINGLE_FILE]
    files = []
    for shard in dict.fromkeys(_weight_map(index).values()):
        if not (model_dir / shard).is_file():
            raise CheckpointError(f"{index}: lists shard '{shard}', which is not in {model_dir}")
        files.append(model_dir / shard)
    return files


def _check_weight_map(index: Path, infos: dict[str, TensorInfo]) -> None:
    for name, shard in _weight_map(index).items():
        if name not in infos or infos[name].file.name != shard:
            found = f"found in {infos[name].file.name}" if name in infos else "found in no shard"
            raise CheckpointError(f"{index}: maps tensor '{name}' to {shard}, but it is {found}")
    unlisted = sorted(set(infos) - set(_weight_map(index)))
    if unlisted:
        raise CheckpointError(f"{index}: tensor '{unlisted[0]}' in {infos[unlisted[0]].file.name} is not in 'weight_map'")


def _infos(file: Path) -> dict[str, TensorInfo]:
    try:
        with safe_open(file, framework="numpy") as f:
            return {name: TensorInfo(file, f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{file}: unreadable safetensors file: {err}{_truncation(file)}") from None


def _header(file: Path) -> tuple[int, dict]:
    """(byte where tensor data starts, the JSON header) of a safetensors file."""
    with open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > file.stat().st_size:
            raise ValueError(f"header length {length} runs past the end of the file")
        return 8 + length, json.loads(f.read(length))


def _truncation(file: Path) -> str:
    """Which tensor runs past the end of a cut-off file, when the header itself is intact."""
    try:
        start, header = _header(file)
        size = file.stat().st_size
        cut = [(name, start + t["data_offsets"][1]) for name, t in header.items() if name != "__metadata__" and start + t["data_offsets"][1] > size]
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError, AttributeError):  # any damage: no detail to add
        return ""
    return f"; truncated: tensor '{cut[0][0]}' ends at byte {cut[0][1]} but the file has {size} bytes" if cut else ""


def _read_bf16(info: TensorInfo, name: str) -> np.ndarray:
    """numpy has no bfloat16: a bf16 value is the high half of the f32 with the same bits."""
    start, header = _header(info.file)
    begin = header[name]["data_offsets"][0]
    count = int(np.prod(info.shape, dtype=np.int64))
    halves = np.fromfile(info.file, dtype="<u2", count=count, offset=start + begin)
    return (halves.astype(np.uint32) << 16).view(np.float32).reshape(info.shape)
