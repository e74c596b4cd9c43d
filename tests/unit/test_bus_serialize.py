from __future__ import annotations

from decimal import Decimal

import msgspec

from tests.fixtures.bus_records import BASE_TS, BusMarkets, perp_spec
from tradehall.bus.envelope import SCHEMA_VERSION, decode_envelope, encode_envelope, iso_time
from tradehall.bus.serialize import EventSerializer
from tradehall.bus.topics import Route, route_of
from tradehall.domain.commands import CreateMarket, MarkPrice, OpenAccount, SettleMarket
from tradehall.domain.enums import MarketKind, Outcome
from tradehall.domain.events import (
    BalanceChanged,
    BookChanged,
    MarketSettled,
    MarketVoided,
    OrderAmended,
    OrderFilled,
    PositionChanged,
)
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord

BINARY = MarketSpec(
    symbol="RAIN-YES",
    kind=MarketKind.BINARY,
    base="RAIN",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("1"),
)


def test_envelopes_carry_seq_index_type_correlation_and_time() -> None:
    serializer = EventSerializer()
    journal = BusMarkets()
    for record in journal.setup():
        serializer.envelopes(record)
    record = journal.crossing_order("BTC-PERP", lots=25)
    seq = record.seq
    envelopes = serializer.envelopes(record)

    assert [e.id for e in envelopes] == [f"{seq}:{index}" for index in range(len(record.events))]
    assert [e.type for e in envelopes] == [type(event).__name__ for event in record.events]
    assert [(e.type, e.topic, e.key) for e in envelopes] == [
        ("OrderAccepted", "orders.BTC-PERP", "BTC-PERP"),
        ("TradeExecuted", "trades.BTC-PERP", "BTC-PERP"),
        ("OrderFilled", "orders.BTC-PERP", "BTC-PERP"),
        ("OrderFilled", "orders.BTC-PERP", "BTC-PERP"),
        ("BookChanged", "market-data.book-ticks", "BTC-PERP"),
        ("BalanceChanged", "accounts", "maker"),
        ("BalanceChanged", "accounts", "system:fees"),
        ("BalanceChanged", "accounts", "taker"),
        ("PositionChanged", "accounts", "maker"),
        ("PositionChanged", "accounts", "taker"),
    ]
    first = envelopes[0]
    assert (first.seq, first.index, first.schema_version) == (seq, 0, SCHEMA_VERSION)
    assert first.correlation_id == f"c-{seq}"
    assert first.ts == BASE_TS + seq * 1_000
    assert first.time == f"2026-01-01T00:00:00.{seq * 1_000:09d}Z"


def test_ticks_lots_and_minor_units_become_decimal_strings_with_the_market_spec() -> None:
    serializer = EventSerializer([perp_spec("BTC-PERP")])
    journal = BusMarkets()
    journal.setup()
    accepted, trade, _maker, taker, *_rest = serializer.envelopes(journal.crossing_order("BTC-PERP", lots=25))

    assert accepted.payload["price"] == "100000.5"
    assert accepted.payload["quantity"] == "0.025"
    assert accepted.payload["stop_price"] is None
    assert trade.payload["price"] == "100000.5"
    assert trade.payload["quantity"] == "0.025"
    assert taker.payload["fee"] == "1.26"  # 0.0005 x 2500.0125 USD = 1.25000625, rounded up to the cent
    assert taker.payload["realized_pnl"] == "0.00"
    assert taker.payload["filled_quantity"] == "0.025"
    assert "event" not in taker.payload


