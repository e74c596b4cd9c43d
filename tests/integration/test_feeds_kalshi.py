"""Kalshi feed against fake WebSocket and REST servers: YES quotes from a bids-only book, seq gaps,
REST only while the WebSocket is down, settlement detection through the router."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from tests.fakes.http_server import FakeHttpServer, Response
from tests.fakes.providers import FakeKalshi
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.domain import commands
from tradehall.domain.enums import Outcome
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.kalshi import KalshiFeed
from tradehall.marketdata.models import FeedEvent, MarketState, MarketStatusUpdate, Quote
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router, SettlementMode

D = Decimal
TICKER = "FED-23DEC-T3.00"


@pytest.fixture
async def kalshi() -> AsyncIterator[FakeKalshi]:
    ws, rest = FakeWsServer(), FakeHttpServer()
    await ws.start()
    await rest.start()
    yield FakeKalshi(rest, ws, TICKER)
    await ws.stop()
    await rest.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


def make_feed(
    fake: FakeKalshi,
    http: httpx.AsyncClient,
    seen: list[tuple[str, FeedEvent]],
    status_interval: float = 30.0,
) -> KalshiFeed:
    feed: KalshiFeed

    def sink(event: FeedEvent) -> None:
        seen.append((feed.mode, event))

    feed = KalshiFeed(
        [TICKER],
        sink,
        http,
        ws_url=fake.ws.url,
        rest_root=fake.rest_root,
        poll_interval=0.05,
        status_interval=status_interval,
        backoff=Backoff(base=0.2, cap=0.3, rng=random.Random(5)),
        auth_headers=lambda: {"KALSHI-ACCESS-KEY": "key-id"},
    )
    return feed


def quotes(seen: list[tuple[str, FeedEvent]]) -> list[tuple[Decimal | None, Decimal | None]]:
    return [(e.bid, e.ask) for _, e in seen if isinstance(e, Quote)]


async def test_snapshot_and_deltas_give_yes_bid_and_ask(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) >= 1)
    assert kalshi.ws.received[0] == {
        "id": 1,
        "cmd": "subscribe",
        "params": {"channels": ["orderbook_delta", "ticker", "trade"], "market_ticker": TICKER},
    }
    assert quotes(seen) == [(D("0.22"), D("0.44"))]  # YES ask = 1 - best NO bid 0.56
    await kalshi.delta("no", "0.5600", "-146.00")
    await kalshi.delta("yes", "0.3000", "10.00")
    await kalshi.ws.push(
        {
            "type": "ticker",
            "sid": 11,
            "msg": {
                "market_ticker": TICKER,
                "price_dollars": "0.4800",
                "yes_bid_dollars": "0.4500",
                "yes_ask_dollars": "0.5300",
                "ts_ms": 1669149841000,
            },
        }
    )
    await kalshi.delta("yes", "0.3000", "-4.00")
    await eventually(lambda: len(quotes(seen)) == 4)
    await feed.stop()
    assert quotes(seen) == [
        (D("0.22"), D("0.44")),
        (D("0.22"), D("0.46")),
        (D("0.30"), D("0.46")),
        (D("0.30"), D("0.46")),
    ]
    last = [e for _, e in seen if isinstance(e, Quote)][-1]
    assert (last.bid_size, last.ask_size, last.last, last.exchange_ts) == (
        D("6.00"),
        D("20.00"),
        D("0.48"),
        1_669_149_841_000_000_000,
    )
    assert kalshi.ws.connects == 1


async def test_sequence_gap_resubscribes_for_a_fresh_snapshot(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) == 1)
    first_sid = kalshi.current_sid
    await kalshi.delta("yes", "0.3000", "10.00", skip_seq=True)  # seq 3 after 1: the book stays as it was
    await eventually(lambda: kalshi.subscribes == 2 and len(quotes(seen)) == 2)
    await kalshi.delta("yes", "0.3500", "1.00")
    await eventually(lambda: len(quotes(seen)) == 3)
    await feed.stop()
    assert feed.resubscribes == 1 and kalshi.unsubscribes == 1
    assert kalshi.current_sid == first_sid + 1
    assert {"id": 2, "cmd": "unsubscribe", "params": {"sids": [first_sid]}} in kalshi.ws.received
    # the fresh snapshot includes the level the gap hid; the later delta applies on top
    assert quotes(seen) == [(D("0.22"), D("0.44")), (D("0.30"), D("0.44")), (D("0.35"), D("0.44"))]
    assert feed.errors_by_kind == {"sequence_gap": 1}
    assert kalshi.ws.connects == 1


async def test_rest_only_while_websocket_down_and_no_duplicate_ticks(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    book_path = f"/trade-api/v2/markets/{TICKER}/orderbook"
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) == 1)
    await asyncio.sleep(0.2)
    assert kalshi.http.hits(book_path) == []
    kalshi.ws.refuse = True
    await kalshi.ws.drop_all()
    await eventually(lambda: len(kalshi.http.hits(book_path)) >= 2)
    assert feed.status().mode == "polling"
    kalshi.apply("yes", "0.2500", "5.00")  # the market moves while the stream is away
    await eventually(lambda: quotes(seen)[-1] == (D("0.25"), D("0.44")))
    kalshi.ws.refuse = False
    await eventually(lambda: feed.mode == "stream" and kalshi.subscribes == 2)
    polls = len(kalshi.http.hits(book_path))
    await kalshi.delta("no", "0.5600", "-146.00")
    await eventually(lambda: quotes(seen)[-1] == (D("0.25"), D("0.46")))
    await asyncio.sleep(0.2)
    await feed.stop()
    assert len(kalshi.http.hits(book_path)) == polls
    rest_ticks = [e for mode, e in seen if mode == "polling" and isinstance(e, Quote)]
    assert len(rest_ticks) == polls  # every REST tick came from a poll made while the WebSocket was down
    stream_ticks = [e for mode, e in seen if mode == "stream" and isinstance(e, Quote)]
    assert len(stream_ticks) == 3  # snapshot, snapshot after reconnect, one delta


async def test_rest_fallback_survives_html_and_malformed_answers(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    book_path = f"/trade-api/v2/markets/{TICKER}/orderbook"
    kalshi.ws.refuse = True
    kalshi.http.inject(
        book_path, Response.html(status=502), Response(200, b'{"orderbook_fp": {"yes_dollars": [')
    )
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) >= 1)
    await feed.stop()
    assert quotes(seen)[0] == (D("0.22"), D("0.44"))
    assert feed.errors_by_kind["http_status"] == 1 and feed.errors_by_kind["malformed_json"] == 1


async def test_settlement_detected_by_status_polling_reaches_the_router(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, FeedEvent]] = []
    submitted: list[commands.AnyCommand] = []
    router = Router(
        [MarketRoute("FED-YES", (InstrumentRef("kalshi", TICKER),), settlement=SettlementMode.AUTO)],
        submitted.append,
    )
    feed = make_feed(kalshi, http, seen, status_interval=0.1)
    feed.sink = lambda event: (seen.append((feed.mode, event)), router(event))  # type: ignore[func-returns-value]
    feed.start()
    await eventually(lambda: any(isinstance(e, MarketStatusUpdate) for _, e in seen))
    kalshi.market.update({"status": "determined", "result": "yes", "settlement_value_dollars": "1.0000"})
    await eventually(lambda: any(isinstance(c, commands.SettleMarket) for c in submitted))
    await asyncio.sleep(0.25)
    await feed.stop()
    states = [e.state for _, e in seen if isinstance(e, MarketStatusUpdate)]
    assert states == [MarketState.OPEN, MarketState.SETTLED_YES]
    settles = [c for c in submitted if isinstance(c, commands.SettleMarket)]
    assert len(settles) == 1 and (settles[0].market, settles[0].outcome) == ("FED-YES", Outcome.YES)


async def test_bad_websocket_messages_are_counted_and_the_book_goes_on(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) == 1)
    await kalshi.ws.push("<html><body>502 Bad Gateway</body></html>")
    await kalshi.ws.push('{"type": "orderbook_delta", "sid": 1,')
    await kalshi.ws.push({"id": 123, "type": "error", "msg": {"code": 2, "msg": "Params required"}})
    await kalshi.ws.push(
        {
            "type": "orderbook_delta",
            "sid": kalshi.current_sid,
            "seq": 2,
            "msg": {"market_ticker": TICKER, "price_dollars": "abc", "delta_fp": "1", "side": "yes"},
        }
    )
    await kalshi.delta("yes", "0.3000", "10.00")  # seq 2 is still the next one: the bad delta was not applied
    await eventually(lambda: len(quotes(seen)) == 2)
    await feed.stop()
    assert quotes(seen)[-1] == (D("0.30"), D("0.44"))
    assert feed.errors_by_kind == {"html": 1, "malformed_json": 1, "api_error": 1, "parse": 1}
    assert kalshi.ws.connects == 1 and feed.resubscribes == 0


async def test_rest_fallback_honours_429_retry_after(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    book_path = f"/trade-api/v2/markets/{TICKER}/orderbook"
    kalshi.ws.refuse = True
    kalshi.http.inject(book_path, Response(429, b'{"error": "too many requests"}', {"retry-after": "0.6"}))
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) >= 1, timeout=5)
    await feed.stop()
    hits = kalshi.http.hits(book_path)
    assert hits[1].at - hits[0].at >= 0.6
    assert feed.errors_by_kind["rate_limited"] == 1


async def test_three_gaps_resubscribe_the_book_alone(kalshi, http) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, FeedEvent]] = []
    feed = make_feed(kalshi, http, seen)
    feed.start()
    await eventually(lambda: len(quotes(seen)) == 1)
    for gap in range(1, 4):
        await kalshi.delta("yes", "0.3000", "1.00", skip_seq=True)
        await eventually(lambda gap=gap: kalshi.subscribes == 1 + gap and len(quotes(seen)) == 1 + gap)
    await feed.stop()
    commands = [(m["cmd"], m["params"]) for m in kalshi.ws.received]
    book_only = {"channels": ["orderbook_delta"], "market_ticker": TICKER}
    assert commands == [
        ("subscribe", {"channels": ["orderbook_delta", "ticker", "trade"], "market_ticker": TICKER}),
        ("unsubscribe", {"sids": [1]}),
        ("subscribe", book_only),
        ("unsubscribe", {"sids": [2]}),
        ("subscribe", book_only),
        ("unsubscribe", {"sids": [3]}),
        ("subscribe", book_only),
    ]
    assert feed.resubscribes == 3 and feed.errors_by_kind == {"sequence_gap": 3}
    assert kalshi.ws.connects == 1
