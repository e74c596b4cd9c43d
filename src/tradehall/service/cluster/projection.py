"""A shard's records into the shared PostgreSQL read models, exactly once, resuming after a restart.

Each shard has its own projection (a `Projector` with its own named cursor, `shard-<name>`, in
`projection_state`), fed from the shard's stream by an ordered consumer: the records of a batch are
projected with the cursor in one transaction, so a restart resumes after the stored seq and never
writes a record twice. The shards share the database without colliding: order and trade ids are
disjoint by the shard map's id ranges, markets (so positions and candles) belong to one shard,
balances carry the shard's index (collateral is held per shard), ledger ids include it, and only the
home shard's projection writes the `accounts` rows (every shard opens every account).

Run one projection per shard (`tradehall cluster projector`): two processes projecting the same shard
would both write behind each other's back; the second is refused (a PostgreSQL advisory lock per shard
held for the process's life).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from tradehall.journal.records import JournalRecord
from tradehall.service.cluster.connection import connect as connect_nats
from tradehall.service.cluster.log import LogEntry, ShardLog
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.shards import ShardMap, ShardMapError
from tradehall.service.settings import Settings
from tradehall.store import Projector, ProjectorConfig, Store
from tradehall.store.models import ProjectionState, table_of

log = structlog.get_logger(__name__)


class ProjectionBusyError(RuntimeError):
    """Another process already projects this shard (it holds the shard's advisory lock)."""


def projection_name(shard: str) -> str:
    """The shard projection's cursor in `projection_state` (the one-machine projector's is `read_models`)."""
    return f"shard-{shard}"


def shard_projector_config(shard_map: ShardMap, shard: str) -> ProjectorConfig:
    return ProjectorConfig(
        name=projection_name(shard),
        shard_index=shard_map.index(shard),
        writes_accounts=shard == shard_map.home,
    )


async def start_stream_seq(shard_log: ShardLog, after_record_seq: int) -> int:
    """The stream sequence to read from so that no record after `after_record_seq` is missed, found by
    a binary search over the stream (a few reads, however long it is): the first message holding a
    record past it, or the stream's end + 1 when none does. Epoch markers hold no records: a probe that
    lands on one looks at the messages before it."""
    first, last = await shard_log.bounds()
    if after_record_seq <= 0 or first > last:
        return max(first, 1)
    low, high, start = first, last, first
    while low <= high:
        middle = (low + high) // 2
        top = await _last_record_up_to(shard_log, middle, first)
        if top is None or top <= after_record_seq:
            start, low = middle + 1, middle + 1
        else:
            high = middle - 1
    return start


async def _last_record_up_to(shard_log: ShardLog, stream_seq: int, first: int) -> int | None:
    """The seq of the last record in the messages `first..stream_seq` (None: none holds a record)."""
    for seq in range(stream_seq, first - 1, -1):
        entry = await shard_log.read(seq)
        if entry is not None and entry.records:
            return entry.records[-1].seq
    return None


class ShardProjection:
    """Follows one shard's stream into the read models until stopped (or the projector fails)."""

    def __init__(self, shard_log: ShardLog, projector: Projector) -> None:
        self.shard_log = shard_log
        self.projector = projector
        self._queue: asyncio.Queue[Sequence[JournalRecord] | None] = asyncio.Queue()
        self._stream_seq = 0
        self.started_from = 0
        """The stream sequence the last `run` read from (tests: a restart reads little)."""

    @property
    def projected_seq(self) -> int:
        return self.projector.projected_seq or 0

    async def run(self, stop: asyncio.Event) -> None:
        projected = await self.projector.last_seq()
        self.started_from = await start_stream_seq(self.shard_log, projected)
        self._stream_seq = self.started_from - 1
        log.info(
            "shard_projection_started",
            shard=self.shard_log.names.shard,
            projected_seq=projected,
            from_stream_seq=self.started_from,
        )
        subscription = await self.shard_log.subscribe(self.started_from, self._on_entry)
        stopper = asyncio.create_task(self._stop_when(stop))
        try:
            await self.projector.run(self._records())
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        log.info(
            "shard_projection_stopped", shard=self.shard_log.names.shard, projected_seq=self.projected_seq
        )

    def _on_entry(self, entry: LogEntry) -> None:
        if entry.stream_seq <= self._stream_seq:
            return  # delivered again (the ordered consumer was reset)
        self._stream_seq = entry.stream_seq
        if entry.records:
            self._queue.put_nowait(entry.records)

    async def _stop_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._queue.put_nowait(None)

    async def _records(self) -> AsyncIterator[JournalRecord]:
        while (records := await self._queue.get()) is not None:
            for record in records:
                yield record


PROJECTED_POLL_SECONDS = 0.005


async def wait_shards_projected(store: Store, targets: Mapping[str, int], timeout: float) -> bool:
    """Until each shard's projection has stored at least its target record seq (True), or `timeout`
    passed (False: the read goes ahead on what is projected). A cluster gateway's read barrier: the
    targets are what its read replicas have applied, so a history read sees the command it follows. A
    shard without a cursor (no projection ever ran for it) is not waited for."""
    names = {projection_name(shard): seq for shard, seq in targets.items() if seq > 0}
    if not names:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stored = await store.call(_stored_seqs, list(names))
        # a shard whose projection never stored anything is not projected here at all: not waited for
        if all(stored.get(name, seq) >= seq for name, seq in names.items()):
            return True
        if loop.time() >= deadline:
            log.warning("shard_read_barrier_timeout", targets=names, projected=stored)
            return False
        await asyncio.sleep(PROJECTED_POLL_SECONDS)


def _stored_seqs(session: Session, names: list[str]) -> dict[str, int]:
    table = table_of(ProjectionState)
    rows = session.execute(select(table.c.name, table.c.last_seq).where(table.c.name.in_(names)))
    return {str(name): int(seq) for name, seq in rows}


def _lock_key(shard: str) -> int:
    """A stable 63-bit advisory lock key per shard projection."""
    return 0x7468_0000_0000_0000 | zlib.crc32(projection_name(shard).encode())


class ProjectionLock:
    """The shards' advisory locks, held by one connection until `release()` (PostgreSQL only)."""

    def __init__(self, connection: Connection | None) -> None:
        self._connection = connection

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _unlock_and_close(connection)


def _unlock_and_close(connection: Connection) -> None:
    # a pooled connection outlives close(): its session's locks must go first
    with contextlib.suppress(Exception):
        connection.execute(text("SELECT pg_advisory_unlock_all()"))
        connection.commit()
    connection.close()


def hold_projection_lock(engine: Engine, shards: Sequence[str]) -> ProjectionLock:
    """Takes each shard's advisory lock on one connection kept open (PostgreSQL; nothing elsewhere), or
    raises `ProjectionBusyError` naming the shard another process projects."""
    if engine.dialect.name != "postgresql":
        return ProjectionLock(None)
    connection = engine.connect()
    try:
        for shard in shards:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(shard)})
            if not taken.scalar_one():
                raise ProjectionBusyError(f"shard {shard} is already projected by another process")
        connection.commit()
    except BaseException:
        _unlock_and_close(connection)
        raise
    return ProjectionLock(connection)


