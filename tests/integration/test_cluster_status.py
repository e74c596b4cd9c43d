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
from tests.integration.cluster_kit import (
    NATS_URL,
    delete_prefix,
    setup_commands,
    submit_retrying,
    unique_prefix,
)
from tradehall.cli.main import app
from tradehall.service.cluster.client import ShardClient
from tradehall.service.cluster.names import ShardNames
from tradehall.service.cluster.replica import LEADER, STANDBY, ReplicaConfig, ShardReplica
from tradehall.service.cluster.report import cluster_report, list_shards

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
