"""Where the publisher reads journal records from: only records that are already durable.

`RunnerJournalSource` is the real one: the journal files, then the engine runner's live feed of
durable records. `MemoryJournalSource` serves tests and the benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Protocol

import structlog

from tradehall.journal.records import JournalRecord
from tradehall.journal.segments import read_records

log = structlog.get_logger(__name__)


class JournalSource(Protocol):
    def records(self, from_seq: int) -> AsyncIterator[JournalRecord]:
        """Durable records with `seq >= from_seq` in order, then new ones as they become durable.

        The publisher closes the iterator when its backlog is full and calls again later with the next
        seq it needs, so a source must be able to re-read from any retained seq.
        """
        ...


class MemoryJournalSource:
    """Records kept in a list (seqs increase by one); `append` after the record is durable."""

    def __init__(self, records: Iterable[JournalRecord] = ()) -> None:
        self._records: list[JournalRecord] = []
        self._appended = asyncio.Event()
        self.reads = 0
        """How many times `records` was called: tests check that an overflow re-reads."""
        for record in records:
            self.append(record)

    def append(self, record: JournalRecord) -> None:
        if self._records and record.seq != self._records[-1].seq + 1:
            raise ValueError(f"seq {record.seq} does not follow {self._records[-1].seq}")
        self._records.append(record)
        self._appended.set()
        self._appended = asyncio.Event()

    def extend(self, records: Iterable[JournalRecord]) -> None:
        for record in records:
            self.append(record)

    @property
    def last_seq(self) -> int:
        return self._records[-1].seq if self._records else 0

    async def records(self, from_seq: int) -> AsyncIterator[JournalRecord]:
        self.reads += 1
        while True:
            waiter = self._appended
            if self._records:
                first = self._records[0].seq
                index = max(from_seq - first, 0)
                while index < len(self._records):
                    record = self._records[index]
                    index += 1
                    from_seq = record.seq + 1
                    yield record
            await waiter.wait()


class LiveRecords(Protocol):
    """The runner's subscription: durable records in seq order; raises when it fell behind."""

    def __aiter__(self) -> AsyncIterator[JournalRecord]: ...

    def close(self) -> None: ...


class DurableFeed(Protocol):
    """What `service.runner.EngineRunner` offers (kept as a protocol: the bus does not import service)."""

    @property
    def durable_seq(self) -> int: ...

    def subscribe(self, max_queue: int = 100_000) -> LiveRecords: ...


class RunnerJournalSource:
    """Durable records of a running engine: journal files up to now, then the runner's live feed.

    It subscribes to the live feed first and then reads the files up to the durable seq, so no record
    falls between the two. When the live subscription overflows (the publisher stopped reading during
    an outage), the next `records()` call catches up from the files again.
    """

    def __init__(
        self, feed: DurableFeed, journal_dir: Path, *, max_queue: int = 100_000, chunk: int = 1_000
    ) -> None:
        self._feed = feed
        self._journal_dir = journal_dir
        self._max_queue = max_queue
        self._chunk = chunk

    async def records(self, from_seq: int) -> AsyncIterator[JournalRecord]:
        next_seq = from_seq
        while True:
            live = self._feed.subscribe(self._max_queue)
            try:
                durable = self._feed.durable_seq
                while next_seq <= durable:
                    upto = min(durable, next_seq + self._chunk - 1)
                    chunk = await asyncio.to_thread(_read_chunk, self._journal_dir, next_seq, upto)
                    if not chunk:
                        break
                    for record in chunk:
                        next_seq = record.seq + 1
                        yield record
                try:
                    async for record in live:
                        if record.seq < next_seq:
                            continue
                        if record.seq > next_seq:
                            break  # a gap: read it from the files
                        next_seq = record.seq + 1
                        yield record
                    else:
                        return  # the runner stopped
                except Exception as exc:
                    if not hasattr(exc, "last_seq"):  # SubscriptionOverflowError: catch up from the files
                        raise
                    log.info("bus_source_overflow", next_seq=next_seq)
            finally:
                live.close()


def _read_chunk(journal_dir: Path, first: int, last: int) -> list[JournalRecord]:
    return list(read_records(journal_dir, first, last))
