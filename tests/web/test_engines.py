"""bitnet_wasm.bench.engines: a missing browser part is an error naming the Debian package; an
unknown engine names the known ones."""
from __future__ import annotations

import pytest

from bitnet_wasm.bench import engines, firefox, webkit


@pytest.mark.parametrize("module, attribute, package", [
    (firefox, "FIREFOX", "firefox-esr"),
    (webkit, "WEBKIT_DRIVER", "webkit2gtk-driver"),
    (webkit, "MINIBROWSER", "webkit2gtk-driver"),
])
def test_a_missing_browser_names_its_package(monkeypatch, tmp_path, module, attribute, package):
    monkeypatch.setattr(module, attribute, str(tmp_path / "absent"))
    with pytest.raises(engines.EngineError, match=f"is missing.*apt-get install -y {package}"):
        module.launch()


def test_webkit_without_xvfb_says_so(monkeypatch):
    monkeypatch.setattr(webkit.shutil, "which", lambda name: None)
    with pytest.raises(engines.EngineError, match="apt-get install -y xvfb"):
        webkit.launch()


def test_unknown_engine():
    with pytest.raises(engines.EngineError, match="unknown browser engine 'lynx': choose one of chromium, firefox, webkit"):
        engines.launch("lynx")
