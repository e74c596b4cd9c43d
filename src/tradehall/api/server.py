"""uvicorn as `tradehall serve` and `tradehall demo` run it: bounded against slow clients (slowloris).

uvicorn has no timeout for reading a request: a connection that sends half a request head, or
nothing, or a byte every few seconds, is kept forever (its keep-alive timer only runs between
requests, and any byte cancels it). `TimedH11Protocol` closes a connection whose request head is not
complete within `http_header_timeout_seconds` of its first byte (or of the connection's opening),
and one whose body is not complete within `http_body_timeout_seconds` after its head. Timers are
loop `call_later` handles, one per connection, cancelled as soon as the head (and body) are in, so a
normal request costs two timer operations. The h11 implementation is used explicitly (it is what
plain `uvicorn` installs), so the timeouts hold whatever else is installed.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from tradehall.service.settings import Settings

MAX_HEAD_BYTES = 16 * 1024
"""A request head (request line and headers) larger than this is refused by h11 with 400."""


class TimedH11Protocol(H11Protocol):
    """h11 with a read deadline for the request head and one for the body."""

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._read_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        previous = self.cycle
        super().data_received(data)
        self._after_events(previous)
        if self._awaiting_head and self._read_timer is None:
            # the first byte of a request after a keep-alive pause: its head now has a deadline
            self._arm(self.header_timeout)

    def on_response_complete(self) -> None:
        previous = self.cycle
        super().on_response_complete()
        if previous is not None and self.cycle is previous:
            self._awaiting_head = True  # idle until the next byte: uvicorn's keep-alive timer governs
        self._after_events(previous)

    def _after_events(self, previous: object) -> None:
        if self.transport.get_protocol() is not self:
            self._disarm()  # upgraded to WebSocket: that protocol has its own timeouts
            self._awaiting_head = False
            return
        cycle: RequestResponseCycle | None = self.cycle  # None until the first head is in
        if cycle is None:
            return
        if cycle is not previous:
            self._awaiting_head = False
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


def timed_h11_protocol(header_timeout: float, body_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class with these deadlines (uvicorn takes a class, not an instance)."""

    class ConfiguredTimedH11Protocol(TimedH11Protocol):
        pass

    ConfiguredTimedH11Protocol.header_timeout = header_timeout
    ConfiguredTimedH11Protocol.body_timeout = body_timeout
    return ConfiguredTimedH11Protocol


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn configuration of the product: read deadlines, keep-alive, connection bound."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "lifespan": "on",
        # permessage-deflate costs more CPU per small JSON message than it saves on a loopback or LAN
        "ws_per_message_deflate": False,
        "http": timed_h11_protocol(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_connections if settings.http_max_connections > 0 else None,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
