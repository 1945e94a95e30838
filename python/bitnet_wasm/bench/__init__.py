"""Benchmarks behind `bitnet-wasm bench`, one module per mode (kernels.py: the C kernels alone)."""
