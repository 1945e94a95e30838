"""C sources of the kernels; the build compiles them to wasm32 and to a native library."""
from pathlib import Path

SOURCE_DIR = Path(__file__).parent
