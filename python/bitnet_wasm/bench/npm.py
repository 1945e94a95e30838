"""The npm packages benches and tests drive (Firefox's driver, the wllama peer, llama.cpp's Node
binding): pinned, installed with npm on first use, each in a prefix of its own under a root that is
not the user's home (npm prunes from a shared prefix whatever the latest install did not name)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NPM_TIMEOUT_S = 300


class NpmError(RuntimeError):
    pass


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    also: tuple[str, ...] = ()  # packages installed with it, e.g. the one platform binary of many optional ones
    flags: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)

    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def prefix(self, root: Path) -> Path:
        return root / self.spec().replace("/", "+")


def checkout_root(fallback: Path) -> Path:
    """.cache/npm inside a source checkout (gitignored), else `fallback`."""
    checkout = Path(__file__).resolve().parents[3]
    return (checkout / ".cache" / "npm") if (checkout / "pyproject.toml").is_file() else fallback


def installed_version(prefix: Path, name: str) -> str | None:
    try:
        return json.loads((prefix / "node_modules" / name / "package.json").read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None


def ensure(package: NpmPackage, root: Path, log=None) -> Path:
    """package in its prefix under `root`, installed with npm when missing; returns its folder."""
    prefix = package.prefix(root)
    folder = prefix / "node_modules" / package.name
    if installed_version(prefix, package.name) == package.version:
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(f"npm is missing, so {package.spec()} cannot be installed: apt-get install -y nodejs npm")
    if log:
        log(f"installing {package.spec()} into {prefix} (npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", *package.flags, package.spec(), *package.also]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, env={**os.environ, **package.env})
    except subprocess.TimeoutExpired:
        raise NpmError(f"`npm install {package.spec()}` did not finish in {NPM_TIMEOUT_S} s (is the npm registry reachable?)") from None
    if proc.returncode != 0 or installed_version(prefix, package.name) != package.version:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise NpmError(f"`npm install {package.spec()}` into {prefix} failed (is the npm registry reachable?): {tail}")
    return folder
