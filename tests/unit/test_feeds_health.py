"""Health that tells the truth: per-market quote staleness on an injected clock drives /ready,
`tradehall_feed_up` and `tradehall_market_stale`; messages without data never count as health;
and the engine refuses a paper fill on the same stale quote."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from tests.e2e.test_api_harness import Server, running_server
from tests.engine_support import engine_with, one, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import Venue
from tradehall.marketdata.binance import BinanceFeed
from tradehall.marketdata.models import MarketState, MarketStatusUpdate
from tradehall.marketdata.registry import FeedRegistry
from tradehall.marketdata.router import CommandKind, InstrumentRef, MarketRoute, Router

D = Decimal
SECOND = 1_000_000_000
BOOK_TICKER = (
    Path(__file__).resolve().parents[1] / "data/feeds/binance/ws_bookticker_cc_spot_btcusdt.json"
).read_bytes()
# Binance docs, "Individual Symbol Mini Ticker Stream": a real type this feed does not use
MINI_TICKER = (
    b'{"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT",'
    b'"c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}'
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def ns(self) -> int:
        return int(self.now * SECOND)


def setup(
    name: str, stale_after: float = 10.0
) -> tuple[Clock, BinanceFeed, Router, FeedRegistry, list[c.AnyCommand]]:
    clock = Clock()
    sent: list[c.AnyCommand] = []
    route = MarketRoute(
        f"{name}-M", (InstrumentRef("binance", "btcusdt"),), CommandKind.QUOTE, stale_after=stale_after
    )
    router = Router([route], sent.append, clock=clock, clock_ns=clock.ns, stale_after=60.0)
    feed = BinanceFeed(["BTCUSDT"], router, httpx.AsyncClient(), clock=clock, clock_ns=clock.ns, name=name)
    feed.set_connected(True, "stream")
    registry = FeedRegistry([feed], max_message_age_seconds=60.0, market_health=router.market_health)
    return clock, feed, router, registry, sent


def up(name: str) -> float | None:
    return REGISTRY.get_sample_value("tradehall_feed_up", {"feed": name})


def test_a_market_without_a_quote_past_its_bound_is_stale_and_comes_back() -> None:
    clock, feed, _, registry, _ = setup("health_stale")
    feed.handle_message(BOOK_TICKER)
    good, report = registry.ready_check()
    assert good is True
    assert report[0]["markets"] == {
        "health_stale-M": {"age_seconds": 0.0, "stale_after": 10.0, "stale": False, "closed": False}
    }
    assert up("health_stale") == 1
    clock.now += 10.5  # the stream is connected, but this market has had no quote for 10.5 s
    good, report = registry.ready_check()
    assert good is False
    assert report[0]["healthy"] is False and report[0]["connected"] is True
    assert report[0]["markets"] == {
        "health_stale-M": {"age_seconds": 10.5, "stale_after": 10.0, "stale": True, "closed": False}
    }
    assert up("health_stale") == 0
    assert REGISTRY.get_sample_value("tradehall_market_stale", {"market": "health_stale-M"}) == 1
    feed.handle_message(BOOK_TICKER)
    assert registry.ready_check()[0] is True
    assert up("health_stale") == 1
    assert REGISTRY.get_sample_value("tradehall_market_stale", {"market": "health_stale-M"}) == 0


def test_a_market_never_quoted_is_stale_once_its_bound_has_passed_since_start() -> None:
    clock, _, _, registry, _ = setup("health_never", stale_after=5.0)
    clock.now += 5.0
    assert registry.refresh()["health_never"][0].stale is False
    clock.now += 0.5
    health = registry.refresh()["health_never"][0]
    assert (health.age_seconds, health.stale) == (None, True)


def test_a_market_its_provider_closed_is_not_stale_until_it_reopens() -> None:
    """A prediction market closed for trading but not yet resolved sends no quotes: /ready must not
    turn red for it; once reopened its silence counts from the reopening."""
    clock, feed, router, registry, _ = setup("health_closed", stale_after=5.0)
    feed.handle_message(BOOK_TICKER)
    router(MarketStatusUpdate("binance", "btcusdt", MarketState.CLOSED))
    clock.now += 100.0
    good, report = registry.ready_check()
    assert good is True
    assert report[0]["markets"] == {
        "health_closed-M": {"age_seconds": 100.0, "stale_after": 5.0, "stale": False, "closed": True}
    }
    assert REGISTRY.get_sample_value("tradehall_market_stale", {"market": "health_closed-M"}) == 0
    router(MarketStatusUpdate("binance", "btcusdt", MarketState.OPEN))
    clock.now += 5.0
    health = registry.refresh()["health_closed"][0]
    assert (health.age_seconds, health.stale, health.closed) == (None, False, False)
    clock.now += 0.5
    assert registry.refresh()["health_closed"][0].stale is True


def test_a_resolution_held_for_an_admin_closes_the_market_for_health() -> None:
    clock, feed, router, registry, _ = setup("health_held", stale_after=5.0)
    feed.handle_message(BOOK_TICKER)
    router(MarketStatusUpdate("binance", "btcusdt", MarketState.SETTLED_YES))
    assert set(router.held) == {"health_held-M"}
    clock.now += 60.0
    health = registry.refresh()["health_held"][0]
    assert (health.stale, health.closed) == (False, True)


def test_messages_without_data_do_not_keep_a_feed_healthy() -> None:
    _, feed, _, registry, _ = setup("health_ignored", stale_after=1000.0)
    before = (
        REGISTRY.get_sample_value(
            "tradehall_feed_ignored_total", {"feed": "health_ignored", "type": "24hrMiniTicker"}
        )
        or 0
    )
    for _ in range(3):
        feed.handle_message(MINI_TICKER)
        feed.handle_message(b'{"result":null,"id":1}')
    good, report = registry.ready_check()
    assert good is False
    assert report[0]["messages"] == 0 and report[0]["last_message_age_seconds"] is None
    assert report[0]["ignored"] == {"24hrMiniTicker": 3, "ack": 3}
    after = REGISTRY.get_sample_value(
        "tradehall_feed_ignored_total", {"feed": "health_ignored", "type": "24hrMiniTicker"}
    )
    assert after == before + 3
    assert REGISTRY.get_sample_value("tradehall_feed_messages_total", {"feed": "health_ignored"}) == 0


def test_the_engine_refuses_a_paper_fill_on_the_quote_the_router_calls_stale() -> None:
    clock, feed, _, registry, sent = setup("health_fill", stale_after=5.0)
    spec = spot_spec("health_fill-M", venue=Venue.QUOTE, quote_max_age_ms=5_000)
    engine = engine_with(spec, accounts={"a": {"USD": "1000000", "BTC": "2"}})
    feed.handle_message(BOOK_TICKER)
    assert len(sent) == 1 and isinstance(sent[0], c.Quote)
    engine.apply(sent[0])
    clock.now += 5.5
    assert registry.ready_check()[0] is False
    order = c.PlaceOrder(
        account_id="a",
        market="health_fill-M",
        side="buy",
        quantity=D("0.1"),
        price=None,
        type="market",
        ts=clock.ns(),
    )  # type: ignore[arg-type]
    assert one(engine.apply(order), ev.OrderRejected).code == "market_data_unavailable"
    feed.handle_message(BOOK_TICKER)  # a fresh quote: both agree again
    engine.apply(sent[-1])
    assert registry.ready_check()[0] is True
    fresh = c.PlaceOrder(
        account_id="a",
        market="health_fill-M",
        side="buy",
        quantity=D("0.1"),
        price=None,
        type="market",
        ts=clock.ns(),
    )  # type: ignore[arg-type]
    assert not [e for e in engine.apply(fresh) if isinstance(e, ev.OrderRejected)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("health")) as running:
        yield running


def test_ready_is_503_when_a_market_goes_stale(server: Server) -> None:
    clock, feed, _, registry, _ = setup("health_ready")
    feed.handle_message(BOOK_TICKER)
    gateway = server.app.state.gateway
    gateway.feeds = registry
    try:
        assert httpx.get(server.url + "/ready").status_code == 200
        clock.now += 11.0
        response = httpx.get(server.url + "/ready")
        assert response.status_code == 503
        body = orjson.loads(response.content)
        assert body["status"] == "not_ready" and body["checks"]["feeds"]["ok"] is False
        (row,) = body["checks"]["feeds"]["feeds"]
        assert row["markets"] == {
            "health_ready-M": {"age_seconds": 11.0, "stale_after": 10.0, "stale": True, "closed": False}
        }
    finally:
        gateway.feeds = None
