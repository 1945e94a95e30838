"""A static file server for a built site: correct MIME types, the cross-origin isolation headers
that SharedArrayBuffer and threaded wasm need, nothing served from outside the site folder, byte
ranges, and bounded under abuse. One asyncio event loop (one thread) holds every connection, so slow
or idle clients cost a socket each, never a thread; each wait has a deadline (Limits), and a client
that goes away is dropped without a word in the log."""
from __future__ import annotations

import argparse
import asyncio
import errno
import os
import re
import socket
import stat
import sys
import threading
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

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
CORS_HEADERS = {  # --cors: pages of any origin may import the runtime and fetch the model, ranges included
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges, ETag",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
SINGLE_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")  # more digits than a file can have: ignored
SEND_CHUNK = 1 << 20  # bytes handed to sendfile per write deadline
LINGER = 1.0  # seconds a closing connection reads what the client still sends, so that it gets the answer, not a reset
SPARE_DESCRIPTORS = 64  # for the files being sent, the listening socket and the interpreter


@dataclass(frozen=True)
class Limits:
    request_timeout: float = 5.0   # from waiting for a request (an idle keep-alive too) to its last header line
    write_timeout: float = 30.0    # a client that takes no SEND_CHUNK within this is dropped
    max_connections: int = 4096    # at the cap, the connection waiting longest for its request is dropped
    max_line: int = 8192           # a longer request line is answered 414, a longer header line 431
    max_headers: int = 100


def _connection_cap(wanted: int) -> int:
    """At most `wanted`, and few enough that accepting never runs out of file descriptors."""
    try:
        import resource
    except ImportError:  # Windows has no per-process descriptor limit
        return wanted
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - SPARE_DESCRIPTORS))


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


