"""OKX, Bybit and Coinbase feeds end to end against fake venues that speak their wire formats
(tests/fakes/venues.py): connect → subscribe → snapshot → deltas → gap → resync (a resubscription,
counted in tradehall_feed_resyncs_total) → reconnect, REST book polling only while the stream is
down, the venues' keepalives, and failover between the two venues in the router."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.fakes.http_server import FakeHttpServer
from tests.fakes.venues import FakeBybit, FakeCoinbase, FakeOkx, FakeVenueBook
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.domain import commands
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.bybit import BybitFeed
from tradehall.marketdata.coinbase import CoinbaseFeed
from tradehall.marketdata.models import FeedEvent, Quote, TradeTick
from tradehall.marketdata.okx import OkxFeed
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router

D = Decimal
Seen = list[tuple[str, FeedEvent]]


def okx_book() -> FakeVenueBook:
    return FakeVenueBook({"100.4": "3", "100.3": "5"}, {"100.6": "2", "100.7": "4"})


def bybit_book() -> FakeVenueBook:
    return FakeVenueBook({"100.40": "1.5", "100.30": "2.0"}, {"100.50": "0.8", "100.60": "1.2"})


@pytest.fixture
async def okx() -> AsyncIterator[FakeOkx]:
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    yield FakeOkx(rest, ws, "BTC-USDT", okx_book())
    await ws.stop()
    await rest.stop()


@pytest.fixture
async def bybit() -> AsyncIterator[FakeBybit]:
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    yield FakeBybit(rest, ws, "BTCUSDT", bybit_book())
    await ws.stop()
    await rest.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


def backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.1, rng=random.Random(5))


def recorder(seen: Seen, feed_ref: list[OkxFeed | BybitFeed]) -> object:
    def sink(event: FeedEvent) -> None:
        seen.append((feed_ref[0].mode, event))

    return sink


def quotes(seen: Seen) -> list[tuple[str, Decimal | None, Decimal | None]]:
    return [(mode, e.bid, e.ask) for mode, e in seen if isinstance(e, Quote)]


def resyncs(feed: str) -> float:
    return (
        REGISTRY.get_sample_value("tradehall_feed_resyncs_total", {"feed": feed, "reason": "sequence_gap"})
        or 0.0
    )


def make_okx(
    fake: FakeOkx, http: httpx.AsyncClient, seen: Seen, name: str, ping_interval: float = 30.0
) -> OkxFeed:
    ref: list[OkxFeed | BybitFeed] = []
    feed = OkxFeed(
        ["BTC-USDT"],
        recorder(seen, ref),  # type: ignore[arg-type]
        http,
        ws_url=fake.ws.url,
        rest_root=fake.http.url,
        channels=("books", "trades"),
        verify_checksum=True,
        poll_interval=0.05,
        ping_interval=ping_interval,
        backoff=backoff(),
        name=name,
    )
    ref.append(feed)
    return feed


def make_bybit(
    fake: FakeBybit, http: httpx.AsyncClient, seen: Seen, name: str, ping_interval: float = 30.0
) -> BybitFeed:
    ref: list[OkxFeed | BybitFeed] = []
    feed = BybitFeed(
        ["BTCUSDT"],
        recorder(seen, ref),  # type: ignore[arg-type]
        http,
        ws_root=fake.ws.url,
        rest_root=fake.http.url,
        tickers=False,
        poll_interval=0.05,
        ping_interval=ping_interval,
        backoff=backoff(),
        name=name,
    )
    ref.append(feed)
    return feed


async def test_okx_snapshot_updates_gap_resync_and_reconnect(okx: FakeOkx, http: httpx.AsyncClient) -> None:
    seen: Seen = []
    feed = make_okx(okx, http, seen, "okx_e2e_book")
    before = resyncs("okx_e2e_book")
    feed.start()
    try:
        await eventually(lambda: len(quotes(seen)) >= 1)
        assert okx.subscribes[0] == [
            {"channel": "books", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "BTC-USDT"},
        ]
        assert quotes(seen)[0] == ("stream", D("100.4"), D("100.6"))
        assert feed.ignored_by_type == {"subscribe": 2}

        await okx.update("bid", "100.5", "1")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.5"), D("100.6")))
        await okx.update("ask", "100.6", "0")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.5"), D("100.7")))
        assert feed.errors == 0  # every checksum matched

        await okx.trade("100.7", "0.25", "buy", "t-1")
        await eventually(lambda: any(isinstance(e, TradeTick) for _, e in seen))
        trade = next(e for _, e in seen if isinstance(e, TradeTick))
        assert (trade.price, trade.size, trade.side, trade.trade_id) == (D("100.7"), D("0.25"), "buy", "t-1")

        # a message lost: the book is dropped, unsubscribed and subscribed again for a snapshot
        await okx.update("bid", "100.55", "2", gap=True)
        await eventually(lambda: len(okx.subscribes) == 2)
        assert okx.unsubscribes == [[{"channel": "books", "instId": "BTC-USDT"}]]
        assert okx.subscribes[1] == [{"channel": "books", "instId": "BTC-USDT"}]
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.55"), D("100.7")))
        assert feed.resyncs_by_reason == {"sequence_gap": 1}
        assert resyncs("okx_e2e_book") == before + 1

        # the connection drops: REST polling while down, then the stream again with a fresh snapshot
        okx.ws.refuse = True
        await okx.ws.drop_all()
        await eventually(lambda: quotes(seen)[-1][0] == "polling")
        assert quotes(seen)[-1] == ("polling", D("100.55"), D("100.7"))
        okx.ws.refuse = False
        await eventually(lambda: len(okx.subscribes) == 3 and quotes(seen)[-1][0] == "stream")
        assert okx.subscribes[2] == okx.subscribes[0]
        await okx.update("ask", "100.65", "1")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.55"), D("100.65")))
    finally:
        await feed.stop()


async def test_okx_keepalive_and_reconnect_notice(okx: FakeOkx, http: httpx.AsyncClient) -> None:
    seen: Seen = []
    feed = make_okx(okx, http, seen, "okx_e2e_keepalive", ping_interval=0.05)
    feed.start()
    try:
        await eventually(lambda: okx.ws.pings >= 1 and feed.ignored_by_type.get("pong", 0) >= 1)
        assert feed.messages >= 1  # the snapshot; pongs never count as data
        polls = feed.polls
        await okx.notice()
        await eventually(lambda: okx.ws.connects == 2 and len(okx.subscribes) == 2)
        assert feed.reconnect_notices == 1
        assert feed.polls == polls  # reconnected at once, no REST polling in between
    finally:
        await feed.stop()


async def test_bybit_snapshot_deltas_gap_resync_ping_and_reconnect(
    bybit: FakeBybit, http: httpx.AsyncClient
) -> None:
    seen: Seen = []
    feed = make_bybit(bybit, http, seen, "bybit_e2e", ping_interval=0.05)
    before = resyncs("bybit_e2e")
    feed.start()
    try:
        await eventually(lambda: len(quotes(seen)) >= 1)
        assert bybit.ws.paths[0] == "/v5/public/spot"
        assert bybit.subscribes[0] == ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
        assert quotes(seen)[0] == ("stream", D("100.40"), D("100.50"))

        await bybit.delta("bid", "100.45", "0.3")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.45"), D("100.50")))
        await bybit.delta("ask", "100.50", "0")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.45"), D("100.60")))
        await bybit.trade("100.60", "0.002", "Sell", "b-1")
        await eventually(lambda: any(isinstance(e, TradeTick) for _, e in seen))
        trade = next(e for _, e in seen if isinstance(e, TradeTick))
        assert (trade.price, trade.size, trade.side, trade.trade_id) == (
            D("100.60"),
            D("0.002"),
            "sell",
            "b-1",
        )

        await bybit.delta("ask", "100.55", "0.4", gap=True)
        await eventually(lambda: len(bybit.subscribes) == 2)
        assert bybit.unsubscribes == [["orderbook.50.BTCUSDT"]]
        assert bybit.subscribes[1] == ["orderbook.50.BTCUSDT"]
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.45"), D("100.55")))
        assert feed.resyncs_by_reason == {"sequence_gap": 1}
        assert resyncs("bybit_e2e") == before + 1

        await eventually(lambda: bybit.pings >= 1 and feed.ignored_by_type.get("pong", 0) >= 1)

        bybit.ws.refuse = True
        await bybit.ws.drop_all()
        await eventually(lambda: quotes(seen)[-1][0] == "polling")
        assert quotes(seen)[-1] == ("polling", D("100.45"), D("100.55"))
        bybit.ws.refuse = False
        await eventually(lambda: len(bybit.subscribes) == 3 and quotes(seen)[-1][0] == "stream")
    finally:
        await feed.stop()


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_router_fails_over_from_okx_to_bybit_and_back(
    okx: FakeOkx, bybit: FakeBybit, http: httpx.AsyncClient
) -> None:
    """One market priced by OKX first, Bybit second: Bybit's quotes are dropped while OKX speaks,
    used once OKX has been silent for `fallback_after`, and OKX takes over again when it returns."""
    clock = ManualClock()
    submitted: list[commands.AnyCommand] = []
    route = MarketRoute(
        "BTC-USD",
        (InstrumentRef("okx", "BTC-USDT"), InstrumentRef("bybit", "BTCUSDT")),
        fallback_after=5.0,
    )
    router = Router([route], submitted.append, clock=clock)
    okx_feed = OkxFeed(
        ["BTC-USDT"],
        router.on_event,
        http,
        ws_url=okx.ws.url,
        rest_root=okx.http.url,
        channels=("books",),
        poll_interval=30.0,
        backoff=backoff(),
        name="okx_e2e_failover",
    )
    bybit_feed = BybitFeed(
        ["BTCUSDT"],
        router.on_event,
        http,
        ws_root=bybit.ws.url,
        rest_root=bybit.http.url,
        trades=False,
        tickers=False,
        poll_interval=30.0,
        backoff=backoff(),
        name="bybit_e2e_failover",
    )

    def sources() -> list[tuple[str | None, Decimal | None]]:
        return [(c.source, c.bid) for c in submitted if isinstance(c, commands.Quote)]

    okx_feed.start()
    try:
        await eventually(lambda: sources() == [("okx", D("100.4"))])
        bybit_feed.start()
        await eventually(lambda: len(bybit.subscribes) == 1 and router.stats()["BTC-USD"]["dropped"] == 1)
        await bybit.delta("bid", "100.45", "1")
        await eventually(lambda: router.stats()["BTC-USD"]["dropped"] == 2)
        assert sources() == [("okx", D("100.4"))]

        await okx_feed.stop()  # OKX goes silent
        clock.now += 5.0
        await bybit.delta("bid", "100.46", "1")
        await eventually(lambda: sources()[-1] == ("bybit", D("100.46")))

        okx_feed.start()  # OKX is back: its snapshot takes over at once
        await eventually(lambda: sources()[-1] == ("okx", D("100.4")))
        await bybit.delta("bid", "100.47", "1")
        await eventually(lambda: router.stats()["BTC-USD"]["dropped"] == 3)
        assert sources()[-1] == ("okx", D("100.4"))
    finally:
        await okx_feed.stop()
        await bybit_feed.stop()


@pytest.fixture
async def coinbase() -> AsyncIterator[FakeCoinbase]:
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    yield FakeCoinbase(rest, ws, "BTC-USD", FakeVenueBook({"100.40": "1"}, {"100.60": "2"}))
    await ws.stop()
    await rest.stop()


async def test_coinbase_snapshot_updates_connection_gap_resync_and_reconnect(
    coinbase: FakeCoinbase, http: httpx.AsyncClient
) -> None:
    seen: Seen = []
    ref: list[CoinbaseFeed] = []

    def sink(event: FeedEvent) -> None:
        seen.append((ref[0].mode, event))

    feed = CoinbaseFeed(
        ["BTC-USD"],
        sink,
        http,
        ws_url=coinbase.ws.url,
        rest_root=coinbase.http.url,
        poll_interval=0.05,
        backoff=backoff(),
        name="coinbase_e2e",
    )
    ref.append(feed)
    before = resyncs("coinbase_e2e")
    feed.start()
    try:
        await eventually(lambda: len(quotes(seen)) >= 1)
        assert [channel for channel, _ in coinbase.subscribes] == [
            "level2",
            "ticker",
            "market_trades",
            "heartbeats",
        ]
        assert quotes(seen)[0] == ("stream", D("100.40"), D("100.60"))
        await coinbase.update("bid", "100.50", "3")
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.50"), D("100.60")))
        await coinbase.heartbeat()
        await eventually(lambda: feed.ignored_by_type.get("heartbeats") == 1)

        await coinbase.update("offer", "100.55", "1", skip=True)  # one message of the connection lost
        await eventually(lambda: len(coinbase.subscribes) == 5)
        assert coinbase.unsubscribes == [("level2", ["BTC-USD"])]
        assert coinbase.subscribes[4] == ("level2", ["BTC-USD"])
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.50"), D("100.55")))
        assert feed.resyncs_by_reason == {"sequence_gap": 1}
        assert resyncs("coinbase_e2e") == before + 1

        coinbase.ws.refuse = True
        await coinbase.ws.drop_all()
        await eventually(lambda: quotes(seen)[-1][0] == "polling")
        assert quotes(seen)[-1] == ("polling", D("100.50"), D("100.55"))
        coinbase.ws.refuse = False
        await eventually(lambda: len(coinbase.subscribes) == 9 and quotes(seen)[-1][0] == "stream")
        await coinbase.update("bid", "100.52", "1")  # the new connection counts from 0 again: no gap
        await eventually(lambda: quotes(seen)[-1] == ("stream", D("100.52"), D("100.55")))
        assert feed.resyncs == 1
    finally:
        await feed.stop()
