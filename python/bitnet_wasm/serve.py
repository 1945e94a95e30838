"""A static file server for a built site: correct MIME types, the cross-origin isolation headers
that SharedArrayBuffer and threaded wasm need, and nothing served from outside the site folder."""
from __future__ import annotations

import argparse
import errno
import os
import socket
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
DEFAULT_MIME_TYPE = "application/octet-stream"

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def port_number(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 = any free port)")
    return port


def add_address_arguments(parser: argparse.ArgumentParser) -> None:
    """--port and --host, as `serve` and `demo` take them."""
    parser.add_argument("--port", type=port_number, default=8000, help="TCP port (default 8000; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")


class ServeError(RuntimeError):
    """The site cannot be served (missing folder, address in use)."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _SiteHandler(SimpleHTTPRequestHandler):
    server: "SiteServer"
    protocol_version = "HTTP/1.1"  # keep-alive: a site loads many shards

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _target(self) -> Path | None:
        """The file a request names, or None after sending the error response."""
        url_path = urlsplit(self.path).path if self.path.startswith("/") else None
        if url_path is None:
            self.send_error(HTTPStatus.BAD_REQUEST, "request target must be a path starting with /")
            return None
        segments = unquote(url_path, errors="strict").replace("\\", "/").split("/")
        if ".." in segments or any("\0" in s for s in segments):
            self.send_error(HTTPStatus.FORBIDDEN, "path leaves the site")
            return None
        target = self.server.root.joinpath(*[s for s in segments if s not in ("", ".")])
        if target.is_dir():
            if not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", url_path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            target = target / "index.html"
        if not _inside(Path(os.path.realpath(target)), self.server.root):  # symlinks out of the site
            self.send_error(HTTPStatus.FORBIDDEN, "path leaves the site")
            return None
        if not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "file not found")
            return None
        return target

    def send_head(self):
        try:
            target = self._target()
        except UnicodeDecodeError:
            self.send_error(HTTPStatus.BAD_REQUEST, "path is not valid UTF-8")
            return None
        if target is None:
            return None
        try:
            f = open(target, "rb")
        except OSError as e:
            self.send_error(HTTPStatus.FORBIDDEN, f"cannot read the file: {e.strerror}")
            return None
        try:
            size = os.fstat(f.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", MIME_TYPES.get(target.suffix.lower(), DEFAULT_MIME_TYPE))
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise


class SiteServer(ThreadingHTTPServer):
    """Serves SITE on host:port (port 0: any free port). `with SiteServer(...) as s:` runs it in
    a background thread; `serve_forever()` runs it in the caller's thread."""

    daemon_threads = True

    def __init__(self, site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False):
        root = Path(site)
        if not root.is_dir():
            raise ServeError(f"site folder {str(root)!r} {'is not a folder' if root.exists() else 'does not exist'}")
        self.site = root
        self.root = Path(os.path.realpath(root))
        self.quiet = quiet
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _SiteHandler)
        except OSError as e:
            reason = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be opened: {e.strerror}"
            raise ServeError(f"address {host}:{port} {reason}") from e
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = {"0.0.0.0": "localhost", "::": "localhost"}.get(host, host)
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"

    def start(self) -> "SiteServer":
        # A short poll interval makes stop() return quickly.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name=f"serve {self.site}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> "SiteServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
