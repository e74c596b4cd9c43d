"""Attacks on /ws against a real server: a 4000-repeat subscribe, oversized messages, a client that never
reads, too many sockets per address and per user. Each would stall the engine's loop or hold memory on
the code before the fix; the assertions are on work done (snapshots built) and on the hub's state."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.api.ratelimit import TokenBucketLimiter
from tradehall.client import AsyncClient, Client

REPEATS = 4000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # messages up to 1 MiB here, so the channel bounds are what refuses the repeats
    with running_server(
        tmp_path_factory.mktemp("ws-abuse"), ws_max_message_bytes=1024 * 1024, ws_max_channels_per_message=100
    ) as running:
        create_demo_markets(running.admin())
        yield running


def ws_url(server: Server) -> str:
    return server.url.replace("http", "ws") + "/ws"


def wait_for(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    """Poll a condition on the server's state, with a bounded deadline (never a bare sleep)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


async def recv_json(socket: Any, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), timeout))
    return message


async def test_a_4000_repeat_subscribe_is_refused_without_building_a_snapshot(server: Server) -> None:
    hub = server.app.state.hub
    builds = hub.snapshots.builds
    async with websockets.connect(ws_url(server), max_size=None) as socket:
        message = {"op": "subscribe", "channels": ["book:BTC-USD"] * REPEATS, "id": 7}
        await socket.send(json.dumps(message))
        reply = await recv_json(socket)
        assert reply == {
            "op": "error",
            "code": "invalid_request",
            "message": "at most 100 channels per message",
            "id": 7,
        }
        await socket.send(json.dumps({"op": "ping", "id": "after"}))
        assert await recv_json(socket) == {"op": "pong", "id": "after"}
    assert hub.snapshots.builds == builds
    assert not hub.public.get("book:BTC-USD")


async def test_repeats_within_the_bound_subscribe_once_and_one_snapshot_is_shared(server: Server) -> None:
    trader, account_id = server.trader()
    trader.place_order(account_id, "BTC-USD", "buy", "0.001", "123")  # a new book sequence: nothing cached
    hub = server.app.state.hub
    builds = hub.snapshots.builds
    texts = []
    for _ in range(3):
        async with websockets.connect(ws_url(server)) as socket:
            await socket.send(json.dumps({"op": "subscribe", "channels": ["book:BTC-USD"] * 100, "id": 1}))
            assert await recv_json(socket) == {"op": "subscribed", "channels": ["book:BTC-USD"], "id": 1}
            raw = await asyncio.wait_for(socket.recv(), 10)
            snapshot = json.loads(raw)
            assert (snapshot["channel"], snapshot["type"]) == ("book:BTC-USD", "snapshot")
            texts.append(raw)
            await socket.send(json.dumps({"op": "ping"}))
            assert await recv_json(socket) == {"op": "pong"}  # one snapshot, not 100
    assert hub.snapshots.builds == builds + 1
    assert texts[0] == texts[1] == texts[2]
    trader.cancel_all(account_id)


async def test_channel_limits_per_connection_answer_invalid_request(server: Server) -> None:
    limit = server.settings.ws_max_subscriptions
    async with websockets.connect(ws_url(server)) as socket:
        # the per-connection bound counts distinct channels (candles of every interval, both markets)
        channels = [
            f"candles:{m}:{i}" for m in ("BTC-USD", "BTC-PERP") for i in ("1m", "5m", "15m", "1h", "1d")
        ]
        channels += [f"{kind}:{m}" for kind in ("book", "trades", "ticker") for m in ("BTC-USD", "BTC-PERP")]
        subscribed: list[str] = []
        errors: list[dict[str, Any]] = []
        batches = [channels[i : i + 8] for i in range(0, len(channels), 8)]
        hub = server.app.state.hub
        hub_limit = hub.max_subscriptions
        hub.max_subscriptions = 10
        try:
            for batch in batches:
                await socket.send(json.dumps({"op": "subscribe", "channels": batch}))
                while True:
                    message = await recv_json(socket)
                    if message.get("op") == "error":
                        errors.append(message)
                    elif message.get("op") == "subscribed":
                        subscribed += message["channels"]
                        break
        finally:
            hub.max_subscriptions = hub_limit
        assert len(subscribed) == 10
        assert len(errors) == len(channels) - 10
        assert {(e["code"], e["message"]) for e in errors} == {
            ("invalid_request", "subscription limit of 10 channels reached")
        }
    assert limit == 50  # the default


