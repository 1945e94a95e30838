"""The kernels as a WebAssembly module run by wasmtime (SIMD and relaxed SIMD enabled).

Arrays are copied into the module's linear memory for a call and copied back if the kernel
writes them; `resident()` places an array there once (for benchmarks and model weights)."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wasmtime

from bitnet_wasm.wasm_kernels.abi import KernelLibrary, Signature

PAGE = 65536


@dataclass
class WasmArray:
    """An array living in the module's linear memory."""

    module: "WasmKernels"
    address: int
    dtype: np.dtype
    size: int

    def numpy(self) -> np.ndarray:
        return self.module.view(self.address, self.dtype, self.size).copy()


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_simd = True
    config.wasm_relaxed_simd = True
    config.wasm_bulk_memory = True
    return wasmtime.Engine(config)


class WasmKernels(KernelLibrary):
    runtime = "wasm"

    def __init__(self, path: str | Path, abi=None, code: bytes | None = None):
        """code: the module's bytes, when the caller has read (and checked) them already; else path's."""
        super().__init__(abi)
        self.path = Path(path)
        self.store = wasmtime.Store(_engine())
        module = wasmtime.Module(self.store.engine, code if code is not None else self.path.read_bytes())
        self.instance = wasmtime.Instance(self.store, module, [])
        exports = self.instance.exports(self.store)
        self.memory: wasmtime.Memory = exports["memory"]
        self._exports = exports
        self._top = exports["__heap_base"].value(self.store)

    def _has_symbol(self, name: str) -> bool:
        return self._exports.get(name) is not None

    def raw_function(self, name: str):
        func, store = self._exports[name], self.store
        return lambda *args: func(store, *args)

    def _alloc(self, nbytes: int) -> int:
        address = (self._top + 63) & ~63
        end = address + max(nbytes, 1)
        have = self.memory.data_len(self.store)
        if end > have:
            pages = (end - have + PAGE - 1) // PAGE
            if end > 2**32 or not self._grow(pages):
                raise MemoryError(f"{self.path.name}: cannot grow wasm memory to {end / 2**20:.0f} MiB")
        self._top = end
        return address

    def _grow(self, pages: int) -> bool:
        try:
            self.memory.grow(self.store, pages)
            return True
        except wasmtime.WasmtimeError:
            return False

    def view(self, address: int, dtype, size: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        base = ctypes.addressof(self.memory.data_ptr(self.store).contents)
        buf = (ctypes.c_uint8 * (size * dtype.itemsize)).from_address(base + address)
        return np.frombuffer(buf, dtype=dtype)

    def resident(self, array: np.ndarray) -> WasmArray:
        array = np.ascontiguousarray(array)
        address = self._alloc(array.nbytes)
        self.view(address, array.dtype, array.size)[:] = array.reshape(-1)
        return WasmArray(self, address, array.dtype, array.size)

    def _invoke(self, sig: Signature, args: tuple, counts: dict[str, int]):
        mark = self._top
        try:
            wargs, copy_back = [], []
            for p, a in zip(sig.params, args):
                if not p.pointer:
                    wargs.append(float(a) if p.ctype == "float" else int(a))
                elif isinstance(a, WasmArray):
                    wargs.append(a.address)
                else:
                    address = self._alloc(a.nbytes)
                    self.view(address, a.dtype, a.size)[:] = a.reshape(-1)
                    wargs.append(address)
                    if not p.const:
                        copy_back.append((a, address))
            result = self._exports[sig.name](self.store, *wargs)
            for a, address in copy_back:
                a.reshape(-1)[:] = self.view(address, a.dtype, a.size)
            return result
        finally:
            self._top = mark
