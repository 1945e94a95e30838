"""Python access to the C kernels: the same ABI through ctypes (native) and wasmtime (wasm)."""
from bitnet_wasm.kernels.abi import KernelArgumentError
from bitnet_wasm.kernels.native import NativeKernels
from bitnet_wasm.kernels.wasm import WasmKernels

__all__ = ["KernelArgumentError", "NativeKernels", "WasmKernels"]
