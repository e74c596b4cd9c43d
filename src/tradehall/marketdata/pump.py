"""From the router's synchronous `submit` to the engine runner's asynchronous one, with backpressure.

The router runs inside feed callbacks and must not block; the runner's `submit` awaits durability.
The pump takes commands synchronously and sends them in batches from one task, in order. While a
batch is in flight, newer `Quote`/`MarkPrice` commands for the same market replace older ones
(only the latest price matters), so a slow engine sees fewer, fresher quotes instead of a growing
backlog; settlement and every other command are always delivered.

A price the engine refuses (a book market's mark outside its mark band, a crossed quote) is dropped,
logged and counted in `tradehall_marks_rejected_total{market}`; the feed carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from tradehall.domain import commands
from tradehall.domain.events import CommandRejected
from tradehall.marketdata import metrics
from tradehall.marketdata.feed import cancel_and_wait

log = structlog.get_logger(__name__)

SubmitMany = Callable[[Sequence[commands.AnyCommand]], Awaitable[object]]
"""The runner's `submit_many`: its results (each with `events`) in the order of the commands."""


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
        self.refused = 0

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

    def _count_refused(self, batch: Sequence[commands.AnyCommand], results: Sequence[object]) -> None:
        for command, result in zip(batch, results, strict=False):
            if not isinstance(command, commands.Quote | commands.MarkPrice):
                continue
            events = getattr(result, "events", ())
            if events and isinstance(events[0], CommandRejected):
                self.refused += 1
                metrics.MARKS_REJECTED.labels(market=command.market).inc()
                log.info("mark_refused", market=command.market, reason=events[0].reason)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                keys = list(self._queue)[: self.max_batch]
                batch = [self._queue.pop(key) for key in keys]
                try:
                    results = await self._submit_many(batch)
                    self.submitted += len(batch)
                    if isinstance(results, Sequence):
                        self._count_refused(batch, results)
                except Exception as exc:  # the engine refusing commands must not kill the feeds
                    self.failed_batches += 1
                    log.warning(
                        "marketdata_submit_failed", commands=len(batch), error=f"{type(exc).__name__}: {exc}"
                    )
            self._idle.set()
