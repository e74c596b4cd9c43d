"""A shard's command log: a JetStream stream holding the engine runner's group-commit batches.

Each stream message is one batch exactly as the local journal writes it (consecutive CRC-checked
frames of `JournalRecord`s, `journal.segments`), so a record's seq is the engine's sequence and the
stream's own sequence only orders batches. A message with no frames is a new leader's *epoch marker*.

Fencing: every append carries `Nats-Expected-Last-Sequence` = the last stream sequence the writer
knows. JetStream stores the message only if the stream still ends there, so a leader that lost its
lease cannot append once the next leader wrote its epoch marker (or anything else): its append fails
with `LogFencedError`, its runner stops, nothing it had not stored is acknowledged. A batch larger than
the server's message size is split at frame boundaries and the pieces appended one after another, each
fenced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import nats.errors
import nats.js.errors
import structlog
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from tradehall.journal.errors import JournalError
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import E, EngineFactory
from tradehall.journal.segments import FRAME_HEADER, FRAME_HEADER_SIZE, EncodedBatch, decode_frames
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.snapshots import ShardSnapshot, ShardSnapshots
from tradehall.service.command_log import LogRecovery

log = structlog.get_logger(__name__)

LEADER_HEADER = "Tradehall-Leader"
EPOCH_HEADER = "Tradehall-Epoch"
"""On an epoch marker: the lease revision its leader took over with."""
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for an append whose expected last sequence is not the stream's."""


class LogFencedError(JournalError):
    """The stream no longer ends where this writer expected: another leader has written."""

    def __init__(self, expected_last: int, detail: str) -> None:
        self.expected_last = expected_last
        super().__init__(f"append after stream seq {expected_last} refused (fenced): {detail}")


class LeaseExpiredError(JournalError):
    """The leader's lease ran out before the batch was appended: it must not write any more."""


class LogUnavailableError(JournalError):
    """JetStream did not store the batch (no answer in time, no stream, a server error)."""


def split_frames(data: bytes, limit: int) -> list[bytes]:
    """`data` (consecutive frames) cut at frame boundaries into pieces of at most `limit` bytes (a
    single larger frame stays whole: the server refuses it, which fails the batch loudly)."""
    if len(data) <= limit:
        return [data]
    pieces: list[bytes] = []
    start = offset = 0
    while offset < len(data):
        _, length, _, _ = FRAME_HEADER.unpack_from(data, offset)
        end = offset + FRAME_HEADER_SIZE + length
        if end - start > limit and offset > start:
            pieces.append(data[start:offset])
            start = offset
        offset = end
    pieces.append(data[start:])
    return pieces


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream_seq: int
    records: list[JournalRecord]
    leader: str


