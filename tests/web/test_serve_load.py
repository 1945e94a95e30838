"""bitnet_wasm.serve under the load of a hostile or unlucky crowd, on real sockets on 127.0.0.1:
many concurrent downloads, 1,500 slow clients, idle keep-alives, clients that vanish mid-request.
Bounded: the threads, how long each connection is held, and what reaches the log.
The numbers are printed (pytest -s)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import http.client
import resource
import socket
import struct
import threading
import time

import pytest

from bitnet_wasm.serve import Limits, SiteServer

LIMITS = Limits(request_timeout=2.0, write_timeout=10.0)  # short deadlines keep the tests short
SLACK = 6.0  # seconds beyond a deadline that a loaded 2-core machine may need
BIG = 4 << 20


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<!doctype html><p>hello</p>")
    (root / "big.bin").write_bytes(hashlib.shake_256(b"weights").digest(BIG))
    return root


@pytest.fixture
def server(site):
    with SiteServer(site, "127.0.0.1", 0, quiet=True, limits=LIMITS) as s:
        yield s


def enough_file_descriptors(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft == resource.RLIM_INFINITY or soft >= wanted, f"this test needs {wanted} open files; the hard limit is {hard}"


def run_clients(coroutine):
    """Runs the clients on an event loop of their own, in a thread of their own (this one may hold Playwright's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class ThreadPeak:
    """How many threads this process ran when the block began (`start`) and at most while it ran (`peak`),
    sampled from the caller's event loop."""

    async def __aenter__(self):
        self.start = self.peak = threading.active_count()
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self):
        while True:
            self.peak = max(self.peak, threading.active_count())
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc):
        self._task.cancel()


