"""A shard on the real NATS JetStream on 127.0.0.1:4222: the log, fencing, the lease, standby, takeover.

Each test works under its own prefix (stream, lease bucket, snapshot store) and deletes it after.
Replicas here run in the test's process with short leases; test_cluster_processes.py kills real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.js.api import KeyValueConfig
from structlog.testing import capture_logs

from tests.integration.cluster_kit import (
    MARKET,
    order,
    setup_commands,
    submit_retrying,
)
from tradehall.domain import commands as c
from tradehall.domain.events import OrderAccepted
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory
from tradehall.journal.segments import EncodedBatch
from tradehall.marketdata.breaker import Backoff
from tradehall.service.cluster.client import ShardClient, ShardUnavailableError
from tradehall.service.cluster.connection import server_urls
from tradehall.service.cluster.lease import VALID_FRACTION, ShardLease
from tradehall.service.cluster.log import (
    LeaseExpiredError,
    LogEntry,
    LogFencedError,
    LogUnavailableError,
    ShardLog,
    restore_state,
    split_frames,
)
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.protocol import reply_decoder
from tradehall.service.cluster.replica import LEADER, STANDBY, STOPPING, ReplicaConfig, ShardReplica
from tradehall.service.cluster.snapshots import ShardSnapshots
from tradehall.service.cluster.status import gather_status, shard_overview

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def replicas(prefix: str) -> AsyncIterator[list[ShardReplica]]:
    """Replicas a test starts; all stopped at the end (a crashed one has already closed its link)."""
    started: list[ShardReplica] = []
    yield started
    for replica in started:
        with contextlib.suppress(Exception):
            await replica.stop()


async def start_replica(
    replicas: list[ShardReplica], prefix: str, replica_id: str, **options: Any
) -> ShardReplica:
    config = ReplicaConfig(shard="A", prefix=prefix, replica_id=replica_id, lease_ttl=1.0, **options)
    replica = ShardReplica(config)
    replicas.append(replica)
    await replica.start()
    return replica


async def start_leader(
    replicas: list[ShardReplica], prefix: str, replica_id: str, **options: Any
) -> ShardReplica:
    """`start_replica`, once it has taken the lead."""
    replica = await start_replica(replicas, prefix, replica_id, **options)
    await replica.wait_for_role(LEADER, 10)
    return replica


async def set_up_shard(nc: Any, names: ShardNames) -> ShardClient:
    """A client of the shard, once the markets and accounts of `setup_commands` are in its log."""
    client = ShardClient(nc, names)
    for command in setup_commands():
        await client.submit(command)
    return client


async def crash(replica: ShardReplica) -> None:
    """What SIGKILL leaves: no renewal, no release, the connection gone."""
    await replica._halt_control()
    await replica.nc.close()


async def until(condition: Any, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def stream_records(nc: Any, names: ShardNames) -> list[JournalRecord]:
    """Every record in the shard's stream, in order (what any new replica would apply)."""
    shard_log = ShardLog(nc.jetstream(), names)
    end = await shard_log.last_seq()
    entries: list[LogEntry] = []
    subscription = await shard_log.subscribe(1, entries.append)
    await until(lambda: bool(entries) and entries[-1].stream_seq >= end)
    await subscription.unsubscribe()
    return [record for entry in entries for record in entry.records]


# ------------------------------------------------------------------------------- the log


async def test_an_append_with_a_stale_expected_sequence_is_refused_and_the_stream_is_unchanged(
    nc: Any, prefix: str
) -> None:
    shard_log = ShardLog(nc.jetstream(), ShardNames("A", prefix))
    await shard_log.ensure()
    assert await shard_log.append(b"", 0) == 1
    assert await shard_log.append(b"", 1) == 2
    with pytest.raises(LogFencedError) as refused:
        await shard_log.append(b"", 1)
    assert refused.value.expected_last == 1
    assert await shard_log.last_seq() == 2
    with capture_logs() as logs:  # a replica configured with another R leaves the stream as it is
        await ShardLog(nc.jetstream(), ShardNames("A", prefix), replicas=3).ensure()
    assert [(e["event"], e["has"], e["wanted"]) for e in logs] == [("shard_stream_replicas_differ", 1, 3)]


