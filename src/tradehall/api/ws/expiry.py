"""Token expiry on open sockets: one timer, at the earliest `exp` among the connections.

A JWT is checked once, when the socket authenticates; without this, the socket would keep its
private channels long after the token died. Every private operation also checks `expired()` (the
timer may be late); the timer ends private subscriptions that no operation touches. The clock is
injectable (tests move it by hand and call `wake()`, from any thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from tradehall.api.ws.connection import Connection

MAX_SLEEP_SECONDS = 60.0
"""Wake at least this often: the wall clock may jump (NTP), and the injected clock has no timers."""


class ExpiryWatch:
    def __init__(
        self, on_expired: Callable[[Connection], None], clock: Callable[[], float] = time.time
    ) -> None:
        self.on_expired = on_expired
        self.clock = clock
        self._watched: dict[Connection, float] = {}
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """On the running loop (the first connection's): the timer needs one."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="ws-token-expiry")

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the hub serves on (tests in another thread schedule on it)."""
        return self._loop

    def watch(self, connection: Connection, expires_at: float) -> None:
        connection.expires_at = expires_at
        self._watched[connection] = expires_at
        self.wake()

    def unwatch(self, connection: Connection) -> None:
        connection.expires_at = None
        self._watched.pop(connection, None)

    def expired(self, connection: Connection) -> bool:
        return connection.expires_at is not None and self.clock() >= connection.expires_at

    def wake(self) -> None:
        """Look at the clock again now (thread-safe: tests call it from their own thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    def due(self) -> list[Connection]:
        """Connections whose token expired since the last look, no longer watched.

        A pass over the watched connections: they are few (capped per user and per address) and
        the timer wakes only at an expiry or when a token is added.
        """
        now = self.clock()
        found = [connection for connection, at in self._watched.items() if at <= now]
        for connection in found:
            del self._watched[connection]
        return found

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            for connection in self.due():
                self.on_expired(connection)
            delay = MAX_SLEEP_SECONDS
            if self._watched:
                earliest = min(self._watched.values())
                delay = min(max(earliest - self.clock(), 0.0), MAX_SLEEP_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._watched.clear()
