"""One replica of a shard: a standby that applies the stream hot, or the leader that serves commands.

Every replica starts as a standby: it restores the newest snapshot and the stream after it, then
follows the stream with an ordered consumer, applying each batch to its own engine (deterministic:
the same records give the same state and `state_hash` everywhere). Its control loop watches the
lease; when the lease lapses it takes it (compare-and-set), catches up to the stream's last
message, appends an epoch marker fenced on that sequence (from then on no earlier leader can
append) and becomes the writer: an `EngineRunner` whose durable log is the stream
(`JetStreamCommandLog`), serving `ShardRequest`s on the command subject.

A leader renews the lease every TTL/3. When it cannot renew before the lease's deadline, loses it,
or its log refuses an append (fenced), it steps down at once: it stops listening for commands, fails
what it had not stored, and goes back to following the stream (rebuilding its engine from the
snapshot and the stream if it had applied commands the log did not store).

Run one per machine and shard: `python -m tradehall.service.cluster.replica --shard A` (see `main`).
Over 400 lines: the two roles share the state, the lease and the hand-over between them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import structlog

from tradehall.domain.commands import AnyCommand, Configure
from tradehall.domain.errors import TradehallError
from tradehall.engine import Engine
from tradehall.journal.errors import JournalError
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory
from tradehall.marketdata.breaker import Backoff
from tradehall.service.clock import Clock, SystemClock
from tradehall.service.cluster.connection import connect, flush_subscriptions
from tradehall.service.cluster.lease import Monotonic, ShardLease, WallNs, open_lease_bucket
from tradehall.service.cluster.log import (
    EPOCH_HEADER,
    LEADER_HEADER,
    JetStreamCommandLog,
    LogEntry,
    LogFencedError,
    ShardLog,
    ShardState,
    restore_state,
)
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.ops import parse_listen, serve_ops, unwatch_replica, watch_replica
from tradehall.service.cluster.protocol import (
    ReplicaStatus,
    ShardReply,
    command_encoder,
    request_decoder,
    status_encoder,
    status_request_decoder,
)
from tradehall.service.cluster.shards import shard_map_of
from tradehall.service.cluster.snapshots import ShardSnapshots
from tradehall.service.runner import CommandResult, EngineRunner, RunnerConfig, RunnerError
from tradehall.service.settings import Settings
from tradehall.service.supervisor import arm_lifeline

log = structlog.get_logger(__name__)

LEADER = "leader"
STANDBY = "standby"
STARTING = "starting"
STOPPING = "stopping"
STEPPING_DOWN = "stepping_down"

RecordListener = Callable[[Sequence[JournalRecord]], None]
KEEP_MESSAGES = 100_000
"""The stream's default tail before the newest snapshot's resume point: ten times the lag at which a
standby stops being ready (`ops.MAX_READY_LAG`), so any standby that is ready can keep following."""
RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 2.0
"""A failed control step (JetStream electing, NATS away) is tried again after a delay doubling from
`RETRY_BASE_SECONDS` up to this, reset by a step that succeeds: a replica never spins on errors."""


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    shard: str
    nats_url: str = "nats://127.0.0.1:4222"
    prefix: str = "tradehall"
    replica_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    replicas: int = 1
    """Copies of the stream, the lease bucket and the snapshot store (3 in production)."""
    lease_ttl: float = 3.0
    """The lease's time to live; a standby takes over within about this long after a leader dies."""
    append_timeout: float = 5.0
    """How long an append waits for JetStream's acknowledgement before the leader gives up."""
    max_batch: int = 1024
    snapshot_every_commands: int = 100_000
    snapshot_every_seconds: float = 300.0
    keep_messages: int | None = KEEP_MESSAGES
    """After the leader stores a snapshot, the stream keeps this many messages before the snapshot's
    resume point and the rest is purged (None: never purged). A standby (or the gateway's read replica)
    further behind than that restores the snapshot instead; a shard projection that far behind stops
    with a sequence gap, so keep more than any projection may lag."""
    can_lead: bool = True
    """False: a read-only follower that never takes the lease."""
    id_base: int | None = None
    """The shard's order and trade id range (`ShardMap.id_base`): a new leader whose engine is not in
    it yet submits `Configure(id_base=...)` before serving. None: leave the engine's as it is."""
    ops_listen: str = ""
    """`HOST:PORT` serving this replica's `/health`, `/ready` and `/metrics` (`cluster.ops`); "": none."""

    @property
    def names(self) -> ShardNames:
        return ShardNames(self.shard, self.prefix)


