"""bitnet_wasm.serve and `bitnet-wasm serve`: MIME types, isolation headers, no way out of SITE."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from bitnet_wasm.serve import ServeError, SiteServer

SECRET = "secret-outside-the-site"
ISOLATION_HEADERS = {  # what crossOriginIsolated (SharedArrayBuffer, wasm threads) needs
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@pytest.fixture
def site(tmp_path):
    """A site folder with one file per type, plus a secret file and folder beside it."""
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    files = {
        "index.html": "<!doctype html><title>t</title><p>hello</p>",
        "bitnet.wasm": "\0asm",
        "assets/app.js": "export const x = 1;",
        "assets/lib.mjs": "export const y = 2;",
        "manifest.json": "{}",
        "shard-000.bin": "weights",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret-dir").mkdir()
    (tmp_path / "secret-dir" / "index.html").write_text(SECRET)
    (root / "out-file.txt").symlink_to(tmp_path / "secret.txt")
    (root / "out-dir").symlink_to(tmp_path / "secret-dir")
    (root / "alias.js").symlink_to(root / "assets" / "app.js")
    return root


@pytest.fixture
def server(site):
    with SiteServer(site, "127.0.0.1", 0, quiet=True) as s:
        yield s


def get(server, path, method="GET"):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def raw_request(server, target: str) -> tuple[int, bytes]:
    """Sends the request line byte for byte (no client-side normalisation of the path)."""
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("path, mime", [
    ("/bitnet.wasm", "application/wasm"),
    ("/assets/app.js", "text/javascript; charset=utf-8"),
    ("/assets/lib.mjs", "text/javascript; charset=utf-8"),
    ("/manifest.json", "application/json"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
    ("/shard-000.bin", "application/octet-stream"),
])
def test_mime_types(server, site, path, mime):
    response, body = get(server, path)
    assert response.status == 200
    assert response.getheader("Content-Type") == mime
    expected = site / (path.lstrip("/") or "index.html")
    assert body == expected.read_bytes()


@pytest.mark.parametrize("path", ["/index.html", "/missing.js", "/../secret.txt"])
def test_isolation_headers_on_every_response(server, path):
    response, _ = get(server, path)
    for name, value in ISOLATION_HEADERS.items():
        assert response.getheader(name) == value, (path, name)


def test_head_sends_headers_only(server, site):
    response, body = get(server, "/bitnet.wasm", method="HEAD")
    assert response.status == 200 and body == b""
    assert int(response.getheader("Content-Length")) == (site / "bitnet.wasm").stat().st_size


def test_missing_file_is_404(server):
    assert get(server, "/nope.wasm")[0].status == 404
    assert get(server, "/assets/nope/deeper.js")[0].status == 404


def test_folder_without_slash_redirects(server):
    response, _ = get(server, "/assets")
    assert response.status == 301 and response.getheader("Location") == "/assets/"
    assert get(server, "/assets/")[0].status == 404  # no index.html there, and no listings


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/assets/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/assets/..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/out-file.txt",
    "/out-dir/",
    "/out-dir/index.html",
])
def test_paths_leaving_the_site_are_forbidden(server, target):
    status, data = raw_request(server, target)
    assert status == 403, data
    assert SECRET.encode() not in data


@pytest.mark.parametrize("target", ["../secret.txt", "http://x/../secret.txt", "*", "/%ff%fe"])
def test_malformed_targets_are_rejected(server, target):
    status, data = raw_request(server, target)
    assert status == 400, data
    assert SECRET.encode() not in data


def test_absolute_paths_stay_inside_the_site(server, tmp_path):
    status, data = raw_request(server, str(tmp_path / "secret.txt"))
    assert status == 404 and SECRET.encode() not in data
    assert raw_request(server, "//etc/passwd")[0] == 404


def test_symlink_inside_the_site_is_served(server):
    response, body = get(server, "/alias.js")
    assert response.status == 200 and body == b"export const x = 1;"


def test_missing_site_and_taken_port_are_clear_errors(tmp_path, server):
    with pytest.raises(ServeError, match="does not exist"):
        SiteServer(tmp_path / "nowhere", "127.0.0.1", 0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ServeError, match="is not a folder"):
        SiteServer(tmp_path / "file", "127.0.0.1", 0)
    taken = server.server_address[1]
    with pytest.raises(ServeError, match=f"127.0.0.1:{taken} is already in use"):
        SiteServer(tmp_path, "127.0.0.1", taken)


def test_cli_prints_url_and_serves(site):
    process = subprocess.Popen(
        [sys.executable, "-m", "bitnet_wasm.cli", "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"Serving {site} at http://127.0.0.1:"), line
        url = urlsplit(line.split(" at ")[1].split()[0])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        conn.request("GET", "/bitnet.wasm")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "application/wasm"
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/nowhere"], "site folder '{tmp}/nowhere' does not exist"),
    (["{tmp}", "--port", "70000"], "'70000' is not a port number"),
])
def test_cli_errors(tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    result = subprocess.run([sys.executable, "-m", "bitnet_wasm.cli", "serve", *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr


def test_every_engine_sees_cross_origin_isolation(served_dir, site, page, features):
    page.goto(served_dir(site))
    assert page.evaluate("() => document.querySelector('p').textContent") == "hello"
    assert page.evaluate("() => crossOriginIsolated") is True
    assert page.evaluate("() => typeof SharedArrayBuffer") == ("function" if features.threads else "undefined")
    # The wasm MIME type lets streaming compilation accept the response (it rejects any other type).
    (site / "empty.wasm").write_bytes(bytes([0, 0x61, 0x73, 0x6D, 1, 0, 0, 0]))
    assert page.evaluate("() => WebAssembly.compileStreaming(fetch('empty.wasm')).then(m => m instanceof WebAssembly.Module)") is True