def test_a_batch_over_the_message_size_is_cut_at_frame_boundaries() -> None:
    records = [
        JournalRecord(seq=seq, ts=seq, command=c.AdvanceTime(ts=seq, correlation_id="x" * 100), events=())
        for seq in range(1, 41)
    ]
    data = EncodedBatch.of(records).data
    pieces = split_frames(data, 1000)
    assert len(pieces) > 1
    assert all(len(piece) <= 1000 for piece in pieces)
    assert b"".join(pieces) == data
    assert split_frames(data, len(data)) == [data]


# ------------------------------------------------------------------------------- the lease


async def test_the_lease_is_taken_by_compare_and_set_and_lapses_only_after_a_whole_ttl(
    nc: Any, prefix: str
) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket=f"{prefix}-leases", history=1, ttl=60))
    clock = FakeMonotonic()
    first = ShardLease(kv, "A", "first", 5.0, monotonic=clock)
    second = ShardLease(kv, "A", "second", 5.0, monotonic=clock)
    assert await first.try_acquire()
    assert not await second.try_acquire()  # seen for the first time: watched for a TTL
    clock.now += 4.9
    assert not await second.try_acquire()
    assert await first.renew()  # a new revision: the watch starts again
    clock.now += 0.2
    assert not await second.try_acquire()
    clock.now += 4.9
    assert not await second.try_acquire()
    assert first.held is False  # 5.1 s after its renewal, past TTL x 0.9: it stopped acknowledging
    clock.now += 0.2  # the renewal's revision unchanged for a whole TTL now
    assert await second.try_acquire()
    assert not await first.renew()  # compare-and-set on its old revision fails: it lost the lease
    assert first.revision is None
    view = await second.read()
    assert view is not None and view.holder == "second" and view.revision == second.revision


async def test_a_holder_counts_its_lease_valid_for_the_ttl_fraction_after_it_sent_the_renewal(
    nc: Any, prefix: str
) -> None:
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=f"{prefix}-leases", history=1, ttl=60))
    clock = FakeMonotonic()
    lease = ShardLease(kv, "A", "me", 10.0, monotonic=clock)
    assert await lease.try_acquire()
    clock.now += 10.0 * VALID_FRACTION - 0.001
    assert lease.held
    clock.now += 0.002
    assert not lease.held


async def test_a_released_lease_is_taken_at_once(nc: Any, prefix: str) -> None:
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=f"{prefix}-leases", history=1, ttl=60))
    clock = FakeMonotonic()
    first = ShardLease(kv, "A", "first", 5.0, monotonic=clock)
    second = ShardLease(kv, "A", "second", 5.0, monotonic=clock)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()


# ------------------------------------------------------------------------------- replicas