async def fetch(server, path: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of one GET on a fresh connection, all within `timeout` seconds."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(*server.server_address[:2])
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_200_concurrent_downloads_all_complete(server, site):
    expected = hashlib.sha256((site / "big.bin").read_bytes()).hexdigest()

    async def crowd():
        async with ThreadPeak() as threads:
            results = await asyncio.gather(*[fetch(server, "/big.bin", timeout=120) for _ in range(200)])
        return results, threads

    start = time.monotonic()
    results, threads = run_clients(crowd())
    seconds = time.monotonic() - start
    print(f"\n200 x {BIG >> 20} MiB downloads: {sum(status == 200 for status, _ in results)} answered 200 in {seconds:.1f} s; "
          f"threads {threads.start} -> peak {threads.peak}")
    assert [status for status, _ in results] == [200] * 200
    assert all(hashlib.sha256(body).hexdigest() == expected for _, body in results)
    assert threads.peak <= threads.start + 1


async def slow_client(server, opened: asyncio.Event, held: list[float]) -> None:
    """Sends a request's headers one line every 0.5 s, forever; records how long from connecting until the server hangs up."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(*server.server_address[:2])
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    opened.set()
    try:
        while not await _closed_within(reader, 0.5):
            writer.write(b"X-Slow: 1\r\n")
    except ConnectionError:
        pass
    held.append(time.monotonic() - start)
    writer.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), seconds) == b""
    except TimeoutError:
        return False


def test_1500_slow_clients_are_cut_off_and_others_still_answered(site):
    count = 1500
    enough_file_descriptors(2 * count + 200)  # both ends of every connection live in this process
    with SiteServer(site, "127.0.0.1", 0, quiet=True, limits=LIMITS) as server:
        assert server.max_connections > count
        seen = run_clients(siege(server, count))
    print(f"\n{count} slow clients: opened in {seen['open']:.1f} s; meanwhile a normal request answered {seen['status']} in "
          f"{seen['answer']:.2f} s; {seen['cut']} cut off, each held {seen['shortest']:.1f}-{seen['longest']:.1f} s; "
          f"then answered {seen['after']}; threads {seen['threads'].start} -> peak {seen['threads'].peak}")
    assert seen["status"] == 200 and b"hello" in seen["body"]
    assert seen["cut"] == count
    assert LIMITS.request_timeout <= seen["shortest"] and seen["longest"] < LIMITS.request_timeout + SLACK
    assert seen["after"] == 200
    assert seen["threads"].peak <= seen["threads"].start + 1


async def siege(server, count: int) -> dict:
    """`count` slow clients, a normal request while they are all held, another after they are gone."""
    async with ThreadPeak() as threads:
        held: list[float] = []
        start = time.monotonic()
        opened = [asyncio.Event() for _ in range(count)]
        clients = [asyncio.create_task(slow_client(server, event, held)) for event in opened]
        async with asyncio.timeout(60):
            await asyncio.gather(*[event.wait() for event in opened])
        all_open = time.monotonic()
        status, body = await fetch(server, "/index.html", timeout=3 * LIMITS.request_timeout)
        answered = time.monotonic()
        async with asyncio.timeout(LIMITS.request_timeout + 60):
            await asyncio.gather(*clients)
        after = await fetch(server, "/index.html", timeout=LIMITS.request_timeout)
        return {
            "open": all_open - start, "answer": answered - all_open, "status": status, "body": body,
            "shortest": min(held), "longest": max(held), "cut": len(held), "after": after[0], "threads": threads,
        }


def test_at_the_connection_cap_the_longest_waiting_client_makes_room(site):
    with SiteServer(site, "127.0.0.1", 0, quiet=True, limits=Limits(request_timeout=30, max_connections=10)) as server:
        async def crowd():
            held: list[float] = []
            opened = [asyncio.Event() for _ in range(20)]
            clients = [asyncio.create_task(slow_client(server, event, held)) for event in opened]
            await asyncio.gather(*[event.wait() for event in opened])
            status, _ = await fetch(server, "/index.html", timeout=10)
            await asyncio.sleep(0.5)
            cut = len(held)
            for client in clients:
                client.cancel()
            return status, cut

        status, cut = run_clients(crowd())
    assert status == 200  # long before the 30 s request deadline
    assert cut == 11  # the 10 oldest made room for the 10 newer ones, then the oldest of those for the normal request


def test_idle_keep_alive_connection_is_closed_after_the_request_deadline(server):
    with socket.create_connection(server.server_address[:2], timeout=LIMITS.request_timeout + SLACK) as s:
        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(s)
        response.begin()
        assert response.status == 200 and b"hello" in response.read()
        start = time.monotonic()
        try:
            assert s.recv(1) == b""  # the server hung up
        except ConnectionResetError:
            pass
        idle = time.monotonic() - start
    assert LIMITS.request_timeout - 0.5 < idle < LIMITS.request_timeout + SLACK


def test_vanishing_clients_leave_no_trace_in_the_log(site, capfd):
    with SiteServer(site, "127.0.0.1", 0, limits=LIMITS) as server:
        address = server.server_address[:2]
        for _ in range(20):
            with socket.create_connection(address) as s:  # half a request, then gone
                s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
            with socket.create_connection(address) as s:  # a download abandoned after its first bytes
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(1000)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not a polite close
        with socket.create_connection(address) as s:  # a whole request, answered after all that
            s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.makefile("rb").read().startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.5)
    log = capfd.readouterr().err.splitlines()
    assert [line.split('"')[1:] for line in log] == [["GET /big.bin HTTP/1.1", f" 200 {BIG}"]] * 20 + [["GET /index.html HTTP/1.1", " 200 27"]]


def test_a_client_that_stops_reading_is_dropped_after_the_write_deadline(site):
    with open(site / "huge.bin", "wb") as f:
        f.truncate(64 << 20)  # more than the kernel's socket buffers hold; sparse, so nothing is written
    limits = Limits(write_timeout=1.0)
    with SiteServer(site, "127.0.0.1", 0, quiet=True, limits=limits) as server:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(server.server_address[:2])
            s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(limits.write_timeout + SLACK)  # not reading
            s.settimeout(SLACK)
            received, ended, give_up = b"", False, time.monotonic() + 2 * SLACK
            try:
                while not ended and time.monotonic() < give_up:  # what the kernel had buffered, then the end
                    chunk = s.recv(1 << 20)
                    received, ended = received + chunk, chunk == b""
            except ConnectionResetError:
                ended = True
        assert fetch_sync(server, "/index.html") == 200
    assert received.startswith(b"HTTP/1.1 200 OK") and ended and len(received) < 64 << 20


def fetch_sync(server, path: str) -> int:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=SLACK)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status
