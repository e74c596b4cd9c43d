"""A gateway process's engine: a read replica of the engine process, and its commands sent there.

The engine is deterministic, so a replica that applies the same journaled commands in the same order
holds the same state: at start it recovers from the snapshot and journal files (read-only), then it
follows the durable records the engine process publishes (`RecordPublisher`, a ZeroMQ PUB socket). A
record missed (the replica fell behind the publisher's buffer, or joined late) is read from the
journal, where it is durable before it is published. Views (accounts, orders, books) are then read
locally, without a round trip.

`submit` sends the command to the engine process (`EngineClient`) and returns its durable result only
once the replica has applied that record. Read-after-write across processes costs no round trip: the
engine process writes its durable seq and its revocation count to a shared status page
(`EngineStatus`) before it answers, so `catch_up` (a GET's barrier) reads the seq there and waits
until the replica has applied it, and `check_revocations` (before any request authenticates) forgets
the cached keys when the count moved. Order entry and cancels need neither: the engine decides them on
its own state; a local check that refuses (an account or order this replica does not know yet) is
retried after `catch_up` (`TradehallApp`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence

import msgspec
import structlog
import zmq

from tradehall.domain.commands import AnyCommand
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory, recover
from tradehall.journal.segments import read_records
from tradehall.service.clock import Clock
from tradehall.service.runner import CommandResult, EngineRunner, RunnerConfig, RunnerError
from tradehall.service.status_page import EngineStatus
from tradehall.service.transport import EngineClient, LoopReader

log = structlog.get_logger(__name__)

JOURNAL_FALLBACK_SECONDS = 0.5
"""A record not published within this long after it was answered is read from the journal."""

RECORDS_TOPIC = b"r"
REVOKED_TOPIC = b"k"
RevocationListener = Callable[[str, str | None], None]

_revoked_decoder = msgspec.msgpack.Decoder(tuple[str, str | None])
_records_encoder = msgspec.msgpack.Encoder()
_records_decoder = msgspec.msgpack.Decoder(list[JournalRecord])


def decode_records(payload: bytes) -> list[JournalRecord]:
    """A publication of `RecordPublisher.on_records` (topic `RECORDS_TOPIC`)."""
    return _records_decoder.decode(payload)


def records_address(data_dir: object) -> str:
    """Where the engine process publishes its durable records (a Unix socket in the data dir)."""
    return f"ipc://{data_dir}/records.sock"


class RecordPublisher:
    """The engine process's side: every durable batch of records, published to the gateways, and
    its last seq written to the status page before any answer for it leaves."""

    def __init__(self, address: str, status: EngineStatus | None = None) -> None:
        self._status = status
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 100_000)
        self._socket.bind(address)

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        """A runner listener: never blocks; a gateway too far behind reads the journal instead. The
        runner calls it before it resolves the batch's futures, so the status page is written first."""
        if self._status is not None and records:
            self._status.durable_seq = records[-1].seq
        with contextlib.suppress(zmq.Again):
            self._socket.send_multipart([RECORDS_TOPIC, _records_encoder.encode(list(records))], zmq.NOBLOCK)

    def on_revoked(self, user_id: str, key_id: str | None) -> None:
        """A credential revoked in one gateway, for the others (their caches, their WebSockets)."""
        with contextlib.suppress(zmq.Again):
            notice = _records_encoder.encode((user_id, key_id))
            self._socket.send_multipart([REVOKED_TOPIC, notice], zmq.NOBLOCK)

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()


