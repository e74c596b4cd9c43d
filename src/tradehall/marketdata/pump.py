"""From the router's synchronous `submit` to the engine runner's asynchronous one, with backpressure.

The router runs inside feed callbacks and must not block; the runner's `submit` awaits durability.
The pump takes commands synchronously and sends them in batches from one task, in order. While a
batch is in flight, newer `Quote`/`MarkPrice` commands for the same market replace older ones
(only the latest price matters), so a slow engine sees fewer, fresher quotes instead of a growing
backlog; settlement and every other command are always delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from tradehall.domain import commands
from tradehall.marketdata.feed import cancel_and_wait

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[commands.AnyCommand]], Awaitable[object]]


class CommandPump:
    def __init__(self, submit_many: SubmitMany, *, max_batch: int = 1024) -> None:
        self._submit_many = submit_many
        self.max_batch = max_batch
        self._queue: dict[tuple[str, str] | int, commands.AnyCommand] = {}
        self._serial = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.submitted = 0
        self.coalesced = 0
        self.failed_batches = 0

    def __call__(self, command: commands.AnyCommand) -> None:
        if isinstance(command, commands.Quote | commands.MarkPrice):
            key: tuple[str, str] | int = (type(command).__name__, command.market)
            if key in self._queue:
                self.coalesced += 1
                del self._queue[key]  # re-inserted at the end: it is now the newest
        else:
            self._serial += 1
            key = self._serial
        self._queue[key] = command
        self._idle.clear()
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="marketdata:pump")
        return self._task

    async def stop(self) -> None:
        """Deliver what is queued, then stop."""
        if self._task is not None:
            await self.drained()
            await cancel_and_wait(self._task)
            self._task = None

    async def drained(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                keys = list(self._queue)[: self.max_batch]
                batch = [self._queue.pop(key) for key in keys]
                try:
                    await self._submit_many(batch)
                    self.submitted += len(batch)
                except Exception as exc:  # the engine refusing commands must not kill the feeds
                    self.failed_batches += 1
                    log.warning(
                        "marketdata_submit_failed", commands=len(batch), error=f"{type(exc).__name__}: {exc}"
                    )
            self._idle.set()
