"""Real Binance payloads (tests/data/feeds/binance, sources in its README) through the feed's own
handler and parsers; every expected value was read off the file by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tradehall.marketdata import binance_streams
from tradehall.marketdata.binance import (
    BinanceFeed,
    DepthSnapshot,
    DepthUpdate,
    decode_depth,
    parse_book_ticker,
    parse_depth_snapshot,
    parse_depth_update,
    parse_klines,
    unwrap,
)
from tradehall.marketdata.models import Candle, FeedEvent, Quote, TradeTick
from tradehall.marketdata.parsing import loads

D = Decimal
MS = 1_000_000
RECV = 1_700_000_000_000_000_000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "feeds" / "binance"


def raw(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def run(
    name: str, streams: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms")
) -> tuple[BinanceFeed, list[FeedEvent]]:
    seen: list[FeedEvent] = []
    feed = BinanceFeed(["BTCUSDT"], seen.append, httpx.AsyncClient(), streams=streams, clock_ns=lambda: RECV)
    feed.handle_message(raw(name))
    return feed, seen


def trade(symbol: str, price: str, size: str, side: str, trade_id: str, ts_ms: int) -> TradeTick:
    return TradeTick("binance", symbol, D(price), D(size), side, trade_id, ts_ms * MS, RECV)


TRADES = {
    "ws_trade_nautilus_spot_ethusdt.json": trade(
        "ethusdt", "4149.74000000", "0.43870000", "sell", "705291099", 1639351062243
    ),
    "ws_trade_nautilus_usdm_derived.json": trade("btcusdt", "0.001", "100", "sell", "5933014", 123456785),
    "ws_trade_docs_bnbbtc.json": trade("bnbbtc", "0.001", "100", "sell", "12345", 1672515782136),
    "ws_aggtrade_nautilus_spot_ethusdt.json": trade(
        "ethusdt", "1632.46000000", "0.34305000", "buy", "agg-226532", 1675759520847
    ),
    "ws_aggtrade_nautilus_usdm_docs.json": trade("btcusdt", "0.001", "100", "sell", "agg-5933014", 123456785),
    "ws_aggtrade_cc_spot_btcusdt.json": trade(
        "btcusdt", "58942.01000000", "0.00035600", "buy", "agg-640283266", 1616176861893
    ),
    "ws_aggtrade_cc_usdm_btcusdt.json": trade(
        "btcusdt", "58665.00", "0.043", "buy", "agg-389551486", 1616202009188
    ),
}


@pytest.mark.parametrize("name", sorted(TRADES))
def test_trade_and_agg_trade_messages(name: str) -> None:
    feed, seen = run(name, ("trade", "aggTrade", "bookTicker"))
    assert seen == [TRADES[name]]
    assert (feed.messages, feed.errors, feed.ignored_by_type) == (1, 0, {})


def candle(
    symbol: str, interval: str, t: int, close_t: int, ohlcv: tuple[str, ...], closed: bool, n: int, e: int
) -> Candle:
    o, h, low, c, v = (D(x) for x in ohlcv)
    return Candle("binance", symbol, interval, t * MS, close_t * MS, o, h, low, c, v, closed, n, e * MS, RECV)


KLINES = {
    "ws_kline_cc_spot_btcusdt_1m.json": candle(
        "btcusdt",
        "1m",
        1653818760000,
        1653818819999,
        ("29038.46000000", "29038.47000000", "29038.46000000", "29038.47000000", "0.20926000"),
        False,
        31,
        1653818762502,
    ),
    "ws_kline_cc_usdm_btcusdt_1M.json": candle(
        "btcusdt",
        "1M",
        1651363200000,
        1654041599999,
        ("37614.40", "40071.70", "26631.00", "29075.50", "13431981.671"),
        False,
        129025447,
        1653819041520,
    ),
    "ws_kline_cc_coinm_ethusd_perp_1m.json": candle(
        "ethusd_perp",
        "1m",
        1653818940000,
        1653818999999,
        ("1786.56", "1789.24", "1785.25", "1788.67", "401601"),
        False,
        763,
        1653818962599,
    ),
    "ws_kline_nautilus_usdm_closed.json": candle(
        "btcusdt",
        "1m",
        1638747660000,
        1638747719999,
        ("0.0010", "0.0025", "0.0010", "0.0020", "1000"),
        True,
        100,
        1638747660000,
    ),
    "ws_kline_tradingbots_btcusdt_5m.json": candle(
        "btcusdt",
        "5m",
        1631636700000,
        1631636999999,
        ("46686.15000000", "46686.15000000", "46668.45000000", "46673.53000000", "12.26168000"),
        False,
        582,
        1631636735735,
    ),
}


@pytest.mark.parametrize("name", sorted(KLINES))
def test_kline_messages_become_candles(name: str) -> None:
    feed, seen = run(name, ("kline_1m",))
    assert seen == [KLINES[name]]
    assert (feed.messages, feed.errors) == (1, 0)


def quote(
    symbol: str,
    bid: str | None,
    bid_size: str | None,
    ask: str | None,
    ask_size: str | None,
    *,
    last: str | None = None,
    ts_ms: int | None = None,
    volume: str | None = None,
) -> Quote:
    def d(x: str | None) -> Decimal | None:
        return None if x is None else D(x)

    return Quote(
        "binance",
        symbol,
        d(bid),
        d(ask),
        d(bid_size),
        d(ask_size),
        d(last),
        None if ts_ms is None else ts_ms * MS,
        RECV,
        d(volume),
    )


TICKERS = {
    "ws_ticker_cc_spot_ethusdt.json": quote(
        "ethusdt",
        "1792.83000000",
        "1.62740000",
        "1792.84000000",
        "20.29140000",
        last="1792.84000000",
        ts_ms=1653812650349,
        volume="471703.53110000",
    ),
    "ws_ticker_cc_usdm_ethusdt.json": quote(
        "ethusdt", None, None, None, None, last="1782.02", ts_ms=1653815205866, volume="1678290.411"
    ),
    "ws_ticker_nautilus_spot_docs.json": quote(
        "bnbbtc", "0.0024", "10", "0.0026", "100", last="0.0025", ts_ms=123456789, volume="10000"
    ),
    "ws_ticker_nautilus_usdm_btcusdt.json": quote(
        "btcusdt", None, None, None, None, last="16584.60000000", ts_ms=1672515782136, volume="122474.816"
    ),
}


@pytest.mark.parametrize("name", sorted(TICKERS))
def test_24h_ticker_messages_are_the_quote_without_a_book_stream(name: str) -> None:
    feed, seen = run(name, ("ticker", "trade"))
    assert seen == [TICKERS[name]]
    assert (feed.messages, feed.errors) == (1, 0)


def test_24h_ticker_beside_book_ticker_is_ignored_and_counted() -> None:
    feed, seen = run("ws_ticker_cc_spot_ethusdt.json", ("ticker", "bookTicker"))
    assert seen == []
    assert (feed.messages, feed.ignored_by_type) == (0, {"24hrTicker": 1})


BOOK_TICKERS = {
    "ws_bookticker_nautilus_spot_ethusdt.json": quote(
        "ethusdt", "4507.24000000", "2.35950000", "4507.25000000", "2.84570000", ts_ms=1646199228123
    ),
    "ws_bookticker_nautilus_usdm_docs.json": quote(
        "bnbusdt", "25.35190000", "31.21000000", "25.36520000", "40.66000000", ts_ms=1568014460893
    ),
    "ws_bookticker_cc_spot_btcusdt.json": quote(
        "btcusdt", "29010.90000000", "13.94302000", "29010.91000000", "3.99953000"
    ),
    "ws_bookticker_cc_usdm_ethusdt.json": quote(
        "ethusdt", "1778.54", "15.164", "1778.55", "7.289", ts_ms=1653817855289
    ),
}


@pytest.mark.parametrize("name", sorted(BOOK_TICKERS))
def test_book_ticker_messages(name: str) -> None:
    feed, seen = run(name)
    assert seen == [BOOK_TICKERS[name]]
    assert (feed.messages, feed.errors) == (1, 0)


def levels(*rows: tuple[str, str]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((D(p), D(q)) for p, q in rows)


DEPTHS = {
    "ws_depth_cc_spot_btcusdt.json": DepthUpdate(
        "btcusdt",
        11294093710,
        11294093726,
        levels(("35743.98000000", "0.00000000"), ("35743.87000000", "0.00001500")),
        levels(("35743.88000000", "0.24000000"), ("35743.97000000", "0.00000000")),
        1622363903670 * MS,
    ),
    "ws_depth_cc_usdm_btcusdt.json": DepthUpdate(
        "btcusdt",
        475776377463,
        475776380184,
        levels(("35729.77", "1.600"), ("35750.00", "5.106")),
        levels(("35819.20", "0.211"), ("35820.31", "0.001")),
        1622371244693 * MS,
    ),
    "ws_depth_nautilus_usdm_docs.json": DepthUpdate(
        "btcusdt", 157, 160, levels(("0.0024", "10")), levels(("0.0026", "100")), 123456789 * MS
    ),
}


@pytest.mark.parametrize("name", sorted(DEPTHS))
def test_depth_updates_by_the_fast_and_the_general_path(name: str) -> None:
    assert decode_depth(raw(name)) == DEPTHS[name]
    assert parse_depth_update(unwrap(loads(raw(name)))) == DEPTHS[name]


CONTROL = {
    "ws_ack_subscribe_docs.json": "ack",
    "ws_ack_unsubscribe_docs.json": "ack",
    "ws_ack_list_subscriptions_docs.json": "ack",
    "ws_ack_get_property_docs.json": "ack",
}


@pytest.mark.parametrize("name", sorted(CONTROL))
def test_acks_are_ignored_without_error_and_do_not_count_as_health(name: str) -> None:
    feed, seen = run(name)
    assert seen == []
    assert (feed.messages, feed.errors, feed.ignored_by_type) == (0, 0, {"ack": 1})
    assert feed.status().last_message_age_seconds is None


ERRORS = {
    "ws_error_unknown_property_docs.json": "stream error 0: Unknown property",
    "ws_error_expected_boolean_docs.json": "stream error 1: Invalid value type: expected Boolean",
    "ws_error_request_id_docs.json": (
        "stream error 2: Invalid request: request ID must be an unsigned integer"
    ),
    "ws_error_invalid_request_nautilus.json": "stream error 2: Invalid request",
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_frames_are_counted_as_errors(name: str) -> None:
    feed, seen = run(name)
    assert seen == []
    assert (feed.messages, feed.errors_by_kind, feed.ignored_by_type) == (0, {"api_error": 1}, {})
    error = binance_streams.error_frame(unwrap(loads(raw(name))))
    assert error is not None and error.detail == ERRORS[name]


@pytest.mark.parametrize(
    "name",
    [
        "ws_servershutdown_docs_wsapi.json",
        "ws_servershutdown_nautilus_streams.json",
        "ws_servershutdown_nautilus_trading.json",
    ],
)
def test_server_shutdown_asks_for_an_early_reconnect(name: str) -> None:
    feed, seen = run(name)
    assert seen == []
    assert (feed.server_shutdowns, feed.errors, feed.ignored_by_type) == (1, 0, {"serverShutdown": 1})
    assert feed._leave.is_set()


REST_TICKERS = {
    "rest_ticker24hr_nautilus_docs_bnbbtc.json": quote(
        "bnbbtc",
        "4.00000000",
        "100.00000000",
        "4.00000200",
        "100.00000000",
        last="4.00000200",
        ts_ms=1499869899040,
        volume="8913.30000000",
    ),
    "rest_ticker24hr_cryptovba_ethbtc.json": quote(
        "ethbtc",
        "0.03564100",
        "0.22300000",
        "0.03564800",
        "0.43200000",
        last="0.03564100",
        ts_ms=1551374992637,
        volume="380396.97600000",
    ),
    "rest_ticker24hr_binancenet_btcusdt.json": quote(
        "btcusdt",
        "47174.96000000",
        "0.65849000",
        "47174.97000000",
        "0.13802000",
        last="47174.97000000",
        ts_ms=1639734042763,
        volume="33136.69765000",
    ),
}


@pytest.mark.parametrize("name", sorted(REST_TICKERS))
def test_rest_ticker_24hr(name: str) -> None:
    assert binance_streams.parse_ticker_24h(loads(raw(name)), RECV) == REST_TICKERS[name]


def test_rest_book_ticker() -> None:
    assert parse_book_ticker(loads(raw("rest_bookticker_nautilus_btcusdt.json")), RECV) == quote(
        "btcusdt", "60741.67000000", "0.36580000", "60741.68000000", "0.45178000"
    )
    assert parse_book_ticker(loads(raw("rest_bookticker_nautilus_docs_ltcbtc.json")), RECV) == quote(
        "ltcbtc", "4.00000000", "431.00000000", "4.00000200", "9.00000000"
    )
    # USDⓈ-M adds the matching engine's `time`; the parser reads only `E`, so no exchange time here.
    assert parse_book_ticker(loads(raw("rest_bookticker_usdm_docs_btcusdt.json")), RECV) == quote(
        "btcusdt", "4.00000000", "431.00000000", "4.00000200", "9.00000000"
    )


def test_rest_depth_snapshots() -> None:
    docs = parse_depth_snapshot(loads(raw("rest_depth_nautilus_docs_1027024.json")))
    assert docs == DepthSnapshot(
        1027024, levels(("4.00000000", "431.00000000")), levels(("4.00000200", "12.00000000"))
    )
    capture = parse_depth_snapshot(loads(raw("rest_depth_cc_spot_btcusdt.json")))
    assert capture.last_update_id == 33933317943
    assert capture.bids == levels(
        ("23171.42000000", "0.03000000"), ("23171.16000000", "0.00070000"), ("23109.22000000", "0.00050000")
    )
    assert capture.asks == levels(
        ("23171.68000000", "0.00067000"), ("23171.69000000", "0.00047000"), ("23224.58000000", "0.04353000")
    )
    big = parse_depth_snapshot(loads(raw("rest_depth_nautilus_btcusdt.json")))
    assert (big.last_update_id, len(big.bids), len(big.asks)) == (14527958487, 10, 10)
    assert (big.bids[0], big.asks[0]) == (
        (D("60650.00000000"), D("0.00213000")),
        (D("60650.01000000"), D("0.61982000")),
    )


def test_rest_klines() -> None:
    rows = parse_klines(loads(raw("rest_klines_nautilus_btcusdt.json")))
    assert len(rows) == 10
    assert rows[0] == (
        1634943780000 * MS,
        D("60685.22000000"),
        D("60729.84000000"),
        D("60670.90000000"),
        D("60719.27000000"),
        D("21.63272000"),
    )
    assert rows[-1] == (1634944320000 * MS, *(D("60739.85000000"),) * 4, D("0.04734000"))
    docs_row = (
        1499040000000 * MS,
        D("0.01634790"),
        D("0.80000000"),
        D("0.01575800"),
        D("0.01577100"),
        D("148976.11427815"),
    )
    assert parse_klines(loads(raw("rest_klines_nautilus_docs_bnbbtc.json"))) == [docs_row]
    assert parse_klines(loads(raw("rest_klines_nautilus_usdm.json"))) == [docs_row]


def test_every_corpus_file_is_covered_and_listed_in_the_readme() -> None:
    covered = (
        set(TRADES)
        | set(KLINES)
        | set(TICKERS)
        | set(BOOK_TICKERS)
        | set(DEPTHS)
        | set(CONTROL)
        | set(ERRORS)
    )
    covered |= set(REST_TICKERS) | {
        f"ws_servershutdown_{x}.json" for x in ("docs_wsapi", "nautilus_streams", "nautilus_trading")
    }
    covered |= {
        "rest_bookticker_nautilus_btcusdt.json",
        "rest_bookticker_nautilus_docs_ltcbtc.json",
        "rest_bookticker_usdm_docs_btcusdt.json",
        "rest_depth_nautilus_docs_1027024.json",
        "rest_depth_cc_spot_btcusdt.json",
        "rest_depth_nautilus_btcusdt.json",
        "rest_klines_nautilus_btcusdt.json",
        "rest_klines_nautilus_docs_bnbbtc.json",
        "rest_klines_nautilus_usdm.json",
    }
    files = {path.name for path in CORPUS.glob("*.json")}
    assert files == covered
    readme = (CORPUS / "README.md").read_text()
    assert all(f"| {name} |" in readme for name in files)
