"""Where the publisher reads journal records from: only records that are already durable.

The journal module provides the real source (a tail of its segments); `MemoryJournalSource` serves
tests, the benchmark and single-process setups where the runner appends records after each commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from tradehall.journal.records import JournalRecord


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
