"""Engine snapshots: written atomically, checksummed, each naming the last seq it contains.

File `<seq, 20 digits>.snap`:

    header 32 bytes  b"THSNAP01" | seq u64 | payload length u64 | crc32 u32 | reserved u32
    payload          the engine's snapshot bytes

Written as temp file + fsync + rename + directory fsync, so a crash leaves either the old set of
snapshots or the new one, never a half-written file under a final name. A snapshot that fails its
checks anyway (bit rot, a truncated copy) is skipped in favour of an older one.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import structlog

from tradehall.journal.errors import SnapshotCorruptError
from tradehall.journal.segments import ARCHIVE_DIR_NAME, fsync_directory, list_segments

SNAPSHOT_MAGIC = b"THSNAP01"
SNAPSHOT_HEADER = struct.Struct("<8sQQII")
SNAPSHOT_SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    data: bytes
    path: Path


def snapshot_name(seq: int) -> str:
    return f"{seq:020d}{SNAPSHOT_SUFFIX}"


class SnapshotStore:
    def __init__(self, directory: Path, *, retention: int = 2) -> None:
        if retention < 1:
            raise ValueError("snapshot retention must keep at least one snapshot")
        self.directory = directory
        self.retention = retention

    def paths(self) -> list[tuple[int, Path]]:
        """(seq, path) of every snapshot file, newest first."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(path.stem), path)
            for path in self.directory.iterdir()
            if path.suffix == SNAPSHOT_SUFFIX and path.stem.isdigit()
        ]
        found.sort(reverse=True)
        return found

    def write(self, seq: int, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / snapshot_name(seq)
        temp = final.with_name(final.name + TEMP_SUFFIX)
        header = SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, seq, len(data), zlib.crc32(data), 0)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(header + data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        fsync_directory(self.directory)
        log.info("snapshot_written", path=str(final), seq=seq, bytes=len(data))
        return final

    @staticmethod
    def load(path: Path) -> Snapshot:
        raw = path.read_bytes()
        if len(raw) < SNAPSHOT_HEADER.size:
            raise SnapshotCorruptError(path, f"file of {len(raw)} bytes is shorter than the header")
        magic, seq, length, crc, _ = SNAPSHOT_HEADER.unpack_from(raw, 0)
        if magic != SNAPSHOT_MAGIC:
            raise SnapshotCorruptError(path, f"bad magic {magic!r}")
        data = raw[SNAPSHOT_HEADER.size :]
        if len(data) != length:
            raise SnapshotCorruptError(path, f"payload is {len(data)} bytes, header says {length}")
        if zlib.crc32(data) != crc:
            raise SnapshotCorruptError(path, "checksum mismatch")
        if path.stem.isdigit() and int(path.stem) != seq:
            raise SnapshotCorruptError(path, f"header seq {seq} differs from the file name")
        return Snapshot(seq, data, path)

    def latest_valid(self, max_seq: int | None = None) -> Snapshot | None:
        """The newest snapshot that passes its checks (and has seq <= max_seq), warning about the others."""
        for seq, path in self.paths():
            if max_seq is not None and seq > max_seq:
                log.warning("snapshot_ahead_of_journal", path=str(path), seq=seq, journal_last_seq=max_seq)
                continue
            try:
                return self.load(path)
            except SnapshotCorruptError as exc:
                log.warning("snapshot_skipped", path=str(path), reason=exc.reason)
        return None

    def prune(self) -> list[Path]:
        """Deletes all but the newest `retention` snapshots, and leftover temp files."""
        removed: list[Path] = []
        for _, path in self.paths()[self.retention :]:
            path.unlink(missing_ok=True)
            removed.append(path)
        if self.directory.is_dir():
            for path in self.directory.glob(f"*{SNAPSHOT_SUFFIX}{TEMP_SUFFIX}"):
                path.unlink(missing_ok=True)
                removed.append(path)
        if removed:
            fsync_directory(self.directory)
        return removed

    def oldest_retained_seq(self) -> int | None:
        paths = self.paths()[: self.retention]
        return paths[-1][0] if paths else None


def archive_segments(journal_dir: Path, up_to_seq: int, *, delete: bool) -> list[Path]:
    """Moves (or deletes) segments whose every record has seq <= `up_to_seq`.

    A segment's last seq is the next segment's first seq minus one, so the newest segment (still
    being written) is never touched.
    """
    segments = list_segments(journal_dir)
    moved: list[Path] = []
    archive = journal_dir / ARCHIVE_DIR_NAME
    for current, following in itertools.pairwise(segments):
        if following.first_seq - 1 > up_to_seq:
            break
        if delete:
            current.path.unlink()
        else:
            archive.mkdir(exist_ok=True)
            shutil.move(current.path, archive / current.path.name)
        moved.append(current.path)
    if moved:
        fsync_directory(journal_dir)
        if not delete:
            fsync_directory(archive)
        log.info("journal_segments_archived", count=len(moved), up_to_seq=up_to_seq, deleted=delete)
    return moved
