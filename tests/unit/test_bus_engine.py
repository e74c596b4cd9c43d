"""The publisher fed by the real engine: commands → engine events → journal records → bus."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradehall.bus.inproc import InProcessBus
from tradehall.bus.position import MemoryPositionStore
from tradehall.bus.publisher import BusPublisher
from tradehall.bus.serialize import EventSerializer
from tradehall.bus.source import MemoryJournalSource
from tradehall.domain.commands import AnyCommand, CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, EngineConfig
from tradehall.journal.records import JournalRecord

SPEC = MarketSpec(
    symbol="BTC-USD",
    kind=MarketKind.SPOT,
    base="BTC",
    quote="USD",
    tick_size=Decimal("0.5"),
    lot_size=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
)
COMMANDS: list[AnyCommand] = [
    CreateMarket(spec=SPEC, ts=1, correlation_id="create"),
    OpenAccount(account_id="alice", owner="alice", ts=2),
    OpenAccount(account_id="bob", owner="bob", ts=3),
    Deposit(account_id="alice", amount=Decimal("100000"), ts=4),
    Deposit(account_id="bob", amount=Decimal("1"), currency="BTC", ts=5),
    PlaceOrder(
        account_id="bob",
        market="BTC-USD",
        side=OrderSide.SELL,
        quantity=Decimal("0.5"),
        price=Decimal("50000"),
        ts=6,
    ),
    PlaceOrder(
        account_id="alice",
        market="BTC-USD",
        side=OrderSide.BUY,
        quantity=Decimal("0.2"),
        price=Decimal("50001"),
        ts=7,
        correlation_id="alice-buy",
    ),
]


def journal() -> list[JournalRecord]:
    engine = Engine(EngineConfig())
    records = []
    for seq, command in enumerate(COMMANDS, start=1):
        events = tuple(engine.apply(command))
        record = JournalRecord(seq=seq, ts=command.ts, command=command, events=events)
        # What the journal stores and the publisher reads back.
        records.append(msgspec.msgpack.decode(msgspec.msgpack.encode(record), type=JournalRecord))
    return records


async def test_engine_events_reach_their_topics_as_decimal_strings() -> None:
    bus = InProcessBus()
    source = MemoryJournalSource(journal())
    publisher = BusPublisher(bus, source, MemoryPositionStore())
    await publisher.start()
    await publisher.wait_published(len(COMMANDS))
    await publisher.stop()

    (trade,) = bus.messages("trades.BTC-USD")
    assert trade.correlation_id == "alice-buy"
    assert (trade.seq, trade.type) == (7, "TradeExecuted")
    assert (trade.payload["price"], trade.payload["quantity"]) == ("50000", "0.2")

    fills = [m for m in bus.messages("orders.BTC-USD") if m.type == "OrderFilled"]
    assert [(f.payload["account_id"], f.payload["fee"]) for f in fills] == [
        ("bob", "0.00"),
        ("alice", "10.00"),
    ]

    alice = [m.payload for m in bus.messages("accounts") if m.key == "alice" and m.type == "BalanceChanged"]
    assert alice[-1]["currency"] == "USD"
    assert (alice[-1]["total"], alice[-1]["delta"]) == ("89990.00", "-10010.00")
    position = next(
        m.payload for m in bus.messages("accounts") if m.type == "PositionChanged" and m.key == "alice"
    )
    assert (position["quantity"], position["cost"]) == ("0.2", "10000")

    books = [m.payload for m in bus.messages("market-data.book-ticks")]
    assert books[-1]["asks"] == [["50000", "0.3"]]
    assert bus.topics() == [
        "accounts",
        "market-data.book-ticks",
        "markets",
        "orders.BTC-USD",
        "trades.BTC-USD",
    ]


def test_every_engine_event_of_a_session_serializes_to_json() -> None:
    serializer = EventSerializer()
    envelopes = [e for record in journal() for e in serializer.envelopes(record)]
    assert len(envelopes) == sum(len(r.events) for r in journal())
    assert all("units" not in e.payload for e in envelopes)  # every market was known when needed
