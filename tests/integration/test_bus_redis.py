"""Redis-specific behaviour of the bus: approximate MAXLEN trimming and XAUTOCLAIM of stale entries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.fixtures.bus_records import seqs_on, trading_records
from tradehall.bus.protocol import Delivery, StartPosition
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.bus.serialize import EventSerializer

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


@pytest.fixture
async def prefix(redis_available: None) -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    cleaner = RedisStreamsBus(prefix=name)
    await cleaner.purge()
    await cleaner.close()


def messages(orders: int) -> list:  # type: ignore[type-arg]
    serializer = EventSerializer()
    return [e for record in trading_records(("BTC-PERP",), orders) for e in serializer.envelopes(record)]


async def take(subscription: AsyncIterator[Delivery], count: int) -> list[Delivery]:
    got: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            got.append(delivery)
            if len(got) == count:
                return

    await asyncio.wait_for(run(), 10)
    return got


async def test_streams_are_trimmed_to_about_maxlen(prefix: str) -> None:
    bus = RedisStreamsBus(prefix=prefix, maxlen=100)
    await bus.publish(messages(1000))  # 1000 trades on one stream
    length = await bus.redis.xlen(bus.stream_key("trades.BTC-PERP"))
    await bus.close()
    assert 100 <= length < 300  # "~": whole radix-tree nodes are trimmed, so a little over maxlen stays


async def test_entries_left_pending_by_a_dead_instance_are_claimed_by_another(prefix: str) -> None:
    publisher = RedisStreamsBus(prefix=prefix)
    records = trading_records(("BTC-PERP",), 6)
    serializer = EventSerializer()
    await publisher.publish([e for record in records for e in serializer.envelopes(record)])
    await publisher.close()

    dead = RedisStreamsBus(prefix=prefix, instance="a", block_ms=50, discover_interval=0.05)
    subscription = dead.subscribe("trades.BTC-PERP", "claims", StartPosition.EARLIEST)
    got = await take(subscription, 4)
    await dead.ack(*got[:1])  # "a" read all 6 in one batch, acknowledged 1, and dies
    await subscription.aclose()  # type: ignore[attr-defined]
    await dead.close()

    survivor = RedisStreamsBus(
        prefix=prefix, instance="b", block_ms=50, discover_interval=0.05, claim_idle_ms=200
    )
    await asyncio.sleep(0.3)  # the entries of "a" are now idle longer than claim_idle_ms
    subscription = survivor.subscribe("trades.BTC-PERP", "claims", StartPosition.EARLIEST)
    rest = await take(subscription, 5)
    await survivor.ack(*rest)
    await subscription.aclose()  # type: ignore[attr-defined]
    pending = await survivor.redis.xpending(survivor.stream_key("trades.BTC-PERP"), "claims")
    await survivor.close()

    trades = seqs_on(records, "trades.BTC-PERP")
    assert len(trades) == 6
    assert [d.envelope.seq for d in rest] == trades[1:]
    assert all(d.redelivered for d in rest)  # claimed from "a", not new entries
    assert pending["pending"] == 0
