"""uvicorn as `tradehall serve` and `tradehall demo` run it: bounded against slow clients (slowloris).

uvicorn has no timeout for reading a request: a connection that sends half a request head, or
nothing, or a byte every few seconds, is kept forever (its keep-alive timer only runs between
requests, and any byte cancels it). `ReadDeadlines`, over uvicorn's httptools protocol when it is
installed (`uvicorn[standard]`, as uvicorn's `auto` would choose) or its h11 one, closes a connection
whose request head is not complete within `http_header_timeout_seconds` of its first byte (or of the
connection's opening), or is larger than 16 KiB, and one whose body is not complete within
`http_body_timeout_seconds` after its head. Timers are loop `call_later` handles, one per
connection, cancelled as soon as the head (and body) are in, so a normal request costs two timer
operations.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tradehall.service.settings import Settings

MAX_HEAD_BYTES = 16 * 1024
"""A larger request head (request line and headers) closes the connection (h11 answers 400 first)."""


class ReadDeadlines(asyncio.Protocol):
    """A read deadline for the request head and one for the body, over either uvicorn HTTP protocol.

    Both protocols create `self.cycle` when a request head is complete and clear its `more_body` when
    the body is; that is all this needs to know of them."""

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _read_timer: asyncio.TimerHandle | None = None
    _awaiting_head = True
    _head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        previous = self.cycle
        super().data_received(data)
        self._after_events(previous)
        if self._awaiting_head:
            # httptools has no limit of its own on a head's size (h11 answers 400 first)
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._disarm()
                self.transport.close()
                return
            if self._read_timer is None:
                # the first byte of a request after a keep-alive pause: its head now has a deadline
                self._arm(self.header_timeout)

    def on_response_complete(self) -> None:
        previous = self.cycle
        super().on_response_complete()  # type: ignore[misc]
        if previous is not None and self.cycle is previous:
            self._awaiting_head = True  # idle until the next byte: uvicorn's keep-alive timer governs
        self._after_events(previous)

    def _after_events(self, previous: Any) -> None:
        if self.transport.get_protocol() is not self:
            self._disarm()  # upgraded to WebSocket: that protocol has its own timeouts
            self._awaiting_head = False
            return
        cycle: Any = self.cycle  # None until the first head is in
        if cycle is None:
            return
        if cycle is not previous:
            self._awaiting_head = False
            self._head_bytes = 0
            self._disarm()
            if cycle.more_body:
                self._arm(self.body_timeout)
        elif not self._awaiting_head and not cycle.more_body:
            self._disarm()  # the body is complete; the application's work is not bounded here

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if seconds > 0:
            self._read_timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class TimedH11Protocol(ReadDeadlines, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with the read deadlines."""


TimedHttpToolsProtocol: type[ReadDeadlines] | None
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # plain `uvicorn`, without httptools
    TimedHttpToolsProtocol = None
else:

    class _TimedHttpToolsProtocol(ReadDeadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol (llhttp, C) with the read deadlines."""

    TimedHttpToolsProtocol = _TimedHttpToolsProtocol


def timed_http_protocol(
    header_timeout: float, body_timeout: float, base: type[ReadDeadlines] | None = None
) -> type[ReadDeadlines]:
    """The protocol class with these deadlines (uvicorn takes a class, not an instance): by default
    httptools when installed (`uvicorn[standard]`), as uvicorn's `auto` would choose, else h11."""
    if base is None:
        base = TimedHttpToolsProtocol if TimedHttpToolsProtocol is not None else TimedH11Protocol
    namespace = {"header_timeout": header_timeout, "body_timeout": body_timeout}
    return cast(type[ReadDeadlines], type(f"Configured{base.__name__.lstrip('_')}", (base,), namespace))


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn configuration of the product: read deadlines, keep-alive, connection bound."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "lifespan": "on",
        # permessage-deflate costs more CPU per small JSON message than it saves on a loopback or LAN
        "ws_per_message_deflate": False,
        # the protocol refuses a larger frame before it is buffered whole (the hub answers 1009 too)
        "ws_max_size": settings.ws_max_message_bytes,
        "http": timed_http_protocol(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_connections if settings.http_max_connections > 0 else None,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
