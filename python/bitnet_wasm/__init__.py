"""bitnet-wasm: BitNet models as static web sites running on WebAssembly SIMD."""

__version__ = "0.1.0"