def test_position_book_and_amend_conversions() -> None:
    serializer = EventSerializer([perp_spec("BTC-PERP")])
    position = serializer.payload(
        PositionChanged(
            account_id="a", market="BTC-PERP", quantity=-30, cost=-6_000_000, realized_pnl=-1234, margin=15
        )
    )
    assert position == {
        "account_id": "a",
        "market": "BTC-PERP",
        "quantity": "-0.03",
        "cost": "-3000",
        "realized_pnl": "-12.34",
        "margin": "0.15",
    }
    book = serializer.payload(
        BookChanged(
            market="BTC-PERP", sequence=7, bids=((200_000, 5),), asks=((200_003, 0),), best_bid=200_000
        )
    )
    assert book == {
        "market": "BTC-PERP",
        "sequence": 7,
        "bids": [["100000", "0.005"]],
        "asks": [["100001.5", "0"]],
        "best_bid": "100000",
        "best_ask": None,
    }
    amended = serializer.payload(
        OrderAmended(
            order_id=4, account_id="a", market="BTC-PERP", price=None, quantity=2, priority_lost=False, ts=1
        )
    )
    assert (amended["price"], amended["quantity"]) == (None, "0.002")


def test_balances_use_their_currency_and_report_available() -> None:
    serializer = EventSerializer(currency_decimals={"USD": 2, "BTC": 8})
    usd = serializer.payload(
        BalanceChanged(account_id="a", currency="USD", total=150_025, held=25, delta=-5, reason="fee")
    )
    assert (usd["total"], usd["held"], usd["available"], usd["delta"]) == (
        "1500.25",
        "0.25",
        "1500.00",
        "-0.05",
    )
    btc = serializer.payload(
        BalanceChanged(account_id="a", currency="BTC", total=5, held=0, delta=5, reason="x")
    )
    assert btc["total"] == "0.00000005"
    unknown = serializer.payload(
        BalanceChanged(account_id="a", currency="XYZ", total=1, held=0, delta=1, reason="x")
    )
    assert unknown["total"] == "0.00000001"


def test_settlement_and_void_pay_in_the_quote_currency() -> None:
    serializer = EventSerializer([BINARY])
    settled = serializer.payload(
        MarketSettled(market="RAIN-YES", outcome=Outcome.YES, payouts=(("a", 1000), ("b", 0)), ts=1)
    )
    assert settled["payouts"] == [["a", "10.00"], ["b", "0.00"]]
    assert settled["outcome"] == "yes"
    voided = serializer.payload(MarketVoided(market="RAIN-YES", refunds=(("a", 37),), ts=1))
    assert voided["refunds"] == [["a", "0.37"]]


def test_market_created_teaches_the_serializer_its_spec() -> None:
    serializer = EventSerializer()
    serializer.envelopes(BusMarkets().record(CreateMarket(spec=BINARY)))
    assert [spec.symbol for spec in serializer.specs] == ["RAIN-YES"]
    record = JournalRecord(
        seq=2,
        ts=BASE_TS,
        command=SettleMarket(market="RAIN-YES", outcome=Outcome.NO),
        events=(MarketSettled(market="RAIN-YES", outcome=Outcome.NO, payouts=(("a", 250),), ts=1),),
    )
    (envelope,) = serializer.envelopes(record)
    assert envelope.payload["payouts"] == [["a", "2.50"]]
    assert envelope.topic == "markets"


def test_an_unknown_market_is_published_with_raw_integers_marked_as_such() -> None:
    serializer = EventSerializer()
    journal = BusMarkets(("NEW-PERP",))
    journal.setup()  # the serializer never sees these records, so it never learns NEW-PERP's spec
    _accepted, trade, *_rest = serializer.envelopes(journal.crossing_order("NEW-PERP"))
    assert trade.payload["price"] == 200_001
    assert trade.payload["units"] == "raw"


def test_envelope_json_round_trip_keeps_decimal_strings() -> None:
    serializer = EventSerializer([perp_spec("BTC-PERP")])
    journal = BusMarkets()
    journal.setup()
    envelope = serializer.envelopes(journal.crossing_order("BTC-PERP"))[1]
    data = encode_envelope(envelope)
    assert b'"price":"100000.5"' in data
    assert decode_envelope(data) == envelope


