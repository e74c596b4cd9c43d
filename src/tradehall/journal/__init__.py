"""Write-ahead journal of sequenced commands (with the events they produced), snapshots, replay."""

from tradehall.journal.errors import (
    DeterminismError,
    JournalCorruptError,
    JournalError,
    RecoveryError,
    SnapshotCorruptError,
)
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory, EngineLike, Recovery, recover
from tradehall.journal.segments import FsyncPolicy, Journal, read_commands, read_records
from tradehall.journal.snapshots import SnapshotStore, archive_segments

__all__ = [
    "DeterminismError",
    "EngineFactory",
    "EngineLike",
    "FsyncPolicy",
    "Journal",
    "JournalCorruptError",
    "JournalError",
    "JournalRecord",
    "Recovery",
    "RecoveryError",
    "SnapshotCorruptError",
    "SnapshotStore",
    "archive_segments",
    "read_commands",
    "read_records",
    "recover",
]
