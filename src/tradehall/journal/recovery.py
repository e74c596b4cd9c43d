"""Recovery: the newest usable snapshot, then the journal after its seq replayed through the engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import structlog

from tradehall.domain.commands import AnyCommand
from tradehall.domain.events import AnyEvent
from tradehall.journal.errors import DeterminismError, RecoveryError, SnapshotCorruptError
from tradehall.journal.segments import (
    FsyncPolicy,
    Journal,
    list_segments,
    read_commands,
    read_records,
    scan_segment,
)
from tradehall.journal.snapshots import Snapshot, SnapshotStore

log = structlog.get_logger(__name__)


class EngineLike(Protocol):
    """What the runtime needs of an engine (tradehall.engine.Engine, or a fake in tests)."""

    def apply(self, command: AnyCommand) -> Sequence[AnyEvent]: ...

    def snapshot(self) -> bytes: ...

    def state_hash(self) -> str: ...


E = TypeVar("E", bound=EngineLike)


@dataclass(frozen=True, slots=True)
class EngineFactory(Generic[E]):
    """How to make a fresh engine and how to rebuild one from snapshot bytes."""

    create: Callable[[], E]
    restore: Callable[[bytes], E]


@dataclass(slots=True)
class Recovery(Generic[E]):
    engine: E
    last_seq: int
    snapshot_seq: int
    snapshot_path: Path | None
    replayed: int
    seconds: float
    journal: Journal | None


def journal_last_seq(journal_dir: Path) -> int | None:
    """The last complete record's seq without repairing anything (None: no segment at all)."""
    segments = list_segments(journal_dir)
    if not segments:
        return None
    newest = segments[-1]
    return scan_segment(newest.path, newest.first_seq, is_last=True).last_seq


def _restore_newest(
    store: SnapshotStore, factory: EngineFactory[E], max_seq: int | None
) -> tuple[E, Snapshot] | None:
    for seq, path in store.paths():
        if max_seq is not None and seq > max_seq:
            log.warning("snapshot_ahead_of_journal", path=str(path), seq=seq, journal_last_seq=max_seq)
            continue
        try:
            snapshot = store.load(path)
        except SnapshotCorruptError as exc:
            log.warning("snapshot_skipped", path=str(path), reason=exc.reason)
            continue
        try:
            engine = factory.restore(snapshot.data)
        except Exception as exc:  # any failure to rebuild means: try the previous snapshot
            log.warning("snapshot_restore_failed", path=str(path), error=repr(exc))
            continue
        return engine, snapshot
    return None


def recover(
    journal_dir: Path,
    snapshot_dir: Path,
    factory: EngineFactory[E],
    *,
    open_for_append: bool = True,
    fsync: FsyncPolicy = "batch",
    segment_bytes: int = 64 * 1024 * 1024,
    verify_events: bool = False,
    to_seq: int | None = None,
    use_snapshots: bool = True,
) -> Recovery[E]:
    """Rebuilds the engine from disk.

    With `open_for_append` the journal is opened for writing (a torn tail is truncated) and returned;
    without it nothing on disk changes (operator commands). `to_seq` stops the replay early.
    """
    started = time.perf_counter()
    journal: Journal | None = None
    if open_for_append and list_segments(journal_dir):
        journal = Journal.open(journal_dir, fsync=fsync, segment_bytes=segment_bytes)
        last_seq: int | None = journal.last_seq
    else:
        last_seq = journal_last_seq(journal_dir)
    limit = last_seq if to_seq is None or last_seq is None else min(last_seq, to_seq)
    store = SnapshotStore(snapshot_dir)
    restored = _restore_newest(store, factory, limit) if use_snapshots else None
    if restored is None:
        engine = factory.create()
        snapshot_seq, snapshot_path = 0, None
    else:
        engine, snapshot = restored
        snapshot_seq, snapshot_path = snapshot.seq, snapshot.path
    if open_for_append and journal is None:
        journal = Journal.open(
            journal_dir, fsync=fsync, segment_bytes=segment_bytes, start_seq=snapshot_seq + 1
        )
        last_seq = journal.last_seq
    replayed = 0
    applied_seq = snapshot_seq
    if last_seq is not None and last_seq > snapshot_seq:
        try:
            if verify_events:
                for record in read_records(journal_dir, snapshot_seq + 1, limit):
                    events = engine.apply(record.command)
                    if tuple(events) != record.events:
                        raise DeterminismError(record.seq, record.events, tuple(events))
                    applied_seq = record.seq
                    replayed += 1
            else:  # the commands alone: decoding the journaled events would cost a third of the replay
                apply = engine.apply
                # an engine that can leave out the events nobody reads here (`Engine.replaying`)
                replaying = getattr(engine, "replaying", None)
                with replaying() if replaying is not None else nullcontext():
                    for replay in read_commands(journal_dir, snapshot_seq + 1, limit):
                        apply(replay.command)
                        applied_seq = replay.seq
                        replayed += 1
        except BaseException:
            if journal is not None:
                journal.close()
            raise
    expected_end = limit if limit is not None else snapshot_seq
    if applied_seq < expected_end:
        if journal is not None:
            journal.close()
        raise RecoveryError(f"journal replay ended at seq {applied_seq}, expected {expected_end}")
    seconds = time.perf_counter() - started
    log.info(
        "recovered",
        snapshot_seq=snapshot_seq,
        replayed=replayed,
        last_seq=applied_seq,
        seconds=round(seconds, 3),
    )
    return Recovery(engine, applied_seq, snapshot_seq, snapshot_path, replayed, seconds, journal)
