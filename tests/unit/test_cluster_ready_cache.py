"""`/ready` of a cluster gateway is public: one round of per-shard checks answers every concurrent and
following request for `ready_ttl` seconds (single-flight), on an injected clock (nothing sleeps)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes.cluster import FakeReads, FakeShard, FakeTime
from tradehall.engine import Engine
from tradehall.service.cluster.cached import SharedResult
from tradehall.service.cluster.routing import ClusterGateway, ShardRouter
from tradehall.service.cluster.shards import ShardMap

SHARDS = ShardMap.parse("A=BTC-USD;B=BTC-PERP;C=ETH-USD")


class GatedReads(FakeReads):
    """Counts the per-shard checks (each one a round trip to NATS in the real gateway) and holds them
    until `gate` opens, so every request arrives while the first round is still under way."""

    def __init__(self, shards: dict[str, FakeShard]) -> None:
        super().__init__(shards)
        self.checks: list[str] = []
        self.gate = asyncio.Event()

    async def shard_check(self, shard: str) -> dict[str, Any]:
        self.checks.append(shard)
        await self.gate.wait()
        return await super().shard_check(shard)


def gateway(clock: FakeTime) -> tuple[ClusterGateway, GatedReads]:
    shards = {name: FakeShard(name, Engine()) for name in SHARDS.names}
    reads = GatedReads(shards)
    router = ShardRouter(SHARDS, shards, monotonic=clock.monotonic, sleep=clock.sleep)
    return ClusterGateway(router, reads, ready_ttl=1.0, monotonic=clock.monotonic), reads


async def test_concurrent_ready_checks_share_one_round_of_shard_checks() -> None:
    clock = FakeTime()
    cluster, reads = gateway(clock)
    callers = [asyncio.ensure_future(cluster.ready_check()) for _ in range(50)]
    await asyncio.sleep(0)  # every caller is waiting on the round
    assert not any(caller.done() for caller in callers)
    reads.gate.set()
    answers = await asyncio.gather(*callers)
    assert reads.checks == ["A", "B", "C"]  # one round: one check per shard for 50 requests
    assert cluster.readiness.rounds == 1
    assert all(answer is answers[0] for answer in answers)
    good, shards = answers[0]
    assert good is True and sorted(shards) == ["A", "B", "C"]


async def test_the_round_answers_for_the_ttl_after_it_ended_then_a_new_round_runs() -> None:
    clock = FakeTime()
    cluster, reads = gateway(clock)
    reads.gate.set()
    await cluster.ready_check()
    clock.now += 0.999
    for _ in range(20):
        await cluster.ready_check()
    assert (reads.checks, cluster.readiness.rounds) == (["A", "B", "C"], 1)
    clock.now += 0.001
    await asyncio.gather(*(cluster.ready_check() for _ in range(20)))
    assert (reads.checks, cluster.readiness.rounds) == (["A", "B", "C"] * 2, 2)


async def test_a_shard_that_loses_its_leader_shows_once_the_answer_is_older_than_the_ttl() -> None:
    clock = FakeTime()
    cluster, reads = gateway(clock)
    reads.gate.set()
    assert (await cluster.ready_check())[0] is True
    reads.shards["B"].faults = ["down"]
    assert (await cluster.ready_check())[0] is True  # the cached answer, at most ready_ttl old
    clock.now += 1.0
    good, shards = await cluster.ready_check()
    assert (good, shards["A"]["ok"], shards["B"]["ok"], shards["B"]["leader_seen"]) == (
        False, True, False, False
    )


async def test_a_failed_round_is_not_kept_and_a_caller_going_away_does_not_cancel_it() -> None:
    clock = FakeTime()
    calls: list[int] = []
    gate = asyncio.Event()

    async def compute() -> int:
        calls.append(len(calls))
        await gate.wait()
        if len(calls) == 1:
            raise ConnectionError("NATS went away")
        return len(calls)

    shared = SharedResult(compute, 1.0, monotonic=clock.monotonic)
    first, second = asyncio.ensure_future(shared.get()), asyncio.ensure_future(shared.get())
    await asyncio.sleep(0)
    first.cancel()  # the client closed its connection
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(ConnectionError):
        await second  # the round went on for the caller still waiting, and its error reached it
    assert await shared.get() == 2  # not cached: the next call ran a new round
    assert await shared.get() == 2 and calls == [0, 1]
