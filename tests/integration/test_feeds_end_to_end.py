"""Fake feed → feed → router → commands, first into a stub `submit` with exact prices, then into the
real engine: marks, settlement, and a paper fill on a quote-venue market at the quoted price."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
import redis.asyncio as redis_asyncio

from tests.fakes.http_server import FakeHttpServer
from tests.fakes.providers import BinanceState, FakeKalshi, serve_binance_rest
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.domain import commands
from tradehall.domain.enums import MarketKind, OrderSide, OrderType, Outcome, Venue
from tradehall.domain.events import AnyEvent, MarketSettled, MarkPriceUpdated, OrderFilled, QuoteUpdated
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.cache import RedisQuoteCache
from tradehall.marketdata.kalshi import KalshiFeed
from tradehall.marketdata.models import Quote
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router, SettlementMode, Submit

D = Decimal


@pytest.fixture
async def binance() -> AsyncIterator[tuple[FakeWsServer, FakeHttpServer]]:
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    serve_binance_rest(rest, BinanceState())
    yield ws, rest
    await ws.stop()
    await rest.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


def engine_with_market(spec: MarketSpec) -> Engine:
    """A new engine with the one market the test feeds."""
    engine = Engine()
    engine.apply(commands.CreateMarket(spec=spec))
    return engine


def binance_feed(
    ws: FakeWsServer, rest: FakeHttpServer, http: httpx.AsyncClient, submit: Submit
) -> BinanceFeed:
    """The feed of the fake Binance's book tickers, BTCUSDT routed to the market BTC-USDT."""
    router = Router([MarketRoute("BTC-USDT", (InstrumentRef("binance", "btcusdt"),))], submit)
    return BinanceFeed(
        ["btcusdt"],
        router,
        http,
        ws_root=ws.url,
        rest_root=rest.url,
        streams=("bookTicker",),
        backoff=Backoff(base=0.1, cap=0.2, rng=random.Random(2)),
    )


def ticker(bid: str, ask: str, bid_qty: str = "1.5", ask_qty: str = "2") -> dict[str, object]:
    return {
        "stream": "btcusdt@bookTicker",
        "data": {"u": 1, "s": "BTCUSDT", "b": bid, "B": bid_qty, "a": ask, "A": ask_qty},
    }


