"""Kalshi's WebSocket channels on real payloads (tests/data/feeds/kalshi, sources in its README): each
sample goes through the feed's message handler; the quote or trade it produces is asserted with values
read off the payload by hand (cents → dollars, `ts` seconds or milliseconds, ISO times)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from tradehall.marketdata import kalshi
from tradehall.marketdata.config import Endpoints
from tradehall.marketdata.kalshi import KalshiFeed
from tradehall.marketdata.models import FeedEvent, Quote, TradeTick
from tradehall.marketdata.parsing import ns_from_iso

D = Decimal
RECV = 1_800_000_000_000_000_000
S = 1_000_000_000
MS = 1_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "kalshi"


def sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def feed_for(ticker: str) -> tuple[KalshiFeed, list[FeedEvent]]:
    events: list[FeedEvent] = []
    feed = KalshiFeed([ticker], events.append, httpx.AsyncClient(), clock_ns=lambda: RECV)
    return feed, events


def top(event: FeedEvent) -> tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]:
    assert isinstance(event, Quote)
    return event.bid, event.bid_size, event.ask, event.ask_size


SNAPSHOTS = [
    # YES bid = best YES bid; YES ask = 1 - best NO bid (size: that NO bid's size).
    ("orderbook_snapshot_nautilus.json", "KXBTC-25MAR15-B100000", (D("0.42"), D(13), D("0.44"), D(17))),
    # `yes_dollars`/`no_dollars` are read before the cent arrays.
    ("orderbook_snapshot_ssmd_schema.json", "KXBTCD-26FEB14-T100000", (D("0.46"), D(250), D("0.46"), D(300))),
    ("orderbook_snapshot_rust_sdk_test.json", "INXD-25JAN10-T17900", (D("0.51"), D(200), D("0.51"), D(150))),
    # YES bid 0.10 x 29 (top of ten YES levels); YES ask 1 - 0.89 (best of 57 NO levels) x 207.
    (
        "orderbook_snapshot_cpp_client_capture.json",
        "KXHIGHNY-26JUN24-T82",
        (D("0.10"), D(29), D("0.11"), D(207)),
    ),
]


@pytest.mark.parametrize(("name", "ticker", "expected"), SNAPSHOTS)
def test_orderbook_snapshot_samples(name: str, ticker: str, expected: tuple[Decimal, ...]) -> None:
    feed, events = feed_for(ticker)
    assert feed.handle_message(sample(name)) is None
    (quote,) = events
    assert top(quote) == expected
    assert feed.errors == 0


DELTAS = [
    (
        "orderbook_snapshot_ssmd_schema.json",
        "orderbook_delta_ssmd_schema.json",
        "KXBTCD-26FEB14-T100000",
        (D("0.46"), D(200), D("0.46"), D(300)),  # YES 0.46: 250 - 50
        ns_from_iso("2026-02-14T15:30:00Z"),
    ),
    (
        "orderbook_snapshot_rust_sdk_test.json",
        "orderbook_delta_rust_sdk_test.json",
        "INXD-25JAN10-T17900",
        (D("0.55"), D(50), D("0.51"), D(150)),  # a new YES bid of 50 at 0.55
        ns_from_iso("2025-01-10T12:00:00Z"),
    ),
    (
        "orderbook_snapshot_nautilus.json",
        "orderbook_delta_nautilus.json",
        "KXBTC-25MAR15-B100000",
        (D("0.42"), D(63), D("0.44"), D(17)),  # YES 0.42: 13 + 50; ask 1 - 0.56 (NO 17) unchanged
        1740853613 * S + 361842 * 1000,  # ISO `ts` 2025-03-01T18:26:53.361842Z, microseconds kept
    ),
    (
        "orderbook_snapshot_cpp_client_capture.json",
        "orderbook_delta_cpp_client_capture.json",
        "KXHIGHNY-26JUN24-T82",
        (D("0.10"), D(36), D("0.11"), D(207)),  # YES 0.10: 29 + 7
        1782316195033 * MS,  # `ts_ms` is preferred to the ISO `ts` (same instant, to the millisecond)
    ),
]


@pytest.mark.parametrize(("snapshot", "delta", "ticker", "expected", "stamp"), DELTAS)
def test_orderbook_delta_samples(
    snapshot: str, delta: str, ticker: str, expected: tuple[Decimal, ...], stamp: int
) -> None:
    feed, events = feed_for(ticker)
    body = orjson.loads(sample(snapshot))
    body["sid"] = orjson.loads(sample(delta))["sid"]
    feed.handle_message(orjson.dumps(body))
    assert feed.handle_message(sample(delta)) is None
    assert top(events[-1]) == expected
    assert isinstance(events[-1], Quote) and events[-1].exchange_ts == stamp


TICKERS = [
    (
        "ticker_ssmd_production.json",
        "KXRANKLISTGOOGLESEARCH-26JAN-BIA",
        (D("0.1100"), D("0.1200"), D("0.1200")),
        1732579880 * S,  # `ts` in seconds
    ),
    ("ticker_docs.json", "FED-23DEC-T3.00", (D("0.4500"), D("0.5300"), D("0.4800")), 1669149841000 * MS),
    (
        "ticker_rust_sdk_test.json",
        "INXD-25JAN10-T17900",
        (D("0.54"), D("0.56"), D("0.55")),
        1700000000000 * MS,  # an integer `ts` this large is milliseconds
    ),
]


@pytest.mark.parametrize(("name", "ticker", "prices", "stamp"), TICKERS)
def test_ticker_samples_quote_a_market_without_a_book(
    name: str, ticker: str, prices: tuple[Decimal, ...], stamp: int
) -> None:
    feed, events = feed_for(ticker)
    feed.handle_message(sample(name))
    (quote,) = events
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.ask, quote.last, quote.exchange_ts) == (*prices, stamp)


def test_ticker_on_a_market_with_a_live_book_only_sets_last() -> None:
    feed, events = feed_for("KXBTC-25MAR15-B100000")
    feed.handle_message(sample("orderbook_snapshot_nautilus.json"))
    ticker = orjson.loads(sample("ticker_docs.json"))
    ticker["msg"]["market_ticker"] = "KXBTC-25MAR15-B100000"
    feed.handle_message(orjson.dumps(ticker))
    assert len(events) == 1 and feed.books["KXBTC-25MAR15-B100000"].last == D("0.4800")


TICKERS_V2 = [
    ("ticker_v2_docs.json", "FED-23DEC-T3.00", (None, None, D("0.480")), 1669149841 * S),
    ("ticker_v2_rust_sdk_test.json", "INXD-25JAN10-T17900", (None, None, D("0.55")), 1700000000000 * MS),
    ("ticker_v2_python_client_test.json", "M1", (D("0.50"), D("0.52"), None), None),
]


@pytest.mark.parametrize(("name", "ticker", "prices", "stamp"), TICKERS_V2)
def test_ticker_v2_samples(
    name: str, ticker: str, prices: tuple[Decimal | None, ...], stamp: int | None
) -> None:
    feed, events = feed_for(ticker)
    feed.handle_message(sample(name))
    (quote,) = events
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.ask, quote.last, quote.exchange_ts) == (*prices, stamp)
    assert feed.errors == 0


def test_ticker_v2_fields_are_merged_across_partial_messages() -> None:
    feed, events = feed_for("M1")
    feed.handle_message(sample("ticker_v2_python_client_test.json"))  # bid 50, ask 52
    partial = orjson.loads(sample("ticker_v2_docs.json"))  # price only
    partial["msg"]["market_ticker"] = "M1"
    feed.handle_message(orjson.dumps(partial))
    assert isinstance(events[-1], Quote)
    assert (events[-1].bid, events[-1].ask, events[-1].last) == (D("0.50"), D("0.52"), D("0.480"))


TRADES = [
    (
        "trade_nautilus.json",
        TradeTick(
            "kalshi", "KXBTC-25MAR15-B100000", D("0.3600"), D("136.00"), "sell",
            "d91bc706-ee49-470d-82d8-11418bda6fed", 1741052641 * S, RECV,
        ),
    ),
    (
        "trade_ssmd_spec.json",
        TradeTick(
            "kalshi", "KXBTCD-26FEB14-T100000", D("0.5500"), D("10.00"), "buy",
            "f851595a-abcd-4321-9876-1234567890ab", 1707667200 * S, RECV,
        ),
    ),
    (
        "trade_rust_sdk_test.json",
        TradeTick(
            "kalshi", "MKT-1", D("0.55"), D(10), "buy", "trade-1", ns_from_iso("2025-01-10T12:00:00Z"), RECV,
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "trade"), TRADES)
def test_trade_samples(name: str, trade: TradeTick) -> None:
    feed, events = feed_for(trade.instrument)
    feed.handle_message(sample(name))
    assert events == [trade]
    assert feed.books[trade.instrument].last == trade.price


@pytest.mark.parametrize("name", ["control_subscribed_docs.json", "control_subscribed_rust_sdk_test.json"])
def test_subscription_acknowledgements_are_quiet(name: str) -> None:
    feed, events = feed_for("FED-23DEC-T3.00")
    assert feed.handle_message(sample(name)) is None
    assert events == [] and feed.errors == 0
    assert feed.messages == 0 and feed.ignored_by_type == {"subscribed": 1}


def test_hosts_are_configuration_with_kalshis_recommended_defaults() -> None:
    ends = Endpoints()
    assert ends.kalshi_rest_root == kalshi.REST_ROOT == "https://external-api.kalshi.com/trade-api/v2"
    assert ends.kalshi_ws_url == kalshi.WS_URL == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
    custom = Endpoints(kalshi_rest_root="https://demo-api.kalshi.co/trade-api/v2")
    assert custom.kalshi_rest_root == "https://demo-api.kalshi.co/trade-api/v2"


def test_rest_orderbook_sample() -> None:
    yes, no = kalshi.parse_orderbook(orjson.loads(sample("rest_orderbook_nautilus.json")))
    assert yes == [(D("0.3500"), D("200.00")), (D("0.4200"), D("13.00"))]
    assert no == [(D("0.5400"), D("400.00")), (D("0.5600"), D("17.00"))]