async def run_projections(
    settings: Settings, shard_map: ShardMap, shards: Sequence[str], stop: asyncio.Event, *, js: Any = None
) -> None:
    """Projects `shards` (every shard of the map if empty) into the settings' database until `stop`."""
    names = list(shards) or shard_map.names
    for shard in names:
        if shard not in shard_map.shards:
            raise ShardMapError(f"shard {shard!r} is not one of {shard_map.names}")
    store = Store.from_url(settings.sqlalchemy_url)
    nc = None
    lock = hold_projection_lock(store.engine, names)
    try:
        if js is None:
            nc = await connect_nats(settings.nats_url, "tradehall-projector")
            js = nc.jetstream()
        projections = [
            ShardProjection(
                ShardLog(js, ShardNames(shard, settings.cluster_prefix)),
                Projector(store.engine, shard_projector_config(shard_map, shard)),
            )
            for shard in names
        ]
        try:
            await _run_all(projections, stop)
        finally:
            for projection in projections:
                projection.projector.close()
    finally:
        if nc is not None:
            await nc.close()
        lock.release()
        store.close()


async def _run_all(projections: Sequence[ShardProjection], stop: asyncio.Event) -> None:
    """Runs every projection until `stop`; one that fails stops the others (drained) and is raised."""
    halt = asyncio.Event()
    relay = asyncio.create_task(_relay(stop, halt))
    tasks = [asyncio.create_task(projection.run(halt)) for projection in projections]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        halt.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        halt.set()
        relay.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(relay, *tasks, return_exceptions=True)


async def _relay(stop: asyncio.Event, halt: asyncio.Event) -> None:
    await stop.wait()
    halt.set()