async def test_binance_stream_to_quote_commands_with_exact_prices(binance, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest = binance
    submitted: list[commands.AnyCommand] = []
    feed = binance_feed(ws, rest, http, submitted.append)
    feed.start()
    await ws.wait_connected()
    await ws.push(ticker("67000.10000000", "67000.20000000"))
    await ws.push(ticker("67000.15000000", "67000.30000000", "0.25000000", "3.10000000"))
    await eventually(lambda: len(submitted) == 2)
    await feed.stop()
    assert [
        (c.market, c.bid, c.ask, c.bid_size, c.ask_size, c.source)
        for c in submitted
        if isinstance(c, commands.Quote)
    ] == [
        ("BTC-USDT", D("67000.1"), D("67000.2"), D("1.5"), D("2"), "binance"),
        ("BTC-USDT", D("67000.15"), D("67000.3"), D("0.25"), D("3.1"), "binance"),
    ]
    assert all(c.ts > 0 for c in submitted)


async def test_binance_quotes_mark_the_engine_market(binance, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest = binance
    engine = engine_with_market(
        MarketSpec(
            symbol="BTC-USDT",
            kind=MarketKind.SPOT,
            base="BTC",
            quote="USDT",
            tick_size=D("0.01"),
            lot_size=D("0.0001"),
        )
    )
    events: list[AnyEvent] = []
    feed = binance_feed(ws, rest, http, lambda command: events.extend(engine.apply(command)))
    feed.start()
    await ws.wait_connected()
    await ws.push(ticker("67000.10000000", "67000.20000000"))
    await ws.push(ticker("67001.00000000", "67001.50000000"))
    await eventually(lambda: len([e for e in events if isinstance(e, MarkPriceUpdated)]) == 2)
    await feed.stop()
    # mark = mid in ticks, rounded down: (6700010 + 6700020) // 2, (6700100 + 6700150) // 2
    assert [(e.market, e.price) for e in events if isinstance(e, MarkPriceUpdated)] == [
        ("BTC-USDT", 6700015),
        ("BTC-USDT", 6700125),
    ]
    assert engine.markets["BTC-USDT"].marks.price == 6700125
    assert [(e.bid, e.ask, e.source) for e in events if isinstance(e, QuoteUpdated)] == [
        (6700010, 6700020, "binance"),
        (6700100, 6700150, "binance"),
    ]


async def test_kalshi_book_marks_and_settles_an_engine_binary_market(http) -> None:  # type: ignore[no-untyped-def]
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    kalshi = FakeKalshi(rest, ws, "FED-23DEC-T3.00")
    engine = engine_with_market(
        MarketSpec(
            symbol="FED-YES",
            kind=MarketKind.BINARY,
            base="FED-YES",
            quote="USD",
            tick_size=D("0.01"),
            lot_size=D("1"),
        )
    )
    events: list[AnyEvent] = []
    router = Router(
        [
            MarketRoute(
                "FED-YES", (InstrumentRef("kalshi", "FED-23DEC-T3.00"),), settlement=SettlementMode.AUTO
            )
        ],
        lambda command: events.extend(engine.apply(command)),
    )
    feed = KalshiFeed(
        ["FED-23DEC-T3.00"],
        router,
        http,
        ws_url=ws.url,
        rest_root=kalshi.rest_root,
        status_interval=0.1,
        backoff=Backoff(base=0.1, cap=0.2, rng=random.Random(2)),
    )
    try:
        feed.start()
        await eventually(lambda: any(isinstance(e, MarkPriceUpdated) for e in events))
        await kalshi.delta("no", "0.5600", "-146.00")
        await eventually(lambda: len([e for e in events if isinstance(e, MarkPriceUpdated)]) == 2)
        kalshi.market.update({"status": "settled", "result": "no"})
        await eventually(lambda: any(isinstance(e, MarketSettled) for e in events))
    finally:
        await feed.stop()
        await ws.stop()
        await rest.stop()
    marks = [e.price for e in events if isinstance(e, MarkPriceUpdated)]
    assert marks == [33, 34]  # YES 0.22/0.44 → 33 ticks; 0.22/0.46 → 34
    settled = next(e for e in events if isinstance(e, MarketSettled))
    assert settled.outcome is Outcome.NO


@pytest.mark.services
async def test_redis_quote_cache_with_ttl(redis_available: None) -> None:
    client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"tradehall:test:{uuid.uuid4().hex}:"
    now = [1_800_000_000_000_000_000]
    cache = RedisQuoteCache(
        client, prefix=prefix, ttl_seconds=0.3, max_age_seconds=5, wall_clock_ns=lambda: now[0]
    )
    try:
        quote = Quote("binance", "btcusdt", D("67000.1"), D("67000.2"), D("1.5"), D("2"), None, 7, 8)
        await cache.put("BTC-USDT", quote)
        now[0] += 2_000_000_000
        cached = await cache.get("BTC-USDT")
        assert cached is not None
        assert (cached.quote, cached.age_seconds, cached.stale) == (quote, 2.0, False)
        now[0] += 4_000_000_000
        cached = await cache.get("BTC-USDT")
        assert cached is not None and cached.stale
        cache.put_nowait("ETH-USDT", quote)
        cache.put_nowait("ETH-USDT", Quote("binance", "ethusdt", D("3000"), D("3001")))
        assert await cache.flush() == 1
        latest = await cache.get("ETH-USDT")
        assert latest is not None and latest.quote.bid == D("3000")
        ttl_ms = await client.pttl(prefix + "ETH-USDT")
        assert 0 < ttl_ms <= 300
        await eventually_async_missing(client, prefix + "ETH-USDT")
        assert await cache.get("ETH-USDT") is None
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def eventually_async_missing(client: redis_asyncio.Redis, key: str) -> None:
    for _ in range(100):
        if not await client.exists(key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} did not expire")


async def test_fake_feed_to_engine_paper_fill_at_the_quoted_price(binance, http) -> None:  # type: ignore[no-untyped-def]
    ws, rest = binance
    spec = MarketSpec(
        symbol="BTC-USDT",
        kind=MarketKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=D("0.01"),
        lot_size=D("0.0001"),
        venue=Venue.QUOTE,
        slippage=D("0"),
    )
    engine = engine_with_market(spec)
    engine.apply(commands.OpenAccount(account_id="trader", owner="u", currency="USDT"))
    engine.apply(commands.Deposit(account_id="trader", amount=D("100000"), currency="USDT"))
    feed = binance_feed(ws, rest, http, engine.apply)
    feed.start()
    try:
        await ws.wait_connected()
        await ws.push(ticker("67000.10000000", "67000.20000000"))
        await eventually(lambda: engine.markets["BTC-USDT"].marks.price == 6700015)
    finally:
        await feed.stop()
    now = time.time_ns()
    buy = engine.apply(
        commands.PlaceOrder(
            ts=now,
            account_id="trader",
            market="BTC-USDT",
            side=OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=D("0.01"),
        )
    )
    fills = [e for e in buy if isinstance(e, OrderFilled)]
    assert [(f.price, f.quantity) for f in fills] == [(6700020, 100)]  # 67000.20 x 0.0100: the quoted ask
    sell = engine.apply(
        commands.PlaceOrder(
            ts=now + 1,
            account_id="trader",
            market="BTC-USDT",
            side=OrderSide.SELL,
            type=OrderType.MARKET,
            quantity=D("0.01"),
        )
    )
    assert [(f.price, f.quantity) for f in sell if isinstance(f, OrderFilled)] == [(6700010, 100)]  # the bid
