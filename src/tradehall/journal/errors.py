"""Typed failures of the journal, the snapshots and recovery: each names what an operator must look at."""

from __future__ import annotations

from pathlib import Path


class JournalError(Exception):
    """Base of every journal, snapshot and recovery failure."""


class JournalCorruptError(JournalError):
    """A record that is not a torn tail failed its checks: start-up stops rather than skip it."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"journal corrupt in {path} at byte offset {offset}: {reason}")


class SnapshotCorruptError(JournalError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"snapshot {path} is unusable: {reason}")


class RecoveryError(JournalError):
    """The journal and the snapshots do not fit together (a gap, a missing beginning)."""


class DeterminismError(JournalError):
    """Replaying a journaled command produced other events than the ones journaled with it."""

    def __init__(self, seq: int, expected: object, produced: object) -> None:
        self.seq = seq
        self.expected = expected
        self.produced = produced
        super().__init__(
            f"replay of seq {seq} is not deterministic: "
            f"journaled events {expected!r}, replay produced {produced!r}"
        )