class ShardLog:
    """The stream of one shard: creation, fenced appends, reading from a stream sequence."""

    def __init__(self, js: Any, names: ShardNames, *, replicas: int = 1, timeout: float = 5.0) -> None:
        self._js = js
        self.names = names
        self.replicas = replicas
        self.timeout = timeout
        self.max_payload = 1024 * 1024

    async def ensure(self, max_payload: int | None = None) -> None:
        """Creates the stream (file storage, `replicas` copies) unless it exists."""
        if max_payload is not None:
            self.max_payload = max_payload
        config = StreamConfig(
            name=self.names.stream,
            subjects=[self.names.log_subject],
            storage=StorageType.FILE,
            num_replicas=self.replicas,
        )
        try:
            info = await self._js.stream_info(self.names.stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile by another replica
                await self._js.add_stream(config)
            return
        existing = getattr(info.config, "num_replicas", None)
        if existing is not None and existing != self.replicas:  # changing R is an operator's decision
            log.warning(
                "shard_stream_replicas_differ", stream=self.names.stream, has=existing, wanted=self.replicas
            )

    async def delete(self) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_stream(self.names.stream)

    async def last_seq(self) -> int:
        info = await self._js.stream_info(self.names.stream)
        return int(info.state.last_seq)

    async def bounds(self) -> tuple[int, int]:
        """The stream's first and last sequence now (first > last when it is empty)."""
        info = await self._js.stream_info(self.names.stream)
        return int(info.state.first_seq), int(info.state.last_seq)

    async def purge_before(self, stream_seq: int) -> None:
        """Removes every message before `stream_seq` (JetStream's purge keeping seq ≥ `stream_seq`);
        the stream's end, and so the fencing of appends, does not move."""
        await self._js.purge_stream(self.names.stream, seq=stream_seq)

    async def read(self, stream_seq: int) -> LogEntry | None:
        """The message at `stream_seq`, or None if the stream no longer holds it (or never did)."""
        try:
            message = await self._js.get_msg(self.names.stream, stream_seq)
        except nats.js.errors.NotFoundError:
            return None
        headers = message.headers or {}
        return LogEntry(
            stream_seq=stream_seq,
            records=decode_frames(message.data) if message.data else [],
            leader=str(headers.get(LEADER_HEADER, "")),
        )

    async def append(self, payload: bytes, expected_last: int, headers: dict[str, str] | None = None) -> int:
        """Stores one message if the stream still ends at `expected_last`; returns its stream seq."""
        sent = {EXPECTED_LAST_SEQUENCE: str(expected_last), **(headers or {})}
        try:
            ack = await self._js.publish(self.names.log_subject, payload, timeout=self.timeout, headers=sent)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise LogFencedError(expected_last, str(exc.description)) from None
            raise LogUnavailableError(f"stream {self.names.stream}: {exc!r}") from exc
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise LogUnavailableError(f"stream {self.names.stream}: {exc!r}") from exc
        seq = int(ack.seq)
        if seq != expected_last + 1:  # cannot happen with the header honoured; never build on it
            raise LogFencedError(expected_last, f"stored at stream seq {seq}")
        return seq

    async def subscribe(self, from_stream_seq: int, on_entry: Callable[[LogEntry], None]) -> Any:
        """An ordered push consumer from `from_stream_seq` calling `on_entry` for each message in order;
        returns the subscription (`await sub.unsubscribe()` ends it)."""

        async def deliver(message: Any) -> None:
            headers = message.headers or {}
            on_entry(
                LogEntry(
                    stream_seq=int(message.metadata.sequence.stream),
                    records=decode_frames(message.data) if message.data else [],
                    leader=str(headers.get(LEADER_HEADER, "")),
                )
            )

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, from_stream_seq)
        )
        return await self._js.subscribe(
            self.names.log_subject,
            stream=self.names.stream,
            cb=deliver,
            ordered_consumer=True,
            config=config,
        )


class LogGapError(LogUnavailableError):
    """The stream no longer holds records a reader needs (purged past it): restore from the snapshot."""


