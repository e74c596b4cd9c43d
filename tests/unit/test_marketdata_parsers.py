"""Every provider parser against payloads in that provider's format, with exact values."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from tradehall.marketdata import binance, coingecko, coinmarketcap, kalshi, polymarket
from tradehall.marketdata.models import MarketState
from tradehall.marketdata.parsing import (
    ErrorKind,
    FeedError,
    check_http,
    dec,
    dollars_from_cents,
    loads,
    ns_from_iso,
    ns_from_ms,
    ns_from_seconds,
    retry_after_seconds,
)

D = Decimal
RECV = 1_711_356_301_000_000_000

COINGECKO_SIMPLE = (
    b'{"bitcoin":{"usd":67187.3358936566,"usd_market_cap":1317802988326.25,"usd_24h_vol":31260929299.5248,'
    b'"usd_24h_change":3.63727894677354,"last_updated_at":1711356300}}'
)
CMC_LATEST = (
    b'{"data":{"BTC":{"id":1,"name":"Bitcoin","symbol":"BTC","slug":"bitcoin","cmc_rank":1,'
    b'"last_updated":"2018-08-09T21:56:28.000Z","quote":{"USD":{"price":6602.60701122,"volume_24h":4314444687.5194,'
    b'"percent_change_24h":4.37185,"market_cap":852164659250.2758,"last_updated":"2018-08-09T21:56:28.000Z"}}}},'
    b'"status":{"timestamp":"2025-10-13T00:00:34.078Z","error_code":0,"error_message":"","elapsed":10,'
    b'"credit_count":1,"notice":""}}'
)


# --- shared rules -------------------------------------------------------------------------------


def test_floats_are_read_through_str_so_no_binary_noise_appears() -> None:
    assert dec(67187.3358936566) == D("67187.3358936566")
    assert dec(0.1) == D("0.1")


def test_non_canonical_strings_parse() -> None:
    assert dec(".48") == D("0.48")
    assert dec("0.960") == D("0.960")


def test_garbage_number_is_a_parse_error() -> None:
    with pytest.raises(FeedError) as caught:
        dec("abc")
    assert caught.value.kind is ErrorKind.PARSE
    with pytest.raises(FeedError):
        dec("NaN")


def test_cents_become_dollars() -> None:
    assert dollars_from_cents(42) == D("0.42")
    assert dollars_from_cents(100) == D("1")
    with pytest.raises(FeedError):
        dollars_from_cents("4.5")


def test_time_units() -> None:
    assert ns_from_seconds(1711356300) == 1_711_356_300_000_000_000
    assert ns_from_ms(1711843200000) == 1_711_843_200_000_000_000
    assert ns_from_ms("1782753357257") == 1_782_753_357_257_000_000
    assert ns_from_iso("2018-08-09T21:56:28.000Z") == 1_533_851_788_000_000_000
    assert ns_from_iso("2022-11-22T20:44:01Z") == 1_669_149_841_000_000_000


def test_html_body_and_malformed_json_are_distinct_errors() -> None:
    with pytest.raises(FeedError) as html:
        loads(b"<!DOCTYPE html><html><body>Too Many Requests</body></html>")
    assert html.value.kind is ErrorKind.HTML
    with pytest.raises(FeedError) as broken:
        loads(b'{"bitcoin": {"usd": 1')
    assert broken.value.kind is ErrorKind.MALFORMED


def test_429_carries_retry_after_seconds_whatever_the_body() -> None:
    with pytest.raises(FeedError) as json_body:
        check_http(429, {"retry-after": "7"}, b'{"status":{"error_code":429,"error_message":"rate"}}')
    assert (json_body.value.kind, json_body.value.retry_after, json_body.value.http_status) == (
        ErrorKind.RATE_LIMITED,
        7.0,
        429,
    )
    with pytest.raises(FeedError) as html_body:
        check_http(429, {}, b"<html>slow down</html>")
    assert html_body.value.kind is ErrorKind.RATE_LIMITED
    assert html_body.value.retry_after is None


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, now_s=now) == 10.0


def test_5xx_is_an_http_status_error() -> None:
    with pytest.raises(FeedError) as caught:
        check_http(503, {}, b"<html>bad gateway</html>")
    assert (caught.value.kind, caught.value.http_status) == (ErrorKind.HTTP_STATUS, 503)


# --- CoinGecko ----------------------------------------------------------------------------------


def test_coingecko_simple_price() -> None:
    quotes = coingecko.parse_simple_price(orjson.loads(COINGECKO_SIMPLE), [("bitcoin", "usd")], RECV)
    assert len(quotes) == 1
    quote = quotes[0]
    assert (quote.source, quote.instrument) == ("coingecko", "bitcoin/usd")
    assert quote.last == D("67187.3358936566")
    assert quote.bid is None and quote.ask is None
    assert quote.mid == D("67187.3358936566")
    assert quote.exchange_ts == 1_711_356_300_000_000_000
    assert quote.receive_ts == RECV


def test_coingecko_unknown_id_returns_no_quote() -> None:
    assert coingecko.parse_simple_price({}, [("notacoin", "usd")], RECV) == []


def test_coingecko_market_chart_and_ohlc_times_are_milliseconds() -> None:
    chart = coingecko.parse_market_chart(
        {"prices": [[1711843200000, 69702.3087473573]], "market_caps": [], "total_volumes": []}
    )
    assert chart == [(1_711_843_200_000_000_000, D("69702.3087473573"))]
    ohlc = coingecko.parse_ohlc([[1709395200000, 61942, 62211, 61721, 61845]])
    assert ohlc == [(1_709_395_200_000_000_000, D(61942), D(62211), D(61721), D(61845))]


# --- CoinMarketCap ------------------------------------------------------------------------------


def test_cmc_quotes_latest() -> None:
    quotes = coinmarketcap.parse_quotes_latest(orjson.loads(CMC_LATEST), [("BTC", "USD")], RECV)
    assert len(quotes) == 1
    assert (quotes[0].source, quotes[0].instrument) == ("coinmarketcap", "BTC/USD")
    assert quotes[0].last == D("6602.60701122")
    assert quotes[0].exchange_ts == 1_533_851_788_000_000_000


@pytest.mark.parametrize(
    ("code", "http_status", "kind"),
    [
        (1001, 401, ErrorKind.API_ERROR),
        (1002, 401, ErrorKind.API_ERROR),
        (1003, 402, ErrorKind.API_ERROR),
        (1004, 402, ErrorKind.API_ERROR),
        (1005, 403, ErrorKind.API_ERROR),
        (1007, 403, ErrorKind.API_ERROR),
        (1008, 429, ErrorKind.RATE_LIMITED),
        (1011, 429, ErrorKind.RATE_LIMITED),
    ],
)
def test_cmc_error_code_on_http_200_is_an_error(code: int, http_status: int, kind: ErrorKind) -> None:
    body = {"status": {"error_code": code, "error_message": "API key missing.", "elapsed": 0}}
    with pytest.raises(FeedError) as caught:
        coinmarketcap.parse_quotes_latest(body, [("BTC", "USD")], RECV)
    assert (caught.value.http_status, caught.value.kind) == (http_status, kind)


# --- Binance ------------------------------------------------------------------------------------


def test_binance_trade_side_from_buyer_is_maker() -> None:
    body = {
        "e": "trade",
        "E": 1672515782136,
        "s": "BNBBTC",
        "t": 12345,
        "p": "0.001",
        "q": "100",
        "T": 1672515782136,
        "m": True,
        "M": True,
    }
    tick = binance.parse_trade(body, RECV)
    assert (tick.instrument, tick.price, tick.size, tick.side, tick.trade_id) == (
        "bnbbtc",
        D("0.001"),
        D("100"),
        "sell",
        "12345",
    )
    assert tick.exchange_ts == 1_672_515_782_136_000_000
    assert binance.parse_trade({**body, "m": False}, RECV).side == "buy"


def test_binance_book_ticker_stream_and_rest_forms() -> None:
    stream = binance.parse_book_ticker(
        {
            "u": 400900217,
            "s": "BNBUSDT",
            "b": "25.35190000",
            "B": "31.21000000",
            "a": "25.36520000",
            "A": "40.66000000",
        },
        RECV,
    )
    assert (stream.instrument, stream.bid, stream.bid_size, stream.ask, stream.ask_size) == (
        "bnbusdt",
        D("25.3519"),
        D("31.21"),
        D("25.3652"),
        D("40.66"),
    )
    rest = binance.parse_book_ticker(
        {
            "symbol": "LTCBTC",
            "bidPrice": "4.00000000",
            "bidQty": "431.00000000",
            "askPrice": "4.00000200",
            "askQty": "9.00000000",
        },
        RECV,
    )
    assert (rest.instrument, rest.bid, rest.ask, rest.ask_size) == ("ltcbtc", D("4"), D("4.000002"), D("9"))


def test_binance_combined_stream_is_unwrapped() -> None:
    inner = {
        "e": "depthUpdate",
        "E": 1672515782136,
        "s": "BNBBTC",
        "U": 157,
        "u": 160,
        "b": [["0.0024", "10"]],
        "a": [["0.0026", "100"]],
    }
    update = binance.parse_depth_update(binance.unwrap({"stream": "bnbbtc@depth@100ms", "data": inner}))
    assert (update.symbol, update.first_id, update.final_id) == ("bnbbtc", 157, 160)
    assert update.bids == ((D("0.0024"), D("10")),)
    assert update.asks == ((D("0.0026"), D("100")),)


def test_binance_depth_snapshot_and_klines() -> None:
    snapshot = binance.parse_depth_snapshot(
        {
            "lastUpdateId": 1027024,
            "bids": [["4.00000000", "431.00000000"]],
            "asks": [["4.00000200", "12.00000000"]],
        }
    )
    assert snapshot.last_update_id == 1027024
    assert snapshot.bids == ((D("4"), D("431")),)
    klines = binance.parse_klines(
        [
            [
                1499040000000,
                "0.01634790",
                "0.80000000",
                "0.01575800",
                "0.01577100",
                "148976.11427815",
                1499644799999,
                "2434.19055334",
                308,
                "1756.87402397",
                "28.46694368",
                "0",
            ]
        ]
    )
    assert klines == [
        (
            1_499_040_000_000_000_000,
            D("0.0163479"),
            D("0.8"),
            D("0.015758"),
            D("0.015771"),
            D("148976.11427815"),
        )
    ]


def test_binance_error_body_is_an_api_error() -> None:
    with pytest.raises(FeedError) as caught:
        binance.check_rest_error({"code": -1121, "msg": "Invalid symbol."})
    assert caught.value.kind is ErrorKind.API_ERROR
    assert "-1121" in caught.value.detail


# --- Kalshi -------------------------------------------------------------------------------------


def test_kalshi_orderbook_dollar_form_bids_only_to_yes_quote() -> None:
    yes, no = kalshi.parse_orderbook(
        {
            "orderbook_fp": {
                "yes_dollars": [["0.0100", "200.00"], ["0.4200", "13.00"]],
                "no_dollars": [["0.0100", "100.00"], ["0.5600", "17.00"]],
            }
        }
    )
    book = kalshi.KalshiBook("T")
    book.load(yes, no)
    quote = book.top(RECV)
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (D("0.42"), D("13"), D("0.44"), D("17"))


def test_kalshi_orderbook_legacy_cents_form_gives_the_same_quote() -> None:
    yes, no = kalshi.parse_orderbook({"orderbook": {"yes": [[1, 200], [42, 13]], "no": [[1, 100], [56, 17]]}})
    book = kalshi.KalshiBook("T")
    book.load(yes, no)
    quote = book.top(RECV)
    assert (quote.bid, quote.ask, quote.ask_size) == (D("0.42"), D("0.44"), D("17"))


def test_kalshi_market_accepts_cents_and_dollars_and_maps_result() -> None:
    cents = kalshi.parse_market(
        {
            "market": {
                "ticker": "CPI",
                "status": "active",
                "yes_bid": 45,
                "yes_ask": 53,
                "no_bid": 47,
                "no_ask": 55,
                "last_price": 48,
                "result": "",
            }
        }
    )
    assert (cents.yes_bid, cents.yes_ask, cents.last_price) == (D("0.45"), D("0.53"), D("0.48"))
    assert kalshi.market_state(cents) is MarketState.OPEN
    dollars = kalshi.parse_market(
        {
            "market": {
                "ticker": "CPI",
                "status": "settled",
                "yes_bid_dollars": "0.9900",
                "result": "yes",
                "settlement_value_dollars": "1.0000",
            }
        }
    )
    assert dollars.yes_bid == D("0.99")
    assert dollars.settlement_value == D(1)
    assert kalshi.market_state(dollars) is MarketState.SETTLED_YES
    no = kalshi.parse_market({"market": {"ticker": "CPI", "status": "determined", "result": "no"}})
    assert kalshi.market_state(no) is MarketState.SETTLED_NO
    closed = kalshi.parse_market({"market": {"ticker": "CPI", "status": "closed", "result": ""}})
    assert kalshi.market_state(closed) is MarketState.CLOSED


def test_kalshi_ws_snapshot_delta_and_sequence_gap() -> None:
    book = kalshi.KalshiBook("FED-23DEC-T3.00")
    snapshot = {
        "market_ticker": "FED-23DEC-T3.00",
        "market_id": "9b0f",
        "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
        "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]],
    }
    yes, no = kalshi.parse_book_sides(snapshot)
    book.load(yes, no, sid=2, seq=2)
    assert (book.top(RECV).bid, book.top(RECV).ask) == (D("0.22"), D("0.44"))
    delta = {
        "market_ticker": "FED-23DEC-T3.00",
        "price_dollars": "0.960",
        "delta_fp": "-54.00",
        "side": "yes",
        "ts": "2022-11-22T20:44:01Z",
        "ts_ms": 1669149841000,
    }
    ticker, side, price, change, exchange_ts = kalshi.parse_delta(delta)
    assert (ticker, side, price, change, exchange_ts) == (
        "FED-23DEC-T3.00",
        "yes",
        D("0.960"),
        D("-54.00"),
        1_669_149_841_000_000_000,
    )
    assert book.apply_delta("no", D("0.56"), D("-146"), 3) is kalshi.DeltaResult.APPLIED
    assert book.top(RECV).ask == D("0.46")  # NO 0.56 gone: ask = 1 - 0.54
    assert book.apply_delta("yes", D("0.30"), D("5"), 5) is kalshi.DeltaResult.GAP
    assert book.seq == 3


def test_kalshi_legacy_cent_delta() -> None:
    _, side, price, change, _ = kalshi.parse_delta(
        {"market_ticker": "X", "price": 96, "delta": -54, "side": "no"}
    )
    assert (side, price, change) == ("no", D("0.96"), D(-54))


def test_kalshi_absent_side_means_empty() -> None:
    yes, no = kalshi.parse_book_sides({"yes_dollars_fp": [["0.0800", "300.00"]]})
    book = kalshi.KalshiBook("T")
    book.load(yes, no)
    quote = book.top(RECV)
    assert (quote.bid, quote.ask) == (D("0.08"), None)


# --- Polymarket ---------------------------------------------------------------------------------

GAMMA = {
    "id": "12",
    "question": "Will it?",
    "conditionId": "0xabc",
    "slug": "will-it",
    "outcomes": '["Yes", "No"]',
    "outcomePrices": '["0.47", "0.53"]',
    "clobTokenIds": '["111", "222"]',
    "active": True,
    "closed": False,
    "acceptingOrders": True,
    "bestBid": 0.46,
    "bestAsk": 0.48,
    "lastTradePrice": 0.47,
    "volume": "1000.5",
    "umaResolutionStatus": "",
}


def test_gamma_arrays_inside_strings() -> None:
    market = polymarket.parse_gamma_market([GAMMA])
    assert market.outcomes == ("Yes", "No")
    assert market.outcome_prices == (D("0.47"), D("0.53"))
    assert market.token_ids == ("111", "222")
    assert market.yes_token == "111"
    assert (market.best_bid, market.best_ask) == (D("0.46"), D("0.48"))
    assert polymarket.gamma_state(market) is MarketState.OPEN


@pytest.mark.parametrize(
    ("prices", "state"),
    [
        ('["1", "0"]', MarketState.SETTLED_YES),
        ('["0", "1"]', MarketState.SETTLED_NO),
        ('["0.5", "0.5"]', MarketState.VOID),
        ('["0.3", "0.7"]', MarketState.CLOSED),
    ],
)
def test_gamma_resolution_states(prices: str, state: MarketState) -> None:
    market = polymarket.parse_gamma_market(
        {**GAMMA, "closed": True, "active": False, "outcomePrices": prices}
    )
    assert polymarket.gamma_state(market) is state


def test_gamma_yes_index_follows_the_outcomes_order() -> None:
    market = polymarket.parse_gamma_market(
        {**GAMMA, "outcomes": '["No", "Yes"]', "closed": True, "outcomePrices": '["0", "1"]'}
    )
    assert market.yes_token == "222"
    assert polymarket.gamma_state(market) is MarketState.SETTLED_YES


def test_clob_book_is_sorted_and_non_canonical_numbers_parse() -> None:
    snapshot = polymarket.parse_book(
        {
            "market": "0x747d",
            "asset_id": "1075",
            "timestamp": "1782753357257",
            "hash": "a1b2",
            "bids": [{"price": ".01", "size": "2151131.59"}, {"price": ".48", "size": "30"}],
            "asks": [{"price": "0.99", "size": "218442.27"}, {"price": ".52", "size": "25"}],
            "min_order_size": "5",
            "tick_size": "0.01",
            "neg_risk": False,
            "last_trade_price": "0.090",
        },
        RECV,
    )
    assert snapshot.instrument == "1075"
    assert snapshot.bids == ((D("0.48"), D("30")), (D("0.01"), D("2151131.59")))
    assert snapshot.asks == ((D("0.52"), D("25")), (D("0.99"), D("218442.27")))
    assert snapshot.exchange_ts == 1_782_753_357_257_000_000


def test_binance_levels_given_as_floats_are_read_through_str() -> None:
    update = binance.parse_depth_update({"s": "X", "U": 1, "u": 1, "b": [[0.1, 3]], "a": []})
    assert update.bids == ((D("0.1"), D("3")),)


def test_binance_levels_with_garbage_or_nan_are_parse_errors() -> None:
    for bad in ([["abc", "1"]], [["NaN", "1"]], [["1"]]):
        with pytest.raises(FeedError):
            binance.parse_depth_update({"s": "X", "U": 1, "u": 1, "b": bad, "a": []})


def test_binance_depth_fast_path_equals_the_general_parser() -> None:
    inner = {
        "e": "depthUpdate",
        "E": 1672515782136,
        "s": "BNBBTC",
        "U": 157,
        "u": 160,
        "b": [["0.0024", "10"], ["0.0023", "0"]],
        "a": [["0.0026", "100"]],
    }
    general = binance.parse_depth_update(inner)
    assert binance.decode_depth(orjson.dumps(inner)) == general
    assert binance.decode_depth(orjson.dumps({"stream": "bnbbtc@depth@100ms", "data": inner})) == general
    assert general.event_ts == 1_672_515_782_136_000_000
    assert binance.decode_depth(orjson.dumps({**inner, "b": [[0.1, 3]]})).bids == ((D("0.1"), D("3")),)  # type: ignore[union-attr]


def test_binance_depth_fast_path_declines_what_it_cannot_vouch_for() -> None:
    inner = {"e": "depthUpdate", "E": 1, "s": "X", "U": 1, "u": 1, "b": [["NaN", "1"]], "a": []}
    assert binance.decode_depth(orjson.dumps(inner)) is None
    assert binance.decode_depth(b'{"e":"depthUpdate","s":"X"') is None
    assert binance.decode_depth(orjson.dumps({**inner, "b": [["1", "2", "3"]]})) is None
