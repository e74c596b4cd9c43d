"""`/alpaca/stream` under abuse: the native `/ws` limits (per address, per frame) and an auth deadline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from tests.e2e.alpaca_support import alpaca_trader
from tests.e2e.test_api_harness import Server, running_server
from tests.e2e.test_ws_abuse import wait_for
from tradehall.api.ratelimit import TokenBucketLimiter


def stream_url(server: Server) -> str:
    return server.url.replace("http", "ws") + "/alpaca/stream"


async def recv_json(socket: Any, timeout: float = 10.0) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(await asyncio.wait_for(socket.recv(), timeout))
    return decoded


async def test_sockets_per_address_are_capped_over_both_endpoints(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_max_connections_per_ip=2, ws_connects_per_second_per_ip=0) as srv:
        hub = srv.app.state.hub
        native = await websockets.connect(srv.url.replace("http", "ws") + "/ws")
        first = await websockets.connect(stream_url(srv))
        try:
            async with websockets.connect(stream_url(srv)) as third:
                refusal = await recv_json(third)
                assert refusal == {
                    "op": "error",
                    "code": "rate_limited",
                    "message": "at most 2 WebSocket connections per address",
                }
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert hub.by_ip == {"127.0.0.1": 2}
            await first.close()
            wait_for(lambda: hub.by_ip == {"127.0.0.1": 1})
            trader = alpaca_trader(srv)
            async with websockets.connect(stream_url(srv)) as again:  # the place was given back
                auth = {
                    "action": "authenticate",
                    "data": {"key_id": trader.key_id, "secret_key": trader.secret},
                }
                await again.send(json.dumps(auth))
                assert (await recv_json(again))["data"]["status"] == "authorized"
        finally:
            await first.close()
            await native.close()
        wait_for(lambda: not hub.by_ip)


async def test_a_reconnect_loop_is_refused_at_the_handshake(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_connects_per_second_per_ip=1) as limited:
        hub = limited.app.state.hub
        hub.connects = TokenBucketLimiter(1, 2, clock=lambda: 0.0)  # a stopped clock: no refill
        for _ in range(2):
            async with websockets.connect(stream_url(limited)):
                pass
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(stream_url(limited))
        assert refused.value.response.status_code == 403


async def test_a_socket_that_never_authenticates_is_closed_at_the_deadline(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_auth_timeout_seconds=0.3, ws_connects_per_second_per_ip=0) as srv:
        hub = srv.app.state.hub
        async with websockets.connect(stream_url(srv)) as idle:
            assert await recv_json(idle) == {"stream": "error", "data": {"error": "auth timeout"}}
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(idle.recv(), 10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "auth timeout")
        # a socket that sends only junk does not extend its deadline either
        async with websockets.connect(stream_url(srv)) as chatty:
            await chatty.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            assert (await recv_json(chatty))["data"] == {"action": "listen", "status": "unauthorized"}
            assert await recv_json(chatty) == {"stream": "error", "data": {"error": "auth timeout"}}
        wait_for(lambda: not hub.by_ip)


async def test_an_oversized_frame_is_refused_with_1009(tmp_path: Path) -> None:
    with running_server(tmp_path, ws_max_message_bytes=1024, ws_connects_per_second_per_ip=0) as srv:
        hub = srv.app.state.hub
        async with websockets.connect(stream_url(srv)) as socket:
            key = "k" * 2000
            await socket.send(
                json.dumps({"action": "authenticate", "data": {"key_id": key, "secret_key": "s"}})
            )
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert not srv.app.state.alpaca_updates.listeners
        wait_for(lambda: not hub.by_ip)
