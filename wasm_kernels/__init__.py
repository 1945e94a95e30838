"""The bottom layer: the kernels' C sources, and their Python description (layouts table, ABI,
toolchain) with the two bindings of the same ABI (ctypes for native, wasmtime for wasm)."""
from pathlib import Path

SOURCE_DIR = Path(__file__).parent

from bitnet_wasm.wasm_kernels.abi import KernelArgumentError  # noqa: E402  (abi reads SOURCE_DIR)
from bitnet_wasm.wasm_kernels.native import NativeKernels  # noqa: E402
from bitnet_wasm.wasm_kernels.wasm import WasmKernels  # noqa: E402

__all__ = ["SOURCE_DIR", "KernelArgumentError", "NativeKernels", "WasmKernels"]
