"""The outbox publisher: journal records (already durable) → envelopes → the bus.

It never blocks the engine: it reads the journal on its own, after the fact. A broker outage fills a
bounded backlog (`backlog_limit` messages); when the backlog is full the publisher stops reading and
later re-reads the journal from the next seq it needs, so nothing acknowledged is dropped and memory
stays bounded. The last fully published seq is saved in a `PositionStore` after the broker confirmed
it; after a crash the publisher resumes from there and may publish a few messages twice (same ids),
which consumers drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Mapping

import structlog

from tradehall.bus.envelope import Envelope
from tradehall.bus.metrics import BACKLOG, PUBLISH_ERRORS_TOTAL, PUBLISH_TOTAL
from tradehall.bus.position import PositionStore, PublisherPosition
from tradehall.bus.protocol import EventBus
from tradehall.bus.serialize import EventSerializer
from tradehall.bus.source import JournalSource
from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS, MarketSpec

log = structlog.get_logger(__name__)


class BusPublisher:
    def __init__(
        self,
        bus: EventBus,
        source: JournalSource,
        positions: PositionStore,
        *,
        backlog_limit: int = 100_000,
        batch_max: int = 1_000,
        save_interval: float = 0.05,
        publish_timeout: float = 10.0,
        retry_initial: float = 0.05,
        retry_max: float = 1.0,
        specs: Iterable[MarketSpec] = (),
        currency_decimals: Mapping[str, int] = DEFAULT_CURRENCY_DECIMALS,
    ) -> None:
        if backlog_limit < 1 or batch_max < 1:
            raise ValueError("backlog_limit and batch_max must be positive")
        self._bus = bus
        self._source = source
        self._positions = positions
        self._backlog_limit = backlog_limit
        self._batch_max = batch_max
        self._save_interval = save_interval
        self._publish_timeout = publish_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._initial_specs = list(specs)
        self._currency_decimals = currency_decimals
        self._serializer = EventSerializer(self._initial_specs, currency_decimals)
        self._backlog: deque[tuple[int, list[Envelope]]] = deque()
        self._backlog_messages = 0
        self._progress = asyncio.Event()
        self._backlog_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._saved_seq = 0
        self._saved_at = time.monotonic()
        self._publish_total = PUBLISH_TOTAL.labels(backend=bus.name)
        self._publish_errors = PUBLISH_ERRORS_TOTAL.labels(backend=bus.name)
        self._backlog_gauge = BACKLOG.labels(backend=bus.name)
        self.published_seq = 0
        """The last journal seq whose events are all on the bus."""
        self.healthy = True
        """False from a failed publish until the next successful one: the `/ready` bus check."""
        self.overflows = 0
        """How many times a full backlog made the publisher stop reading and re-read later."""
        self.published_messages = 0
        self.publish_errors = 0

    @property
    def backlog(self) -> int:
        return self._backlog_messages

    async def start(self) -> None:
        try:
            await self._bus.start()
        except Exception as exc:
            # The broker may be down when the service starts; the sender keeps retrying.
            self.healthy = False
            self._publish_errors.inc()
            log.warning("bus_start_failed", backend=self._bus.name, error=repr(exc))
        position = self._positions.load()
        if position is not None:
            self.published_seq = self._saved_seq = position.seq
            self._serializer = EventSerializer(
                [*position.markets, *self._initial_specs], self._currency_decimals
            )
        self._stopping = False
        log.info("bus_publisher_started", backend=self._bus.name, from_seq=self.published_seq + 1)
        self._tasks = [
            asyncio.create_task(self._read(self.published_seq + 1), name="bus-publisher-read"),
            asyncio.create_task(self._send(), name="bus-publisher-send"),
        ]

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Publish what is in the backlog (up to `drain_timeout`), save the position and stop."""
        if self._tasks:
            deadline = time.monotonic() + drain_timeout
            while self._backlog and time.monotonic() < deadline and self.healthy:
                await self._wait(self._progress, deadline - time.monotonic())
        await self._cancel()
        await self._save(force=True)

    async def kill(self) -> None:
        """Stop without draining or saving, as a crash would (tests use it to prove resume works)."""
        await self._cancel()

    async def wait_published(self, seq: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.published_seq < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"seq {seq} not published within {timeout}s (at {self.published_seq})")
            await self._wait(self._progress, remaining)

    async def _cancel(self) -> None:
        self._stopping = True
        for task in self._tasks:
            # Cancel until done: a client library may swallow one cancellation (redis-py can).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
        self._tasks = []

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        # asyncio.timeout rather than wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await event.wait()

    def _signal(self, name: str) -> None:
        event: asyncio.Event = getattr(self, name)
        event.set()
        setattr(self, name, asyncio.Event())

    async def _read(self, next_seq: int) -> None:
        while True:
            overflow = False
            read_since_yield = 0
            records = self._source.records(next_seq)
            try:
                async for record in records:
                    envelopes = self._serializer.envelopes(record)
                    incoming = self._backlog_messages + len(envelopes)
                    if self._backlog_messages and incoming > self._backlog_limit:
                        overflow = True
                        break
                    self._backlog.append((record.seq, envelopes))
                    self._backlog_messages += len(envelopes)
                    self._backlog_gauge.set(self._backlog_messages)
                    next_seq = record.seq + 1
                    self._signal("_backlog_changed")
                    read_since_yield += len(envelopes)
                    if read_since_yield >= self._batch_max:
                        # A source with much to catch up on never waits: let the sender start publishing.
                        read_since_yield = 0
                        await asyncio.sleep(0)
            except Exception as exc:
                # A failing journal read (or an event the serializer cannot handle) must not kill the
                # publisher silently: report unhealthy and read again from the same seq.
                self.healthy = False
                log.exception("bus_source_failed", backend=self._bus.name, next_seq=next_seq, error=repr(exc))
                await asyncio.sleep(self._retry_max)
                continue
            finally:
                aclose = getattr(records, "aclose", None)
                if aclose is not None:
                    await aclose()
            if not overflow:
                return
            self.overflows += 1
            log.warning(
                "bus_backlog_full", backend=self._bus.name, backlog=self._backlog_messages, next_seq=next_seq
            )
            while self._backlog_messages > self._backlog_limit // 2:
                await self._progress.wait()

    async def _send(self) -> None:
        delay = self._retry_initial
        while not self._stopping:
            while not self._backlog:
                if self.published_seq != self._saved_seq:
                    # Idle with an unsaved position: save it soon, so a crash re-publishes little.
                    await self._wait(self._backlog_changed, self._save_interval)
                    if not self._backlog:
                        await self._save(force=True)
                else:
                    await self._backlog_changed.wait()
            count = 0
            messages: list[Envelope] = []
            records = 0
            for _seq, envelopes in self._backlog:
                if records and count + len(envelopes) > self._batch_max:
                    break
                messages.extend(envelopes)
                count += len(envelopes)
                records += 1
            if messages:
                try:
                    async with asyncio.timeout(self._publish_timeout):
                        await self._bus.publish(messages)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._publish_errors.inc()
                    self.publish_errors += 1
                    if self.healthy:
                        log.warning("bus_publish_failed", backend=self._bus.name, error=repr(exc))
                    self.healthy = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
                    continue
            if not self.healthy:
                log.info("bus_publish_recovered", backend=self._bus.name, backlog=self._backlog_messages)
            self.healthy = True
            delay = self._retry_initial
            last_seq = self.published_seq
            for _ in range(records):
                last_seq, _envelopes = self._backlog.popleft()
            self._backlog_messages -= count
            self._backlog_gauge.set(self._backlog_messages)
            self._publish_total.inc(count)
            self.published_messages += count
            self.published_seq = last_seq
            self._signal("_progress")
            await self._save(force=False)

    async def _save(self, force: bool) -> None:
        if self.published_seq == self._saved_seq:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < self._save_interval:
            return
        position = PublisherPosition(seq=self.published_seq, markets=self._serializer.specs)
        try:
            # In a thread: a file store fsyncs, and the event loop must not wait for the disk.
            await asyncio.to_thread(self._positions.save, position)
        except OSError as exc:
            # A stale position only means more re-publishing after a crash: keep publishing.
            log.warning("bus_position_save_failed", error=repr(exc))
            self._saved_at = now
            return
        self._saved_seq = position.seq
        self._saved_at = now
