"""The kernels as a native shared library (the same C, SIMD through SIMDe), called with ctypes."""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from bitnet_wasm.wasm_kernels.abi import KernelLibrary, Signature

_SCALAR_CTYPES = {"int": ctypes.c_int32, "uint32_t": ctypes.c_uint32, "float": ctypes.c_float, "void": None}


class NativeKernels(KernelLibrary):
    runtime = "native"

    def __init__(self, path: str | Path, abi=None):
        super().__init__(abi)
        self.path = Path(path)
        self._lib = ctypes.CDLL(str(self.path))
        self._funcs = {}

    def _has_symbol(self, name: str) -> bool:
        return hasattr(self._lib, name)

    def _func(self, sig: Signature):
        f = self._funcs.get(sig.name)
        if f is None:
            f = getattr(self._lib, sig.name)
            f.restype = _SCALAR_CTYPES[sig.returns]
            f.argtypes = [ctypes.c_void_p if p.pointer else _SCALAR_CTYPES[p.ctype] for p in sig.params]
            self._funcs[sig.name] = f
        return f

    def raw_function(self, name: str):
        return self._func(self.abi[name])

    def _invoke(self, sig: Signature, args: tuple, counts: dict[str, int]):
        cargs = [a.ctypes.data if p.pointer else (float(a) if p.ctype == "float" else int(a)) for p, a in zip(sig.params, args)]
        return self._func(sig)(*cargs)

    def resident(self, array: np.ndarray) -> np.ndarray:
        """Native code reads numpy memory in place; kept for symmetry with WasmKernels."""
        return np.ascontiguousarray(array)
