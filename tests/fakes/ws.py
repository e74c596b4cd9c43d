"""A WebSocket fake (the `websockets` package) that records what clients send, lets a test push
messages to every connected client, drop connections, or refuse new ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

OnMessage = Callable[["FakeWsServer", ServerConnection, Any], Awaitable[None]]


class FakeWsServer:
    def __init__(self, on_message: OnMessage | None = None, on_connect: OnMessage | None = None) -> None:
        self.on_message = on_message
        self.on_connect = on_connect
        self.connections: set[ServerConnection] = set()
        self.received: list[Any] = []
        self.paths: list[str] = []
        self.connects = 0
        self.pings = 0
        self.refuse = False
        self._server: Server | None = None
        self.port = 0
        self.connected = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FakeWsServer:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        if self.refuse:
            await ws.close(1013, "try again later")
            return
        self.connects += 1
        self.paths.append(ws.request.path if ws.request else "")
        self.connections.add(ws)
        self.connected.set()
        try:
            if self.on_connect is not None:
                await self.on_connect(self, ws, None)
            async for raw in ws:
                if raw in ("PING", "ping"):  # Polymarket's PING, OKX's ping: text keepalives
                    self.pings += 1
                    await ws.send("PONG" if raw == "PING" else "pong")
                    continue
                message = orjson.loads(raw)
                self.received.append(message)
                if self.on_message is not None:
                    await self.on_message(self, ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(ws)
            if not self.connections:
                self.connected.clear()

    async def push(self, message: Any) -> None:
        """Send to every client; bytes/str go out raw (for malformed-message faults)."""
        data = message if isinstance(message, str | bytes) else orjson.dumps(message).decode()
        for ws in list(self.connections):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(data)

    async def drop_all(self) -> None:
        """Cut every connection abruptly (no close handshake)."""
        for ws in list(self.connections):
            ws.transport.abort()
        self.connections.clear()
        self.connected.clear()

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait until `predicate()` holds; fail the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
