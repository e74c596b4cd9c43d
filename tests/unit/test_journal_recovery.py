"""Snapshots (atomic, checksummed, retained, with fall-back) and recovery by snapshot + replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tradehall.journal import (
    DeterminismError,
    EngineFactory,
    Journal,
    JournalRecord,
    RecoveryError,
    SnapshotCorruptError,
    SnapshotStore,
    archive_segments,
    recover,
)
from tradehall.journal.snapshots import SNAPSHOT_HEADER, snapshot_name
from tradehall.journal.testing import ToyEngine, sample_records

FACTORY = EngineFactory(ToyEngine, ToyEngine.restore)


def engine_after(records: list[JournalRecord]) -> ToyEngine:
    engine = ToyEngine()
    for record in records:
        engine.apply(record.command)
    return engine


def test_snapshot_round_trips_with_its_seq(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(42, b"engine state")
    assert path.name == snapshot_name(42)
    loaded = store.load(path)
    assert (loaded.seq, loaded.data) == (42, b"engine state")
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(42)]


def test_a_half_written_temp_file_is_ignored_and_cleaned_up(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(10, b"good")
    (tmp_path / (snapshot_name(20) + ".tmp")).write_bytes(b"THSNAP01 half")
    latest = store.latest_valid()
    assert latest is not None and latest.seq == 10
    store.prune()
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(10)]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[:-1], "payload is 3 bytes, header says 4"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "checksum mismatch"),
        (lambda raw: b"XXXXXXXX" + raw[8:], "bad magic"),
        (lambda raw: raw[:10], "shorter than the header"),
    ],
)
def test_a_damaged_snapshot_is_refused_with_the_reason(tmp_path: Path, damage: object, reason: str) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(7, b"data")
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(SnapshotCorruptError, match=reason):
        store.load(path)


def test_the_newest_damaged_snapshot_falls_back_to_the_older(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, retention=3)
    store.write(10, b"older")
    newest = store.write(20, b"newer")
    newest.write_bytes(newest.read_bytes()[: SNAPSHOT_HEADER.size + 2])
    with capture_logs() as logs:
        latest = store.latest_valid()
    assert latest is not None and (latest.seq, latest.data) == (10, b"older")
    assert any(e["event"] == "snapshot_skipped" and e["path"] == str(newest) for e in logs)


def test_retention_keeps_the_newest_k(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, retention=2)
    for seq in (5, 10, 15, 20):
        store.write(seq, b"x")
    store.prune()
    assert [seq for seq, _ in store.paths()] == [20, 15]
    assert store.oldest_retained_seq() == 15


def journal_with(tmp_path: Path, records: list[JournalRecord], segment_bytes: int = 1 << 20) -> None:
    journal = Journal.open(tmp_path / "journal", segment_bytes=segment_bytes)
    for record in records:
        journal.append([record])
    journal.close()


def test_recovery_without_a_snapshot_replays_everything(tmp_path: Path) -> None:
    records = sample_records(30)
    journal_with(tmp_path, records)
    result = recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY, verify_events=True)
    assert (result.last_seq, result.snapshot_seq, result.replayed) == (30, 0, 30)
    assert result.engine.state_hash() == engine_after(records).state_hash()
    assert result.journal is not None and result.journal.last_seq == 30
    result.journal.close()


def test_recovery_replays_only_after_the_snapshot(tmp_path: Path) -> None:
    records = sample_records(30)
    journal_with(tmp_path, records)
    SnapshotStore(tmp_path / "snapshots").write(20, engine_after(records[:20]).snapshot())
    result = recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY, open_for_append=False)
    assert (result.last_seq, result.snapshot_seq, result.replayed) == (30, 20, 10)
    assert result.engine.state_hash() == engine_after(records).state_hash()


def test_recovery_falls_back_when_the_newest_snapshot_does_not_restore(tmp_path: Path) -> None:
    records = sample_records(30)
    journal_with(tmp_path, records)
    store = SnapshotStore(tmp_path / "snapshots", retention=5)
    store.write(10, engine_after(records[:10]).snapshot())
    store.write(25, b"checksummed but not an engine")
    with capture_logs() as logs:
        result = recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY, open_for_append=False)
    assert (result.snapshot_seq, result.replayed) == (10, 20)
    assert result.engine.state_hash() == engine_after(records).state_hash()
    assert any(e["event"] == "snapshot_restore_failed" for e in logs)


def test_recovery_stops_at_to_seq_and_ignores_later_snapshots(tmp_path: Path) -> None:
    records = sample_records(30)
    journal_with(tmp_path, records)
    store = SnapshotStore(tmp_path / "snapshots", retention=5)
    store.write(10, engine_after(records[:10]).snapshot())
    store.write(25, engine_after(records[:25]).snapshot())
    with capture_logs():
        result = recover(
            tmp_path / "journal", tmp_path / "snapshots", FACTORY, open_for_append=False, to_seq=17
        )
    assert (result.last_seq, result.snapshot_seq, result.replayed) == (17, 10, 7)
    assert result.engine.state_hash() == engine_after(records[:17]).state_hash()


def test_verification_names_the_first_non_deterministic_seq(tmp_path: Path) -> None:
    records = sample_records(10)
    tampered = [*records[:6], JournalRecord(seq=7, ts=records[6].ts, command=records[6].command, events=())]
    journal_with(tmp_path, tampered + records[7:])
    with pytest.raises(DeterminismError) as caught:
        recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY, verify_events=True)
    assert caught.value.seq == 7
    assert caught.value.expected == ()


def test_recovery_refuses_a_journal_whose_beginning_is_gone_without_a_snapshot(tmp_path: Path) -> None:
    journal_with(tmp_path, sample_records(6), segment_bytes=1)
    archive_segments(tmp_path / "journal", up_to_seq=3, delete=True)
    with pytest.raises(RecoveryError, match="begins at seq 4; seq 1 is not available"):
        recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY)


def test_snapshot_only_data_dir_continues_the_journal_after_the_snapshot(tmp_path: Path) -> None:
    records = sample_records(12)
    SnapshotStore(tmp_path / "snapshots").write(12, engine_after(records).snapshot())
    result = recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY)
    assert (result.last_seq, result.snapshot_seq, result.replayed) == (12, 12, 0)
    assert result.journal is not None
    result.journal.append(sample_records(13)[12:])
    result.journal.close()
    again = recover(tmp_path / "journal", tmp_path / "snapshots", FACTORY, open_for_append=False)
    assert (again.last_seq, again.replayed) == (13, 1)
