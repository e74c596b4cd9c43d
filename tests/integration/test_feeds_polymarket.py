"""Polymarket feed against fake CLOB WebSocket and Gamma servers: books, trades, resolution, void."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from tests.fakes.http_server import FakeHttpServer, Response
from tests.fakes.providers import FakePolymarket
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.domain import commands
from tradehall.domain.enums import Outcome
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.models import (
    BookSnapshot,
    FeedEvent,
    MarketState,
    MarketStatusUpdate,
    Quote,
    TradeTick,
)
from tradehall.marketdata.polymarket import PolymarketFeed, PolymarketMarketRef
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router, SettlementMode

D = Decimal
YES, NO = "71321045679252212594626385532706912750332728571942532289631379312455583992563", "5204"


@pytest.fixture
async def poly() -> AsyncIterator[FakePolymarket]:
    ws, http = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await http.start()
    yield FakePolymarket(http, ws, "will-it", YES, NO)
    await ws.stop()
    await http.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


def make_feed(
    poly: FakePolymarket,
    http: httpx.AsyncClient,
    sink: list[FeedEvent],
    *,
    known_tokens: bool = True,
    status_interval: float = 30.0,
) -> PolymarketFeed:
    ref = PolymarketMarketRef("will-it", YES, NO) if known_tokens else PolymarketMarketRef("will-it")
    return PolymarketFeed(
        [ref],
        sink.append,
        http,
        ws_url=poly.ws.url,
        gamma_root=poly.http.url,
        clob_root=poly.http.url,
        status_interval=status_interval,
        backoff=Backoff(base=0.1, cap=0.2, rng=random.Random(1)),
    )


async def test_book_price_change_and_last_trade(poly, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[FeedEvent] = []
    feed = make_feed(poly, http, seen)
    feed.start()
    await eventually(lambda: len([e for e in seen if isinstance(e, Quote)]) == 2)
    assert poly.ws.received[0] == {"assets_ids": [YES, NO], "type": "market", "custom_feature_enabled": True}
    snapshot = next(e for e in seen if isinstance(e, BookSnapshot) and e.instrument == YES)
    assert snapshot.bids == ((D("0.46"), D("30")), (D("0.40"), D("100")))
    assert snapshot.asks == ((D("0.48"), D("25")), (D("0.55"), D("10")))
    yes_quote = next(e for e in seen if isinstance(e, Quote) and e.instrument == YES)
    assert (yes_quote.bid, yes_quote.ask, yes_quote.exchange_ts) == (
        D("0.46"),
        D("0.48"),
        1_750_428_146_322_000_000,
    )
    await poly.ws.push(
        {
            "event_type": "price_change",
            "market": "0xbd31",
            "timestamp": "1757908892351",
            "price_changes": [
                {
                    "asset_id": YES,
                    "price": ".47",
                    "size": "200",
                    "side": "BUY",
                    "hash": "5662",
                    "best_bid": ".47",
                    "best_ask": ".48",
                },
                {
                    "asset_id": YES,
                    "price": "0.48",
                    "size": "0",
                    "side": "SELL",
                    "hash": "5663",
                    "best_bid": ".47",
                    "best_ask": ".55",
                },
            ],
        }
    )
    await poly.ws.push(
        {
            "event_type": "last_trade_price",
            "asset_id": YES,
            "market": "0xbd31",
            "price": "0.456",
            "side": "BUY",
            "size": "219.217767",
            "fee_rate_bps": "0",
            "timestamp": "1750428146322",
        }
    )
    await eventually(lambda: any(isinstance(e, TradeTick) for e in seen))
    await feed.stop()
    quotes = [e for e in seen if isinstance(e, Quote) and e.instrument == YES]
    assert (quotes[-1].bid, quotes[-1].bid_size, quotes[-1].ask, quotes[-1].ask_size) == (
        D("0.47"),
        D("200"),
        D("0.55"),
        D("10"),
    )
    trade = next(e for e in seen if isinstance(e, TradeTick))
    assert (trade.instrument, trade.price, trade.size, trade.side) == (
        YES,
        D("0.456"),
        D("219.217767"),
        "buy",
    )
    assert feed.books[YES].last == D("0.456")


async def test_market_resolved_message_settles_through_the_router(poly, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[FeedEvent] = []
    submitted: list[commands.AnyCommand] = []
    router = Router(
        [MarketRoute("WILL-IT", (InstrumentRef("polymarket", YES),), settlement=SettlementMode.AUTO)],
        submitted.append,
    )
    feed = make_feed(poly, http, seen)
    feed.sink = lambda event: (seen.append(event), router(event))  # type: ignore[func-returns-value]
    feed.start()
    await eventually(lambda: poly.ws.received != [] and any(isinstance(e, Quote) for e in seen))
    await poly.ws.push(
        {
            "event_type": "market_resolved",
            "id": "12",
            "market": "0xbd31",
            "assets_ids": [YES, NO],
            "winning_asset_id": NO,
            "winning_outcome": "No",
            "outcomes": ["Yes", "No"],
            "timestamp": "1757908892351",
        }
    )
    await eventually(lambda: any(isinstance(c, commands.SettleMarket) for c in submitted))
    await feed.stop()
    settle = [c for c in submitted if isinstance(c, commands.SettleMarket)]
    assert [(c.market, c.outcome) for c in settle] == [("WILL-IT", Outcome.NO)]
    assert [e.state for e in seen if isinstance(e, MarketStatusUpdate)][-1] is MarketState.SETTLED_NO


async def test_gamma_learns_tokens_and_a_fifty_fifty_resolution_is_void(poly, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[FeedEvent] = []
    feed = make_feed(poly, http, seen, known_tokens=False)
    updates = await feed.poll_status_once()
    assert feed.token_ids == [YES, NO]
    assert [(u.instrument, u.state) for u in updates] == [(YES, MarketState.OPEN)]
    assert poly.http.hits("/markets")[0].query == {"slug": "will-it"}
    assert await feed.poll_status_once() == []  # unchanged state: nothing new
    poly.gamma.update(
        {
            "closed": True,
            "active": False,
            "acceptingOrders": False,
            "outcomePrices": '["0.5", "0.5"]',
            "umaResolutionStatus": "resolved",
        }
    )
    submitted: list[commands.AnyCommand] = []
    router = Router(
        [MarketRoute("WILL-IT", (InstrumentRef("polymarket", YES),), settlement=SettlementMode.AUTO)],
        submitted.append,
    )
    feed.sink = router
    updates = await feed.poll_status_once()
    assert [u.state for u in updates] == [MarketState.VOID]
    assert [type(c) for c in submitted] == [commands.VoidMarket]


async def test_gamma_faults_are_counted_and_status_polling_carries_on(poly, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[FeedEvent] = []
    feed = make_feed(poly, http, seen)
    poly.http.inject(
        "/markets",
        Response.html(status=503),
        Response(200, b'[{"id": '),
        Response(429, b"", {"retry-after": "5"}),
    )
    for _ in range(3):
        assert await feed.poll_status_once() == []
    assert [u.state for u in await feed.poll_status_once()] == [MarketState.OPEN]
    assert feed.errors_by_kind == {"http_status": 1, "malformed_json": 1, "rate_limited": 1}


async def test_rest_book_is_sorted(poly, http) -> None:  # type: ignore[no-untyped-def]
    poly.http.route(
        "/book",
        lambda request: Response.json(
            {**poly.book(request.query["token_id"]), "min_order_size": "5", "tick_size": "0.01"}
        ),
    )
    feed = make_feed(poly, http, [])
    snapshot = await feed.fetch_book(YES)
    assert snapshot.bids[0] == (D("0.46"), D("30")) and snapshot.asks[0] == (D("0.48"), D("25"))


async def test_keepalive_ping_and_pong_are_quiet(poly, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[FeedEvent] = []
    feed = make_feed(poly, http, seen)
    feed.keepalive_interval = 0.05
    feed.start()
    await eventually(lambda: poly.ws.pings >= 3)
    await feed.stop()
    assert feed.errors == 0
    assert poly.ws.connects == 1


async def test_rest_books_only_while_the_channel_is_down(poly, http) -> None:  # type: ignore[no-untyped-def]
    poly.http.route("/book", lambda request: Response.json(poly.book(request.query["token_id"])))
    seen: list[FeedEvent] = []
    feed = make_feed(poly, http, seen)
    feed.poll_interval = 0.05
    feed.start()
    await eventually(lambda: len([e for e in seen if isinstance(e, Quote)]) == 2)
    assert poly.http.hits("/book") == []
    poly.ws.refuse = True
    await poly.ws.drop_all()
    await eventually(lambda: len(poly.http.hits("/book")) >= 4)
    assert feed.status().mode == "polling"
    poly.ws.refuse = False
    await eventually(lambda: feed.mode == "stream")
    polls = len(poly.http.hits("/book"))
    await asyncio.sleep(0.2)
    await feed.stop()
    assert len(poly.http.hits("/book")) == polls
    rest_quotes = [e for e in seen if isinstance(e, Quote) and e.instrument == YES]
    assert all((q.bid, q.ask) == (D("0.46"), D("0.48")) for q in rest_quotes)


async def test_a_token_learnt_while_connected_is_subscribed_live_and_quoted(poly, http) -> None:  # type: ignore[no-untyped-def]
    """One market is known at connect; the other's slug is unknown to Gamma until later. When Gamma
    answers, its tokens join the open connection and get quotes without a reconnect."""
    seen: list[FeedEvent] = []
    poly.slug = "not-yet"
    feed = PolymarketFeed(
        [PolymarketMarketRef("known", "111", "222"), PolymarketMarketRef("will-it")],
        seen.append,
        http,
        ws_url=poly.ws.url,
        gamma_root=poly.http.url,
        clob_root=poly.http.url,
        status_interval=3600.0,
        backoff=Backoff(base=0.1, cap=0.2, rng=random.Random(1)),
    )
    feed.start()
    await eventually(lambda: any(isinstance(e, Quote) and e.instrument == "111" for e in seen))
    assert poly.ws.received[0]["assets_ids"] == ["111", "222"]
    poly.slug = "will-it"
    await feed.poll_status_once()
    await eventually(lambda: any(isinstance(e, Quote) and e.instrument == YES for e in seen))
    await feed.stop()
    assert poly.ws.received[1] == {
        "assets_ids": [YES, NO],
        "operation": "subscribe",
        "custom_feature_enabled": True,
    }
    assert poly.ws.connects == 1
    yes_quote = next(e for e in seen if isinstance(e, Quote) and e.instrument == YES)
    assert (yes_quote.bid, yes_quote.ask) == (D("0.46"), D("0.48"))