class FollowerRunner(EngineRunner[Engine]):
    """An `EngineRunner` whose engine is a replica and whose commands go to the engine process."""

    def __init__(
        self,
        factory: EngineFactory[Engine],
        config: RunnerConfig,
        *,
        engine_address: str,
        records_from: str,
        status: EngineStatus,
        clock: Clock | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(factory, config, clock=clock)
        self._client = EngineClient(engine_address, timeout=timeout)
        self._status = status
        self._records_from = records_from
        self._context = zmq.Context()
        self._subscriber: zmq.Socket[bytes] = self._context.socket(zmq.SUB)
        self._subscriber.setsockopt(zmq.LINGER, 0)
        self._subscriber.setsockopt(zmq.RCVHWM, 100_000)
        self._inbox: deque[list[bytes]] = deque()
        self._arrived = asyncio.Event()
        self._reader = LoopReader(self._subscriber, self._on_frames)
        self._follow_task: asyncio.Task[None] | None = None
        self._applied = asyncio.Event()
        self._timeout = timeout
        self._revocations = status.revocations
        self.revocation_listeners: list[RevocationListener] = []
        """Told of each credential revoked in any gateway (the authenticator forgets it)."""
        self.on_missed_revocations: Callable[[], None] | None = None
        """Called when the engine process counted a revocation this gateway has not checked for yet
        (its notice may not have arrived): the authenticator then forgets every cached key."""

    async def start(self) -> None:
        if self._follow_task is not None:
            raise RunnerError("the runner has already been started")
        # subscribe before reading the files: whatever is published meanwhile is queued, not lost
        self._subscriber.setsockopt(zmq.SUBSCRIBE, b"")
        self._subscriber.connect(self._records_from)
        config = self.config
        recovery = await asyncio.to_thread(
            recover, config.journal_dir, config.snapshot_dir, self.factory, open_for_append=False
        )
        self._engine = recovery.engine
        self._next_seq = recovery.last_seq + 1
        self.durable_seq = recovery.last_seq
        self.snapshot_seq = recovery.snapshot_seq
        await self._client.start()
        self._accepting = True
        self._follow_task = asyncio.create_task(self._follow(), name="engine-follower")
        log.info("follower_started", last_seq=recovery.last_seq)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._accepting = False
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
        await self._client.stop()
        self._reader.stop()
        self._subscriber.close(0)
        self._context.term()
        self._stopped = True

    async def submit(self, command: AnyCommand) -> CommandResult:
        if not self._accepting:
            raise self._not_accepting()
        result = await self._client.submit(command)
        await self.wait_applied(result.seq)
        return result

    async def submit_many(self, commands: Sequence[AnyCommand]) -> list[CommandResult]:
        return list(await asyncio.gather(*(self.submit(command) for command in commands)))

    async def catch_up(self) -> None:
        """A read barrier: the replica shows everything the engine process has made durable by now,
        so a request that follows an answer from any gateway sees what that answer said. No round
        trip: the engine's durable seq is read from the status page."""
        self.check_revocations()
        await self.wait_applied(self._status.durable_seq)

    def check_revocations(self) -> None:
        """Before a request authenticates: when any gateway revoked a credential since the last check,
        every cached key is forgotten (read again from the store on its next use)."""
        count = self._status.revocations
        if count != self._revocations:
            self._revocations = count
            if self.on_missed_revocations is not None:
                self.on_missed_revocations()

    async def revoke(self, user_id: str, key_id: str | None) -> None:
        """Tells every gateway (through the engine process) to forget a revoked credential."""
        await self._client.revoke(user_id, key_id)

    async def wait_applied(self, seq: int) -> None:
        """Until the replica shows record `seq` (it is durable: the engine process answered for it)."""
        while self.durable_seq < seq:
            self._applied.clear()
            try:
                await asyncio.wait_for(self._applied.wait(), JOURNAL_FALLBACK_SECONDS)
            except TimeoutError:
                await self._read_journal(seq)  # the publication is late or lost: the file has it

    async def _read_journal(self, last: int) -> None:
        first = self.durable_seq + 1
        if last < first:
            return
        records = await asyncio.to_thread(lambda: list(read_records(self.config.journal_dir, first, last)))
        self._apply(records)

    def _on_frames(self, frames: list[bytes]) -> None:
        self._inbox.append(frames)
        self._arrived.set()

    async def _follow(self) -> None:
        inbox = self._inbox
        self._reader.start()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while inbox:
                topic, payload = inbox.popleft()
                if topic == REVOKED_TOPIC:
                    user_id, key_id = _revoked_decoder.decode(payload)
                    for listener in list(self.revocation_listeners):
                        listener(user_id, key_id)
                    continue
                records = _records_decoder.decode(payload)
                if records and records[0].seq > self.durable_seq + 1:
                    await self._read_journal(records[0].seq - 1)
                self._apply(records)

    def _apply(self, records: Sequence[JournalRecord]) -> None:
        engine = self.engine
        fresh: list[JournalRecord] = []
        for record in records:
            if record.seq != self.durable_seq + 1:
                continue  # already applied (read from the journal first)
            engine.apply(record.command)
            self.durable_seq = record.seq
            self._next_seq = record.seq + 1
            fresh.append(record)
        if not fresh:
            return
        self._applied.set()
        for listener in list(self._listeners):
            try:
                listener(fresh)
            except Exception as exc:  # a broken subscriber must not stop the others
                log.error("record_listener_failed", error=repr(exc))
