"""Append-only journal segments: length-prefixed, CRC32-checked frames of msgpack `JournalRecord`s.

Layout of a segment file `<first seq, 20 digits>.wal`:

    segment header  16 bytes  b"THJRNL01" + first seq (u64 LE)
    frame           20 bytes  magic u32 | payload length u32 | seq u64 | crc32 u32, then the payload

The CRC covers the first 16 header bytes and the payload, so a flipped length or seq is caught too.
The seq sits in the frame header so a reader can seek and check continuity without decoding.
A frame that fails at the very end of the newest segment, with no valid frame after it, is a torn
write of an unacknowledged batch and is truncated; anywhere else it is corruption and stops start-up.

Over 400 lines on purpose: the frame format, its writer, its reader and torn-write recovery share
the layout above and are checked together; apart, each would re-derive it.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
import structlog

from tradehall.journal.errors import JournalCorruptError, JournalError, RecoveryError
from tradehall.journal.records import JournalRecord, ReplayRecord

FsyncPolicy = Literal["always", "batch", "none"]
T = TypeVar("T")

SEGMENT_MAGIC = b"THJRNL01"
SEGMENT_HEADER = struct.Struct("<8sQ")
FRAME_MAGIC = 0x314A5254  # b"TRJ1" little-endian: a resync marker when telling torn tails from corruption
FRAME_HEADER = struct.Struct("<IIQI")
FRAME_HEADER_SIZE = FRAME_HEADER.size
_CRC_COVERED_HEADER = 16
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
SEGMENT_SUFFIX = ".wal"
ARCHIVE_DIR_NAME = "archive"

log = structlog.get_logger(__name__)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JournalRecord)
_replay_decoder = msgspec.msgpack.Decoder(ReplayRecord)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def encode_record(record: JournalRecord) -> bytes:
    """One complete frame (header + payload) for `record`."""
    buf = bytearray()
    _append_frame(buf, record)
    return bytes(buf)


def decode_payload(payload: bytes | memoryview) -> JournalRecord:
    return _decoder.decode(payload)


_HEADER_COVERED = struct.Struct("<IIQ")
_CRC = struct.Struct("<I")


def _append_frame(buf: bytearray, record: JournalRecord) -> None:
    payload = _encoder.encode(record)
    head = _HEADER_COVERED.pack(FRAME_MAGIC, len(payload), record.seq)
    buf += head
    buf += _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))
    buf += payload


class FrameError(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"offset {offset}: {reason}")


def _frame_at(data: memoryview, offset: int) -> tuple[int, int]:
    """(seq, payload length) of the valid frame at `offset`, or FrameError saying why there is none."""
    end = len(data)
    if offset + FRAME_HEADER_SIZE > end:
        raise FrameError(offset, f"incomplete frame header ({end - offset} of {FRAME_HEADER_SIZE} bytes)")
    magic, length, seq, crc = FRAME_HEADER.unpack_from(data, offset)
    if magic != FRAME_MAGIC:
        raise FrameError(offset, f"bad frame magic {magic:#010x}")
    if length > MAX_PAYLOAD_BYTES:
        raise FrameError(offset, f"implausible payload length {length}")
    body = offset + FRAME_HEADER_SIZE
    if body + length > end:
        raise FrameError(offset, f"incomplete payload ({end - body} of {length} bytes)")
    actual = zlib.crc32(data[body : body + length], zlib.crc32(data[offset : offset + _CRC_COVERED_HEADER]))
    if actual != crc:
        raise FrameError(offset, f"CRC mismatch (stored {crc:#010x}, computed {actual:#010x})")
    return seq, length


def _valid_frame_after(data: memoryview, offset: int, min_seq: int) -> int | None:
    """The offset of a valid frame with seq >= `min_seq` beyond `offset`, if any: proof that a bad
    frame is damage in the middle, not a torn tail. (A lower seq would be stale bytes of an old file
    that a power cut exposed in never-written blocks, not a record of this journal's future.)"""
    marker = struct.pack("<I", FRAME_MAGIC)
    raw = data.obj if isinstance(data.obj, bytes) else bytes(data)
    pos = raw.find(marker, offset + 1)
    while pos != -1:
        try:
            seq, _ = _frame_at(data, pos)
            if seq >= min_seq:
                return pos
        except FrameError:
            pass
        pos = raw.find(marker, pos + 1)
    return None


def _walk(data: memoryview, start: int, check_from_seq: int = 0) -> Iterator[tuple[int, int, int]]:
    """(offset, seq, payload length) of every frame from `start`; FrameError at the first bad one.

    The hot loop of recovery, hence inlined. Frames below `check_from_seq` (before a snapshot, not
    replayed) are walked by their headers without a CRC; `tradehall journal verify` checks them all.
    """
    offset = start
    end = len(data)
    unpack = FRAME_HEADER.unpack_from
    crc32 = zlib.crc32
    header_size = FRAME_HEADER_SIZE
    covered = _CRC_COVERED_HEADER
    while offset < end:
        body = offset + header_size
        if body > end:
            _frame_at(data, offset)  # raises with the precise reason
        magic, length, seq, crc = unpack(data, offset)
        stop = body + length
        if magic != FRAME_MAGIC or stop > end or length > MAX_PAYLOAD_BYTES:
            _frame_at(data, offset)
        if seq >= check_from_seq and crc32(data[body:stop], crc32(data[offset : offset + covered])) != crc:
            _frame_at(data, offset)
        yield offset, seq, length
        offset = stop


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    path: Path
    first_seq: int
    archived: bool


def list_segments(directory: Path, *, include_archive: bool = False) -> list[SegmentInfo]:
    found: list[SegmentInfo] = []
    dirs = [(directory, False)]
    if include_archive:
        dirs.insert(0, (directory / ARCHIVE_DIR_NAME, True))
    for folder, archived in dirs:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.suffix != SEGMENT_SUFFIX or not path.stem.isdigit():
                continue
            found.append(SegmentInfo(path, int(path.stem), archived))
    found.sort(key=lambda s: (s.first_seq, not s.archived))
    return found


def _read_segment(path: Path) -> memoryview:
    return memoryview(path.read_bytes())


def _check_segment_header(path: Path, data: memoryview, first_seq: int) -> None:
    magic, header_seq = SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise JournalCorruptError(path, 0, f"bad segment magic {bytes(magic)!r}")
    if header_seq != first_seq:
        raise JournalCorruptError(
            path, 8, f"segment header says first seq {header_seq}, file name says {first_seq}"
        )


def fsync_directory(directory: Path) -> None:
    """Makes a created, renamed or removed directory entry durable (POSIX needs the directory fsynced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class TornTail:
    path: Path
    offset: int
    dropped_bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class SegmentScan:
    last_seq: int
    valid_end: int
    torn: TornTail | None


def scan_segment(path: Path, first_seq: int, *, is_last: bool) -> SegmentScan:
    """Checks every frame of one segment. A torn tail is reported (not repaired) only when `is_last`."""
    data = _read_segment(path)
    if len(data) < SEGMENT_HEADER.size:
        if is_last:
            torn = TornTail(path, 0, len(data), "incomplete segment header")
            return SegmentScan(first_seq - 1, 0, torn)
        raise JournalCorruptError(path, 0, "incomplete segment header")
    _check_segment_header(path, data, first_seq)
    expected = first_seq
    offset = SEGMENT_HEADER.size
    try:
        for frame_offset, seq, length in _walk(data, SEGMENT_HEADER.size):
            if seq != expected:
                raise JournalCorruptError(path, frame_offset, f"expected seq {expected}, found {seq}")
            expected += 1
            offset = frame_offset + FRAME_HEADER_SIZE + length
    except FrameError as exc:
        if not is_last:
            raise JournalCorruptError(path, exc.offset, exc.reason) from None
        later = _valid_frame_after(data, exc.offset, expected)
        if later is not None:
            raise JournalCorruptError(
                path, exc.offset, f"{exc.reason}; a valid record follows at offset {later}"
            ) from None
        return SegmentScan(expected - 1, offset, TornTail(path, offset, len(data) - offset, exc.reason))
    return SegmentScan(expected - 1, offset, None)


def read_records(
    directory: Path,
    from_seq: int = 1,
    to_seq: int | None = None,
    *,
    include_archive: bool = True,
    tolerate_torn_tail: bool = True,
) -> Iterator[JournalRecord]:
    """Records with `from_seq <= seq <= to_seq`, in order, across segments (archived ones too).

    Raises JournalCorruptError on any invalid frame or seq gap, except a torn tail of the newest
    segment when `tolerate_torn_tail` (a journal that has not been opened for writing since a crash).
    """
    return _iter_payloads(
        directory,
        from_seq,
        to_seq,
        _decoder.decode,
        include_archive=include_archive,
        tolerate_torn_tail=tolerate_torn_tail,
    )


def read_commands(
    directory: Path,
    from_seq: int = 1,
    to_seq: int | None = None,
    *,
    include_archive: bool = True,
    tolerate_torn_tail: bool = True,
) -> Iterator[ReplayRecord]:
    """Like `read_records`, the commands only (what a replay needs; the events are not decoded)."""
    return _iter_payloads(
        directory,
        from_seq,
        to_seq,
        _replay_decoder.decode,
        include_archive=include_archive,
        tolerate_torn_tail=tolerate_torn_tail,
    )


def _iter_payloads(
    directory: Path,
    from_seq: int,
    to_seq: int | None,
    decode: Callable[[memoryview], T],
    *,
    include_archive: bool = True,
    tolerate_torn_tail: bool = True,
) -> Iterator[T]:
    """The decoded payloads of the records in range: one generator from the frames to the records
    (the hot loop of recovery)."""
    segments = list_segments(directory, include_archive=include_archive)
    if not segments:
        return
    start_index = 0
    for index, segment in enumerate(segments):
        if segment.first_seq <= from_seq:
            start_index = index
    if segments[0].first_seq > from_seq:
        raise RecoveryError(
            f"journal in {directory} begins at seq {segments[0].first_seq}; seq {from_seq} is not available"
        )
    expected: int | None = None
    for index in range(start_index, len(segments)):
        segment = segments[index]
        is_last = index == len(segments) - 1
        if expected is not None and segment.first_seq != expected:
            raise JournalCorruptError(
                segment.path, 0, f"segment starts at seq {segment.first_seq}, expected {expected} (a gap)"
            )
        data = _read_segment(segment.path)
        if len(data) < SEGMENT_HEADER.size:
            if is_last and tolerate_torn_tail:
                return
            raise JournalCorruptError(segment.path, 0, "incomplete segment header")
        _check_segment_header(segment.path, data, segment.first_seq)
        expected = segment.first_seq
        last = to_seq if to_seq is not None else 1 << 63
        try:
            for offset, seq, length in _walk(data, SEGMENT_HEADER.size, from_seq):
                if seq != expected:
                    raise JournalCorruptError(segment.path, offset, f"expected seq {expected}, found {seq}")
                expected += 1
                if seq < from_seq:
                    continue
                if seq > last:
                    return
                body = offset + FRAME_HEADER_SIZE
                yield decode(data[body : body + length])
        except FrameError as exc:
            if is_last and tolerate_torn_tail and _valid_frame_after(data, exc.offset, expected) is None:
                return
            raise JournalCorruptError(segment.path, exc.offset, exc.reason) from None


def decode_frames(data: bytes | memoryview) -> list[JournalRecord]:
    """The records of consecutive frames with nothing around them (an `EncodedBatch`'s bytes, as a
    replicated log stores them), every CRC checked; any damage raises `JournalError`."""
    view = memoryview(data)
    decode = _decoder.decode
    records: list[JournalRecord] = []
    try:
        for offset, _, length in _walk(view, 0):
            body = offset + FRAME_HEADER_SIZE
            records.append(decode(view[body : body + length]))
    except FrameError as exc:
        raise JournalError(f"damaged batch: {exc}") from None
    return records


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Consecutive records as the bytes of their frames, ready for one write."""

    first_seq: int
    last_seq: int
    data: bytes

    @classmethod
    def of(cls, records: Sequence[JournalRecord]) -> EncodedBatch:
        if not records:
            raise JournalError("an empty batch")
        buf = bytearray()
        expected = records[0].seq
        for record in records:
            if record.seq != expected:
                raise JournalError(f"records out of order: seq {record.seq}, expected {expected}")
            expected += 1
            _append_frame(buf, record)
        return cls(records[0].seq, expected - 1, bytes(buf))


class Journal:
    """The writer: appends frames to the newest segment, rotates by size, fsyncs by policy.

    `append` runs on the event loop; `sync` may run in a worker thread at the same time. They share
    only the list of retired (rotated, not yet synced) descriptors, under a lock, so a descriptor is
    closed only after the fsync that makes its tail durable.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: FsyncPolicy,
        segment_bytes: int,
        last_seq: int,
        fd: int,
        segment_path: Path,
        segment_size: int,
    ) -> None:
        self.directory = directory
        self.fsync_policy: FsyncPolicy = fsync
        self.segment_bytes = segment_bytes
        self.last_seq = last_seq
        self._fd = fd
        self._segment_path = segment_path
        self._segment_size = segment_size
        self._retired: list[int] = []
        self._directory_dirty = False
        self._lock = threading.Lock()
        self._closed = False
        self.fsync_count = 0

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        fsync: FsyncPolicy = "batch",
        segment_bytes: int = 64 * 1024 * 1024,
        start_seq: int = 1,
    ) -> Journal:
        """Opens the newest segment for appending, truncating a torn tail (with a warning) first.

        `start_seq` is the first seq of a journal that has no segment yet (after a snapshot-only
        restore); an existing journal continues from its last record.
        """
        directory.mkdir(parents=True, exist_ok=True)
        segments = list_segments(directory)
        if not segments:
            path = directory / segment_name(start_seq)
            fd = cls._create_segment(path, start_seq)
            fsync_directory(directory)
            return cls(
                directory,
                fsync=fsync,
                segment_bytes=segment_bytes,
                last_seq=start_seq - 1,
                fd=fd,
                segment_path=path,
                segment_size=SEGMENT_HEADER.size,
            )
        newest = segments[-1]
        scan = scan_segment(newest.path, newest.first_seq, is_last=True)
        if scan.torn is not None:
            log.warning(
                "journal_torn_tail_truncated",
                path=str(scan.torn.path),
                offset=scan.torn.offset,
                dropped_bytes=scan.torn.dropped_bytes,
                reason=scan.torn.reason,
            )
        fd = os.open(newest.path, os.O_RDWR)
        size = scan.valid_end
        if scan.torn is not None:
            os.ftruncate(fd, size)
            if size < SEGMENT_HEADER.size:
                os.pwrite(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, newest.first_seq), 0)
                size = SEGMENT_HEADER.size
            os.fsync(fd)
        os.lseek(fd, size, os.SEEK_SET)
        return cls(
            directory,
            fsync=fsync,
            segment_bytes=segment_bytes,
            last_seq=scan.last_seq,
            fd=fd,
            segment_path=newest.path,
            segment_size=size,
        )

    @staticmethod
    def _create_segment(path: Path, first_seq: int) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, first_seq))
        return fd

    @property
    def segment_path(self) -> Path:
        return self._segment_path

    def append(self, records: Sequence[JournalRecord]) -> int:
        """Writes `records` (consecutive seqs after `last_seq`) with one write; returns the bytes written.

        Not durable until `sync`. Rotation happens only between batches, so a batch never spans files.
        """
        if not records:
            return 0
        return self.write(EncodedBatch.of(records))

    def write(self, batch: EncodedBatch) -> int:
        """Writes a batch encoded elsewhere (the runner encodes on the event loop, writes in its I/O
        thread: a write can block while the kernel writes back the page it lands in)."""
        if self._closed:
            raise JournalError("journal is closed")
        if batch.first_seq != self.last_seq + 1:
            raise JournalError(f"append of seq {batch.first_seq} after {self.last_seq}")
        if self._segment_size >= self.segment_bytes and self._segment_size > SEGMENT_HEADER.size:
            self._rotate(batch.first_seq)
        data = batch.data
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, memoryview(data)[written:])
        self._segment_size += len(data)
        self.last_seq = batch.last_seq
        return len(data)

    def _rotate(self, first_seq: int) -> None:
        # The old segment is made durable before any record lands in the new one, so a power cut can
        # leave a torn tail only in the newest segment, where recovery knows to truncate it.
        if self.fsync_policy != "none":
            os.fdatasync(self._fd)
        path = self.directory / segment_name(first_seq)
        fd = self._create_segment(path, first_seq)
        with self._lock:
            self._retired.append(self._fd)
            self._directory_dirty = True
            self._fd = fd
        self._segment_path = path
        self._segment_size = SEGMENT_HEADER.size
        log.info("journal_segment_rotated", path=str(path), first_seq=first_seq)

    def sync(self) -> None:
        """Makes everything appended so far durable (per the policy); safe to call from a thread."""
        with self._lock:
            retired, self._retired = self._retired, []
            directory_dirty, self._directory_dirty = self._directory_dirty, False
            current = self._fd
        if self.fsync_policy != "none":
            for fd in retired:
                os.fdatasync(fd)
            os.fdatasync(current)
            if directory_dirty:
                fsync_directory(self.directory)
            self.fsync_count += 1
        for fd in retired:
            os.close(fd)

    def close(self) -> None:
        if self._closed:
            return
        self.sync()
        self._closed = True
        os.close(self._fd)
