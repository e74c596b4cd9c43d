"""The seam between the engine runner and a durable log other than the local journal.

The runner sequences, applies and group-commits commands the same way whatever makes them durable; by
default that is the local journal (segment files + fsync, `tradehall.journal`). A `CommandLog` takes its
place for a cluster shard, whose commands live in a replicated NATS JetStream stream
(`tradehall.service.cluster.log.JetStreamCommandLog`): recovery, the durable append that an
acknowledgement waits for, and where snapshots go all belong to the log, not to the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol

from tradehall.journal.recovery import E, EngineFactory
from tradehall.journal.segments import EncodedBatch


@dataclass(frozen=True, slots=True)
class LogRecovery(Generic[E]):
    """The engine rebuilt from the log, and the last record seq it holds."""

    engine: E
    last_seq: int
    snapshot_seq: int = 0


class CommandLog(Protocol[E]):
    async def recover(self, factory: EngineFactory[E]) -> LogRecovery[E]:
        """The engine as of the log's end (a snapshot and the records after it, or a warm engine)."""
        ...

    async def append(self, batches: Sequence[EncodedBatch]) -> None:
        """Returns once every batch is durable in the log; raises when it is not (the runner stops)."""
        ...

    def checkpoint(self) -> int:
        """An opaque position captured with a snapshot: where a replica restoring that snapshot reads on."""
        ...

    async def write_snapshot(self, seq: int, data: bytes, checkpoint: int) -> None:
        """Stores the engine's snapshot taken after record `seq` (called once `seq` is durable)."""
        ...

    async def close(self) -> None: ...
