"""The journal's record format, CRC checks, torn tails, corrupted middles and segment rotation."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tradehall.journal import Journal, JournalCorruptError, JournalError, JournalRecord, RecoveryError
from tradehall.journal.segments import (
    FRAME_HEADER_SIZE,
    SEGMENT_HEADER,
    decode_payload,
    encode_record,
    list_segments,
    read_commands,
    read_records,
    segment_name,
)
from tradehall.journal.snapshots import archive_segments
from tradehall.journal.testing import sample_records


def write_journal(directory: Path, records: list[JournalRecord], segment_bytes: int = 1 << 20) -> Journal:
    journal = Journal.open(directory, fsync="batch", segment_bytes=segment_bytes)
    journal.append(records)
    journal.sync()
    return journal


def frame_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offsets, offset = [], SEGMENT_HEADER.size
    while offset < len(data):
        offsets.append(offset)
        (length,) = struct.unpack_from("<I", data, offset + 4)
        offset += FRAME_HEADER_SIZE + length
    return offsets


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_record_round_trips_through_its_frame() -> None:
    record = sample_records(1)[0]
    frame = encode_record(record)
    magic, length, seq, _crc = struct.unpack_from("<IIQI", frame, 0)
    assert magic == 0x314A5254
    assert seq == 1
    assert length == len(frame) - FRAME_HEADER_SIZE
    assert decode_payload(frame[FRAME_HEADER_SIZE:]) == record


def test_records_are_read_back_in_order_with_their_commands_and_events(tmp_path: Path) -> None:
    records = sample_records(50)
    write_journal(tmp_path, records).close()
    assert list(read_records(tmp_path)) == records
    assert [r.seq for r in read_records(tmp_path, 20, 25)] == [20, 21, 22, 23, 24, 25]


def test_replay_reads_the_same_commands_without_decoding_the_events(tmp_path: Path) -> None:
    records = sample_records(50)
    write_journal(tmp_path, records).close()
    replay = list(read_commands(tmp_path, 20, 25))
    assert [(r.seq, r.ts, r.command) for r in replay] == [(r.seq, r.ts, r.command) for r in records[19:25]]
    assert not hasattr(replay[0], "events")


def test_reopened_journal_continues_after_its_last_record(tmp_path: Path) -> None:
    records = sample_records(10)
    write_journal(tmp_path, records[:6]).close()
    journal = Journal.open(tmp_path)
    assert journal.last_seq == 6
    journal.append(records[6:])
    journal.close()
    assert [r.seq for r in read_records(tmp_path)] == list(range(1, 11))


def test_append_refuses_a_seq_that_does_not_follow_the_last(tmp_path: Path) -> None:
    journal = write_journal(tmp_path, sample_records(3))
    with pytest.raises(JournalError, match="append of seq 5 after 3"):
        journal.append(sample_records(1, start=5))
    journal.close()


def test_partial_last_record_is_truncated_with_a_warning(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(10)).close()
    path = tmp_path / segment_name(1)
    last = frame_offsets(path)[-1]
    os.truncate(path, last + 7)
    with capture_logs() as logs:
        journal = Journal.open(tmp_path)
    assert journal.last_seq == 9
    assert path.stat().st_size == last
    warning = next(entry for entry in logs if entry["event"] == "journal_torn_tail_truncated")
    assert warning["log_level"] == "warning"
    assert warning["offset"] == last
    assert warning["dropped_bytes"] == 7
    journal.append(sample_records(2, start=10))
    journal.close()
    assert [r.seq for r in read_records(tmp_path)] == list(range(1, 12))


def test_readers_skip_a_torn_tail_only_when_told_to(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(5)).close()
    path = tmp_path / segment_name(1)
    os.truncate(path, path.stat().st_size - 3)
    assert [r.seq for r in read_records(tmp_path)] == [1, 2, 3, 4]
    with pytest.raises(JournalCorruptError, match="incomplete payload"):
        list(read_records(tmp_path, tolerate_torn_tail=False))


def test_bad_crc_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(10)).close()
    path = tmp_path / segment_name(1)
    last = frame_offsets(path)[-1]
    flip_byte(path, path.stat().st_size - 2)
    with capture_logs() as logs:
        journal = Journal.open(tmp_path)
    assert journal.last_seq == 9
    assert path.stat().st_size == last
    assert "CRC mismatch" in next(e for e in logs if e["event"] == "journal_torn_tail_truncated")["reason"]
    journal.close()


def test_stale_old_records_after_a_torn_tail_do_not_count_as_later_records(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(10)).close()
    path = tmp_path / segment_name(1)
    stale = encode_record(sample_records(1, start=3)[0])  # a valid frame, but of an earlier seq
    with path.open("ab") as handle:
        handle.write(b"\0" * 37 + stale)
    with capture_logs():
        journal = Journal.open(tmp_path)
    assert journal.last_seq == 10
    journal.close()


def test_a_torn_segment_header_is_rewritten(tmp_path: Path) -> None:
    journal = write_journal(tmp_path, sample_records(4), segment_bytes=1)
    journal.append(sample_records(1, start=5))
    journal.close()
    second = tmp_path / segment_name(5)
    os.truncate(second, 5)
    with capture_logs():
        journal = Journal.open(tmp_path)
    assert journal.last_seq == 4
    journal.append(sample_records(1, start=5))
    journal.close()
    assert [r.seq for r in read_records(tmp_path)] == [1, 2, 3, 4, 5]


def test_corruption_in_the_middle_stops_with_file_and_offset(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(10)).close()
    path = tmp_path / segment_name(1)
    third = frame_offsets(path)[2]
    flip_byte(path, third + FRAME_HEADER_SIZE + 3)
    with pytest.raises(JournalCorruptError) as caught:
        Journal.open(tmp_path)
    assert caught.value.path == path
    assert caught.value.offset == third
    assert "CRC mismatch" in caught.value.reason
    assert f"{path} at byte offset {third}" in str(caught.value)
    with pytest.raises(JournalCorruptError):
        list(read_records(tmp_path))
    assert path.stat().st_size > third + 1000  # nothing was truncated


def test_a_corrupted_length_in_the_middle_is_not_mistaken_for_a_torn_tail(tmp_path: Path) -> None:
    write_journal(tmp_path, sample_records(10)).close()
    path = tmp_path / segment_name(1)
    fifth = frame_offsets(path)[4]
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, fifth + 4, 10_000_000)  # now claims to run past the end of the file
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as caught:
        Journal.open(tmp_path)
    assert caught.value.offset == fifth
    assert "a valid record follows" in caught.value.reason


def test_corruption_at_the_end_of_an_older_segment_is_never_truncated(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, segment_bytes=1)
    records = sample_records(6)
    for record in records:
        journal.append([record])
    journal.close()
    assert len(list_segments(tmp_path)) == 6
    first = tmp_path / segment_name(1)
    flip_byte(first, first.stat().st_size - 1)
    with pytest.raises(JournalCorruptError) as caught:
        list(read_records(tmp_path))
    assert caught.value.path == first
    assert caught.value.offset == SEGMENT_HEADER.size


def test_a_missing_segment_is_a_gap(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, segment_bytes=1)
    for record in sample_records(4):
        journal.append([record])
    journal.close()
    (tmp_path / segment_name(2)).unlink()
    with pytest.raises(JournalCorruptError, match="starts at seq 3, expected 2"):
        list(read_records(tmp_path))


def test_rotation_names_segments_by_their_first_seq(tmp_path: Path) -> None:
    records = sample_records(40)
    journal = Journal.open(tmp_path, segment_bytes=2000)
    for start in range(0, 40, 4):
        journal.append(records[start : start + 4])
    journal.close()
    segments = list_segments(tmp_path)
    assert [s.first_seq for s in segments] == list(range(1, 41, 8))
    assert all(s.path.name == segment_name(s.first_seq) for s in segments)
    assert list(read_records(tmp_path)) == records
    assert [r.seq for r in read_records(tmp_path, 15)] == list(range(15, 41))


def test_rotation_makes_the_old_segment_durable_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open(tmp_path, fsync="batch", segment_bytes=1)
    journal.append(sample_records(1))
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.fstat(fd).st_size), real(fd)))
    journal.append(sample_records(1, start=2))
    first_size = (tmp_path / segment_name(1)).stat().st_size
    assert synced == [first_size]  # the old segment, before sync() was ever called
    journal.close()


def test_sync_fsyncs_only_when_the_policy_asks(tmp_path: Path) -> None:
    batch = Journal.open(tmp_path / "batch", fsync="batch")
    batch.append(sample_records(3))
    batch.sync()
    batch.sync()
    assert batch.fsync_count == 2
    batch.close()
    none = Journal.open(tmp_path / "none", fsync="none")
    none.append(sample_records(3))
    none.sync()
    none.close()
    assert none.fsync_count == 0
    assert [r.seq for r in read_records(tmp_path / "none")] == [1, 2, 3]


def test_archived_segments_stay_readable_and_deleted_ones_do_not(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, segment_bytes=1)
    for record in sample_records(5):
        journal.append([record])
    journal.close()
    moved = archive_segments(tmp_path, up_to_seq=3, delete=False)
    assert [p.name for p in moved] == [segment_name(1), segment_name(2), segment_name(3)]
    assert [s.first_seq for s in list_segments(tmp_path)] == [4, 5]
    assert [r.seq for r in read_records(tmp_path)] == [1, 2, 3, 4, 5]
    archive_segments(tmp_path, up_to_seq=10, delete=True)
    assert [s.first_seq for s in list_segments(tmp_path)] == [5]  # the newest segment is never touched
    with pytest.raises(RecoveryError, match="begins at seq 5; seq 1 is not available"):
        list(read_records(tmp_path, include_archive=False))