async def test_a_message_over_the_size_limit_is_refused_and_the_socket_closed_with_1009(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as small:
        create_demo_markets(small.admin())
        hub = small.app.state.hub
        builds = hub.snapshots.builds
        assert small.settings.ws_max_message_bytes == 16 * 1024
        async with websockets.connect(ws_url(small)) as socket:
            message = json.dumps({"op": "subscribe", "channels": ["book:BTC-USD"] * REPEATS})
            assert len(message) > 60_000
            await socket.send(message)
            # the server's WebSocket protocol refuses the frame before buffering it whole: 1009 at once
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        assert hub.snapshots.builds == builds
        wait_for(lambda: not hub.connections)


# ---- a client that never reads --------------------------------------------------------------------


def _frame(text: str) -> bytes:
    """One masked text frame (a client must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(payload) < 126:
        header.append(0x80 | len(payload))
    else:
        header.append(0x80 | 126)
        header += len(payload).to_bytes(2, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _non_reading_client(url: str) -> socket.socket:
    """A WebSocket client with a tiny receive window that never reads after the handshake."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.parametrize(
    ("queue_bytes", "aborted"),
    [
        pytest.param(64 * 1024, None, id="past-the-queued-bytes"),
        # a queue bound out of reach: only the send timeout can notice, with the writer stuck in a
        # send on a full socket; not even a close frame fits, so the transport is aborted
        pytest.param(1 << 30, 1, id="past-the-send-timeout"),
    ],
)
def test_a_client_that_never_reads_is_dropped_and_its_memory_released(
    tmp_path: Path, queue_bytes: int, aborted: int | None
) -> None:
    with running_server(
        tmp_path, ws_send_queue=1 << 20, ws_send_queue_bytes=queue_bytes, ws_send_timeout_seconds=1.0
    ) as srv:
        create_demo_markets(srv.admin())
        trader, account_id = srv.trader()
        for index in range(100):  # a book of 100 levels: each snapshot is a few KB
            trader.place_order(account_id, "BTC-USD", "buy", "0.001", str(1000 + index))
        hub = srv.app.state.hub
        sock = _non_reading_client(srv.url)
        wait_for(lambda: len(hub.connections) == 1)
        subscribe = _frame(json.dumps({"op": "subscribe", "channels": ["book:BTC-USD"]}))
        sent = 0
        try:
            # every repeat queues another snapshot for a client that reads none of them
            while hub.slow_consumers == 0 and sent < 20_000:
                sock.sendall(subscribe)
                sent += 1
        except OSError:
            pass  # the server dropped us while we were still sending
        wait_for(lambda: hub.slow_consumers == 1)
        # released from the hub at once: no queue, no channel, no connection
        wait_for(lambda: not hub.connections and hub.queued_bytes == 0)
        assert not hub.public.get("book:BTC-USD")
        assert hub.by_ip == {}
        if aborted is not None:
            assert hub.aborted == aborted
        # and the socket itself is gone (closed or reset), not half-open
        sock.settimeout(10)
        closed = False
        try:
            while sock.recv(65536):
                pass
            closed = True
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        finally:
            sock.close()
        assert closed
        # the server is still fine for everyone else
        assert Client(srv.url).book("BTC-USD")["bids"]


# ---- caps per address and per user ----------------------------------------------------------------


async def test_connections_per_address_are_capped(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_max_connections_per_ip=2) as srv:
        hub = srv.app.state.hub
        first = await websockets.connect(ws_url(srv))
        second = await websockets.connect(ws_url(srv))
        try:
            async with websockets.connect(ws_url(srv)) as third:
                refusal = await recv_json(third)
                assert (refusal["op"], refusal["code"]) == ("error", "rate_limited")
                assert refusal["message"] == "at most 2 WebSocket connections per address"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert hub.by_ip == {"127.0.0.1": 2}
            await first.close()
            wait_for(lambda: hub.by_ip == {"127.0.0.1": 1})
            async with websockets.connect(ws_url(srv)) as again:
                await again.send(json.dumps({"op": "ping"}))
                assert await recv_json(again) == {"op": "pong"}
        finally:
            await first.close()
            await second.close()


async def test_connections_per_user_are_capped(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_max_connections_per_user=2) as srv:
        trader, _ = srv.trader()
        token = trader.auth_token
        async with AsyncClient(srv.url, token=token).stream(), AsyncClient(srv.url, token=token).stream():
            async with websockets.connect(ws_url(srv)) as third:
                await third.send(json.dumps({"op": "auth", "token": token, "id": "a1"}))
                refusal = await recv_json(third)
                assert refusal == {
                    "op": "error",
                    "code": "rate_limited",
                    "message": "at most 2 WebSocket connections per user",
                    "id": "a1",
                }
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            # anonymous sockets of the same address are not counted against the user
            async with websockets.connect(ws_url(srv)) as anonymous:
                await anonymous.send(json.dumps({"op": "ping", "id": 3}))
                assert await recv_json(anonymous) == {"op": "pong", "id": 3}
        hub = srv.app.state.hub
        wait_for(lambda: not hub.by_user)
        async with AsyncClient(srv.url, token=token).stream() as stream:  # the count went back down
            assert (await stream.ping())["op"] == "pong"


async def test_a_reconnect_loop_is_refused_at_the_handshake(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_connects_per_second_per_ip=1) as limited:
        hub = limited.app.state.hub
        # a stopped clock: the bucket (1/s, burst 2) never refills during the test
        hub.connects = TokenBucketLimiter(1, 2, clock=lambda: 0.0)
        for _ in range(2):
            async with websockets.connect(ws_url(limited)) as socket:
                await socket.send(json.dumps({"op": "ping"}))
                assert json.loads(await socket.recv()) == {"op": "pong"}
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(limited))
        assert refused.value.response.status_code == 403
        assert not hub.connections
        assert Client(limited.url).markets()["items"] is not None  # HTTP is untouched
