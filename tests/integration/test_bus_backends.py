"""The bus on real brokers: Redis Streams and NATS JetStream on 127.0.0.1, Kafka from a test broker.

Each test uses its own uuid prefix (streams, subjects, topics) and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.fixtures.bus_records import BusMarkets, messages, positions_on, seqs_on, trading_records
from tests.integration.bus_proxy import TcpProxy
from tests.integration.kafka_broker import KafkaTestBroker, kafka_test_broker
from tradehall.bus.consumer import Deduper
from tradehall.bus.kafka import KafkaBus
from tradehall.bus.nats import NatsJetStreamBus
from tradehall.bus.position import FilePositionStore, MemoryPositionStore
from tradehall.bus.protocol import Delivery, EventBus, StartPosition
from tradehall.bus.publisher import BusPublisher
from tradehall.bus.redis_streams import RedisStreamsBus
from tradehall.bus.source import MemoryJournalSource

pytestmark = [pytest.mark.services, pytest.mark.timeout(90)]

MARKETS = ("BTC-PERP", "ETH-PERP", "SOL-PERP")


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[KafkaTestBroker]:
    with kafka_test_broker() as broker:
        yield broker


@dataclass
class Backend:
    name: str
    prefix: str
    factory: Callable[[str | None], EventBus]
    created: list[EventBus] = field(default_factory=list)
    broker: KafkaTestBroker | None = None

    def make(self, address: str | None = None) -> EventBus:
        """A bus on this test's prefix; `address` points it elsewhere (a proxy) instead of the broker."""
        bus = self.factory(address)
        self.created.append(bus)
        return bus