class ShardState(Generic[E]):
    """An engine and how far into the stream it is: applies log entries in order, exactly once."""

    def __init__(self, engine: E, applied_seq: int = 0, stream_seq: int = 0) -> None:
        self.engine = engine
        self.applied_seq = applied_seq
        """The last record seq applied."""
        self.stream_seq = stream_seq
        """The last stream message consumed."""
        self.leader = ""
        """Who wrote the last message (from its header)."""
        self.diverged_seq = 0
        """The first record whose events this engine did not reproduce (0: none): another engine
        version, or a bug; such a replica must not lead."""
        self.listeners: list[Callable[[Sequence[JournalRecord]], None]] = []
        self._advanced = asyncio.Event()

    def apply(self, entry: LogEntry) -> None:
        if entry.stream_seq <= self.stream_seq:
            return  # delivered again (a consumer reset)
        fresh: list[JournalRecord] = []
        engine = self.engine
        for record in entry.records:
            if record.seq <= self.applied_seq:
                continue  # already in the snapshot this replica started from
            if record.seq != self.applied_seq + 1:
                raise JournalError(
                    f"stream seq {entry.stream_seq} holds record {record.seq} after {self.applied_seq}"
                )
            events = engine.apply(record.command)
            if not self.diverged_seq and tuple(events) != record.events:
                self.diverged_seq = record.seq
                log.error("replica_diverged", seq=record.seq, stream_seq=entry.stream_seq)
            self.applied_seq = record.seq
            fresh.append(record)
        self.stream_seq = entry.stream_seq
        if entry.leader:
            self.leader = entry.leader
        self._advanced.set()
        if fresh:
            for listener in list(self.listeners):
                try:
                    listener(fresh)
                except Exception as exc:  # a broken listener must not stop the replica
                    log.error("shard_listener_failed", error=repr(exc))

    async def wait_stream_seq(self, stream_seq: int, timeout: float) -> bool:
        """Until the state has consumed `stream_seq` (True) or `timeout` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.stream_seq < stream_seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancellation (3.11)
                    await self._advanced.wait()
        return True


async def restore_state(
    shard_log: ShardLog,
    snapshots: ShardSnapshots | None,
    factory: EngineFactory[E],
    *,
    stall_timeout: float = 30.0,
) -> ShardState[E]:
    """A replica's start: the newest snapshot, then the stream after it up to its end now (however
    long that takes, as long as no `stall_timeout` passes without a message)."""
    snapshot = await snapshots.latest() if snapshots is not None else None
    if snapshot is not None:
        state = ShardState(factory.restore(snapshot.data), snapshot.seq, snapshot.resume_stream_seq - 1)
    else:
        state = ShardState(factory.create())
    end = await shard_log.last_seq()
    if end > state.stream_seq:
        read: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def apply(entry: LogEntry) -> None:
            if read.done():
                return
            try:
                state.apply(entry)
            except JournalError as exc:  # a record missing: the stream was purged past this point
                stream = shard_log.names.stream
                read.set_exception(
                    LogGapError(f"stream {stream}: records after {state.applied_seq} are gone: {exc}")
                )
                return
            except Exception as exc:  # the engine failed: no use waiting for the rest
                read.set_exception(exc)
                return
            if state.stream_seq >= end:
                read.set_result(None)

        subscription = await shard_log.subscribe(state.stream_seq + 1, apply)
        try:
            progress = state.stream_seq
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(read), stall_timeout)
                    break
                except TimeoutError:
                    if state.stream_seq == progress:
                        raise LogUnavailableError(
                            f"stream {shard_log.names.stream}: no message after seq {progress} of {end}"
                            f" in {stall_timeout} s"
                        ) from None
                    progress = state.stream_seq
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if not read.done():
                read.cancel()
    log.info(
        "shard_state_restored",
        shard=shard_log.names.shard,
        snapshot_seq=snapshot.seq if snapshot else 0,
        applied_seq=state.applied_seq,
        stream_seq=state.stream_seq,
    )
    return state


class JetStreamCommandLog(Generic[E]):
    """The runner's `CommandLog` for a shard leader: appends fenced after `state.stream_seq`.

    Built from the state the replica already holds (hot: a standby that caught up and wrote its epoch
    marker), so `recover` costs nothing; `state` keeps following the appends."""

    def __init__(
        self,
        shard_log: ShardLog,
        state: ShardState[E],
        *,
        leader: str,
        snapshots: ShardSnapshots | None = None,
        guard: Callable[[], bool] | None = None,
        keep_messages: int | None = None,
    ) -> None:
        """`guard()` is asked before each append (the lease still held?): False refuses the batch with
        `LeaseExpiredError` at once, before fencing would, so a leader past its deadline stores nothing.
        `keep_messages`: after a snapshot is stored, the stream keeps this many messages before its
        resume point and the older ones are purged (None: never purged)."""
        self.shard_log = shard_log
        self.state = state
        self.leader = leader
        self.snapshots = snapshots
        self.guard = guard
        self.keep_messages = keep_messages
        self.appended_messages = 0

    async def recover(self, factory: EngineFactory[E]) -> LogRecovery[E]:
        return LogRecovery(self.state.engine, self.state.applied_seq)

    async def append(self, batches: Sequence[EncodedBatch]) -> None:
        if not batches:
            return
        data = batches[0].data if len(batches) == 1 else b"".join(batch.data for batch in batches)
        headers = {LEADER_HEADER: self.leader}
        for piece in split_frames(data, self.shard_log.max_payload - 4096):
            if self.guard is not None and not self.guard():
                raise LeaseExpiredError(f"{self.leader}: the lease expired; batch not appended")
            self.state.stream_seq = await self.shard_log.append(piece, self.state.stream_seq, headers)
            self.appended_messages += 1
        self.state.applied_seq = batches[-1].last_seq

    def checkpoint(self) -> int:
        # nothing after the snapshot's record is stored or being stored yet: reading from the next
        # message on (skipping records already in the snapshot) misses nothing
        return self.state.stream_seq + 1

    async def write_snapshot(self, seq: int, data: bytes, checkpoint: int) -> None:
        if self.snapshots is None:
            return
        if await self.snapshots.put(ShardSnapshot(seq, checkpoint, data)) and self.keep_messages is not None:
            await self.trim(checkpoint - self.keep_messages)

    async def trim(self, keep_from: int) -> None:
        """Purges the messages before `keep_from`, once a snapshot resuming at or before it is stored;
        only while this writer still leads. A failure is logged: the next snapshot trims again."""
        if keep_from <= 1 or (self.guard is not None and not self.guard()):
            return
        try:
            first, _ = await self.shard_log.bounds()
            if keep_from <= first:
                return
            await self.shard_log.purge_before(keep_from)
        except Exception as exc:  # NATS away: the stream is only longer than it needs to be
            log.warning("shard_stream_trim_failed", stream=self.shard_log.names.stream, error=repr(exc))
            return
        log.info("shard_stream_trimmed", stream=self.shard_log.names.stream, first_seq=keep_from, was=first)

    async def close(self) -> None:
        return None