class FloorClock:
    """The sequencer's clock of a new leader: never behind the time its engine already reached."""

    def __init__(self, clock: Clock, floor_ns: int) -> None:
        self._clock = clock
        self._floor = floor_ns

    def now_ns(self) -> int:
        return max(self._floor, self._clock.now_ns())


class ShardReplica:
    """Start it, and it follows, leads when it can, and hands over when it must."""

    def __init__(
        self,
        config: ReplicaConfig,
        factory: EngineFactory[Engine] | None = None,
        *,
        clock: Clock | None = None,
        monotonic: Monotonic = time.monotonic,
        wall_ns: WallNs = time.time_ns,
    ) -> None:
        self.config = config
        self.names = config.names
        self.factory = factory or EngineFactory(create=Engine, restore=Engine.restore)
        self.clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        self.role = STARTING
        self.takeovers = 0
        self.state: ShardState[Engine] | None = None
        self.runner: EngineRunner[Engine] | None = None
        self.command_log: JetStreamCommandLog[Engine] | None = None
        self.listeners: list[RecordListener] = []
        """Told of every record this replica applies, as standby or as leader (metrics, read models)."""
        self._nc: Any = None
        self._js: Any = None
        self._log: ShardLog | None = None
        self._snapshots: ShardSnapshots | None = None
        self._lease: ShardLease | None = None
        self._follow_sub: Any = None
        self._following = 0
        """The generation of the follow subscription that may apply entries (0: none may): an entry
        from an older one (its unsubscribe failed, a delivery already queued) is dropped, so a leader's
        engine never applies its own appends a second time."""
        self._generation = 0
        self._command_sub: Any = None
        self._status_sub: Any = None
        self._control: asyncio.Task[None] | None = None
        self._control_stopped = False
        """Set before the control loop is cancelled; the loop ends at its next turn even if the
        cancellation is lost (Python 3.11's `asyncio.wait_for`, which nats-py's requests use, returns the
        result instead of raising when the reply and the cancellation arrive in the same loop turn)."""
        self._serving: set[asyncio.Task[None]] = set()
        self._broken: BaseException | None = None
        self._stream_last_seq = 0
        self._no_lead_before = 0.0
        self._role_changed = asyncio.Event()

    # ----------------------------------------------------------------- accessors

    @property
    def lease(self) -> ShardLease:
        if self._lease is None:
            raise RunnerError("the replica has not started")
        return self._lease

    @property
    def shard_log(self) -> ShardLog:
        if self._log is None:
            raise RunnerError("the replica has not started")
        return self._log

    @property
    def engine(self) -> Engine:
        if self.state is None:
            raise RunnerError("the replica has not started")
        return self.state.engine

    @property
    def nc(self) -> Any:
        return self._nc

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        config = self.config
        self._nc = await connect(config.nats_url, f"tradehall-replica-{self.names.shard}-{config.replica_id}")
        self._js = self._nc.jetstream(timeout=config.append_timeout)
        self._log = ShardLog(self._js, self.names, replicas=config.replicas, timeout=config.append_timeout)
        await self._log.ensure(max_payload=int(self._nc.max_payload))
        self._snapshots = ShardSnapshots(self._js, self.names, replicas=config.replicas)
        kv, ttl = await open_lease_bucket(
            self._js, self.names.lease_bucket, config.lease_ttl, replicas=config.replicas
        )
        self._lease = ShardLease(
            kv, self.names.lease_key, config.replica_id, ttl, monotonic=self._monotonic, wall_ns=self._wall_ns
        )
        self._status_sub = await self._nc.subscribe(self.names.status_subject, cb=self._on_status)
        await self._become_standby(await self._restore())
        await flush_subscriptions(self._nc)
        self._start_control()
        log.info("replica_started", shard=self.names.shard, replica=config.replica_id, ttl=ttl)

    async def stop(self) -> None:
        """A leader drains what it took, stores a snapshot and releases the lease (a standby takes
        over at once); a standby just stops following."""
        if self.role == STOPPING:
            return
        self.role = STOPPING
        await self._halt_control()
        await self._unsubscribe_commands()
        for task in list(self._serving):
            with contextlib.suppress(Exception):
                await task
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        if self._lease is not None:
            await self._lease.release()
        await self._stop_following()
        if self._status_sub is not None:
            with contextlib.suppress(Exception):
                await self._status_sub.unsubscribe()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._set_role(STOPPING)
        log.info("replica_stopped", shard=self.names.shard, replica=self.config.replica_id)

    async def wait_for_role(self, role: str, timeout: float) -> None:
        """Until the replica has `role` (tests, tools); TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while self.role != role:
                self._role_changed.clear()
                await self._role_changed.wait()

    def _set_role(self, role: str) -> None:
        self.role = role
        self._role_changed.set()

    # ----------------------------------------------------------------- standby

    async def _restore(self) -> ShardState[Engine]:
        return await restore_state(self.shard_log, self._snapshots, self.factory)

    async def _become_standby(self, state: ShardState[Engine]) -> None:
        self.state = state
        state.listeners = self.listeners
        self._broken = None
        await self._start_following()
        self._set_role(STANDBY)

    def _on_entry(self, entry: LogEntry, generation: int) -> None:
        if generation != self._following or self._broken is not None or self.state is None:
            return
        try:
            self.state.apply(entry)
        except Exception as exc:  # a gap or an engine failure: rebuild from the snapshot and stream
            log.error("replica_apply_failed", shard=self.names.shard, error=repr(exc))
            self._broken = exc
        self._stream_last_seq = max(self._stream_last_seq, entry.stream_seq)

    async def _start_following(self) -> None:
        assert self.state is not None
        await self._stop_following()
        self._generation += 1
        generation = self._following = self._generation  # before subscribing: the first delivery counts

        def on_entry(entry: LogEntry) -> None:
            self._on_entry(entry, generation)

        self._follow_sub = await self.shard_log.subscribe(self.state.stream_seq + 1, on_entry)

    async def _stop_following(self) -> None:
        self._following = 0
        subscription, self._follow_sub = self._follow_sub, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _catch_up(self, timeout: float) -> bool:
        """Applies the stream up to its last message now; False if that took longer than `timeout`."""
        assert self.state is not None
        end = await self.shard_log.last_seq()
        self._stream_last_seq = max(self._stream_last_seq, end)
        return await self.state.wait_stream_seq(end, timeout)

    # ----------------------------------------------------------------- the control loop

    def _start_control(self) -> None:
        self._control_stopped = False
        self._control = asyncio.create_task(self._control_loop(), name=f"shard-{self.names.shard}-control")

    async def _halt_control(self) -> None:
        """Ends the control loop and waits until it has: cancelled, and told to stop at its next turn
        (a lost cancellation finishes the step it was in, then the loop ends)."""
        self._control_stopped = True
        control = self._control
        if control is None:
            return
        control.cancel()
        await asyncio.wait([control])  # its CancelledError is not ours: a cancelled stop() still raises

    async def _control_loop(self) -> None:
        ttl = self.lease.ttl
        tick = min(0.05, ttl / 20)
        next_step = 0.0
        backoff = self._retry_backoff()
        while not self._control_stopped:
            delay, stepped = tick, True
            try:
                now = self._monotonic()
                if self.role == STANDBY:
                    if self._broken is not None:
                        await self._resync()
                    elif now >= next_step:
                        next_step = now + ttl / 5
                        await self._standby_step()
                    else:
                        stepped = False
                elif self.role == STEPPING_DOWN:  # a step-down failed half-way (NATS away): again
                    await self._resync()
                elif self.role == LEADER and (
                    now >= next_step or not self.lease.held or self._runner_failed()
                ):
                    next_step = now + ttl / 3
                    await self._leader_step()
                else:
                    stepped = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS unreachable, a server error: keep going, step by step
                delay = backoff.next_delay(at_least=tick)
                log.warning(
                    "replica_step_failed",
                    shard=self.names.shard,
                    role=self.role,
                    error=repr(exc),
                    retry_in=round(delay, 3),
                )
            else:
                if stepped:  # a step that succeeded: the next failure waits the shortest delay again
                    backoff.reset()
            await asyncio.sleep(delay)

    def _retry_backoff(self) -> Backoff:
        """How long the control loop waits after a failed step (tests shorten it)."""
        return Backoff(base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)

    def _runner_failed(self) -> bool:
        return self.runner is not None and self.runner.failure is not None

    async def _standby_step(self) -> None:
        with contextlib.suppress(Exception):
            self._stream_last_seq = max(self._stream_last_seq, await self.shard_log.last_seq())
        diverged = self.state is not None and self.state.diverged_seq > 0
        if not self.config.can_lead or diverged or self._monotonic() < self._no_lead_before:
            await self.lease.read()  # for the status: who leads, since when
            return
        if self._control_stopped:  # stopping: never take the lease on the way out
            return
        if await self.lease.try_acquire():
            try:
                await self._promote()
            except Exception as exc:  # NATS failed us half-way: back to a clean standby, lease given up
                await self._step_down(f"the takeover failed: {exc!r}")
                raise

    async def _leader_step(self) -> None:
        lease = self.lease
        if self._runner_failed():
            assert self.runner is not None
            await self._step_down(f"the log refused an append: {self.runner.failure!r}")
            return
        remaining = lease.valid_until - self._monotonic()
        if remaining <= 0:
            await self._step_down("the lease expired before it could be renewed")
            return
        try:
            async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancellation (3.11)
                renewed = await lease.renew()
        except TimeoutError:
            renewed = lease.held
        if not renewed:
            await self._step_down("the lease was lost" if lease.revision is None else "the lease expired")

    async def _resync(self) -> None:
        """A fresh engine from the snapshot and the stream, following again (after a failure)."""
        await self._stop_following()
        await self._become_standby(await self._restore())

    # ----------------------------------------------------------------- taking over

    async def _promote(self) -> None:
        """We hold the lease: catch up, fence the stream with an epoch marker, become the writer."""
        lease = self.lease
        state = self.state
        assert state is not None and self._nc is not None
        started = self._monotonic()
        while True:
            if not lease.held or self._broken is not None:
                await self._give_up_lease("the lease lapsed while catching up")
                return
            if not await self._catch_up(timeout=max(0.0, lease.ttl / 3)):
                await lease.renew()  # a long backlog: keep the lease while applying it
                continue
            await self._stop_following()
            headers = {LEADER_HEADER: self.config.replica_id, EPOCH_HEADER: str(lease.revision)}
            try:
                state.stream_seq = await self.shard_log.append(b"", state.stream_seq, headers)
                break
            except LogFencedError:  # the previous leader appended after we caught up: read it, again
                await self._start_following()
            except JournalError as exc:
                await self._start_following()
                await self._give_up_lease(f"the epoch marker was not stored: {exc}")
                return
        state.leader = self.config.replica_id
        self._stream_last_seq = state.stream_seq
        command_log = JetStreamCommandLog(
            self.shard_log,
            state,
            leader=self.config.replica_id,
            snapshots=self._snapshots,
            guard=lambda: lease.held,
            keep_messages=self.config.keep_messages,
        )
        runner_config = RunnerConfig(
            journal_dir=Path(),
            snapshot_dir=Path(),
            max_batch=self.config.max_batch,
            snapshot_every_commands=self.config.snapshot_every_commands,
            snapshot_every_seconds=self.config.snapshot_every_seconds,
        )
        runner = EngineRunner(
            self.factory,
            runner_config,
            clock=FloorClock(self.clock, state.engine.now),
            command_log=command_log,
        )
        await runner.start()
        runner.add_listener(self._on_leader_records)
        self.runner = runner
        self.command_log = command_log
        id_base = self.config.id_base
        if id_base is not None and state.engine.config.id_base != id_base:
            await runner.submit(Configure(id_base=id_base))
        self._command_sub = await self._nc.subscribe(self.names.command_subject, cb=self._on_command)
        await flush_subscriptions(self._nc)  # the server has it before anyone hears we lead
        self.takeovers += 1
        self._set_role(LEADER)
        log.info(
            "replica_leading",
            shard=self.names.shard,
            replica=self.config.replica_id,
            lease_revision=lease.revision,
            applied_seq=state.applied_seq,
            stream_seq=state.stream_seq,
            seconds=round(self._monotonic() - started, 3),
        )

    async def _give_up_lease(self, reason: str) -> None:
        log.warning("replica_not_leading", shard=self.names.shard, reason=reason)
        await self.lease.release()
        self._no_lead_before = self._monotonic() + self.lease.ttl

    def _on_leader_records(self, records: Sequence[JournalRecord]) -> None:
        for listener in list(self.listeners):
            try:
                listener(records)
            except Exception as exc:  # a broken listener must not stop the leader
                log.error("shard_listener_failed", error=repr(exc))

    # ----------------------------------------------------------------- stepping down

    async def _step_down(self, reason: str) -> None:
        """Stop acknowledging at once, then follow the stream again (rebuilt if the engine is ahead)."""
        runner = self.runner
        log.warning(
            "replica_stepping_down", shard=self.names.shard, replica=self.config.replica_id, reason=reason
        )
        self._set_role(STEPPING_DOWN)
        await self._unsubscribe_commands()
        clean = True
        if runner is not None:
            runner.abort(f"shard {self.names.shard}: this replica is no longer the leader ({reason})")
            await runner.stop()
            clean = runner.last_seq == runner.durable_seq
            self.runner = None
            self.command_log = None
        if self.lease.revision is not None:
            await self.lease.release()
        else:
            self.lease.forget()
        self._no_lead_before = self._monotonic() + self.lease.ttl
        state = self.state if clean and self.state is not None else await self._restore()
        await self._become_standby(state)

    async def _unsubscribe_commands(self) -> None:
        subscription, self._command_sub = self._command_sub, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    # ----------------------------------------------------------------- serving

    async def _on_command(self, message: Any) -> None:
        # each request in its own task: the runner gathers what arrives in one loop turn into a batch
        task = asyncio.create_task(self._serve(message))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, message: Any) -> None:
        runner = self.runner
        if runner is None or self.role != LEADER or not runner.accepting or not self.lease.held:
            return  # no answer: another replica leads, or the client retries and finds the leader
        try:
            command: AnyCommand = request_decoder.decode(message.data).command
        except msgspec.DecodeError as exc:
            reply = ShardReply(error=f"undecodable request: {exc}", code="invalid_request")
        else:
            try:
                result: CommandResult = await runner.submit(command)
            except TradehallError as exc:
                reply = ShardReply(error=exc.detail, code=str(exc.code))
            except (RunnerError, JournalError) as exc:  # stepping down, or the log refused the batch
                reply = ShardReply(error=str(exc))
            else:
                reply = ShardReply(seq=result.seq, ts=result.ts, events=result.events)
        with contextlib.suppress(nats.errors.Error, OSError):
            await message.respond(command_encoder.encode(reply))

    async def _on_status(self, message: Any) -> None:
        try:
            request = status_request_decoder.decode(message.data or b"{}")
        except msgspec.DecodeError:
            return
        with contextlib.suppress(nats.errors.Error, OSError):
            await message.respond(status_encoder.encode(self.status(state_hash=request.state_hash)))

    def status(self, *, state_hash: bool = False) -> ReplicaStatus:
        state = self.state
        lease = self._lease
        applied = state.applied_seq if state is not None else 0
        stream_seq = state.stream_seq if state is not None else 0
        last = max(self._stream_last_seq, stream_seq)
        view = lease.last_view if lease is not None else None
        holder, revision, age = "", 0, 0.0
        if view is not None:
            holder, revision = view.holder, view.revision
            age = max(0.0, (self._wall_ns() - view.acquired_ns) / 1e9)
        return ReplicaStatus(
            replica_id=self.config.replica_id,
            shard=self.names.shard,
            role=self.role,
            applied_seq=applied,
            stream_seq=stream_seq,
            stream_last_seq=last,
            lag=max(0, last - stream_seq),
            lease_holder=holder,
            lease_revision=revision,
            lease_age_seconds=round(age, 3),
            lease_ttl_seconds=lease.ttl if lease is not None else 0.0,
            takeovers=self.takeovers,
            pid=os.getpid(),
            diverged_seq=state.diverged_seq if state is not None else 0,
            state_hash=state.engine.state_hash() if state_hash and state is not None else "",
        )


# --------------------------------------------------------------------- the process


async def run_replica(config: ReplicaConfig, *, stop: asyncio.Event | None = None) -> None:
    """Runs one replica until SIGTERM/SIGINT (or `stop`), then stops it gracefully."""
    replica = ShardReplica(config)
    done = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, done.set)
    ops_server = None
    if config.ops_listen:  # up before the restore: /ready says `starting` meanwhile
        host, port = parse_listen(config.ops_listen)
        watch_replica(replica.status)
        ops_server = await serve_ops([replica.status], host, port)
    try:
        await replica.start()
        await done.wait()
    finally:
        await replica.stop()
        if ops_server is not None:
            ops_server.close()
            unwatch_replica(replica.status)


def parse_args(argv: Sequence[str] | None = None) -> ReplicaConfig:
    parser = argparse.ArgumentParser(
        prog="python -m tradehall.service.cluster.replica",
        description="One replica of a tradehall shard whose command log is a NATS JetStream stream.",
    )
    env = os.environ.get
    parser.add_argument("--shard", required=True, help="the shard's name (letters, digits, - and _)")
    parser.add_argument("--nats", default=env("TRADEHALL_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--prefix", default=env("TRADEHALL_CLUSTER_PREFIX", "tradehall"))
    parser.add_argument("--replica-id", default=None, help="default: <hostname>-<pid>")
    parser.add_argument("--replicas", type=int, default=int(env("TRADEHALL_CLUSTER_REPLICAS", "1")))
    parser.add_argument(
        "--lease-ttl", type=float, default=float(env("TRADEHALL_CLUSTER_LEASE_TTL_SECONDS", "3.0"))
    )
    parser.add_argument("--append-timeout", type=float, default=5.0)
    parser.add_argument("--snapshot-every", type=int, default=100_000, help="commands between snapshots")
    parser.add_argument("--snapshot-every-seconds", type=float, default=300.0)
    parser.add_argument(
        "--keep-messages",
        type=int,
        default=int(env("TRADEHALL_CLUSTER_KEEP_MESSAGES", str(KEEP_MESSAGES))),
        help="stream messages kept before the newest snapshot's resume point (older ones are purged);"
        " -1: never purge",
    )
    parser.add_argument("--standby-only", action="store_true", help="follow the stream, never lead")
    parser.add_argument(
        "--id-base", type=int, default=None, help="the shard's id range; default: from the shard map"
    )
    parser.add_argument(
        "--http", default=env("TRADEHALL_CLUSTER_HTTP", ""), help="HOST:PORT for /health, /ready, /metrics"
    )
    args = parser.parse_args(argv)
    extra: dict[str, Any] = {} if args.replica_id is None else {"replica_id": args.replica_id}
    id_base = args.id_base if args.id_base is not None else id_base_from_settings(args.shard)
    return ReplicaConfig(
        shard=args.shard,
        nats_url=args.nats,
        prefix=args.prefix,
        replicas=args.replicas,
        lease_ttl=args.lease_ttl,
        append_timeout=args.append_timeout,
        snapshot_every_commands=args.snapshot_every,
        snapshot_every_seconds=args.snapshot_every_seconds,
        keep_messages=args.keep_messages if args.keep_messages >= 0 else None,
        can_lead=not args.standby_only,
        id_base=id_base,
        ops_listen=args.http,
        **extra,
    )


def id_base_from_settings(shard: str) -> int | None:
    """The shard's id base from the shard map in the settings (TRADEHALL_CLUSTER_SHARDS or _FILE), if
    the map names the shard."""
    settings = Settings()
    shard_map = shard_map_of(
        settings.cluster_shards, settings.cluster_shards_file, settings.cluster_home_shard
    )
    if shard_map is None or shard not in shard_map.names:
        return None
    return shard_map.id_base(shard)


def main(argv: Sequence[str] | None = None) -> None:
    arm_lifeline()
    asyncio.run(run_replica(parse_args(argv)))


if __name__ == "__main__":
    main()
