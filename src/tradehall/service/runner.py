"""The engine runner: an asyncio actor that owns one engine shard and makes its commands durable.

Commands queue up; the applier stamps each with the next seq and the clock's time, applies it and
encodes the batch; the syncer writes and fsyncs in a worker thread (a write() into a page under
writeback can block for as long as the fsync, so neither runs on the loop) and only then resolves the
callers' awaitables and tells subscribers. While one write + fsync runs, the applier keeps applying,
so the next round covers everything gathered meanwhile: group commit without a timer on the hot path.

The engine runs on the loop, the simplest choice: under the GIL a thread would not run it in
parallel with the loop, only add hand-offs; bench/durability_bench.py shows where the time goes
(with the real engine, in `apply`).

The durable log is the local journal by default; a `CommandLog` (`service/command_log.py`) replaces it
for a cluster shard whose commands live in a replicated JetStream stream: same sequencing, same group
commit, same acknowledgement after the log stored the batch and the engine applied it.

Over 400 lines: the applier, the syncer and the snapshot hand-off share the runner's sequencing state.

The journal's I/O runs in threads of its own (`journal-io` for write + fsync, `journal-snapshot` for
snapshot files), never in the loop's default executor: work others queue there (argon2, database
calls, file reads) must never delay an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, ParamSpec, TypeVar

import msgspec
import structlog

from tradehall.domain.commands import AnyCommand
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.events import AnyEvent
from tradehall.journal.errors import JournalError
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import E, EngineFactory, recover
from tradehall.journal.segments import EncodedBatch, FsyncPolicy, Journal
from tradehall.journal.snapshots import SnapshotStore, archive_segments
from tradehall.service.clock import Clock, SystemClock
from tradehall.service.command_log import CommandLog
from tradehall.service.settings import Settings

log = structlog.get_logger(__name__)

Listener = Callable[[Sequence[JournalRecord]], None]

P = ParamSpec("P")
T = TypeVar("T")

JOURNAL_IO_THREAD = "journal-io"
SNAPSHOT_IO_THREAD = "journal-snapshot"


@dataclass(frozen=True, slots=True)
class CommandResult:
    seq: int
    ts: int
    events: tuple[AnyEvent, ...]


class RunnerError(Exception):
    """The runner cannot take the command: not started, stopping, or stopped by a fatal failure."""


class SubscriptionOverflowError(Exception):
    """A subscriber fell too far behind; it resumes by reading the journal after `last_seq`."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        super().__init__(f"subscriber fell behind after seq {last_seq}; resume from the journal")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    journal_dir: Path
    snapshot_dir: Path
    fsync: FsyncPolicy = "batch"
    segment_bytes: int = 64 * 1024 * 1024
    max_batch: int = 1024
    max_wait_ms: float = 2.0
    snapshot_every_commands: int = 100_000
    snapshot_every_seconds: float = 300.0
    snapshot_retention: int = 2
    delete_archived_segments: bool = False
    archive_segments: bool = True
    snapshot_on_stop: bool = True
    verify_on_recovery: bool = False
    max_pending: int = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            journal_dir=settings.journal_dir,
            snapshot_dir=settings.snapshot_dir,
            fsync=settings.fsync,
            segment_bytes=settings.journal_segment_bytes,
            max_batch=settings.group_commit_max_batch,
            max_wait_ms=settings.group_commit_max_wait_ms,
            snapshot_every_commands=settings.snapshot_every_commands,
            snapshot_every_seconds=settings.snapshot_every_seconds,
            snapshot_retention=settings.snapshot_retention,
            delete_archived_segments=settings.delete_archived_segments,
        )


class Subscription:
    """Durable records in seq order, as an async iterator; bounded so it can never stall the engine."""

    def __init__(
        self,
        add_listener: Callable[[Listener], Callable[[], None]],
        is_stopped: Callable[[], bool],
        max_queue: int,
    ) -> None:
        self._queue: deque[JournalRecord] = deque()
        self._max_queue = max_queue
        self._ready = asyncio.Event()
        self._overflowed = False
        self._closed = False
        self.last_seq = 0
        self._remove = add_listener(self._on_records)
        self._runner_done = is_stopped

    def _on_records(self, records: Sequence[JournalRecord]) -> None:
        if self._overflowed or self._closed:
            return
        if len(self._queue) + len(records) > self._max_queue:
            self._overflowed = True
            self._remove()
        else:
            self._queue.extend(records)
        self._ready.set()

    def wake(self) -> None:
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._remove()
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> JournalRecord:
        while True:
            if self._queue:
                record = self._queue.popleft()
                self.last_seq = record.seq
                return record
            if self._overflowed:
                raise SubscriptionOverflowError(self.last_seq)
            if self._closed or self._runner_done():
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()


