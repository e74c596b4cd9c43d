"""Binance feed against fake stream and REST servers: depth sync and resync, REST only while down."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.fakes.http_server import FakeHttpServer, Response
from tests.fakes.providers import BinanceState, depth_update, serve_binance_rest
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.models import BookSnapshot, Candle, FeedEvent, Quote, TradeTick
from tradehall.marketdata.parsing import FeedError

D = Decimal
DEPTH = "/api/v3/depth"
TICKER = "/api/v3/ticker/bookTicker"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeWsServer, FakeHttpServer, BinanceState]]:
    ws, rest, state = FakeWsServer(), FakeHttpServer(), BinanceState()
    await ws.start()
    await rest.start()
    serve_binance_rest(rest, state)
    yield ws, rest, state
    await ws.stop()
    await rest.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


def make_feed(
    ws: FakeWsServer,
    rest: FakeHttpServer,
    http: httpx.AsyncClient,
    seen: list[tuple[str, FeedEvent]],
    streams: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms"),
) -> BinanceFeed:
    feed: BinanceFeed

    def sink(event: FeedEvent) -> None:
        seen.append((feed.mode, event))

    feed = BinanceFeed(
        ["BTCUSDT"],
        sink,
        http,
        ws_root=ws.url,
        rest_root=rest.url,
        streams=streams,
        poll_interval=0.05,
        backoff=Backoff(base=0.2, cap=0.3, rng=random.Random(3)),
    )
    return feed


async def test_trade_and_book_ticker_from_the_combined_stream(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("trade", "bookTicker"))
    messages_before = REGISTRY.get_sample_value("tradehall_feed_messages_total", {"feed": "binance"}) or 0.0
    feed.start()
    await ws.wait_connected()
    assert ws.paths[0] == "/stream?streams=btcusdt@trade/btcusdt@bookTicker"
    await ws.push(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 400900217, "s": "BTCUSDT", "b": "67000.10", "B": "1.5", "a": "67000.20", "A": "2"},
        }
    )
    await ws.push(
        {
            "stream": "btcusdt@trade",
            "data": {
                "e": "trade",
                "E": 1672515782136,
                "s": "BTCUSDT",
                "t": 12345,
                "p": "67000.15",
                "q": "0.01",
                "T": 1672515782136,
                "m": True,
                "M": True,
            },
        }
    )
    await eventually(lambda: len(seen) == 2)
    assert REGISTRY.get_sample_value("tradehall_feed_up", {"feed": "binance"}) == 1
    messages = REGISTRY.get_sample_value("tradehall_feed_messages_total", {"feed": "binance"})
    assert messages is not None and messages - messages_before == 2
    await feed.stop()
    assert REGISTRY.get_sample_value("tradehall_feed_up", {"feed": "binance"}) == 0
    quote, trade = seen[0][1], seen[1][1]
    assert isinstance(quote, Quote) and (quote.bid, quote.ask, quote.bid_size) == (
        D("67000.10"),
        D("67000.20"),
        D("1.5"),
    )
    assert isinstance(trade, TradeTick) and (trade.price, trade.size, trade.side) == (
        D("67000.15"),
        D("0.01"),
        "sell",
    )
    assert rest.hits(TICKER) == []


async def test_depth_sync_then_gap_rebuilds_from_a_new_snapshot(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, state = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("depth@100ms",))
    feed.start()
    await ws.wait_connected()
    state.snapshot = {
        "lastUpdateId": 100,
        "bids": [["100.00", "1.0"], ["99.00", "2.0"]],
        "asks": [["101.00", "1.0"], ["102.00", "3.0"]],
    }
    await ws.push(depth_update(95, 99, bids=[["100.00", "5.0"]]))  # older than the snapshot: dropped
    await ws.push(depth_update(100, 102, asks=[["101.00", "0"]]))
    await eventually(lambda: any(isinstance(e, BookSnapshot) for _, e in seen))
    book = feed.books["btcusdt"]
    assert book.synced and book.last_update_id == 102
    assert book.bids.best() == (D("100.00"), D("1.0"))
    assert book.asks.best() == (D("102.00"), D("3.0"))
    await ws.push(depth_update(103, 103, bids=[["100.50", "2"]]))
    await eventually(lambda: book.last_update_id == 103)
    top = [e for _, e in seen if isinstance(e, Quote)][-1]
    assert (top.bid, top.bid_size, top.ask) == (D("100.50"), D("2"), D("102.00"))
    # a gap: 104..105 never arrives
    state.snapshot = {"lastUpdateId": 110, "bids": [["98.00", "7"]], "asks": [["99.50", "4"]]}
    await ws.push(depth_update(106, 110, bids=[["97.00", "1"]]))
    await ws.push(depth_update(111, 111, asks=[["99.40", "1"]]))
    await eventually(lambda: book.synced and book.last_update_id == 111)
    assert feed.resyncs == 1
    assert len(rest.hits(DEPTH)) == 2
    assert rest.hits(DEPTH)[0].query == {"symbol": "BTCUSDT", "limit": "1000"}
    assert book.bids.sorted_levels() == ((D("98.00"), D("7")),)
    assert book.asks.sorted_levels() == ((D("99.40"), D("1")), (D("99.50"), D("4")))
    assert feed.errors_by_kind == {"sequence_gap": 1}
    await feed.stop()


async def test_rest_polls_only_while_the_stream_is_down(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("bookTicker",))
    feed.start()
    await ws.wait_connected()
    await asyncio.sleep(0.2)
    assert rest.hits(TICKER) == []
    ws.refuse = True
    await ws.drop_all()
    await eventually(lambda: len(rest.hits(TICKER)) >= 3)
    assert feed.status().mode == "polling" and not feed.connected
    ws.refuse = False
    await ws.wait_connected(timeout=5)
    await eventually(lambda: feed.mode == "stream")
    polls_when_back = len(rest.hits(TICKER))
    await ws.push(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
        }
    )
    await asyncio.sleep(0.3)
    await feed.stop()
    assert len(rest.hits(TICKER)) == polls_when_back
    modes = [mode for mode, event in seen if isinstance(event, Quote)]
    rest_quotes = [event for mode, event in seen if mode == "polling"]
    assert all(isinstance(q, Quote) and q.bid == D("67000.1") for q in rest_quotes)
    assert modes[-1] == "stream"
    assert len(rest_quotes) == len(rest.hits(TICKER))  # one quote per poll, none from the stream
    assert feed.errors_by_kind.get("connection", 0) >= 1


async def test_malformed_and_html_messages_are_counted_and_the_stream_goes_on(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("bookTicker",))
    feed.start()
    await ws.wait_connected()
    await ws.push('{"stream": "btcusdt@bookTicker", "data": {"u": 1,')
    await ws.push("<html>oops</html>")
    await ws.push(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 1, "s": "BTCUSDT", "b": "x", "B": "1", "a": "2", "A": "1"},
        }
    )
    await ws.push({"result": None, "id": 1})
    await ws.push(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 2, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
        }
    )
    await eventually(lambda: len(seen) == 1)
    await feed.stop()
    assert feed.errors_by_kind == {"malformed_json": 1, "html": 1, "parse": 1}
    assert ws.connects == 1


async def test_stale_stream_is_dropped_and_reconnected(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("bookTicker",))
    feed.stale_after = 0.2
    feed.start()
    await eventually(lambda: ws.connects >= 2, timeout=5)
    await feed.stop()
    assert feed.errors_by_kind.get("stale", 0) >= 1


async def test_snapshot_older_than_the_buffered_diffs_is_fetched_again(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    snapshots = [
        {"lastUpdateId": 150, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]},  # older than U=200
        {"lastUpdateId": 201, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]},
    ]
    rest.route(DEPTH, lambda _: Response.json(snapshots.pop(0) if len(snapshots) > 1 else snapshots[0]))
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("depth@100ms",))
    feed.refetch_delay = 0.05
    feed.start()
    await ws.wait_connected()
    await ws.push(depth_update(200, 202, bids=[["1.50", "3"]]))
    book = feed.books["btcusdt"]
    await eventually(lambda: book.synced)
    assert (feed.refetches, len(rest.hits(DEPTH)), book.last_update_id) == (1, 2, 202)
    assert book.bids.best() == (D("1.50"), D("3"))
    await feed.stop()


async def test_klines_history_and_error_body(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    rest.route(
        "/api/v3/klines",
        lambda request: Response.json(
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
            if request.query.get("symbol") == "BTCUSDT"
            else {"code": -1121, "msg": "Invalid symbol."}
        ),
    )
    feed = make_feed(ws, rest, http, [])
    assert await feed.fetch_klines("btcusdt") == [
        (
            1_499_040_000_000_000_000,
            D("0.0163479"),
            D("0.8"),
            D("0.015758"),
            D("0.015771"),
            D("148976.11427815"),
        )
    ]
    assert rest.hits("/api/v3/klines")[0].query == {"symbol": "BTCUSDT", "interval": "1m", "limit": "500"}
    with pytest.raises(FeedError, match="-1121"):
        await feed.fetch_klines("nope")


async def test_a_server_that_accepts_and_hangs_up_is_a_failure_not_a_success(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes

    async def hang_up(server: FakeWsServer, connection: object, _: object) -> None:
        await connection.close(1000)  # type: ignore[attr-defined]

    ws.on_connect = hang_up
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("bookTicker",))
    feed.breaker.reset_timeout = 0.3
    feed.start()
    await eventually(lambda: feed.breaker.state.value == "open", timeout=5)
    connects = ws.connects
    assert connects == feed.breaker.failure_threshold
    await eventually(
        lambda: ws.connects == connects + 1, timeout=5
    )  # the half-open probe, after reset_timeout
    await eventually(lambda: feed.breaker.state.value == "open", timeout=5)  # probe failed: open again
    ws.on_connect = None
    await eventually(lambda: feed.mode == "stream", timeout=5)
    await ws.push(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
        }
    )
    await eventually(lambda: feed.breaker.state.value == "closed")
    await feed.stop()
    assert feed.errors_by_kind["connection"] >= 4
    assert len(rest.hits(TICKER)) >= 1  # REST kept the quotes coming meanwhile


async def test_server_shutdown_reconnects_at_once_without_falling_back_to_rest(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("aggTrade", "kline_1m", "bookTicker"))
    feed.start()
    await ws.wait_connected()
    assert ws.paths[0] == "/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@bookTicker"
    await ws.push({"result": None, "id": 1})
    # the server announces it will go away; it has not closed the connection (yet)
    await ws.push({"e": "serverShutdown", "E": 1700000000000})
    await eventually(lambda: ws.connects == 2)
    assert feed.server_shutdowns == 1
    assert feed.ignored_by_type == {"ack": 1, "serverShutdown": 1}
    assert feed.errors == 0 and rest.hits(TICKER) == []  # straight back to the stream, no REST polling
    await ws.push(
        {
            "stream": "btcusdt@aggTrade",
            "data": {
                "e": "aggTrade",
                "E": 1,
                "s": "BTCUSDT",
                "a": 7,
                "p": "67000.5",
                "q": "0.2",
                "T": 2,
                "m": False,
            },
        }
    )
    await ws.push(
        {
            "stream": "btcusdt@kline_1m",
            "data": {
                "e": "kline",
                "E": 3,
                "s": "BTCUSDT",
                "k": {
                    "t": 0,
                    "T": 59999,
                    "s": "BTCUSDT",
                    "i": "1m",
                    "o": "1",
                    "c": "2",
                    "h": "3",
                    "l": "0.5",
                    "v": "10",
                    "n": 4,
                    "x": True,
                },
            },
        }
    )
    await eventually(lambda: len(seen) == 2)
    await feed.stop()
    trade, candle = seen[0][1], seen[1][1]
    assert isinstance(trade, TradeTick) and (trade.trade_id, trade.price, trade.side) == (
        "agg-7",
        D("67000.5"),
        "buy",
    )
    assert isinstance(candle, Candle) and (candle.close, candle.volume, candle.closed) == (
        D("2"),
        D("10"),
        True,
    )


async def test_error_frames_are_counted_and_the_stream_goes_on(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(ws, rest, http, seen, streams=("bookTicker",))
    before = (
        REGISTRY.get_sample_value("tradehall_feed_errors_total", {"feed": "binance", "kind": "api_error"})
        or 0
    )
    feed.start()
    await ws.wait_connected()
    await ws.push({"error": {"code": 2, "msg": "Invalid request: unknown variant"}, "id": 4})
    await ws.push({"code": 1, "msg": "Invalid value type: expected Boolean"})
    await ws.push({"u": 1, "s": "BTCUSDT", "b": "1.0", "B": "1", "a": "1.1", "A": "1"})
    await eventually(lambda: len(seen) == 1)
    await feed.stop()
    assert feed.errors_by_kind == {"api_error": 2} and feed.messages == 1
    after = REGISTRY.get_sample_value("tradehall_feed_errors_total", {"feed": "binance", "kind": "api_error"})
    assert after == before + 2


async def test_rest_ticker_24hr(fakes, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest, _ = fakes
    body = (
        Path(__file__).resolve().parents[1] / "data/feeds/binance/rest_ticker24hr_binancenet_btcusdt.json"
    ).read_bytes()
    rest.route(
        "/api/v3/ticker/24hr", lambda request: Response(200, body, {"content-type": "application/json"})
    )
    feed = make_feed(ws, rest, http, [])
    quote = await feed.fetch_ticker_24h("btcusdt")
    assert (quote.instrument, quote.bid, quote.ask, quote.last, quote.volume_24h) == (
        "btcusdt",
        D("47174.96000000"),
        D("47174.97000000"),
        D("47174.97000000"),
        D("33136.69765000"),
    )
    assert rest.hits("/api/v3/ticker/24hr")[0].query == {"symbol": "BTCUSDT"}
