"""The browser runtime as an npm tarball: `python scripts/npm_package.py DIR` writes the package
folder DIR/bitnet-wasm/ (web/package.json's files, the version of pyproject.toml, the generated
format.js) and packs it into DIR/bitnet-wasm-VERSION.tgz, ready for `npm publish` or `npm install`."""
import subprocess
import sys
from pathlib import Path

from bitnet_wasm.compiler.site import write_npm_package


def main(out: str) -> None:
    folder = write_npm_package(Path(out) / "bitnet-wasm")
    subprocess.run(["npm", "pack", "--pack-destination", str(Path(out).resolve())], cwd=folder, check=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
