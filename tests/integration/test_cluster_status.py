"""`tradehall cluster status` on the real NATS JetStream on 127.0.0.1:4222, two replicas in this process.

It shows each shard's leader and standby, stream end, the replicas' applied seqs and lag, the lease's
holder and age; after the leader stops, the standby's takeover; with no replica left, no leader (exit 1).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from typer.testing import CliRunner

from tests.conftest import require_service
from tests.fakes.cluster import FakeShard, FakeTime
from tests.integration.cluster_kit import (
    NATS_URL,
    delete_prefix,
    setup_commands,
    submit_retrying,
    unique_prefix,
)
from tradehall.cli.main import app
from tradehall.engine import Engine
from tradehall.journal.recovery import EngineFactory
from tradehall.service.cluster.client import ShardClient
from tradehall.service.cluster.gateway import JetStreamReads
from tradehall.service.cluster.lease import open_lease_bucket
from tradehall.service.cluster.log import ShardLog
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.replica import LEADER, STANDBY, ReplicaConfig, ShardReplica
from tradehall.service.cluster.report import cluster_report, list_shards
from tradehall.service.cluster.routing import ClusterGateway, ShardRouter
from tradehall.service.cluster.shards import ShardMap

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_service("nats")
    name = unique_prefix()
    yield name
    nc = await nats.connect(NATS_URL)
    try:
        await delete_prefix(nc.jetstream(), name, ("A", "B"))
    finally:
        await nc.close()


async def status_cli(*args: str) -> tuple[int, Any]:
    """The command as an operator runs it (in a thread: it runs its own event loop)."""
    command = ["cluster", "status", "--nats", NATS_URL, *args]
    result = await asyncio.to_thread(CliRunner().invoke, app, command)
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.output


async def test_status_of_a_shard_through_a_takeover(prefix: str) -> None:
    a = ShardReplica(ReplicaConfig(shard="A", prefix=prefix, replica_id="a", lease_ttl=1.5))
    b = ShardReplica(ReplicaConfig(shard="A", prefix=prefix, replica_id="b", lease_ttl=1.5))
    await a.start()
    try:
        await a.wait_for_role(LEADER, 15)
        await b.start()
        await b.wait_for_role(STANDBY, 15)
        client = ShardClient(a.nc, ShardNames("A", prefix))
        for command in setup_commands():
            await submit_retrying(client, command)
        await b.state.wait_stream_seq(a.state.stream_seq, 10) if b.state and a.state else None

        code, shards = await status_cli("--prefix", prefix, "--json")
        assert code == 0, shards
        [shard] = shards
        assert (shard["shard"], shard["leader"], shard["standbys"]) == ("A", "a", ["b"])
        assert shard["lease_holder"] == "a" and shard["lease_ttl_seconds"] == 1.5
        assert 0 <= shard["lease_age_seconds"] < 60
        replicas = {replica["replica_id"]: replica for replica in shard["replicas"]}
        assert replicas["a"]["applied_seq"] == replicas["b"]["applied_seq"] == len(setup_commands())
        assert replicas["b"]["lag"] == 0 and replicas["b"]["role"] == "standby"
        assert shard["stream_last_seq"] == replicas["a"]["stream_seq"]

        code, text = await status_cli("--prefix", prefix)  # the tables
        assert code == 0 and "Shards" in text and "Replicas" in text and "standby" in text

        await a.stop()  # graceful: the lease is released, b takes over at once
        await b.wait_for_role(LEADER, 15)
        reports = await cluster_report([NATS_URL], prefix)
        assert [(report.leader, report.standbys) for report in reports] == [("b", [])]
        assert reports[0].replicas[0].takeovers == 1
    finally:
        await b.stop()
        await a.stop()
    code, shards = await status_cli("--prefix", prefix, "--json")
    assert code == 1, "no replica answers: the shard has no leader"
    assert shards[0]["leader"] == "" and shards[0]["replicas"] == []


async def test_shards_are_found_from_their_streams(prefix: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for shard in ("B", "A"):
            names = ShardNames(shard, prefix)
            await js.add_stream(name=names.stream, subjects=[names.log_subject])
        await js.add_stream(name=f"{prefix}x-shard-C", subjects=[f"{prefix}x.c"])  # another prefix
        try:
            assert await list_shards(js, prefix) == ["A", "B"]
        finally:
            await js.delete_stream(f"{prefix}x-shard-C")
    finally:
        await nc.close()
    code, shards = await status_cli("--prefix", prefix, "--shard", "B", "--json")
    assert code == 1 and [shard["shard"] for shard in shards] == ["B"]
    code, output = await status_cli("--prefix", "bad prefix!")
    assert code == 2 and "letters, digits" in output


async def test_no_nats_is_exit_4() -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["cluster", "status", "--nats", "nats://127.0.0.1:1"]
    )
    assert result.exit_code == 4 and "cannot reach NATS" in result.output


class CountingJetStream:
    """A JetStream context that counts the calls a gateway's `/ready` makes to NATS per shard."""

    def __init__(self, js: Any) -> None:
        self._js = js
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def stream_info(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(f"stream_info {name}")
        return await self._js.stream_info(name, *args, **kwargs)

    async def key_value(self, bucket: str) -> Any:
        self.calls.append(f"key_value {bucket}")
        return await self._js.key_value(bucket)


async def test_concurrent_ready_checks_of_a_gateway_make_one_round_of_nats_calls(prefix: str) -> None:
    """The gateway's `/ready` is public: 40 requests at once, and 40 more within the second after, make
    one stream and one lease read per shard against the real NATS (the clock is the test's)."""
    shard_map = ShardMap.parse("A=BTC-USD;B=ETH-USD")
    nc = await nats.connect(NATS_URL)
    reads = JetStreamReads()
    try:
        js = nc.jetstream()
        counting = CountingJetStream(js)
        for shard in shard_map.names:
            names = ShardNames(shard, prefix)
            await ShardLog(js, names).ensure()
            await open_lease_bucket(js, names.lease_bucket, 1.0)
            await reads.follow(counting, names, EngineFactory(create=Engine, restore=Engine.restore))
        counting.calls.clear()  # what following cost; from here on only /ready's checks
        clock = FakeTime()
        shards = {shard: FakeShard(shard) for shard in shard_map.names}
        cluster = ClusterGateway(ShardRouter(shard_map, shards), reads, monotonic=clock.monotonic)
        answers = await asyncio.gather(*(cluster.ready_check() for _ in range(40)))
        clock.now += 0.5
        answers += await asyncio.gather(*(cluster.ready_check() for _ in range(40)))
        assert sorted(counting.calls) == sorted(
            f"{call} {name}"
            for shard in shard_map.names
            for call, name in (
                ("stream_info", ShardNames(shard, prefix).stream),
                ("key_value", ShardNames(shard, prefix).lease_bucket),
            )
        )
        good, checks = answers[-1]
        assert good is False and checks["A"]["leader_seen"] is False  # no replica leads: not ready
        clock.now += 0.5
        await cluster.ready_check()
        assert len(counting.calls) == 8  # a second round, once the first is a second old
    finally:
        await reads.close()
        await nc.close()
