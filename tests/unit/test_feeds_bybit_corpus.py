"""Bybit v5 public topics on real payloads (tests/data/feeds/bybit, sources in its README): each
sample goes through `BybitFeed.handle_message` (or the REST parser) and the exact quote, trade or
book it produces is asserted, values read off the payload by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from tradehall.marketdata.bybit import BybitFeed, check_depth, parse_rest_orderbook
from tradehall.marketdata.models import BookSnapshot, FeedEvent, Quote, TradeTick

D = Decimal
RECV = 1_800_000_000_000_000_000
MS = 1_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "bybit"


def sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def feed_for(symbol: str = "BTCUSDT", category: str = "spot") -> tuple[BybitFeed, list[FeedEvent]]:
    events: list[FeedEvent] = []
    feed = BybitFeed([symbol], events.append, httpx.AsyncClient(), category=category, clock_ns=lambda: RECV)  # type: ignore[arg-type]
    return feed, events


def quote(bid: str, bid_size: str, ask: str, ask_size: str, ts_ms: int) -> Quote:
    return Quote(
        source="bybit",
        instrument="BTCUSDT",
        bid=D(bid),
        bid_size=D(bid_size),
        ask=D(ask),
        ask_size=D(ask_size),
        exchange_ts=ts_ms * MS,
        receive_ts=RECV,
    )


def test_orderbook_snapshot() -> None:
    feed, events = feed_for()
    assert feed.handle_message(sample("ws_orderbook_snapshot_nautilus.json")) == []
    snapshot, top = events
    assert snapshot == BookSnapshot(
        source="bybit",
        instrument="BTCUSDT",
        bids=((D("27450.00"), D("0.500")), (D("27449.50"), D("1.000"))),
        asks=((D("27451.00"), D("0.750")), (D("27451.50"), D("0.900"))),
        sequence=123456789,
        exchange_ts=1709891679000 * MS,
        receive_ts=RECV,
    )
    assert top == quote("27450.00", "0.500", "27451.00", "0.750", 1709891679000)


def test_orderbook_delta_sets_absolute_sizes_and_zero_removes() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_orderbook_snapshot_nautilus.json"))
    assert feed.handle_message(sample("ws_orderbook_delta_nautilus.json")) == []
    assert events[-1] == quote("27450.00", "0.400", "27451.50", "0.900", 1709891679500)
    assert feed.books["BTCUSDT"].seq == 123456790


def test_a_delta_whose_u_does_not_follow_resyncs() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_orderbook_snapshot_nautilus.json"))
    feed.handle_message(sample("ws_orderbook_delta_nautilus.json"))
    count = len(events)
    assert feed.handle_message(sample("ws_orderbook_delta_nautilus.json")) == ["BTCUSDT"]
    assert len(events) == count
    assert feed.resyncs_by_reason == {"sequence_gap": 1}
    assert feed.errors_by_kind == {"sequence_gap": 1}
    # the next snapshot (Bybit's answer to the resubscription) restores the book
    feed.handle_message(sample("ws_orderbook_snapshot_nautilus.json"))
    assert events[-1] == quote("27450.00", "0.500", "27451.00", "0.750", 1709891679000)


def test_a_delta_before_any_snapshot_waits() -> None:
    feed, events = feed_for("SOLUSDT_SOL/USDT")
    assert feed.handle_message(sample("ws_orderbook_delta_docs_spread.json")) == []
    assert events == []
    assert feed.messages == 1 and feed.errors == 0


def test_public_trade() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_public_trade_docs.json"))
    assert events == [
        TradeTick(
            source="bybit",
            instrument="BTCUSDT",
            price=D("16578.50"),
            size=D("0.001"),
            side="buy",
            trade_id="20f43950-d8dd-5b31-9112-a178eb6023af",
            exchange_ts=1672304486865 * MS,
            receive_ts=RECV,
        )
    ]


def test_linear_ticker_without_a_book_is_the_quote_and_deltas_merge() -> None:
    feed, events = feed_for(category="linear")
    feed.handle_message(sample("ws_tickers_linear_nautilus.json"))
    expected = Quote(
        source="bybit",
        instrument="BTCUSDT",
        bid=D("17215.50"),
        bid_size=D("84.489"),
        ask=D("17216.00"),
        ask_size=D("83.020"),
        last=D("17216.00"),
        exchange_ts=1673272861686 * MS,
        receive_ts=RECV,
        volume_24h=D("91705.276"),
    )
    assert events == [expected]
    # a delta naming only the fields that changed keeps the others
    delta = orjson.loads(sample("ws_tickers_linear_nautilus.json"))
    delta["type"] = "delta"
    delta["data"] = {"symbol": "BTCUSDT", "lastPrice": "17216.50"}
    feed.handle_message(orjson.dumps(delta))
    last = events[-1]
    assert isinstance(last, Quote)
    assert (last.bid, last.ask, last.last, last.volume_24h) == (
        D("17215.50"),
        D("17216.00"),
        D("17216.50"),
        D("91705.276"),
    )


def test_control_frames() -> None:
    feed, events = feed_for()
    feed.handle_message(sample("ws_ack_subscribe_nautilus.json"))
    feed.handle_message(sample("ws_pong_docs.json"))
    feed.handle_message(sample("ws_subscribe_failure_nautilus.json"))
    assert events == []
    assert feed.messages == 0
    assert feed.ignored_by_type == {"pong": 1, "subscribe": 1}
    assert feed.errors_by_kind == {"api_error": 1}


def test_rest_orderbook() -> None:
    payload = orjson.loads(sample("rest_orderbook_nautilus.json"))
    assert parse_rest_orderbook(payload, "BTCUSDT", RECV) == quote(
        "27450.50", "1.500", "27451.00", "1.200", 1709891679000
    )


def test_subscriptions_are_batched_and_depth_checked() -> None:
    feed, _ = feed_for()
    assert [orjson.loads(m)["args"] for m in feed.subscribe_messages()] == [
        ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "tickers.BTCUSDT"]
    ]
    assert feed.ws_url == "wss://stream.bybit.com/v5/public/spot"
    with pytest.raises(ValueError, match="depth 25"):
        check_depth("spot", 25)
