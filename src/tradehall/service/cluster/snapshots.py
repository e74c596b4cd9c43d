"""A shard's engine snapshot in a JetStream object store, with where in the stream to read on from.

One object per shard (`<shard>.snapshot`), replaced by each new snapshot: the object store publishes
the chunks first and the metadata last (a rollup), so a reader sees the old object or the new one,
and it checks the SHA-256 digest. Payload:

    header 40 bytes  b"THSHRD01" | record seq u64 | resume stream seq u64 | length u64 | crc32 u32 | 0 u32
    payload          the engine's snapshot bytes

`resume stream seq` is a stream position at or before the first message holding a record after
`record seq`: a restoring replica reads the stream from there and skips records it already has.

The object's description says `seq=<record seq> resume=<resume stream seq>`, so a put can see, without
reading the object, that a newer snapshot is stored already (a deposed leader's late snapshot must not
replace its successor's: the stream before the newer one's resume point may have been purged).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.js.api import ObjectMeta, ObjectStoreConfig, StorageType

from tradehall.service.cluster.names import ShardNames

log = structlog.get_logger(__name__)

MAGIC = b"THSHRD01"
GET_ATTEMPTS = 3
GET_BASE_SECONDS = 2.0
GET_BYTES_PER_SECOND = 20e6
HEADER = struct.Struct("<8sQQQII")


@dataclass(frozen=True, slots=True)
class ShardSnapshot:
    seq: int
    """The last record seq the snapshot contains."""
    resume_stream_seq: int
    data: bytes


def described_seq(description: str) -> int:
    """The record seq in a snapshot object's description (`seq=12 resume=5`); 0 if it has none."""
    for part in description.split():
        key, _, value = part.partition("=")
        if key == "seq" and value.isdigit():
            return int(value)
    return 0


def encode_snapshot(snapshot: ShardSnapshot) -> bytes:
    data = snapshot.data
    header = HEADER.pack(MAGIC, snapshot.seq, snapshot.resume_stream_seq, len(data), zlib.crc32(data), 0)
    return header + data


def decode_snapshot(raw: bytes) -> ShardSnapshot:
    """Raises ValueError for anything but a complete, intact snapshot."""
    if len(raw) < HEADER.size:
        raise ValueError(f"a snapshot of {len(raw)} bytes is shorter than its header")
    magic, seq, resume, length, crc, _ = HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise ValueError(f"bad snapshot magic {magic!r}")
    data = raw[HEADER.size :]
    if len(data) != length or zlib.crc32(data) != crc:
        raise ValueError("snapshot payload damaged (length or checksum)")
    return ShardSnapshot(seq, resume, data)


class ShardSnapshots:
    """Put and get the newest snapshot of one shard."""

    def __init__(self, js: Any, names: ShardNames, *, replicas: int = 1) -> None:
        self._js = js
        self._names = names
        self._replicas = replicas
        self._store: Any = None

    async def _open(self) -> Any:
        if self._store is None:
            bucket = self._names.snapshot_bucket
            try:
                self._store = await self._js.object_store(bucket)
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
                config = ObjectStoreConfig(bucket=bucket, storage=StorageType.FILE, replicas=self._replicas)
                self._store = await self._js.create_object_store(bucket, config=config)
        return self._store

    async def stored_seq(self) -> int:
        """The record seq of the stored snapshot as its description says (0: none, or no description)."""
        store = await self._open()
        try:
            info = await store.get_info(self._names.snapshot_object)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.NotFoundError, KeyError):
            return 0
        return described_seq(info.description or "")

    async def put(self, snapshot: ShardSnapshot) -> bool:
        """Stores `snapshot` unless the stored one is newer (False then: it is kept)."""
        store = await self._open()
        stored = await self.stored_seq()
        if stored > snapshot.seq:
            shard = self._names.shard
            log.warning("shard_snapshot_older_not_stored", shard=shard, seq=snapshot.seq, stored_seq=stored)
            return False
        name = self._names.snapshot_object
        description = f"seq={snapshot.seq} resume={snapshot.resume_stream_seq}"
        await store.put(name, encode_snapshot(snapshot), meta=ObjectMeta(name=name, description=description))
        log.info(
            "shard_snapshot_stored",
            shard=self._names.shard,
            seq=snapshot.seq,
            resume_stream_seq=snapshot.resume_stream_seq,
            bytes=len(snapshot.data),
        )
        return True

    async def latest(self) -> ShardSnapshot | None:
        """The stored snapshot, or None (none yet, or unusable: then the stream is read from its start).
        JetStream unavailable (no leader for the bucket yet) is raised: that is not an unusable snapshot."""
        store = await self._open()
        name = self._names.snapshot_object
        for _ in range(GET_ATTEMPTS):
            try:
                info = await store.get_info(name)
                # a get that read the metadata just before a put replaced the object waits forever for
                # chunks the put purged: bounded by the object's size, then tried again
                async with asyncio.timeout(GET_BASE_SECONDS + int(info.size or 0) / GET_BYTES_PER_SECOND):
                    result = await store.get(name)
            except (nats.js.errors.ObjectNotFoundError, nats.js.errors.NotFoundError, KeyError):
                return None
            except TimeoutError:
                log.warning("shard_snapshot_read_timeout", shard=self._names.shard)
                continue
            except (nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError):
                raise  # JetStream is electing, not the snapshot broken: the caller tries again later
            except nats.js.errors.Error as exc:  # a digest mismatch, a deleted object
                log.warning("shard_snapshot_unusable", shard=self._names.shard, error=repr(exc))
                return None
            try:
                return decode_snapshot(bytes(result.data or b""))
            except ValueError as exc:
                log.warning("shard_snapshot_unusable", shard=self._names.shard, error=str(exc))
                return None
        return None