async def test_the_leader_acknowledges_after_the_stream_stored_the_batch_and_the_engine_applied_it(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    client = ShardClient(nc, leader.names)
    results = [await client.submit(command) for command in setup_commands()]
    placed = await asyncio.gather(*(client.submit(order(i)) for i in range(50)))
    assert [r.seq for r in results] == [1, 2, 3, 4, 5]
    assert sorted(r.seq for r in placed) == list(range(6, 56))
    assert all(isinstance(r.events[0], OrderAccepted) for r in placed)
    records = await stream_records(nc, leader.names)
    assert [record.seq for record in records] == list(range(1, 56))
    by_seq = {record.seq: record for record in records}
    assert all(by_seq[r.seq].events == r.events for r in (*results, *placed))
    assert leader.runner is not None and leader.runner.durable_seq == 55
    assert len(leader.engine.orders) == 50


async def test_an_undecodable_request_is_answered_with_invalid_request_and_changes_nothing(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    answer = await nc.request(leader.names.command_subject, b"not a command", timeout=5)
    reply = reply_decoder.decode(answer.data)
    assert (reply.code, reply.seq) == ("invalid_request", 0)
    assert leader.runner is not None and leader.runner.last_seq == 0


async def test_a_standby_applies_the_stream_hot_and_holds_the_same_state(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    standby = await start_replica(replicas, prefix, "b")
    client = await set_up_shard(nc, leader.names)
    await asyncio.gather(*(client.submit(order(i, "alice" if i % 2 else "bob")) for i in range(60)))
    assert standby.role == STANDBY
    await until(lambda: standby.state is not None and standby.state.applied_seq == 65)
    assert standby.engine.state_hash() == leader.engine.state_hash()
    statuses = await gather_status(nc, leader.names, state_hash=True)
    assert [(s.replica_id, s.role, s.applied_seq, s.lag) for s in statuses] == [
        ("a", LEADER, 65, 0),
        ("b", STANDBY, 65, 0),
    ]
    assert statuses[0].state_hash == statuses[1].state_hash == leader.engine.state_hash()
    assert statuses[1].lease_holder == "a"
    overview = await shard_overview(nc.jetstream(), leader.names)
    assert overview.lease_holder == "a" and overview.stream_last_seq == statuses[0].stream_seq


async def test_a_standby_does_not_answer_commands(nc: Any, prefix: str, replicas: list[ShardReplica]) -> None:
    await start_replica(replicas, prefix, "b", can_lead=False)
    client = ShardClient(nc, ShardNames("A", prefix))
    with pytest.raises(ShardUnavailableError) as refused:
        await client.submit(setup_commands()[0], timeout=0.5)
    assert refused.value.maybe_applied is False  # nobody listened: surely not applied


async def test_a_new_leader_puts_its_engine_in_the_shards_id_range_before_serving(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    base = 3 << 40
    leader = await start_leader(replicas, prefix, "a", id_base=base)
    client = await set_up_shard(nc, leader.names)
    accepted = (await client.submit(order(1))).events[0]
    assert isinstance(accepted, OrderAccepted) and accepted.order_id == base + 1
    records = await stream_records(nc, leader.names)
    assert records[0].command == c.Configure(ts=records[0].ts, id_base=base)
    await leader.stop()  # a graceful hand-over: the next leader's engine is in the range already
    await start_leader(replicas, prefix, "b", id_base=base)
    await client.submit(order(2))
    assert [type(r.command).__name__ for r in await stream_records(nc, leader.names)].count("Configure") == 1


def test_a_comma_separated_nats_address_is_each_server_of_the_cluster() -> None:
    assert server_urls(" nats://a:4222, nats://b:4222,,nats://c:4222 ") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    with pytest.raises(ValueError):
        server_urls(" , ")


async def test_when_the_lease_lapses_the_standby_takes_over_from_the_last_stored_command(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    standby = await start_replica(replicas, prefix, "b")
    client = await set_up_shard(nc, leader.names)
    acknowledged = await asyncio.gather(*(client.submit(order(i)) for i in range(40)))
    await crash(leader)
    await standby.wait_for_role(LEADER, 10)
    assert standby.takeovers == 1
    after = [await submit_retrying(client, order(i)) for i in range(40, 50)]
    # every acknowledged order is there, once; the new leader continued the seqs without a gap
    engine = standby.engine
    for i, result in enumerate(acknowledged):
        accepted = result.events[0]
        assert isinstance(accepted, OrderAccepted)
        assert engine.order_id_for("alice", f"o{i}") == accepted.order_id
    assert [r.seq for r in after] == list(range(46, 56))
    assert len(engine.orders) == 50
    records = await stream_records(nc, leader.names)
    assert [record.seq for record in records] == list(range(1, 56))
    placed = [r.command.client_order_id for r in records if isinstance(r.command, c.PlaceOrder)]
    assert sorted(placed) == sorted(f"o{i}" for i in range(50))


async def test_an_old_leader_whose_lease_was_taken_cannot_append(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    frozen = FakeMonotonic()  # the old leader's sense of time stops (a paused VM): its lease looks held
    config = ReplicaConfig(shard="A", prefix=prefix, replica_id="a", lease_ttl=1.0)
    old = ShardReplica(config, monotonic=frozen)
    replicas.append(old)
    await old.start()
    await old.wait_for_role(LEADER, 10)
    client = await set_up_shard(nc, old.names)
    # it neither renews nor notices; its runner still takes commands
    await old._halt_control()
    new = await start_leader(replicas, prefix, "b")
    shard_log = ShardLog(nc.jetstream(), old.names)
    before = await shard_log.last_seq()
    assert old.runner is not None and old.runner.accepting
    with pytest.raises(LogFencedError):
        await old.runner.submit(order(1, coid="from-the-old-leader"))
    assert await shard_log.last_seq() == before
    assert isinstance(old.runner.failure, LogFencedError)
    result = await client.submit(order(2))  # only the new leader answers now
    assert result.seq == 6
    records = await stream_records(nc, old.names)
    assert "from-the-old-leader" not in [getattr(r.command, "client_order_id", None) for r in records]
    assert new.engine.order_id_for("alice", "from-the-old-leader") is None


async def test_a_leader_that_cannot_renew_steps_down_and_follows_again(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    client = await set_up_shard(nc, leader.names)
    # someone else writes the key (an operator, a partitioned peer that won): the next renewal fails
    kv = await nc.jetstream().key_value(leader.names.lease_bucket)
    await kv.put("A", b'{"holder":"intruder","acquired_ns":0,"renewed_ns":0,"ttl_seconds":1.0}')
    await leader.wait_for_role(STANDBY, 10)
    assert leader.runner is None
    with pytest.raises(ShardUnavailableError):
        await client.submit(order(1), timeout=0.3)
    # the intruder never renews: the lease lapses and the replica leads again, state intact
    await leader.wait_for_role(LEADER, 10)
    assert (await client.submit(order(2))).seq == 6


async def test_a_new_replica_starts_from_the_snapshot_and_the_tail(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a", snapshot_every_commands=10)
    client = await set_up_shard(nc, leader.names)
    for i in range(20):
        await client.submit(order(i))
    snapshots = ShardSnapshots(nc.jetstream(), leader.names)
    stored: list[Any] = []

    async def snapshot_seq() -> int:
        latest = await snapshots.latest()
        stored[:] = [latest]
        return latest.seq if latest is not None else 0

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await snapshot_seq() < 10:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    snapshot = stored[0]
    for i in range(20, 25):
        await client.submit(order(i))
    # the stream before the snapshot's resume point is gone: only snapshot + tail can rebuild the state
    await nc.jetstream().purge_stream(leader.names.stream, seq=snapshot.resume_stream_seq)
    shard_log = ShardLog(nc.jetstream(), leader.names)
    state = await restore_state(shard_log, snapshots, EngineFactory(Engine, Engine.restore))
    assert state.applied_seq == 30
    assert state.engine.state_hash() == leader.engine.state_hash()
    late = await start_replica(replicas, prefix, "c")
    assert late.state is not None and late.state.applied_seq == 30
    assert late.engine.state_hash() == leader.engine.state_hash()


async def test_retrying_the_same_client_order_id_after_a_takeover_gives_the_original_order(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    standby = await start_replica(replicas, prefix, "b")
    client = await set_up_shard(nc, leader.names)
    first = await client.submit(order(7, coid="the-one"))
    accepted = first.events[0]
    assert isinstance(accepted, OrderAccepted)
    await crash(leader)  # the client never learns whether its answer got through: it retries
    again = await submit_retrying(client, order(7, coid="the-one"))
    assert standby.role == LEADER
    assert again.seq == first.seq + 1
    assert again.events == ()  # the engine's idempotent repeat: nothing new
    engine = standby.engine
    assert engine.order_id_for("alice", "the-one") == accepted.order_id
    assert [o.order_id for o in engine.orders.values() if o.market == MARKET] == [accepted.order_id]


async def test_a_takeover_that_fails_half_way_leaves_a_clean_standby_that_leads_later(
    nc: Any, prefix: str, replicas: list[ShardReplica], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = ShardLog.append
    markers: list[int] = []

    async def first_marker_fails(
        self: ShardLog, payload: bytes, expected_last: int, headers: dict[str, str] | None = None
    ) -> int:
        if not payload:
            markers.append(expected_last)
            if len(markers) == 1:
                raise LogUnavailableError("NATS went away just now")
        return await real_append(self, payload, expected_last, headers)

    monkeypatch.setattr(ShardLog, "append", first_marker_fails)
    replica = await start_replica(replicas, prefix, "a")
    await replica.wait_for_role(LEADER, 15)
    assert markers == [0, 0]  # the second try fenced on the same end: the first stored nothing
    assert replica.takeovers == 1
    client = ShardClient(nc, replica.names)
    assert [(await client.submit(command)).seq for command in setup_commands()] == [1, 2, 3, 4, 5]


async def test_a_leader_past_its_lease_deadline_stops_acknowledging_before_its_loop_notices(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    clock = FakeMonotonic()  # frozen: no renewal is ever due, the deadline passes only when we say
    config = ReplicaConfig(shard="A", prefix=prefix, replica_id="a", lease_ttl=1.0)
    leader = ShardReplica(config, monotonic=clock)
    replicas.append(leader)
    await leader.start()
    await leader.wait_for_role(LEADER, 10)
    client = await set_up_shard(nc, leader.names)
    shard_log = ShardLog(nc.jetstream(), leader.names)
    before = await shard_log.last_seq()
    runner = leader.runner
    assert runner is not None
    await leader._halt_control()  # its loop is slow to look (a stalled process): the deadline alone counts
    clock.now += 1.0  # past 0.9 x TTL after the last renewal was sent
    with pytest.raises(LeaseExpiredError):  # even straight into the runner: nothing is appended
        await runner.submit(order(1, coid="late"))
    with pytest.raises(ShardUnavailableError):
        await client.submit(order(2), timeout=0.3)
    assert await shard_log.last_seq() == before
    leader._start_control()  # the loop looks: it steps down
    await leader.wait_for_role(STANDBY, 10)
    assert leader.engine.order_id_for("alice", "late") is None  # rebuilt from the log


async def test_a_replica_whose_engine_does_not_reproduce_the_logged_events_never_leads(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    names = ShardNames("A", prefix)
    shard_log = ShardLog(nc.jetstream(), names)
    await shard_log.ensure()
    command = c.OpenAccount(ts=1, account_id="alice", owner="alice")
    forged = JournalRecord(seq=1, ts=1, command=command, events=())  # the engine emits events for it
    await shard_log.append(EncodedBatch.of([forged]).data, 0)
    replica = await start_replica(replicas, prefix, "a")
    assert replica.state is not None and replica.state.diverged_seq == 1
    await replica._standby_step()  # a step of its control loop: the lease is free, yet it does not lead
    assert replica.role == STANDBY and replica.takeovers == 0
    assert await replica.lease.read() is None
    (status,) = await gather_status(nc, names)
    assert (status.role, status.diverged_seq, status.applied_seq) == (STANDBY, 1, 1)


async def test_a_delivery_from_a_follow_subscription_the_replica_left_is_never_applied(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_leader(replicas, prefix, "a")
    client = await set_up_shard(nc, leader.names)
    state = leader.state
    assert state is not None and state.applied_seq == 5
    # its own next append, as the standby's subscription (generation 1) would have delivered it late
    deposit = c.Deposit(ts=1, account_id="alice", amount=Decimal(1))
    late = JournalRecord(seq=6, ts=1, command=deposit, events=())
    leader._on_entry(LogEntry(stream_seq=state.stream_seq + 1, records=[late], leader="a"), 1)
    assert (state.applied_seq, state.diverged_seq) == (5, 0)
    assert (await client.submit(order(1))).seq == 6


async def test_a_replica_stops_even_if_the_cancellation_of_its_control_step_is_lost(
    prefix: str, replicas: list[ShardReplica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py's requests wait with `asyncio.wait_for`, which on Python 3.11 returns the reply instead of
    raising when the reply and the cancellation arrive in the same loop turn (likely under load): the
    step then ends normally. stop() must still end the loop after that step, not wait forever."""
    replica = await start_replica(replicas, prefix, "a", can_lead=False)
    steps: list[str] = []
    entered = asyncio.Event()

    async def step_losing_the_cancellation(self: ShardReplica) -> None:
        steps.append("step")
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()  # cancelled only by stop(); returns as the lost cancellation does

    monkeypatch.setattr(ShardReplica, "_standby_step", step_losing_the_cancellation)
    await entered.wait()
    stopping = asyncio.create_task(replica.stop())
    done, _ = await asyncio.wait([stopping], timeout=30)  # not cancelled on the way: that would cancel again
    assert done == {stopping}, "stop() waits for a control loop that lost its cancellation"
    assert replica._control is not None and replica._control.done()
    assert (steps, replica.role) == (["step"], STOPPING)


class UpperBound:
    """An rng whose jitter is always the whole delay (the backoff's delays become exact)."""

    def uniform(self, low: float, high: float) -> float:
        return high


async def test_a_replica_that_cannot_restore_backs_off_doubling_and_starts_short_again_after_a_success(
    prefix: str, replicas: list[ShardReplica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """JetStream electing (503) while a replica rebuilds: it tries again after 0.1, 0.2, 0.4 s, not every
    tick; a rebuild that works resets the delay; and it follows the stream again at the end."""
    replica = await start_replica(replicas, prefix, "a", can_lead=False)
    real_restore = ShardReplica._restore
    failing = [3]
    calls: list[float] = []

    async def restore(self: ShardReplica) -> Any:
        calls.append(asyncio.get_running_loop().time())
        if failing[0] > 0:
            failing[0] -= 1
            raise nats.js.errors.ServiceUnavailableError()
        return await real_restore(self)

    monkeypatch.setattr(ShardReplica, "_restore", restore)
    monkeypatch.setattr(
        ShardReplica, "_retry_backoff", lambda self: Backoff(base=0.1, cap=0.4, rng=UpperBound())  # type: ignore[arg-type]
    )
    await replica._halt_control()  # the loop again, with the patched backoff
    replica._start_control()
    with capture_logs() as logs:
        replica._broken = RuntimeError("a gap")
        await until(lambda: len(calls) == 4 and replica._broken is None)
        failing[0] = 1
        replica._broken = RuntimeError("another gap")
        await until(lambda: len(calls) == 6 and replica._broken is None)
    retries = [entry["retry_in"] for entry in logs if entry["event"] == "replica_step_failed"]
    assert retries == [0.1, 0.2, 0.4, 0.1]
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls[:4])]
    assert [gap >= wait for gap, wait in zip(gaps, [0.1, 0.2, 0.4], strict=True)] == [True] * 3
    assert replica.role == STANDBY


async def test_a_snapshot_store_without_a_leader_is_unavailable_not_unusable() -> None:
    """503 from the object store is raised (the replica tries again), not read as "no snapshot" (which
    would rebuild from the stream's start)."""

    class Electing:
        async def get_info(self, name: str) -> Any:
            raise nats.js.errors.ServiceUnavailableError()

    snapshots = ShardSnapshots(None, ShardNames("A", "th-test"))
    snapshots._store = Electing()
    with pytest.raises(nats.js.errors.ServiceUnavailableError):
        await snapshots.latest()
