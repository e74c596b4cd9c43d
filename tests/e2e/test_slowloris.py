"""Slow clients against the server as `tradehall serve` runs it (`api.server.uvicorn_config`): a request
head or body that does not arrive in time gets its connection closed; normal requests keep working."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect as ws_connect

from tests.e2e.test_api_harness import free_port, make_settings
from tradehall.api import create_app
from tradehall.api.server import (
    ReadDeadlines,
    TimedH11Protocol,
    TimedHttpToolsProtocol,
    timed_http_protocol,
    uvicorn_config,
)

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
CLOSE_DEADLINE = 10.0  # far above the timeouts: only a connection never closed fails


@contextmanager
def serving(
    data_dir: Path, protocol: type[ReadDeadlines], timeout: float = HEADER_TIMEOUT
) -> Iterator[tuple[str, int]]:
    settings = make_settings(data_dir, http_header_timeout_seconds=timeout, http_body_timeout_seconds=timeout)
    port = free_port()
    http = timed_http_protocol(timeout, timeout, protocol)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=port, http=http)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


PROTOCOLS = [
    pytest.param(TimedH11Protocol, id="h11"),
    pytest.param(
        TimedHttpToolsProtocol,
        id="httptools",
        marks=pytest.mark.skipif(TimedHttpToolsProtocol is None, reason="httptools is not installed"),
    ),
]


@pytest.fixture(scope="module", params=PROTOCOLS)
def address(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory.mktemp("slowloris"), request.param) as running:
        yield running


def wait_closed(sock: socket.socket) -> tuple[bool, bytes]:
    """Reads until the server closes (True) or the deadline passes (False); returns what it sent."""
    received = b""
    deadline = time.monotonic() + CLOSE_DEADLINE
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def test_the_serve_configuration_uses_the_timed_protocol(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, http_header_timeout_seconds=3.5, http_keep_alive_seconds=4)
    config = uvicorn_config(object(), settings, host="127.0.0.1", port=1)
    assert issubclass(config.http, TimedHttpToolsProtocol or TimedH11Protocol)  # type: ignore[arg-type]
    assert config.http.header_timeout == 3.5  # type: ignore[union-attr]
    assert config.timeout_keep_alive == 4
    assert config.limit_concurrency == settings.http_max_connections
    assert config.h11_max_incomplete_event_size == 16 * 1024


def test_a_partial_request_head_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")  # no blank line
        closed, received = wait_closed(sock)
        assert closed and received == b""
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_head_above_16_kib_is_closed_without_waiting_for_a_deadline(
    protocol: type[ReadDeadlines], tmp_path: Path
) -> None:
    with serving(tmp_path, protocol, timeout=3600) as address, socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for n in range(40):  # 40 KiB of headers; the deadline is an hour away
                sock.sendall(b"X-Filler-%04d: " % n + b"a" * 1000 + b"\r\n")
        closed, received = wait_closed(sock)
        assert closed
        assert received == b"" or received.startswith(b"HTTP/1.1 400")


def test_a_connection_that_sends_nothing_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        closed, received = wait_closed(sock)
        assert closed and received == b""


def test_a_head_trickled_byte_by_byte_is_closed_despite_the_traffic(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < CLOSE_DEADLINE:
            try:
                sock.sendall(b"X-a: b\r\n")  # a header line every 50 ms: never completes
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.05)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed


def test_a_body_that_never_completes_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username":'
        )
        closed, _ = wait_closed(sock)
        assert closed


def test_a_keep_alive_connection_then_a_partial_head_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(CLOSE_DEADLINE)
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request never finishes its head
        closed, _ = wait_closed(sock)
        assert closed


def test_normal_requests_keep_working_also_with_a_head_in_pieces(address: tuple[str, int]) -> None:
    host, port = address
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):  # one keep-alive connection, several requests
            assert client.get("/health").status_code == 200
        answer = client.post("/auth/token", json={"username": "admin", "password": "nope"})
        assert answer.status_code == 401
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        sock.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        closed, received = wait_closed(sock)
        assert closed and received.startswith(b"HTTP/1.1 200")


def test_a_websocket_outlives_the_header_timeout(address: tuple[str, int]) -> None:
    host, port = address
    with ws_connect(f"ws://{host}:{port}/ws", open_timeout=CLOSE_DEADLINE) as ws:
        ws.send(json.dumps({"op": "ping"}))
        assert json.loads(ws.recv(timeout=CLOSE_DEADLINE))["op"] == "pong"
        time.sleep(HEADER_TIMEOUT * 3)  # past every read deadline of the HTTP protocol
        ws.send(json.dumps({"op": "ping"}))
        assert json.loads(ws.recv(timeout=CLOSE_DEADLINE))["op"] == "pong"