def test_iso_time_keeps_nanoseconds() -> None:
    assert iso_time(1_767_225_600_123_456_789) == "2026-01-01T00:00:00.123456789Z"


# Stand-ins with the names and fields of events the engine added later: the bus handles them by name,
# so a newer engine never stalls the publisher.
class QuoteUpdated(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="event"):
    market: str
    bid: int | None
    ask: int | None
    last: int | None
    source: str
    ts: int


class FundingPaid(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="event"):
    market: str
    rate_ppm: int
    mark: int
    payments: tuple[tuple[str, int], ...]
    ts: int


class AssessmentUpdated(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="event"):
    account_id: str
    equity: int
    peak_equity: int
    trading_days: int
    ts: int


class SomethingNew(msgspec.Struct, frozen=True, kw_only=True, tag=True, tag_field="event"):
    account_id: str
    amount: int


def test_events_added_later_are_routed_and_converted_by_name() -> None:
    command = MarkPrice(market="BTC-PERP", price=Decimal(1))
    serializer = EventSerializer([perp_spec("BTC-PERP")])
    quote = QuoteUpdated(market="BTC-PERP", bid=200_000, ask=200_001, last=None, source="binance", ts=1)
    assert route_of(quote, command) == Route("market-data.binance-ticks", "BTC-PERP")  # type: ignore[arg-type]
    assert serializer.payload(quote) == {  # type: ignore[arg-type]
        "market": "BTC-PERP",
        "bid": "100000",
        "ask": "100000.5",
        "last": None,
        "source": "binance",
        "ts": 1,
    }

    funding = FundingPaid(market="BTC-PERP", rate_ppm=125, mark=200_000, payments=(("a", -1_050),), ts=1)
    assert route_of(funding, command) == Route("markets", "BTC-PERP")  # type: ignore[arg-type]
    paid = serializer.payload(funding)  # type: ignore[arg-type]
    assert (paid["rate"], paid["mark"], paid["payments"]) == ("0.000125", "100000", [["a", "-10.50"]])

    serializer.envelopes(BusMarkets().record(OpenAccount(account_id="eu", owner="eu")))
    updated = AssessmentUpdated(
        account_id="eu", equity=1_000_050, peak_equity=1_000_100, trading_days=3, ts=1
    )
    assert route_of(updated, command) == Route("accounts", "eu")  # type: ignore[arg-type]
    converted = serializer.payload(updated)  # type: ignore[arg-type]
    assert (converted["equity"], converted["peak_equity"], converted["trading_days"]) == (
        "10000.50",
        "10001.00",
        3,
    )

    unknown = SomethingNew(account_id="x", amount=5)
    assert route_of(unknown, command) == Route("accounts", "x")  # type: ignore[arg-type]
    assert serializer.payload(unknown) == {"account_id": "x", "amount": 5}  # type: ignore[arg-type]


def test_a_spot_fill_carries_its_cash_and_a_perp_fill_none() -> None:
    spot = MarketSpec(
        symbol="BTC-USD",
        kind=MarketKind.SPOT,
        base="BTC",
        quote="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.0001"),
    )
    serializer = EventSerializer([spot, perp_spec("BTC-PERP")])
    fill = {
        "order_id": 1,
        "account_id": "bob",
        "trade_id": 1,
        "side": "buy",
        "price": 10_005,
        "quantity": 3,
        "fee": 0,
        "liquidity": "taker",
        "realized_pnl": 0,
        "filled_quantity": 3,
        "status": "filled",
        "ts": 1,
    }
    paid = serializer.payload(msgspec.convert({**fill, "market": "BTC-USD", "cash": 4}, OrderFilled))
    assert paid["cash"] == "0.04"  # 3.0015 cents rounded up
    perp = serializer.payload(msgspec.convert({**fill, "market": "BTC-PERP"}, OrderFilled))
    assert "cash" not in perp
