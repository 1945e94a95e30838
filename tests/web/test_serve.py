"""bitnet_wasm.serve and `bitnet-wasm serve`: MIME types, isolation headers, no way out of SITE, byte ranges,
malformed requests, --cors (headers and a cross-origin import in Chromium), folders that are not sites."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from bitnet_wasm import cli
from bitnet_wasm.serve import ServeError, SiteServer

SECRET = "secret-outside-the-site"
WEIGHTS = b"".join(i.to_bytes(2, "big") for i in range(512))  # 1,024 bytes: the 16-bit counts 0..511
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
    (root / "model").mkdir()
    files = {
        "index.html": "<!doctype html><title>t</title><p>hello</p>",
        "bitnet.wasm": "\0asm",
        "assets/app.js": "export const x = 1;",
        "assets/lib.mjs": "export const y = 2;",
        "model/manifest.json": "{}",
        "shard-000.bin": "weights",
    }
    (root / "model" / "weights-00000.bin").write_bytes(WEIGHTS)
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


def get(server, path, method="GET", headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def raw_request(server, target: str, line: str | None = None, headers: str = "") -> tuple[int, bytes]:
    """Sends the request line byte for byte (no client-side normalisation of the path)."""
    line = line or f"GET {target} HTTP/1.1"
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(f"{line}\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def serve_command(capsys, *argv: str) -> tuple[int, str]:
    """`bitnet-wasm serve ARGV` in this process: (exit code, stderr)."""
    try:
        code = cli.main(["serve", *argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("path, mime", [
    ("/bitnet.wasm", "application/wasm"),
    ("/assets/app.js", "text/javascript; charset=utf-8"),
    ("/assets/lib.mjs", "text/javascript; charset=utf-8"),
    ("/model/manifest.json", "application/json"),
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
def test_cli_errors(tmp_path, capsys, argv, message):
    code, stderr = serve_command(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert message.format(tmp=tmp_path) in stderr


def test_every_engine_sees_cross_origin_isolation(served_dir, site, page, features):
    page.goto(served_dir(site))
    assert page.evaluate("() => document.querySelector('p').textContent") == "hello"
    assert page.evaluate("() => crossOriginIsolated") is True
    assert page.evaluate("() => typeof SharedArrayBuffer") == ("function" if features.threads else "undefined")
    # The wasm MIME type lets streaming compilation accept the response (it rejects any other type).
    (site / "empty.wasm").write_bytes(bytes([0, 0x61, 0x73, 0x6D, 1, 0, 0, 0]))
    assert page.evaluate("() => WebAssembly.compileStreaming(fetch('empty.wasm')).then(m => m instanceof WebAssembly.Module)") is True


SIZE = len(WEIGHTS)


@pytest.mark.parametrize("wanted, start, end", [
    ("bytes=0-99", 0, 100),
    ("bytes=1000-", 1000, SIZE),
    ("bytes=-10", SIZE - 10, SIZE),
    ("bytes=-5000", 0, SIZE),
    ("bytes=1020-9999", 1020, SIZE),
    ("bytes=7-7", 7, 8),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_single_byte_range(server, method, wanted, start, end):
    full, _ = get(server, "/model/weights-00000.bin")
    response, body = get(server, "/model/weights-00000.bin", method, {"Range": wanted})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes {start}-{end - 1}/{SIZE}"
    assert int(response.getheader("Content-Length")) == end - start
    assert body == (WEIGHTS[start:end] if method == "GET" else b"")
    for name in [*ISOLATION_HEADERS, "Content-Type", "Cache-Control", "Accept-Ranges", "ETag", "Last-Modified"]:
        assert response.getheader(name) == full.getheader(name), name


@pytest.mark.parametrize("wanted", [f"bytes={SIZE}-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_is_416(server, wanted):
    response, _ = get(server, "/model/weights-00000.bin", headers={"Range": wanted})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{SIZE}"
    assert response.getheader("Cross-Origin-Embedder-Policy") == "require-corp"


@pytest.mark.parametrize("wanted", ["bytes=0-1,5-6", "bytes=9-3", "lines=0-1", "bytes=x-", "bytes=-", f"bytes=0-{'9' * 40}"])
def test_ranges_this_server_ignores_get_the_whole_file(server, wanted):
    response, body = get(server, "/model/weights-00000.bin", headers={"Range": wanted})
    assert response.status == 200 and body == WEIGHTS


def test_if_range_and_if_none_match_use_the_etag(server):
    etag = get(server, "/model/weights-00000.bin")[0].getheader("ETag")
    response, body = get(server, "/model/weights-00000.bin", headers={"Range": "bytes=10-19", "If-Range": etag})
    assert response.status == 206 and body == WEIGHTS[10:20]
    response, body = get(server, "/model/weights-00000.bin", headers={"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert response.status == 200 and body == WEIGHTS  # the file changed since the part the client holds
    response, body = get(server, "/model/weights-00000.bin", headers={"If-None-Match": etag})
    assert response.status == 304 and body == b""


@pytest.mark.parametrize("target", [
    "/" + "a" * 5000,                     # one segment longer than any file name
    "/a" * 3000,                          # deeper than any path
    "/assets/" + "%41" * 300 + ".js",     # long once decoded
    "/model/weights-00000.bin/x",         # a file used as a folder
], ids=["long-segment", "deep", "long-decoded", "file-as-folder"])
def test_long_and_deep_paths_are_404(server, target):
    status, data = raw_request(server, target)
    assert status == 404, data[:200]
    assert get(server, "/")[0].status == 200  # and the server still answers


@pytest.mark.parametrize("line, headers, status", [
    ("GET /" + "a" * 9000 + " HTTP/1.1", "", 414),
    ("GET / HTTP/1.1", "X-Long: " + "a" * 9000 + "\r\n", 431),
    ("GET / HTTP/1.1", "X-Many: 1\r\n" * 101, 431),
    ("GET / HTTP/1.1", "no colon here\r\n", 400),
    ("GET / HTTP/1.1", " folded: line\r\n", 400),
    ("GET /", "", 400),
    ("GET / SPDY/3", "", 400),
    ("GET / HTTP/2.0", "", 505),
    ("POST / HTTP/1.1", "", 405),
    ("DELETE /index.html HTTP/1.1", "", 405),
    ("BREW / HTTP/1.1", "", 405),
], ids=["long-line", "long-header", "many-headers", "no-colon", "folded", "two-parts", "not-http", "http2", "post", "delete", "brew"])
def test_malformed_and_unserved_requests(server, line, headers, status):
    got, data = raw_request(server, "", line, headers)
    assert got == status, data[:200]
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    assert "Cross-Origin-Opener-Policy: same-origin" in head
    if status == 405:
        assert "Allow: GET, HEAD, OPTIONS" in head


def test_keep_alive_serves_pipelined_requests(server):
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(b"GET /assets/app.js HTTP/1.1\r\nHost: x\r\n\r\nHEAD /bitnet.wasm HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /assets/lib.mjs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.endswith(b"export const y = 2;") and b"export const x = 1;" in data


def test_cors_headers_and_preflight(site, server):
    with SiteServer(site, "127.0.0.1", 0, quiet=True, cors=True) as cors:
        response, body = get(cors, "/model/weights-00000.bin", headers={"Origin": "https://elsewhere.example", "Range": "bytes=0-3"})
        assert response.status == 206 and body == WEIGHTS[:4]
        assert response.getheader("Access-Control-Allow-Origin") == "*"
        assert response.getheader("Cross-Origin-Resource-Policy") == "cross-origin"
        assert "Content-Range" in response.getheader("Access-Control-Expose-Headers")
        response, _ = get(cors, "/bitnet.js", "OPTIONS", {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET",
                                                         "Access-Control-Request-Headers": "range"})
        assert response.status == 204
        assert response.getheader("Access-Control-Allow-Origin") == "*"
        assert "GET" in response.getheader("Access-Control-Allow-Methods")
    assert get(server, "/")[0].getheader("Access-Control-Allow-Origin") is None  # only when asked for


def test_a_page_imports_and_fetches_across_origins_only_with_cors(site, served_dir, page):
    (site / "runtime.js").write_text("export const answer = 42;")
    page.goto(served_dir(site))  # an isolated page (COEP require-corp) on one origin
    script = """async base => {
        const { answer } = await import(base + 'runtime.js');
        const part = await fetch(base + 'model/weights-00000.bin', { headers: { Range: 'bytes=2-5' } });
        return [answer, part.status, part.headers.get('Content-Range'), [...new Uint8Array(await part.arrayBuffer())]];
    }"""
    with SiteServer(site, "127.0.0.1", 0, quiet=True, cors=True) as cors, SiteServer(site, "127.0.0.1", 0, quiet=True) as plain:
        assert page.evaluate(script, cors.url) == [42, 206, f"bytes 2-5/{SIZE}", list(WEIGHTS[2:6])]  # another port: another origin
        with pytest.raises(Exception, match="dynamically imported module|Cross-Origin"):  # Chromium, Firefox | WebKit
            page.evaluate(script, plain.url)


@pytest.mark.parametrize("files, served, message", [
    ({"index.html": ""}, ".", ("{tmp} is not a site (no model/manifest.json); build one with `bitnet-wasm build MODEL --out {tmp}`, "
                               "or pass the folder build wrote")),
    ({"config.json": "{}"}, ".", ("{tmp} is a model checkpoint, not a site; build one first: bitnet-wasm build {tmp} --out SITE, "
                                  "then bitnet-wasm serve SITE")),
    ({"model/manifest.json": "{}"}, "model", "{tmp}/model is the model folder inside a site; serve the site itself: bitnet-wasm serve {tmp}"),
])
def test_cli_refuses_a_folder_that_is_not_a_site(tmp_path, capsys, files, served, message):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    folder = os.path.normpath(tmp_path / served)
    code, stderr = serve_command(capsys, folder, "--port", "0")
    assert code == 2
    assert stderr.splitlines() == ["bitnet-wasm serve: " + message.format(tmp=tmp_path)]


def test_cli_suggests_port_0_when_the_port_is_taken(site, server, capsys):
    taken = server.server_address[1]
    code, stderr = serve_command(capsys, str(site), "--port", str(taken))
    assert code == 2
    assert stderr.splitlines() == [
        f"bitnet-wasm serve: address 127.0.0.1:{taken} is already in use (choose another --port, or --port 0 for any free one)"]