class _Refusal(Exception):
    """A request answered with an error status instead of a file."""

    def __init__(self, status: HTTPStatus, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


@dataclass
class _Request:
    line: str
    method: str
    target: str
    headers: dict[str, str]
    keep_alive: bool


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single-range `Range: bytes=...` header, None to send the whole file (no
    range, or one this server ignores: malformed or several), _Refusal 416 when it is unsatisfiable."""
    match = SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if last == "" else min(size, int(last) + 1)
        if last != "" and int(last) < start:
            return None
    if start >= end:
        raise _Refusal(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "range outside the file", {"Content-Range": f"bytes */{size}"})
    return start, end


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else "-"

    def drop(self) -> None:
        self.writer.transport.abort()


class SiteServer:
    """Serves SITE on host:port (port 0: any free port). `with SiteServer(...) as s:` runs it in
    a background thread; `serve_forever()` runs it in the caller's thread. `cors=True` lets pages of
    other origins use the files. on_request(path) is called with each request's path (tests count fetches)."""

    def __init__(self, site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *,
                 quiet: bool = False, cors: bool = False, limits: Limits = Limits(), on_request=None):
        root = Path(site)
        if not root.is_dir():
            raise ServeError(f"site folder {str(root)!r} {'is not a folder' if root.exists() else 'does not exist'}")
        self.site = root
        self.root = Path(os.path.realpath(root))
        self.quiet = quiet
        self.on_request = on_request
        self.limits = limits
        self.max_connections = _connection_cap(limits.max_connections)
        self.headers = {**ISOLATION_HEADERS, **(CORS_HEADERS if cors else {})}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.socket = socket.create_server((host, port), family=family, backlog=1024)
        except OSError as e:
            reason = "is already in use (choose another --port, or --port 0 for any free one)" if e.errno == errno.EADDRINUSE \
                else f"cannot be opened: {e.strerror}"
            raise ServeError(f"address {host}:{port} {reason}") from e
        self.server_address = self.socket.getsockname()
        self._connections: set[_Connection] = set()
        self._waiting: dict[_Connection, None] = {}  # waiting for a request, longest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = {"0.0.0.0": "localhost", "::": "localhost"}.get(host, host)
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"

    def serve_forever(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._running.set()  # start() must not wait for a loop that failed to start

    def start(self) -> "SiteServer":
        self._thread = threading.Thread(target=self.serve_forever, name=f"serve {self.site}", daemon=True)
        self._thread.start()
        self._running.wait()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
            self._thread = None
        self.server_close()

    def server_close(self) -> None:
        self.socket.close()

    def __enter__(self) -> "SiteServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        async def on_connection(reader, writer):
            tasks.add(asyncio.current_task())
            try:
                await self._connection(_Connection(reader, writer))
            finally:
                tasks.discard(asyncio.current_task())

        server = await asyncio.start_server(on_connection, sock=self.socket, limit=self.limits.max_line, backlog=1024)
        self._running.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _loop_error(self, loop, context: dict) -> None:
        error = context.get("exception")
        if isinstance(error, asyncio.CancelledError):
            return  # stop() cancels the connections still open
        print(f"bitnet-wasm serve: {context['message']}{f': {error!r}' if error else ''}", file=sys.stderr, flush=True)

    def _log(self, connection: _Connection, line: str, status: int, size: int | None) -> None:
        if not self.quiet:
            shown = line if len(line) <= 200 else line[:200] + "..."
            shown = shown.encode("unicode_escape").decode("ascii")
            print(f'{connection.peer} - - [{formatdate(usegmt=True)}] "{shown}" {status} {size if size is not None else "-"}',
                  file=sys.stderr, flush=True)

    def _admit(self, connection: _Connection) -> bool:
        if len(self._connections) >= self.max_connections:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                return False
            self._forget(oldest)
            oldest.drop()
        self._connections.add(connection)
        return True

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._waiting.pop(connection, None)

    async def _connection(self, connection: _Connection) -> None:
        if not self._admit(connection):
            connection.drop()
            return
        try:
            while await self._exchange(connection):
                pass
            await self._close(connection)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            connection.drop()  # the client went away or was too slow: nothing to tell anyone
        except Exception as e:  # a bug here must not take the server down nor flood the log
            print(f"bitnet-wasm serve: internal error: {e!r}", file=sys.stderr, flush=True)
            connection.drop()
        finally:
            self._forget(connection)

    async def _close(self, connection: _Connection) -> None:
        try:
            connection.writer.write_eof()
            async with asyncio.timeout(LINGER):
                while await connection.reader.read(1 << 16):
                    pass
        except (OSError, TimeoutError):
            pass  # the answer was sent; what the client does now no longer matters
        connection.drop()

    async def _exchange(self, connection: _Connection) -> bool:
        """Reads one request and answers it; whether the connection stays open for another."""
        self._waiting[connection] = None
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                request = await self._read_request(connection.reader)
        except _Refusal as refusal:
            await self._send_error(connection, None, refusal, head=False)
            return False
        finally:
            self._waiting.pop(connection, None)
        if request is None:
            return False
        try:
            await self._answer(connection, request)
        except _Refusal as refusal:
            await self._send_error(connection, request, refusal, head=request.method == "HEAD")
        return request.keep_alive

    async def _read_line(self, reader: asyncio.StreamReader, too_long: HTTPStatus) -> str | None:
        try:
            line = await reader.readline()
        except ValueError:  # longer than max_line
            raise _Refusal(too_long, "line too long") from None
        if not line.endswith(b"\n"):
            return None  # the client closed before finishing its request: never answer half a request
        return line.decode("latin-1").rstrip("\r\n")

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request | None:
        line = ""
        while line == "":  # empty lines between requests are allowed
            line = await self._read_line(reader, HTTPStatus.REQUEST_URI_TOO_LONG)
            if line is None:
                return None
        parts = line.split()
        if len(parts) != 3:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, target, version = parts
        if not version.startswith("HTTP/"):
            raise _Refusal(HTTPStatus.BAD_REQUEST, "malformed request line")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refusal(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{version} is not supported")
        headers: dict[str, str] = {}
        for count in range(self.limits.max_headers + 1):
            header = await self._read_line(reader, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            if header is None:
                return None
            if header == "":
                break
            if count == self.limits.max_headers:
                raise _Refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header lines")
            name, colon, value = header.partition(":")
            if not colon or not name or name != name.strip():
                raise _Refusal(HTTPStatus.BAD_REQUEST, "malformed header line")
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        connection_options = {o.strip().lower() for o in headers.get("connection", "").split(",")}
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        keep_alive = not has_body and (  # a body is not read, so the connection cannot be reused
            "keep-alive" in connection_options if version == "HTTP/1.0" else "close" not in connection_options)
        return _Request(line, method, target, headers, keep_alive)

    async def _answer(self, connection: _Connection, request: _Request) -> None:
        if self.on_request is not None:
            self.on_request(request.target)
        if request.method == "OPTIONS":
            await self._send(connection, request, HTTPStatus.NO_CONTENT, {"Allow": ALLOWED_METHODS, **PREFLIGHT_HEADERS})
            return
        if request.method not in ("GET", "HEAD"):
            raise _Refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not served here", {"Allow": ALLOWED_METHODS})
        path = self._file(request.target)
        try:
            f = open(path, "rb")
        except OSError as e:
            raise _Refusal(HTTPStatus.FORBIDDEN, f"cannot read the file: {e.strerror}") from None
        with f:
            info = os.fstat(f.fileno())
            etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
            if request.headers.get("if-none-match") == etag:
                await self._send(connection, request, HTTPStatus.NOT_MODIFIED, {"ETag": etag, "Cache-Control": "no-cache"})
                return
            headers = {
                "Content-Type": MIME_TYPES.get(path.suffix.lower(), DEFAULT_MIME_TYPE),
                "Cache-Control": "no-cache",
                "Accept-Ranges": "bytes",
                "ETag": etag,
                "Last-Modified": formatdate(info.st_mtime, usegmt=True),
            }
            span, status = (0, info.st_size), HTTPStatus.OK
            wanted = request.headers.get("range")
            if wanted is not None and request.headers.get("if-range", etag) in (etag, headers["Last-Modified"]):
                chosen = byte_range(wanted, info.st_size)
                if chosen is not None:
                    span, status = chosen, HTTPStatus.PARTIAL_CONTENT
                    headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{info.st_size}"
            await self._send(connection, request, status, headers, file=f, span=span)

    def _file(self, target: str) -> Path:
        """The regular file inside the site that a request target names."""
        if not target.startswith("/"):
            raise _Refusal(HTTPStatus.BAD_REQUEST, "request target must be a path starting with /")
        url_path = target.partition("?")[0].partition("#")[0]
        try:
            segments = unquote(url_path, errors="strict").replace("\\", "/").split("/")
        except UnicodeDecodeError:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "path is not valid UTF-8") from None
        if ".." in segments or any("\0" in s for s in segments):
            raise _Refusal(HTTPStatus.FORBIDDEN, "path leaves the site")
        path, info = self._stat(self.root.joinpath(*[s for s in segments if s not in ("", ".")]))
        if stat.S_ISDIR(info.st_mode):
            if not url_path.endswith("/"):
                raise _Refusal(HTTPStatus.MOVED_PERMANENTLY, "a folder", {"Location": url_path + "/"})
            path, info = self._stat(path / "index.html")
        if not stat.S_ISREG(info.st_mode):
            raise _Refusal(HTTPStatus.NOT_FOUND, "file not found")
        return path

    def _stat(self, path: Path) -> tuple[Path, os.stat_result]:
        """The real path (symlinks followed) and its status; 403 outside the site, 404 when there is
        no such file or the name is one the file system refuses (too long, too deep)."""
        try:
            real = Path(os.path.realpath(path))
            if not _inside(real, self.root):
                raise _Refusal(HTTPStatus.FORBIDDEN, "path leaves the site")
            return real, os.stat(real)
        except OSError:
            raise _Refusal(HTTPStatus.NOT_FOUND, "file not found") from None

    async def _send_error(self, connection: _Connection, request: _Request | None, refusal: _Refusal, head: bool) -> None:
        if request is not None and refusal.status == HTTPStatus.MOVED_PERMANENTLY:
            body = b""
        else:
            body = f"{refusal.status.value} {refusal.status.phrase}: {refusal.reason}\n".encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", **refusal.headers}
        await self._send(connection, request, refusal.status, headers, body=b"" if head else body, length=len(body))

    async def _send(self, connection: _Connection, request: _Request | None, status: HTTPStatus, headers: dict[str, str], *,
                    body: bytes = b"", length: int | None = None, file: BinaryIO | None = None, span: tuple[int, int] = (0, 0)) -> None:
        if file is not None:
            length = span[1] - span[0]
        keep_alive = request is not None and request.keep_alive
        lines = [f"HTTP/1.1 {status.value} {status.phrase}", "Server: bitnet-wasm", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in {**self.headers, **headers}.items()]
        if status not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            lines.append(f"Content-Length: {length if length is not None else len(body)}")
        if not keep_alive:
            lines.append("Connection: close")
        writer = connection.writer
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self._log(connection, request.line if request else "-", status.value, length)
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()
        if file is not None and request.method != "HEAD":
            await self._send_file(writer, file, span)

    async def _send_file(self, writer: asyncio.StreamWriter, file: BinaryIO, span: tuple[int, int]) -> None:
        position, end = span
        while position < end:
            async with asyncio.timeout(self.limits.write_timeout):
                sent = await self._loop.sendfile(writer.transport, file, position, min(SEND_CHUNK, end - position))
            if sent == 0:
                raise ConnectionAbortedError("the file shrank while it was sent")
            position += sent