def _check_journalable(command: AnyCommand) -> None:
    """Refuse (`invalid_request`) a command the journal could not encode, such as an integer beyond
    64 bits: once applied it could never be made durable, and the runner would have to stop."""
    try:
        msgspec.msgpack.encode(command)
    except (OverflowError, TypeError) as exc:
        raise TradehallError(Code.INVALID_REQUEST, f"the command cannot be journaled: {exc}") from None


class EngineRunner(Generic[E]):
    def __init__(
        self,
        factory: EngineFactory[E],
        config: RunnerConfig,
        *,
        clock: Clock | None = None,
        retain_from: Callable[[], int] | None = None,
        command_log: CommandLog[E] | None = None,
    ) -> None:
        """`retain_from` returns the lowest seq a consumer (the projector) still has to read from the
        live journal; segments holding it are never archived. `command_log` replaces the local journal
        (then `config`'s journal and snapshot settings are unused)."""
        self.factory = factory
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._retain_from = retain_from
        self.command_log = command_log
        self._engine: E | None = None
        self._journal: Journal | None = None
        self._pending: deque[tuple[AnyCommand, asyncio.Future[CommandResult]]] = deque()
        self._unsynced_records: list[JournalRecord] = []
        self._unwritten: list[EncodedBatch] = []
        self._unsynced_futures: list[asyncio.Future[CommandResult]] = []
        self._listeners: list[Listener] = []
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._next_seq = 1
        self.durable_seq = 0
        self.snapshot_seq = 0
        self._snapshot_wanted: tuple[int, bytes, int] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._last_snapshot_time = 0.0
        self._accepting = False
        self._stopping = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._aborted = False
        self._apply_task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._sync_wakeup = asyncio.Event()
        self._durable_changed = asyncio.Event()
        self._space = asyncio.Event()
        self.batches_synced = 0
        # one thread each: the journal's writes are sequential anyway, and a snapshot (large, rare)
        # must not hold up the next fsync
        self._io: ThreadPoolExecutor | None = None
        self._snapshot_io: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def engine(self) -> E:
        if self._engine is None:
            raise RunnerError("the runner has not started")
        return self._engine

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            if self.command_log is not None:
                raise RunnerError("the runner's log is not the local journal")
            raise RunnerError("the runner has not started")
        return self._journal

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def is_stopped(self) -> bool:
        return self._stopped

    @property
    def accepting(self) -> bool:
        """False before start, while stopping, and after a fatal engine or journal failure."""
        return self._accepting

    @property
    def failure(self) -> BaseException | None:
        """The fatal error that stopped the runner, if any (health checks report it)."""
        return self._failure

    async def start(self) -> None:
        """Recovers the engine (newest snapshot + journal replay) off the loop, then accepts commands."""
        if self._apply_task is not None:
            raise RunnerError("the runner has already been started")
        config = self.config
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=JOURNAL_IO_THREAD)
        self._snapshot_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=SNAPSHOT_IO_THREAD)
        if self.command_log is not None:
            try:
                recovered = await self.command_log.recover(self.factory)
            except BaseException:
                self._shutdown_executors()
                raise
            self._begin(recovered.engine, recovered.last_seq, recovered.snapshot_seq)
            return
        try:
            recovery = await self._run_io(
                recover,
                config.journal_dir,
                config.snapshot_dir,
                self.factory,
                fsync=config.fsync,
                segment_bytes=config.segment_bytes,
                verify_events=config.verify_on_recovery,
            )
        except BaseException:
            self._shutdown_executors()
            raise
        assert recovery.journal is not None
        self._journal = recovery.journal
        self._begin(recovery.engine, recovery.last_seq, recovery.snapshot_seq)

    def _begin(self, engine: E, last_seq: int, snapshot_seq: int) -> None:
        self._engine = engine
        self._next_seq = last_seq + 1
        self.durable_seq = last_seq
        self.snapshot_seq = snapshot_seq
        self._last_snapshot_time = time.monotonic()
        self._accepting = True
        self._apply_task = asyncio.create_task(self._apply_loop(), name="engine-runner-apply")
        self._sync_task = asyncio.create_task(self._sync_loop(), name="engine-runner-sync")
        log.info("runner_started", last_seq=last_seq, log="journal" if self._journal else "command_log")

    def abort(self, reason: str) -> None:
        """Stops taking and acknowledging commands at once: queued ones fail with `reason`; a batch the
        log is storing right now still completes (it is durable or refused by the log, never half)."""
        if self._stopped or self._failure is not None:
            return
        self._aborted = True
        self._fail(RunnerError(reason))

    async def stop(self) -> None:
        """Drains queued commands, makes them durable, writes a final snapshot and closes the journal."""
        if self._stopped or self._apply_task is None:
            return
        self._accepting = False
        self._stopping = True
        self._wakeup.set()
        self._space.set()
        with contextlib.suppress(Exception):
            await self._apply_task
        self._sync_wakeup.set()
        with contextlib.suppress(Exception):
            assert self._sync_task is not None
            await self._sync_task
        if self._snapshot_task is not None:
            with contextlib.suppress(Exception):
                await self._snapshot_task
        if (
            self._failure is None
            and self.config.snapshot_on_stop
            and self.durable_seq > self.snapshot_seq
            and self._engine is not None
        ):
            if self.command_log is not None:
                checkpoint = self.command_log.checkpoint()
                with contextlib.suppress(Exception):  # the log still holds everything
                    await self._store_snapshot(self.durable_seq, self._engine.snapshot(), checkpoint)
            else:
                await self._run_snapshot_io(self._persist_snapshot, self.durable_seq, self._engine.snapshot())
        if self._journal is not None:
            await self._run_io(self._journal.close)
        if self.command_log is not None:
            with contextlib.suppress(Exception):
                await self.command_log.close()
        self._stopped = True
        self._shutdown_executors()
        for subscription in list(self._subscriptions):
            subscription.wake()
        log.info("runner_stopped", last_seq=self.last_seq, durable_seq=self.durable_seq)

    async def __aenter__(self) -> EngineRunner[E]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- intake

    async def submit(self, command: AnyCommand) -> CommandResult:
        """Sequences and applies `command`; returns once its journal record is durable.

        A command the journal could not encode (an integer beyond 64 bits, a foreign type) is refused
        here with `invalid_request`: once applied it could never be made durable."""
        if not self._accepting:
            raise self._not_accepting()
        _check_journalable(command)
        while len(self._pending) >= self.config.max_pending:
            self._space.clear()
            await self._space.wait()
            if not self._accepting:
                raise self._not_accepting()
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        self._wakeup.set()
        return await future

    async def submit_many(self, commands: Sequence[AnyCommand]) -> list[CommandResult]:
        """Like `submit` for each, in order, with one wake-up: for gateways and replays that batch.

        Not held back by `max_pending`: the caller already holds the whole batch in memory."""
        if not self._accepting:
            raise self._not_accepting()
        for command in commands:
            _check_journalable(command)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[CommandResult]] = []
        for command in commands:
            future: asyncio.Future[CommandResult] = loop.create_future()
            self._pending.append((command, future))
            futures.append(future)
        self._wakeup.set()
        if futures:
            await asyncio.wait(futures[-1:])  # results arrive in seq order, so usually all are done
            unresolved = [future for future in futures if not future.done()]
            if unresolved:  # the runner failed after the last one was taken: earlier ones still sync
                await asyncio.wait(unresolved)
        failures = [error for error in (f.exception() for f in futures) if error is not None]
        if failures:  # all retrieved above, so asyncio logs no "exception was never retrieved"
            raise failures[0]
        return [future.result() for future in futures]

    def _not_accepting(self) -> RunnerError:
        if self._failure is not None:
            return RunnerError(f"the runner stopped after a fatal error: {self._failure!r}")
        return RunnerError("the runner is not accepting commands (not started or stopping)")

    # ----------------------------------------------------------------- subscribers

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener(records)` on the loop after every durable batch; returns its remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def subscribe(self, max_queue: int = 100_000) -> Subscription:
        subscription = Subscription(self.add_listener, self.is_stopped, max_queue)
        self._subscriptions.add(subscription)
        return subscription

    async def records(self, max_queue: int = 100_000) -> AsyncIterator[JournalRecord]:
        subscription = self.subscribe(max_queue)
        try:
            async for record in subscription:
                yield record
        finally:
            subscription.close()

    # ----------------------------------------------------------------- the two loops

    async def _apply_loop(self) -> None:
        config = self.config
        pending = self._pending
        always = config.fsync == "always"
        max_batch = 1 if always else config.max_batch
        replace = msgspec.structs.replace
        now_ns = self.clock.now_ns
        engine = self.engine
        since_snapshot = 0
        while True:
            if not pending:
                if self._stopping:
                    return
                self._wakeup.clear()
                timeout = self._snapshot_timeout(since_snapshot)
                if timeout is None:
                    await self._wakeup.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
                    since_snapshot = self._maybe_snapshot(since_snapshot)
                continue
            records: list[JournalRecord] = []
            futures: list[asyncio.Future[CommandResult]] = []
            seq = self._next_seq
            failure: BaseException | None = None
            for _ in range(min(len(pending), max_batch)):
                command, future = pending.popleft()
                ts = now_ns()
                stamped = replace(command, ts=ts)
                try:
                    events = engine.apply(stamped)
                except Exception as exc:  # an engine bug: its state is unknown, so stop taking commands
                    failure = exc
                    future.set_exception(exc)
                    break
                records.append(JournalRecord(seq=seq, ts=ts, command=stamped, events=tuple(events)))
                futures.append(future)
                seq += 1
            if records:
                try:
                    batch = EncodedBatch.of(records)
                except Exception as exc:  # an unencodable record: it cannot be made durable
                    for future in futures:
                        future.set_exception(exc)
                    self._fail(exc)
                    return
                self._unwritten.append(batch)
                self._next_seq = seq
                self._unsynced_records.extend(records)
                self._unsynced_futures.extend(futures)
                self._sync_wakeup.set()
                since_snapshot += len(records)
            if failure is not None:
                log.error("engine_apply_failed", seq=seq, error=repr(failure))
                self._fail(failure)
                return
            if len(pending) < config.max_pending:
                self._space.set()
            since_snapshot = self._maybe_snapshot(since_snapshot)
            if always:
                while self.durable_seq < seq - 1 and self._failure is None:
                    self._durable_changed.clear()
                    await self._durable_changed.wait()
            else:
                await asyncio.sleep(0)

    def _snapshot_timeout(self, since_snapshot: int) -> float | None:
        if since_snapshot == 0:
            return None
        due = self._last_snapshot_time + self.config.snapshot_every_seconds
        return max(0.0, due - time.monotonic())

    def _maybe_snapshot(self, since_snapshot: int) -> int:
        """Captures the engine's snapshot at this command boundary when N commands or T seconds passed;
        it is written once the journal is durable up to its seq."""
        if since_snapshot == 0:
            return 0
        config = self.config
        if (
            since_snapshot < config.snapshot_every_commands
            and time.monotonic() - self._last_snapshot_time < config.snapshot_every_seconds
        ):
            return since_snapshot
        checkpoint = self.command_log.checkpoint() if self.command_log is not None else 0
        self._snapshot_wanted = (self._next_seq - 1, self.engine.snapshot(), checkpoint)
        self._last_snapshot_time = time.monotonic()
        self._sync_wakeup.set()
        return 0

    def _shutdown_executors(self) -> None:
        for executor in (self._io, self._snapshot_io):
            if executor is not None:
                executor.shutdown(wait=False)

    async def _run_io(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn` in the journal's own I/O thread, where nothing else can queue."""
        assert self._io is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(fn, *args, **kwargs))

    async def _run_snapshot_io(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        assert self._snapshot_io is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._snapshot_io, functools.partial(fn, *args, **kwargs))

    def _write_and_sync(self, batches: list[EncodedBatch]) -> None:
        """The I/O thread's part: write the batches, then one fsync for all of them (per the policy)."""
        journal = self.journal
        for batch in batches:
            journal.write(batch)
        journal.sync()

    async def _sync_loop(self) -> None:
        journal = self._journal
        command_log = self.command_log
        loop = asyncio.get_running_loop()
        max_wait = self.config.max_wait_ms / 1000.0
        while True:
            if not self._unsynced_records:
                self._start_snapshot_write()
                if self._stopping and (self._apply_task is None or self._apply_task.done()):
                    return
                self._sync_wakeup.clear()
                await self._sync_wakeup.wait()
                continue
            if max_wait > 0 and self._pending and not self._stopping:
                # more commands are queued right behind this batch: let the applier add them,
                # within the bounded wait, so one fsync covers them too
                deadline = loop.time() + max_wait
                while (
                    self._pending
                    and len(self._unsynced_records) < self.config.max_batch
                    and loop.time() < deadline
                    and self._failure is None
                ):
                    await asyncio.sleep(0)
            records, self._unsynced_records = self._unsynced_records, []
            futures, self._unsynced_futures = self._unsynced_futures, []
            batches, self._unwritten = self._unwritten, []
            if self._aborted:  # applied here, never stored: nobody may hear of them
                error = self._not_accepting()
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                return
            try:
                if command_log is not None:
                    await command_log.append(batches)
                elif journal is None:
                    raise JournalError("the runner has no journal")
                elif journal.fsync_policy == "none":
                    self._write_and_sync(batches)
                else:
                    await self._run_io(self._write_and_sync, batches)
            except Exception as exc:  # an I/O failure, or a log that refused the batch (fenced)
                log.error("journal_write_failed", error=repr(exc))
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                self._fail(exc)
                return
            self.batches_synced += 1
            self.durable_seq = records[-1].seq
            self._durable_changed.set()
            for record, future in zip(records, futures, strict=True):
                if not future.done():
                    future.set_result(CommandResult(record.seq, record.ts, record.events))
            for listener in list(self._listeners):
                try:
                    listener(records)
                except Exception as exc:  # a broken subscriber must not stop the engine
                    log.error("runner_listener_failed", error=repr(exc))
            self._start_snapshot_write()

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._accepting = False
        self._stopping = True
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(RunnerError(f"the runner stopped after a fatal error: {exc!r}"))
        self._wakeup.set()
        self._sync_wakeup.set()
        self._space.set()
        self._durable_changed.set()

    # ----------------------------------------------------------------- snapshots

    def _start_snapshot_write(self) -> None:
        wanted = self._snapshot_wanted
        if wanted is None or wanted[0] > self.durable_seq:
            return
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        self._snapshot_wanted = None
        seq, data, checkpoint = wanted
        self._snapshot_task = asyncio.create_task(self._write_snapshot(seq, data, checkpoint))

    async def _write_snapshot(self, seq: int, data: bytes, checkpoint: int) -> None:
        try:
            await self._store_snapshot(seq, data, checkpoint)
        except Exception as exc:  # the log still holds everything; the next snapshot may succeed
            log.error("snapshot_write_failed", seq=seq, error=repr(exc))

    async def _store_snapshot(self, seq: int, data: bytes, checkpoint: int) -> None:
        if self.command_log is None:
            await self._run_snapshot_io(self._persist_snapshot, seq, data)
            return
        await self.command_log.write_snapshot(seq, data, checkpoint)
        self.snapshot_seq = max(self.snapshot_seq, seq)

    def _persist_snapshot(self, seq: int, data: bytes) -> None:
        config = self.config
        store = SnapshotStore(config.snapshot_dir, retention=config.snapshot_retention)
        store.write(seq, data)
        self.snapshot_seq = max(self.snapshot_seq, seq)
        store.prune()
        if not config.archive_segments:
            return
        # fall-back needs the journal after the OLDEST retained snapshot, not just the newest
        keep_after = store.oldest_retained_seq()
        if keep_after is None:
            return
        if self._retain_from is not None:
            keep_after = min(keep_after, self._retain_from() - 1)
        archive_segments(config.journal_dir, keep_after, delete=config.delete_archived_segments)
