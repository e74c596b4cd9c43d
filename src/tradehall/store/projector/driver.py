"""The driver: `Projector` reads journal records, prepares each batch's rows on one thread and writes
them in one transaction on another, retrying lost connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar, TypeVarTuple

import structlog
from sqlalchemy import Engine, insert, update

from tradehall.journal.records import JournalRecord
from tradehall.store.candles import candle_starts, merge_candles_sync
from tradehall.store.models import (
    ProjectionState,
    table_of,
)
from tradehall.store.partitions import FillPartitions, MonthlyPartitions
from tradehall.store.projector.batch import _Batch
from tradehall.store.projector.bulk import _insert_many, _update_many
from tradehall.store.projector.config import ProjectionError, ProjectorConfig, SequenceGapError, is_transient
from tradehall.store.projector.mirror import _Mirror, _Prepared, _stored_last_seq, load_mirror
from tradehall.store.types import utc_of_ns

log = structlog.get_logger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Projector:
    """Projects journal records into the read models; see the module docstring.

    Each batch goes through two stages on two threads: *prepare* turns the events into rows with
    the in-memory mirror (pure Python), *write* runs one transaction. `run` overlaps the prepare of
    the next batch with the write of the current one. A write that fails transiently is retried
    with the same prepared rows: they describe the batch relative to the state after the previous
    batch, which is exactly what the database holds when the write is retried.
    """

    def __init__(
        self,
        engine: Engine,
        config: ProjectorConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fault: Callable[[str], None] | None = None,
    ) -> None:
        """`fault(point)` is a test hook: "before_commit" inside the batch transaction, "after_commit"
        once it is committed (an error there is a commit whose acknowledgement was lost); to order the
        threads deterministically, "before_prepare" (preparer thread, before it looks at the mirror),
        "load_mirror" (inside the mirror's reload, after its first read) and "write_failed" (event loop,
        when a batch's write has failed for good)."""
        self._engine = engine
        self.config = config or ProjectorConfig()
        self._clock = clock
        self._fault = fault
        self._partitions = FillPartitions(engine)
        self._candle_partitions = MonthlyPartitions(engine, "candles")
        name = self.config.name
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"projector-{name}-prepare")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"projector-{name}-write")
        self._mirror: _Mirror | None = None
        self._prepared_seq: int | None = None
        self._projected_seq: int | None = None
        self._engine_seq = 0
        self.retries = 0
        self.connected = True

    # ---- the async face -------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The last journal seq durably projected: resume reading the journal after it."""
        seq = await self._retrying(self._writer, self._read_last_seq_sync)
        self._projected_seq = seq
        self._engine_seq = max(self._engine_seq, seq)
        return seq

    def observe_engine_seq(self, seq: int) -> None:
        """The runner reports the engine's latest seq, so `lag` counts what has not arrived yet too."""
        self._engine_seq = max(self._engine_seq, seq)

    @property
    def projected_seq(self) -> int | None:
        return self._projected_seq

    @property
    def lag(self) -> int:
        """Records the engine has sequenced that the read models do not show yet (for /ready)."""
        return max(0, self._engine_seq - (self._projected_seq or 0))

    async def apply(self, records: Sequence[JournalRecord]) -> int:
        """Project one batch (retrying transient failures); returns the stored last seq."""
        if not records:
            return await self.last_seq()
        self._engine_seq = max(self._engine_seq, records[-1].seq)
        prepared = await self._prepare(records)
        if prepared is None:
            return await self.last_seq()
        return await self._settle(asyncio.ensure_future(self._write(prepared)), prepared)

    async def run(self, source: AsyncIterator[JournalRecord]) -> None:
        """Project everything `source` yields, in batches of what has arrived, until it ends.

        A reader task moves records into a bounded queue so that batches form while a transaction
        runs; when the queue is full only `source` waits, never the engine (the runner feeds the
        projector from the journal, which holds everything).

        Batch N+1 is prepared while batch N is written, so the mirror is only dropped or reloaded
        once batch N's write has settled and no prepare runs (`_settle`): a failed write is this
        run's error, never a gap seen by a prepare that reloaded the mirror behind the write's back.
        `run` never returns or raises while a write of its own is still in the writer thread.
        """
        await self._retrying(self._writer, self._partitions.ensure_ahead, self._clock())
        await self._retrying(self._writer, self._candle_partitions.ensure_ahead, self._clock())
        pending: asyncio.Queue[JournalRecord | None] = asyncio.Queue(self.config.max_pending_records)
        reader = asyncio.create_task(self._read(source, pending))
        writing: asyncio.Task[int] | None = None
        written: _Prepared | None = None
        try:
            finished = False
            while not finished:
                first = await pending.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.config.max_batch_records:
                    try:
                        item = pending.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if item is None:
                        finished = True
                        break
                    batch.append(item)
                prepared = await self._prepare(batch)
                if writing is not None and written is not None:
                    task, writing = writing, None
                    await self._settle(task, written)
                    if self._mirror is None:
                        # The database holds more than the mirror assumed (another writer): this
                        # batch was prepared on a stale mirror; prepare it again from the database.
                        prepared = await self._prepare(batch)
                if prepared is not None:
                    writing, written = asyncio.create_task(self._write(prepared)), prepared
            if writing is not None and written is not None:
                task, writing = writing, None
                await self._settle(task, written)
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if writing is not None:
                # Leaving early (a prepare failed, or we are cancelled) with a write in flight: stop its
                # retries, and wait until the attempt in the writer thread has committed or rolled
                # back (a thread cannot be stopped), so nothing of this run commits after it returns.
                self._mirror = None
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
                await self._writer_idle()

    def close(self) -> None:
        self._preparer.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    async def _read(
        self, source: AsyncIterator[JournalRecord], pending: asyncio.Queue[JournalRecord | None]
    ) -> None:
        try:
            async for record in source:
                self._engine_seq = max(self._engine_seq, record.seq)
                await pending.put(record)
        finally:
            await pending.put(None)

    async def _prepare(self, records: Sequence[JournalRecord]) -> _Prepared | None:
        try:
            return await self._retrying(self._preparer, self._prepare_sync, records)
        except Exception:
            self._mirror = None
            raise

    async def _write(self, prepared: _Prepared) -> int:
        """Write one batch; leaves the mirror alone (a prepare may be using it): see `_settle`."""
        try:
            seq = await self._retrying(self._writer, self._write_sync, prepared)
        except Exception:
            if self._fault is not None:
                self._fault("write_failed")
            raise
        self._projected_seq = seq
        return seq

    async def _settle(self, writing: asyncio.Future[int], prepared: _Prepared) -> int:
        """The outcome of `prepared`'s write, awaited when no prepare is running: the mirror, which
        already includes the batch, is dropped (reloaded by the next prepare, from one snapshot) if
        the write failed or the database holds another seq than the batch's last (another writer)."""
        try:
            seq = await writing
        except BaseException:
            self._mirror = None
            raise
        if seq != prepared.last_seq:
            self._mirror = None
        return seq

    async def _writer_idle(self) -> None:
        """Returns once the writer thread has finished what it was running."""
        await asyncio.get_running_loop().run_in_executor(self._writer, _nothing)

    async def _retrying(self, executor: ThreadPoolExecutor, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` in `executor`, retried with backoff while the database is unreachable."""
        delays = iter(self.config.retry.delays())
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await loop.run_in_executor(executor, fn, *args)
            except Exception as error:
                self._partitions.forget()
                self._candle_partitions.forget()
                if not is_transient(error):
                    raise
                self.connected = False
                self.retries += 1
                delay = next(delays)
                log.warning(
                    "projector_retry",
                    projector=self.config.name,
                    delay_s=delay,
                    error=type(error).__name__,
                    detail=str(error).splitlines()[0][:200],
                )
                await asyncio.sleep(delay)
                continue
            if not self.connected:
                log.info("projector_reconnected", projector=self.config.name, retries=self.retries)
                self.connected = True
            return result

    # ---- the worker threads -------------------------------------------------------------------

    def _read_last_seq_sync(self) -> int:
        with self._engine.connect() as connection:
            stored = _stored_last_seq(connection, self.config.name, lock=False)
            return 0 if stored is None else stored

    def _prepare_sync(self, records: Sequence[JournalRecord]) -> _Prepared | None:
        """Rows for the records not projected yet, from the mirror (which this advances)."""
        if self._fault is not None:
            self._fault("before_prepare")
        if self._mirror is None:
            self._mirror, self._prepared_seq = self._load_mirror()
        mirror = self._mirror
        last = self._prepared_seq
        todo = [record for record in records if last is None or record.seq > last]
        if not todo:
            return None
        # A fresh projection starts wherever its source starts; after that, no gap is allowed.
        expected = todo[0].seq if last is None else last + 1
        for record in todo:
            if record.seq != expected:
                raise SequenceGapError(expected, record.seq)
            expected = record.seq + 1
        batch = _Batch(mirror, self.config)
        for record in todo:
            batch.apply(record)
        prepared = _Prepared(
            previous_seq=last,
            last_seq=todo[-1].seq,
            last_ts=todo[-1].ts,
            records=len(todo),
            fills=batch.fill_count,
            fill_times=batch.fill_times(),
            writes=batch.plan(),
            candles=batch.candles.drain(),
        )
        self._prepared_seq = prepared.last_seq
        return prepared

    def _write_sync(self, prepared: _Prepared) -> int:
        started = time.perf_counter()
        if prepared.fill_times:
            self._partitions.ensure_for(prepared.fill_times)
        if prepared.candles:
            self._candle_partitions.ensure_for(candle_starts(prepared.candles))
        with self._engine.begin() as connection:
            stored = _stored_last_seq(connection, self.config.name, lock=True)
            if stored is not None and stored >= prepared.last_seq:
                return stored  # committed before, but the acknowledgement was lost: never twice
            if stored != prepared.previous_seq:
                raise ProjectionError(
                    f"projection {self.config.name!r} is at seq {stored} in the database, "
                    f"expected {prepared.previous_seq}: is another projector writing it?"
                )
            for write in prepared.writes:
                if write.keys:
                    _update_many(connection, write.table, write.keys, write.rows, write.columns)
                else:
                    _insert_many(connection, write.table, write.rows)
            merge_candles_sync(connection, prepared.candles, partitions_ready=True)
            now = utc_of_ns(prepared.last_ts)
            table = table_of(ProjectionState)
            if stored is None:
                connection.execute(
                    insert(table).values(name=self.config.name, last_seq=prepared.last_seq, updated_at=now)
                )
            else:
                connection.execute(
                    update(table)
                    .where(table.c.name == self.config.name)
                    .values(last_seq=prepared.last_seq, updated_at=now)
                )
            if self._fault is not None:
                self._fault("before_commit")
        if self._fault is not None:
            self._fault("after_commit")
        log.debug(
            "projector_batch",
            projector=self.config.name,
            records=prepared.records,
            last_seq=prepared.last_seq,
            fills=prepared.fills,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return prepared.last_seq

    def _load_mirror(self) -> tuple[_Mirror, int | None]:
        """The mirror as the database holds it, and the seq it reflects (None: nothing projected)."""
        return load_mirror(self._engine, self.config, self._fault)


def _nothing() -> None:
    return None
