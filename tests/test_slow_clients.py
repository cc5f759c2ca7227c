"""Clients that stall are dropped (408 after the body timeout, idle keep-alives closed), and others are served."""

import socket
import time

import httpx
import pytest
from lablr_server import running_server
from test_server import assert_error, photo

from lablr.core import defaults

BODY_TIMEOUT = 2.0
KEEP_ALIVE = 1.0


@pytest.fixture(scope="module")
def server(tiny_bundle):
    options = ["--body-timeout", str(BODY_TIMEOUT), "--keep-alive", str(KEEP_ALIVE)]
    with running_server(tiny_bundle, *options) as (base, log):
        yield base, int(base.rsplit(":", 1)[1]), log


def stalled_upload(port: int) -> socket.socket:
    """A client that sends its headers and 1 KB of a 100 KB photo, then nothing more."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(f"POST /api/v1/suggest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
                 "Content-Length: 100000\r\n\r\n".encode() + photo()[:1000])
    return conn


def read_until_closed(conn: socket.socket, within: float) -> bytes:
    conn.settimeout(within)
    received = b""
    for _ in range(10_000):
        chunk = conn.recv(65536)  # socket.timeout fails the test: the server kept it open
        if not chunk:
            return received
        received += chunk
    raise AssertionError("endless answer")


def test_defaults_bound_slow_clients():
    assert 0 < defaults.BODY_TIMEOUT <= 60 and 0 < defaults.KEEP_ALIVE_TIMEOUT
    assert 64 <= defaults.LIMIT_CONCURRENCY < 10_000


def test_twenty_stalled_uploads_are_dropped_while_health_stays_fast(server):
    base, port, log = server
    started = time.monotonic()
    stalled = [stalled_upload(port) for _ in range(20)]
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            waits = []
            for _ in range(10):
                asked = time.monotonic()
                assert client.get("/api/v1/health").status_code == 200
                waits.append(time.monotonic() - asked)
                time.sleep(0.05)
            assert client.post("/api/v1/suggest", files={"image": ("a.png", photo(), "image/png")}).status_code == 200
        assert time.monotonic() - started < BODY_TIMEOUT  # all of that while the 20 were still stalled
        assert max(waits) < 1.0, waits
        for conn in stalled:
            answer = read_until_closed(conn, within=BODY_TIMEOUT + 10)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
            assert b'"body_timeout"' in body
        assert time.monotonic() - started >= BODY_TIMEOUT
    finally:
        for conn in stalled:
            conn.close()
    assert not [line for line in log if "Traceback" in line or "Exception" in line]


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline(server):
    base, port, _ = server
    conn = stalled_upload(port)
    started, answer = time.monotonic(), b""
    try:
        conn.settimeout(0.5)
        for _ in range(100):  # one byte every 0.5 s: each arrives in time, the whole never does
            try:
                conn.sendall(b"x")
            except OSError:
                break
            try:
                answer = conn.recv(65536)
                break
            except socket.timeout:
                continue
        assert answer.startswith(b"HTTP/1.1 408")
        assert BODY_TIMEOUT <= time.monotonic() - started < BODY_TIMEOUT + 5
    finally:
        conn.close()


def test_an_idle_keep_alive_connection_is_closed(server):
    base, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(f"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        started = time.monotonic()
        answer = read_until_closed(conn, within=KEEP_ALIVE + 10)
        assert answer.startswith(b"HTTP/1.1 200")
        assert KEEP_ALIVE * 0.5 <= time.monotonic() - started < KEEP_ALIVE + 5


def silent_connection(port: int, head: bytes = b"") -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(head)
    return conn


def test_connections_that_never_finish_a_request_head_are_closed(server):
    base, port, _ = server
    started = time.monotonic()
    silent = [silent_connection(port) for _ in range(10)]
    half = [silent_connection(port, f"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
            for _ in range(10)]
    try:
        assert httpx.get(base + "/api/v1/health", timeout=10).status_code == 200
        for conn in silent + half:
            assert read_until_closed(conn, within=KEEP_ALIVE + 10) == b""
        assert KEEP_ALIVE * 0.5 <= time.monotonic() - started < KEEP_ALIVE + 10
    finally:
        for conn in silent + half:
            conn.close()


def test_more_idle_sockets_than_the_limit_only_block_until_they_are_dropped(tiny_bundle):
    with running_server(tiny_bundle, "--keep-alive", "1", "--limit-concurrency", "64") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        idle = [silent_connection(port) for _ in range(80)]
        try:
            time.sleep(0.3)
            assert httpx.get(base + "/api/v1/health", timeout=10).status_code == 503  # the limit is finite
            deadline = time.monotonic() + 15
            status = None
            while time.monotonic() < deadline and status != 200:
                time.sleep(0.5)
                status = httpx.get(base + "/api/v1/health", timeout=10).status_code
            assert status == 200
        finally:
            for conn in idle:
                conn.close()


def test_seventy_stalled_sockets_do_not_trip_the_concurrency_limit(server):
    base, port, _ = server
    stalled = [stalled_upload(port) for _ in range(70)]
    try:
        answer = httpx.get(base + "/api/v1/health", timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        for conn in stalled:
            conn.close()


def test_a_stalled_upload_gets_its_408_on_the_api_too(server):
    base, port, _ = server
    conn = stalled_upload(port)
    try:
        answer = read_until_closed(conn, within=BODY_TIMEOUT + 10)
    finally:
        conn.close()
    body = answer.partition(b"\r\n\r\n")[2]
    assert_error(httpx.Response(408, headers={"content-type": "application/json"}, content=body), 408, "body_timeout")