@pytest.fixture(params=["redis", "nats", "kafka"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    kit: Backend
    if request.param == "redis":
        require_service("redis")
        kit = Backend(
            "redis",
            prefix,
            lambda address: RedisStreamsBus(
                address or "redis://127.0.0.1:6379/0",
                prefix=prefix,
                block_ms=100,
                discover_interval=0.1,
                socket_timeout=1.0,
            ),
        )
    elif request.param == "nats":
        require_service("nats")
        kit = Backend(
            "nats",
            prefix,
            lambda address: NatsJetStreamBus(
                address or "nats://127.0.0.1:4222", prefix=prefix, ack_wait=1.0, ack_timeout=1.0
            ),
        )
    else:
        broker: KafkaTestBroker = request.getfixturevalue("kafka_broker")
        kit = Backend(
            "kafka",
            prefix,
            lambda address: KafkaBus(address or broker.bootstrap, prefix=prefix, publish_timeout=2.0),
            broker=broker,
        )
    yield kit
    for bus in kit.created:
        await bus.close()
    cleaner = kit.factory(None)
    try:
        await cleaner.purge()  # type: ignore[attr-defined]
    finally:
        await cleaner.close()


async def publish_all(bus: EventBus, source: MemoryJournalSource, **options: object) -> BusPublisher:
    publisher = BusPublisher(bus, source, MemoryPositionStore(), **options)  # type: ignore[arg-type]
    await publisher.start()
    await publisher.wait_published(source.last_seq, timeout=30)
    await publisher.stop()
    return publisher


async def collect(subscription: AsyncIterator[Delivery], count: int, timeout: float = 20.0) -> list[Delivery]:
    result: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            result.append(delivery)
            if len(result) == count:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        pytest.fail(f"got {len(result)} of {count} deliveries in {timeout}s")
    return result


async def close(subscription: AsyncIterator[Delivery]) -> None:
    await subscription.aclose()  # type: ignore[attr-defined]


async def test_one_markets_events_arrive_in_journal_order(backend: Backend) -> None:
    records = trading_records(MARKETS, 60)
    source = MemoryJournalSource(records)
    await publish_all(backend.make(), source, batch_max=25)

    consumer_bus = backend.make()
    subscription = consumer_bus.subscribe("trades.*", "ordering", StartPosition.EARLIEST)
    deliveries = await collect(subscription, 60)  # one trade per crossing order
    await consumer_bus.ack(*deliveries)
    await close(subscription)

    for market in MARKETS:
        seqs = [d.envelope.seq for d in deliveries if d.envelope.key == market]
        assert seqs == seqs_on(records, f"trades.{market}")
    expected_sol = positions_on(records, "orders.SOL-PERP")
    assert len(expected_sol) == 1 + 20 * 3  # the maker's order, then 20 orders x (accepted + 2 fills)
    orders = consumer_bus.subscribe("orders.SOL-PERP", "ordering-orders", StartPosition.EARLIEST)
    sol = await collect(orders, len(expected_sol))
    await close(orders)
    assert [d.envelope.position for d in sol] == expected_sol
    assert {d.envelope.topic for d in sol} == {"orders.SOL-PERP"}


async def test_no_event_is_lost_when_the_publisher_is_killed_and_restarted(
    backend: Backend, tmp_path: Path
) -> None:
    journal = BusMarkets(MARKETS)
    records = journal.setup() + journal.orders(30)
    source = MemoryJournalSource(records)
    store = FilePositionStore(tmp_path / "bus-position.json")
    first = BusPublisher(backend.make(), source, store, batch_max=8, save_interval=0.0)
    await first.start()
    await first.wait_published(records[20].seq, timeout=30)
    await first.kill()
    saved = store.load()
    assert saved is not None and 8 <= saved.seq <= first.published_seq

    records += journal.orders(30)
    source.extend(records[-30:])
    second = BusPublisher(backend.make(), source, store, batch_max=8)
    await second.start()
    await second.wait_published(journal.seq, timeout=30)
    await second.stop()

    consumer_bus = backend.make()
    subscription = consumer_bus.subscribe("trades.*", "crash", StartPosition.EARLIEST)
    deduper = Deduper()
    unique: list[Delivery] = []

    async def read_until_complete() -> None:
        async for delivery in subscription:
            if deduper.is_new(delivery.envelope):
                unique.append(delivery)
            await consumer_bus.ack(delivery)
            if len(unique) == 60:
                return

    try:
        await asyncio.wait_for(read_until_complete(), 30)
    except TimeoutError:
        pytest.fail(f"{len(unique)} unique of 60, {deduper.duplicates} duplicates: {deduper.seen}")
    await close(subscription)
    for market in MARKETS:
        assert [d.envelope.seq for d in unique if d.envelope.key == market] == seqs_on(
            records, f"trades.{market}"
        )


async def test_a_consumer_group_resumes_after_its_last_ack_and_redeliveries_are_deduped(
    backend: Backend,
) -> None:
    journal = BusMarkets(("BTC-PERP",))
    records = journal.setup() + journal.orders(20)
    trades = seqs_on(records, "trades.BTC-PERP")
    assert len(trades) == 20
    source = MemoryJournalSource(records)
    await publish_all(backend.make(), source)
    deduper = Deduper()

    first_bus = backend.make()
    first = first_bus.subscribe("trades.BTC-PERP", "resume", StartPosition.EARLIEST)
    got = await collect(first, 8)
    assert all(deduper.is_new(d.envelope) for d in got)  # handled all 8...
    await first_bus.ack(*got[:5])  # ...but acknowledged only 5 before "crashing"
    await close(first)
    await first_bus.close()

    second_bus = backend.make()
    second = second_bus.subscribe("trades.BTC-PERP", "resume", StartPosition.EARLIEST)
    redelivered = await collect(second, 15)
    await second_bus.ack(*redelivered)
    await close(second)

    assert [d.envelope.seq for d in redelivered] == trades[5:]  # trades 6..20
    fresh = [d for d in redelivered if deduper.is_new(d.envelope)]
    assert deduper.duplicates == 3
    assert [d.envelope.seq for d in fresh] == trades[8:]

    third = second_bus.subscribe("trades.BTC-PERP", "resume", StartPosition.EARLIEST)
    late = journal.crossing_order("BTC-PERP")
    source.append(late)
    await publish_all(backend.make(), MemoryJournalSource([late]))
    (next_one,) = await collect(third, 1)
    await close(third)
    # everything acknowledged before is not delivered again
    assert [next_one.envelope.position] == positions_on([late], "trades.BTC-PERP")


async def test_a_broker_outage_fills_a_bounded_backlog_and_drains_when_it_returns(backend: Backend) -> None:
    proxy: TcpProxy | None = None
    if backend.name == "kafka":
        publisher_bus = backend.make()
    else:
        target_port = 6379 if backend.name == "redis" else 4222
        proxy = TcpProxy("127.0.0.1", target_port)
        await proxy.start()
        scheme = "redis" if backend.name == "redis" else "nats"
        publisher_bus = backend.make(f"{scheme}://127.0.0.1:{proxy.port}")
    journal = BusMarkets(MARKETS)
    records = journal.setup() + journal.orders(3)
    source = MemoryJournalSource(records)
    publisher = BusPublisher(
        publisher_bus,
        source,
        MemoryPositionStore(),
        backlog_limit=50,
        batch_max=10,
        retry_initial=0.05,
        retry_max=0.2,
        publish_timeout=3.0,
    )
    await publisher.start()
    await publisher.wait_published(journal.seq, timeout=30)
    assert publisher.healthy is True
    healthy_until = journal.seq

    if proxy is not None:
        await proxy.stop()
    else:
        assert backend.broker is not None
        backend.broker.stop()
    records += journal.orders(60)
    source.extend(records[-60:])
    assert messages(records[-60:]) > 50 * 4  # many times the backlog
    for _ in range(100):
        await asyncio.sleep(0.05)
        assert publisher.backlog <= 50
        if not publisher.healthy and publisher.overflows:
            break
    assert publisher.healthy is False
    assert publisher.overflows >= 1
    assert publisher.publish_errors >= 1
    assert publisher.published_seq < journal.seq

    if proxy is not None:
        await proxy.start()
    else:
        assert backend.broker is not None
        backend.broker.start()
    await publisher.wait_published(journal.seq, timeout=45)
    await publisher.stop()
    assert publisher.healthy is True
    assert source.reads >= 2

    consumer_bus = backend.make()
    subscription = consumer_bus.subscribe("trades.*", "outage", StartPosition.EARLIEST)
    deduper = Deduper()
    unique: list[Delivery] = []
    # the test broker keeps nothing across a kill -9: on Kafka only the trades after the outage count
    first_trade = 0 if backend.name != "kafka" else healthy_until + 1
    expected = [r for r in records if r.seq >= first_trade]
    expected_trades = sum(len(seqs_on(expected, f"trades.{market}")) for market in MARKETS)
    assert expected_trades == (63 if backend.name != "kafka" else 60)

    async def read_until_complete() -> None:
        async for delivery in subscription:
            if delivery.envelope.seq >= first_trade and deduper.is_new(delivery.envelope):
                unique.append(delivery)
            await consumer_bus.ack(delivery)
            if len(unique) == expected_trades:
                return

    try:
        await asyncio.wait_for(read_until_complete(), 30)
    except TimeoutError:
        pytest.fail(
            f"{len(unique)} unique of {expected_trades}, {deduper.duplicates} duplicates: {deduper.seen}"
        )
    await close(subscription)
    for market in MARKETS:
        assert [d.envelope.seq for d in unique if d.envelope.key == market] == seqs_on(
            expected, f"trades.{market}"
        )
    if proxy is not None:
        await proxy.stop()


async def test_republished_messages_are_dropped_by_their_id(backend: Backend) -> None:
    records = trading_records(("BTC-PERP",), 10)
    await publish_all(backend.make(), MemoryJournalSource(records))
    await publish_all(backend.make(), MemoryJournalSource(records))  # a publisher that lost its position

    consumer_bus = backend.make()
    subscription = consumer_bus.subscribe("trades.BTC-PERP", "republish", StartPosition.EARLIEST)
    deduper = Deduper()
    unique: list[Delivery] = []

    async def read(expected_raw: int) -> int:
        raw = 0
        async for delivery in subscription:
            raw += 1
            if deduper.is_new(delivery.envelope):
                unique.append(delivery)
            await consumer_bus.ack(delivery)
            if raw == expected_raw:
                break
        return raw

    if backend.name == "nats":
        # JetStream dropped the second copies itself (Nats-Msg-Id within the duplicate window).
        assert await asyncio.wait_for(read(10), 20) == 10
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read(1), 1.5)
        assert deduper.duplicates == 0
    else:
        assert await asyncio.wait_for(read(20), 20) == 20
        assert deduper.duplicates == 10
    await close(subscription)
    assert [d.envelope.seq for d in unique] == seqs_on(records, "trades.BTC-PERP")
    assert len(unique) == 10
