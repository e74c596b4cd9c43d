"""A shard's stream trimmed behind its snapshots, on the real NATS JetStream on 127.0.0.1:4222.

After the leader stores a snapshot it purges the stream before the snapshot's resume point, keeping
`keep_messages` more. A new replica starts from the snapshot and the tail; a standby, or a gateway's read
replica, that fell behind the purge point restores the snapshot and follows again; a late snapshot older
than the stored one never replaces it. Each test works under its own prefix and deletes it after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.cluster_kit import order, setup_commands
from tradehall.engine import Engine
from tradehall.journal.records import JournalRecord
from tradehall.journal.recovery import EngineFactory
from tradehall.service.cluster.client import ShardClient
from tradehall.service.cluster.gateway import JetStreamReads
from tradehall.service.cluster.log import LogEntry, LogGapError, ShardLog, restore_state
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.replica import LEADER, STANDBY, ReplicaConfig, ShardReplica
from tradehall.service.cluster.snapshots import ShardSnapshot, ShardSnapshots
from tradehall.service.cluster.status import shard_overview

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

FACTORY = EngineFactory(create=Engine, restore=Engine.restore)
KEEP = 3


@pytest.fixture
async def replicas() -> AsyncIterator[list[ShardReplica]]:
    started: list[ShardReplica] = []
    yield started
    for replica in started:
        with contextlib.suppress(Exception):
            await replica.stop()


async def start_replica(
    replicas: list[ShardReplica], prefix: str, replica_id: str, **options: Any
) -> ShardReplica:
    config = ReplicaConfig(
        shard="A", prefix=prefix, replica_id=replica_id, lease_ttl=1.0, keep_messages=KEEP, **options
    )
    replica = ShardReplica(config)
    replicas.append(replica)
    await replica.start()
    return replica


async def until(condition: Any, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def trimmed_to_latest_snapshot(shard_log: ShardLog, snapshots: ShardSnapshots, seq: int) -> int:
    """Waits until the snapshot holds record `seq` and the stream starts `KEEP` messages before its
    resume point (the trim that follows storing it); returns that first stream seq."""
    first_seq = 0

    async def trimmed() -> bool:
        nonlocal first_seq
        latest = await snapshots.latest()
        first_seq, _ = await shard_log.bounds()
        return latest is not None and latest.seq == seq and first_seq == latest.resume_stream_seq - KEEP

    await until(trimmed)
    return first_seq


async def place_orders(client: ShardClient, numbers: range) -> None:
    for i in numbers:  # one at a time: one batch, one stream message each
        await client.submit(order(i))


async def test_after_a_snapshot_the_stream_keeps_only_the_tail_and_a_new_replica_starts_from_both(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_replica(replicas, prefix, "a", snapshot_every_commands=10)
    await leader.wait_for_role(LEADER, 10)
    client = ShardClient(nc, leader.names)
    for command in setup_commands():
        await client.submit(command)
    await place_orders(client, range(35))  # records 6..40
    assert leader.state is not None and leader.state.applied_seq == 40
    shard_log = ShardLog(nc.jetstream(), leader.names)
    snapshots = ShardSnapshots(nc.jetstream(), leader.names)
    first = await trimmed_to_latest_snapshot(shard_log, snapshots, 40)
    assert first > 1 and await shard_log.read(first - 1) is None and await shard_log.read(first) is not None
    assert await shard_log.last_seq() == leader.state.stream_seq  # a purge never moves the end (fencing)
    overview = await shard_overview(nc.jetstream(), leader.names)  # what `tradehall cluster status` shows
    assert (overview.stream_first_seq, overview.stream_last_seq) == (first, leader.state.stream_seq)
    assert overview.stream_messages == leader.state.stream_seq - first + 1

    # nothing before the snapshot is left: only the snapshot and the tail rebuild the state
    with pytest.raises(LogGapError):
        await restore_state(shard_log, None, FACTORY, stall_timeout=5.0)
    await place_orders(client, range(35, 38))
    late = await start_replica(replicas, prefix, "c", can_lead=False)
    assert late.state is not None and late.state.applied_seq == 43
    assert late.engine.state_hash() == leader.engine.state_hash()
    assert (await client.submit(order(99))).seq == 44  # the leader still appends after its purges


async def test_a_standby_behind_the_purge_point_restores_the_snapshot_and_follows_again(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_replica(replicas, prefix, "a", snapshot_every_commands=10)
    await leader.wait_for_role(LEADER, 10)
    standby = await start_replica(replicas, prefix, "b", can_lead=False)
    client = ShardClient(nc, leader.names)
    for command in setup_commands():
        await client.submit(command)
    assert standby.state is not None
    state = standby.state

    async def caught_up() -> bool:
        return state.applied_seq == 5

    await until(caught_up)
    await standby._stop_following()  # a standby that stalls (a long GC pause, a slow disk)
    behind = state.stream_seq
    await place_orders(client, range(35))  # records 6..40
    shard_log = ShardLog(nc.jetstream(), leader.names)
    first = await trimmed_to_latest_snapshot(shard_log, ShardSnapshots(nc.jetstream(), leader.names), 40)
    assert first > behind + 1  # what it needs next is gone

    await standby._start_following()  # it resumes: the stream hands it a gap, it restores instead

    async def recovered() -> bool:
        now = standby.state
        return now is not None and now is not state and now.applied_seq == 40 and standby.role == STANDBY

    await until(recovered)
    assert state.applied_seq == 5  # the stalled engine was dropped, not patched
    assert standby.engine.state_hash() == leader.engine.state_hash()
    await place_orders(client, range(35, 37))  # and it follows the stream again, hot

    async def following() -> bool:
        return standby.state is not None and standby.state.applied_seq == 42

    await until(following)
    assert standby.engine.state_hash() == leader.engine.state_hash()


async def test_a_gateways_read_replica_that_meets_a_gap_restores_and_keeps_its_listeners(
    nc: Any, prefix: str, replicas: list[ShardReplica]
) -> None:
    leader = await start_replica(replicas, prefix, "a", snapshot_every_commands=10)
    await leader.wait_for_role(LEADER, 10)
    client = ShardClient(nc, leader.names)
    for command in setup_commands():
        await client.submit(command)
    reads = JetStreamReads()
    seen: list[int] = []
    try:
        await reads.follow(nc.jetstream(), leader.names, FACTORY)
        reads.add_listener("A", lambda records: seen.extend(record.seq for record in records))
        await place_orders(client, range(20))  # records 6..25
        await reads.wait_applied("A", 25)
        stale = reads._states["A"]
        # what a purged stream hands a replica that lagged past it: a message whose records skip ahead
        skipped = JournalRecord(seq=stale.applied_seq + 5, ts=0, command=order(900), events=())
        reads._on_entry("A", stale, LogEntry(stale.stream_seq + 1, [skipped], "a"))

        async def restored() -> bool:
            return reads.resyncs == 1

        await until(restored)
        assert reads._states["A"] is not stale and reads.applied_seq("A") == 25
        assert reads.engine_of("A").state_hash() == leader.engine.state_hash()
        await client.submit(order(20))
        await reads.wait_applied("A", 26)
        assert seen == list(range(6, 27))  # the listener follows the new replica
        assert reads.engine_of("A").state_hash() == leader.engine.state_hash()
    finally:
        await reads.close()


async def test_a_snapshot_older_than_the_stored_one_is_not_stored(nc: Any, prefix: str) -> None:
    """A deposed leader's late snapshot must not replace its successor's newer one."""
    snapshots = ShardSnapshots(nc.jetstream(), ShardNames("A", prefix))
    engine = Engine()
    assert await snapshots.put(ShardSnapshot(20, 9, engine.snapshot()))
    assert not await snapshots.put(ShardSnapshot(12, 6, engine.snapshot()))
    latest = await snapshots.latest()
    assert latest is not None and (latest.seq, latest.resume_stream_seq) == (20, 9)
    assert await snapshots.stored_seq() == 20
    assert await snapshots.put(ShardSnapshot(21, 10, engine.snapshot()))
    latest = await snapshots.latest()
    assert latest is not None and (latest.seq, latest.resume_stream_seq) == (21, 10)
