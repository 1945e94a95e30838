"""Subcommands of the bitnet-wasm CLI, one module each."""
