"""bitnet_wasm.bench.engines: a missing browser part is an error naming the Debian package; an
unknown engine names the known ones; a browser that never answers is an error, not a hang."""
from __future__ import annotations

import subprocess

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


def test_a_webkit_session_that_never_starts_is_an_error(monkeypatch, tmp_path):
    hanging_browser = tmp_path / "MiniBrowser"
    hanging_browser.write_text("#!/bin/sh\nsleep 600\n")  # its path stays in its command line
    hanging_browser.chmod(0o755)
    monkeypatch.setattr(webkit, "MINIBROWSER", str(hanging_browser))
    monkeypatch.setattr(webkit, "SESSION_START_TIMEOUT_S", 2)
    with pytest.raises(engines.EngineError, match=f"did not start MiniBrowser within 2 s, 2 times \\({hanging_browser}\\)"):
        webkit.launch()
    assert not _processes_running(str(hanging_browser)), "the hanging browser outlived the engine"


def _processes_running(command_line_part: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", command_line_part], capture_output=True, text=True).stdout.split()
