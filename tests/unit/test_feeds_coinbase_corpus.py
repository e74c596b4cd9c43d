"""Coinbase Advanced Trade channels on real payloads (tests/data/feeds/coinbase, sources in its
README): each sample goes through `CoinbaseFeed.handle_message` (or the REST parser) and the exact
book, quote or trade is asserted, values read off the payload by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import orjson

from tradehall.marketdata.coinbase import CoinbaseFeed, iso_ns, parse_product_book
from tradehall.marketdata.models import BookSnapshot, FeedEvent, Quote, TradeTick
from tradehall.marketdata.parsing import ns_from_iso

D = Decimal
RECV = 1_800_000_000_000_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "coinbase"


def sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def feed_for(symbol: str = "BTC-USD") -> tuple[CoinbaseFeed, list[FeedEvent]]:
    events: list[FeedEvent] = []
    return CoinbaseFeed([symbol], events.append, httpx.AsyncClient(), clock_ns=lambda: RECV), events


def test_iso_times_keep_all_nine_fractional_digits() -> None:
    assert iso_ns("2023-02-09T20:32:50.714964855Z") == ns_from_iso("2023-02-09T20:32:50Z") + 714_964_855
    assert iso_ns("2026-04-07T14:30:00.123456Z") == ns_from_iso("2026-04-07T14:30:00Z") + 123_456_000
    assert iso_ns("1970-01-01T00:00:00Z") == 0


def test_docs_snapshot() -> None:
    feed, events = feed_for()
    assert feed.handle_message(sample("ws_l2_data_snapshot_docs.json")) == []
    snapshot, top = events
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.bids == ((D("21921.73"), D("0.06317902")), (D("21921.3"), D("0.02")))
    assert snapshot.asks == ()
    assert top == Quote(
        source="coinbase",
        instrument="BTC-USD",
        bid=D("21921.73"),
        bid_size=D("0.06317902"),
        exchange_ts=iso_ns("2023-02-09T20:32:50.714964855Z"),
        receive_ts=RECV,
    )


def test_snapshot_then_update_with_absolute_quantities() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_l2_data_snapshot_nautilus.json"))
    snapshot = events[0]
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.asks == ((D("68901.00"), D("0.5")), (D("68901.50"), D("1.2")), (D("68902.00"), D("0.8")))
    assert feed.handle_message(sample("ws_l2_data_update_nautilus.json")) == []
    assert events[-1] == Quote(
        source="coinbase",
        instrument="BTC-USD",
        bid=D("68900.00"),
        bid_size=D("2.00000000"),
        ask=D("68901.50"),  # 68901.00 went to "0.00000000": removed
        ask_size=D("1.20000000"),
        exchange_ts=iso_ns("2026-04-07T14:30:01.456789Z"),
        receive_ts=RECV,
    )
    assert feed.resyncs == 0


def test_a_lost_message_of_the_connection_resyncs_every_live_book() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_l2_data_snapshot_nautilus.json"))  # sequence_num 0
    count = len(events)
    # sequence_num 5 after 0: four messages of the connection were lost
    assert feed.handle_message(sample("ws_market_trades_nautilus.json")) == ["BTC-USD"]
    assert feed.resyncs_by_reason == {"sequence_gap": 1}
    assert not feed.books["BTC-USD"].synced
    assert [e for e in events[count:] if isinstance(e, Quote)] == []  # trades still flow, no book quote
    assert feed.subscribe_messages()[0] == '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'
    assert feed.resubscribe_messages("BTC-USD") == [
        '{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}',
        '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}',
    ]


def test_market_trades_name_the_makers_side() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_market_trades_nautilus.json"))
    assert events == [
        TradeTick(
            source="coinbase",
            instrument="BTC-USD",
            price=D("68900.50"),
            size=D("0.00150000"),
            side="sell",  # the maker bought: the taker sold
            trade_id="995098700",
            exchange_ts=iso_ns("2026-04-07T14:30:02.789012Z"),
            receive_ts=RECV,
        ),
        TradeTick(
            source="coinbase",
            instrument="BTC-USD",
            price=D("68900.00"),
            size=D("0.05000000"),
            side="buy",
            trade_id="995098701",
            exchange_ts=iso_ns("2026-04-07T14:30:02.800000Z"),
            receive_ts=RECV,
        ),
    ]


def test_ticker_is_the_quote_without_a_book() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_ticker_nautilus.json"))
    assert events == [
        Quote(
            source="coinbase",
            instrument="BTC-USD",
            bid=D("68900.00"),
            bid_size=D("1.50000000"),
            ask=D("68901.00"),
            ask_size=D("0.50000000"),
            last=D("68900.50"),
            exchange_ts=iso_ns("2026-04-07T14:30:03.000000Z"),
            receive_ts=RECV,
            volume_24h=D("15328.12345678"),
        )
    ]


def test_heartbeats_subscriptions_and_errors_carry_no_data() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_subscriptions_nautilus.json"))
    feed.on_connect()
    feed.handle_message(sample("ws_heartbeats_nautilus.json"))
    feed.handle_message(orjson.dumps({"type": "error", "message": "Failed to subscribe"}))
    assert events == []
    assert feed.messages == 0
    assert feed.ignored_by_type == {"heartbeats": 1, "subscriptions": 1}
    assert feed.errors_by_kind == {"api_error": 1}


def test_rest_product_book() -> None:
    quote = parse_product_book(orjson.loads(sample("rest_product_book_nautilus.json")), "BTC-USD", RECV)
    assert quote == Quote(
        source="coinbase",
        instrument="BTC-USD",
        bid=D("68923.66"),
        bid_size=D("0.17189468"),
        ask=D("68923.67"),
        ask_size=D("0.16987193"),
        last=D("68923.665"),
        exchange_ts=iso_ns("2026-04-07T00:28:59.662782Z"),
        receive_ts=RECV,
    )
