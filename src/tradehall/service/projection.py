"""The read models kept up to date from durable journal records, wherever the projector runs.

`Projection` feeds a `Projector` (exactly once: its stored seq says where it is) from records handed
to `feed()`, catching up from the journal first. One process (`tradehall serve`): the service feeds it
from the runner's listener. `serve --workers N`: the projector process (`ProjectorProcess`) feeds it
from the engine process's published durable records (`RecordPublisher`), reading from the journal
whatever it missed (it joined late, the publication overflowed, the engine restarted), so the engine
process writes nothing to the read models. A restart of either resumes after the stored seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import structlog
import zmq
import zmq.asyncio

from tradehall.journal.records import JournalRecord
from tradehall.journal.segments import read_records
from tradehall.service.follower import RECORDS_TOPIC, decode_records, records_address
from tradehall.service.runner import RunnerError
from tradehall.service.settings import Settings
from tradehall.service.supervisor import stop_on_signals
from tradehall.service.transport import EngineClient, engine_address
from tradehall.store import Projector, ProjectorConfig, Store

log = structlog.get_logger(__name__)

MAX_BATCH_RECORDS = 2000
"""Records projected in one transaction at most (what has arrived meanwhile, up to this)."""
MAX_BACKLOG_RECORDS = 100_000
"""Fed and not yet projected: beyond this the projector process stops taking publications."""
QUIET_SECONDS = 0.5
"""With nothing published for this long, the projector process asks the engine how far it is."""
MIN_BATCH_INTERVAL = 0.1
"""Under load, one transaction starts at most this often (the records of the wait join it): a
transaction's fixed cost (thread hand-offs, the commit, the stored seq) was most of the projector
process's CPU per order with one transaction per publication. The first batch after a quiet spell
is not delayed, so a read waiting for the projector after a single write waits no longer."""


class Projection:
    """Durable records in, read models out, one batch per transaction, in seq order."""

    def __init__(self, projector: Projector, journal_dir: Path, *, min_interval: float = 0.0) -> None:
        """`min_interval`: seconds between the starts of two transactions while records keep coming
        (`MIN_BATCH_INTERVAL`); 0 projects whatever has arrived as soon as the last batch is done."""
        self.projector = projector
        self._min_interval = min_interval
        self._last_batch_at = 0.0
        self._journal_dir = journal_dir
        self._backlog: deque[JournalRecord] = deque()
        self._backlog_ready = asyncio.Event()
        self.projected_seq = 0
        """The last seq the read models show (stored with the batch that wrote it)."""
        self.fed_seq = 0
        """The last seq handed to the projection (projected or waiting in the backlog)."""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def start(self, durable_seq: int) -> int:
        """Resumes after the stored seq, projects the journal up to `durable_seq`, then what is fed;
        returns the stored seq it resumed from."""
        projected = await self.projector.last_seq()
        self.projected_seq = projected
        self.fed_seq = max(self.fed_seq, projected)
        if projected < durable_seq:
            await self.catch_up(projected + 1, durable_seq)
        self._task = asyncio.create_task(self._loop(), name="projector")
        return projected

    def feed(self, records: Sequence[JournalRecord]) -> None:
        """Durable records in seq order (never blocks; a record already projected is skipped)."""
        if not records:
            return
        self._backlog.extend(records)
        self.fed_seq = max(self.fed_seq, records[-1].seq)
        self._backlog_ready.set()

    @property
    def backlog(self) -> int:
        """Records fed and not projected yet."""
        return len(self._backlog)

    async def _load(self, first: int, last: int) -> list[JournalRecord]:
        journal_dir = self._journal_dir
        return await asyncio.to_thread(lambda: list(read_records(journal_dir, first, last)))

    async def catch_up(self, first: int, last: int) -> None:
        """Before `start`'s loop runs: projects records `first..last` from the journal, in batches."""
        records = await self._load(first, last)
        self.fed_seq = max(self.fed_seq, last)
        for start in range(0, len(records), 1000):
            await self._apply(records[start : start + 1000])

    async def feed_from_journal(self, last: int) -> None:
        """Feeds the records after `fed_seq` up to `last` from the journal (they are durable)."""
        first = self.fed_seq + 1
        if last >= first:
            self.feed(await self._load(first, last))

    async def _apply(self, batch: Sequence[JournalRecord]) -> None:
        fresh = [record for record in batch if record.seq > self.projected_seq]
        if not fresh:
            return
        seq = await self.projector.apply(fresh)
        self.projected_seq = max(self.projected_seq, seq)
        self._changed.set()

    async def _loop(self) -> None:
        while True:
            if not self._backlog:
                self._backlog_ready.clear()
                await self._backlog_ready.wait()
                continue
            wait = self._last_batch_at + self._min_interval - time.monotonic()
            if wait > 0 and len(self._backlog) < MAX_BATCH_RECORDS:
                await asyncio.sleep(wait)  # records keep coming: let more join this transaction
            self._last_batch_at = time.monotonic()
            batch: list[JournalRecord] = []
            while self._backlog and len(batch) < MAX_BATCH_RECORDS:
                batch.append(self._backlog.popleft())
            try:
                await self._apply(batch)
            except Exception as exc:
                self.error = exc
                log.error("projection_failed", error=repr(exc))
                raise

    async def wait_projected(self, seq: int, timeout: float = 5.0) -> None:
        """Until the read models show record `seq`; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.projected_seq < seq:
            if self.error is not None:
                raise RuntimeError("the projector has stopped") from self.error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"read models are behind seq {seq}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self, drain_to: int, timeout: float = 10.0) -> None:
        """Projects what is durable up to `drain_to` (within `timeout`), then ends the loop."""
        self._backlog_ready.set()
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            await self.wait_projected(drain_to, timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None


class ProjectorProcess:
    """`serve --workers N`'s projector: the engine process's published records in, read models out.

    It asks the engine process (`EngineClient.barrier`) how far the journal is durable at start and
    whenever nothing was published for `QUIET_SECONDS`, and reads from the journal whatever it has not
    been fed: so nothing is skipped when a publication is lost, and nothing is read that is not durable.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.from_url(settings.sqlalchemy_url)
        projector = Projector(self.store.engine, ProjectorConfig())
        self.projection = Projection(projector, settings.journal_dir, min_interval=MIN_BATCH_INTERVAL)
        self._client = EngineClient(engine_address(settings.data_dir), timeout=5.0)
        self._context = zmq.asyncio.Context()
        self._subscriber = self._context.socket(zmq.SUB)
        self._subscriber.setsockopt(zmq.LINGER, 0)
        self._subscriber.setsockopt(zmq.RCVHWM, 100_000)

    async def run(self, stop: asyncio.Event) -> None:
        """Projects until `stop` is set, then drains what it was fed and closes."""
        # subscribe before asking how far the journal is: whatever is published meanwhile is queued
        self._subscriber.setsockopt(zmq.SUBSCRIBE, RECORDS_TOPIC)
        self._subscriber.connect(records_address(self.settings.data_dir))
        await self._client.start()
        durable = await self._engine_durable_seq()
        projected = await self.projection.start(durable or 0)
        log.info("projector_process_started", projected=projected, durable=durable)
        follow = asyncio.create_task(self._follow(), name="projector-follow")
        try:
            await stop.wait()
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
            await self.projection.stop(self.projection.fed_seq)
            await self._client.stop()
            self._subscriber.close(0)
            self._context.term()
            self.projection.projector.close()
            self.store.close()
            log.info("projector_process_stopped", projected=self.projection.projected_seq)

    async def _engine_durable_seq(self) -> int | None:
        try:
            seq, _ = await self._client.barrier(timeout=1.0)
        except RunnerError:
            return None  # the engine process is down: what it publishes once up will say
        return seq

    async def _follow(self) -> None:
        subscriber = self._subscriber
        while True:
            if self.projection.error is not None:
                raise RuntimeError("the projector has stopped") from self.projection.error
            while self.projection.backlog > MAX_BACKLOG_RECORDS and self.projection.error is None:
                await asyncio.sleep(0.05)  # behind: let the socket drop; the journal has it all
            try:
                _, payload = await asyncio.wait_for(subscriber.recv_multipart(), QUIET_SECONDS)
            except TimeoutError:
                durable = await self._engine_durable_seq()
                if durable is not None:
                    await self.projection.feed_from_journal(durable)
                continue
            records = decode_records(payload)
            if not records:
                continue
            if records[0].seq > self.projection.fed_seq + 1:
                await self.projection.feed_from_journal(records[0].seq - 1)
            fed = self.projection.fed_seq
            self.projection.feed([record for record in records if record.seq > fed])


async def run_projector(settings: Settings) -> None:
    """The projector process's body: until SIGTERM/SIGINT."""
    await ProjectorProcess(settings).run(stop_on_signals())
