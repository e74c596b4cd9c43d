"""Router: priority and fallback, throttling that keeps the latest, command shapes, settlement."""

from __future__ import annotations

from decimal import Decimal

from tradehall.domain import commands
from tradehall.domain.enums import Outcome
from tradehall.marketdata.candles import CandleAggregator
from tradehall.marketdata.models import MarketState, MarketStatusUpdate, Quote, TradeTick
from tradehall.marketdata.router import CommandKind, InstrumentRef, MarketRoute, Router, SettlementMode

D = Decimal
NOW_NS = 1_800_000_000_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def ns(self) -> int:
        return NOW_NS + int(self.now * 1e9)


def make(routes: list[MarketRoute]) -> tuple[Router, list[commands.AnyCommand], FakeClock]:
    clock = FakeClock()
    sent: list[commands.AnyCommand] = []
    return Router(routes, sent.append, clock=clock, clock_ns=clock.ns), sent, clock


BTC = MarketRoute(
    "BTC-PERP",
    (InstrumentRef("binance", "btcusdt"), InstrumentRef("coingecko", "bitcoin/usd")),
    commands=CommandKind.QUOTE,
    fallback_after=5.0,
)


def bq(bid: str, ask: str, ts: int | None = 7) -> Quote:
    return Quote("binance", "btcusdt", D(bid), D(ask), D("1.5"), D("2"), None, ts, 1)


def test_quote_becomes_a_quote_command_with_exact_fields() -> None:
    router, sent, clock = make([BTC])
    router(bq("67000.10", "67000.20"))
    assert sent == [
        commands.Quote(
            ts=clock.ns(),
            market="BTC-PERP",
            bid=D("67000.10"),
            ask=D("67000.20"),
            bid_size=D("1.5"),
            ask_size=D("2"),
            last=None,
            source="binance",
            exchange_ts=7,
        )
    ]
    cached = router.cache.get("BTC-PERP")
    assert cached is not None and cached.quote.bid == D("67000.10")


def test_unmapped_instruments_are_ignored() -> None:
    router, sent, _ = make([BTC])
    router(Quote("binance", "ethusdt", D(1), D(2)))
    assert sent == []


def test_lower_priority_source_only_after_the_higher_one_is_silent() -> None:
    router, sent, clock = make([BTC])
    router(bq("100", "101"))
    router(Quote("coingecko", "bitcoin/usd", last=D("99")))
    assert len(sent) == 1
    clock.now += 5.0
    router(Quote("coingecko", "bitcoin/usd", last=D("98")))
    assert len(sent) == 2
    assert (
        isinstance(sent[-1], commands.Quote) and sent[-1].last == D("98") and sent[-1].source == "coingecko"
    )
    router(bq("102", "103"))  # the primary comes back: used at once
    router(Quote("coingecko", "bitcoin/usd", last=D("97")))
    assert [c.source for c in sent if isinstance(c, commands.Quote)] == ["binance", "coingecko", "binance"]
    assert router.stats()["BTC-PERP"]["active_source"] == "binance:btcusdt"
    assert router.stats()["BTC-PERP"]["dropped"] == 2


def test_throttle_keeps_the_latest_and_sends_it_when_the_window_ends() -> None:
    route = MarketRoute("BTC-PERP", (InstrumentRef("binance", "btcusdt"),), min_interval=1.0)
    router, sent, clock = make([route])
    router(bq("1", "2"))
    clock.now += 0.2
    router(bq("3", "4"))
    clock.now += 0.3
    router(bq("5", "6"))
    assert len(sent) == 1
    clock.now += 0.4
    assert router.flush() == 0
    clock.now += 0.1
    assert router.flush() == 1
    assert isinstance(sent[-1], commands.Quote) and (sent[-1].bid, sent[-1].ask) == (D("5"), D("6"))
    assert router.flush() == 0
    cached = router.cache.get("BTC-PERP")
    assert cached is not None and cached.quote.bid == D("5")


def test_mark_and_both_commands_use_mid_or_last() -> None:
    routes = [
        MarketRoute("BTC-PERP", (InstrumentRef("coingecko", "bitcoin/usd"),), commands=CommandKind.MARK),
        MarketRoute("ETH-PERP", (InstrumentRef("binance", "ethusdt"),), commands=CommandKind.BOTH),
    ]
    router, sent, clock = make(routes)
    router(Quote("coingecko", "bitcoin/usd", last=D("67187.3358936566")))
    router(Quote("binance", "ethusdt", D("3000.01"), D("3000.02")))
    assert sent[0] == commands.MarkPrice(ts=clock.ns(), market="BTC-PERP", price=D("67187.3358936566"))
    assert isinstance(sent[1], commands.Quote) and sent[1].market == "ETH-PERP"
    assert sent[2] == commands.MarkPrice(ts=clock.ns(), market="ETH-PERP", price=D("3000.015"))


KX = MarketRoute(
    "FED-YES",
    (InstrumentRef("kalshi", "FED-23DEC-T3.00"), InstrumentRef("polymarket", "111")),
    settlement=SettlementMode.AUTO,
)


def test_automatic_settlement_is_sent_once_and_stops_quotes() -> None:
    router, sent, clock = make([KX])
    update = MarketStatusUpdate("kalshi", "FED-23DEC-T3.00", MarketState.SETTLED_YES)
    router(update)
    router(update)
    router(MarketStatusUpdate("polymarket", "111", MarketState.SETTLED_YES))
    router(Quote("kalshi", "FED-23DEC-T3.00", D("0.99"), D("1")))
    assert sent == [commands.SettleMarket(ts=clock.ns(), market="FED-YES", outcome=Outcome.YES)]


def test_open_and_closed_states_do_not_settle() -> None:
    router, sent, _ = make([KX])
    router(MarketStatusUpdate("kalshi", "FED-23DEC-T3.00", MarketState.OPEN))
    router(MarketStatusUpdate("kalshi", "FED-23DEC-T3.00", MarketState.CLOSED))
    assert sent == []


def test_void_becomes_void_market() -> None:
    router, sent, clock = make([KX])
    router(MarketStatusUpdate("polymarket", "111", MarketState.VOID))
    assert sent == [commands.VoidMarket(ts=clock.ns(), market="FED-YES")]


def test_held_settlement_waits_for_an_admin() -> None:
    route = MarketRoute("FED-YES", (InstrumentRef("kalshi", "K"),), settlement=SettlementMode.CONFIRM)
    router, sent, clock = make([route])
    router(MarketStatusUpdate("kalshi", "K", MarketState.SETTLED_NO))
    assert sent == []
    assert router.held == {
        "FED-YES": commands.SettleMarket(ts=clock.ns(), market="FED-YES", outcome=Outcome.NO)
    }
    assert router.reject("FED-YES") is True
    assert router.confirm("FED-YES") is None
    router(MarketStatusUpdate("kalshi", "K", MarketState.SETTLED_NO))
    clock.now += 1
    confirmed = router.confirm("FED-YES")
    assert confirmed == commands.SettleMarket(ts=clock.ns(), market="FED-YES", outcome=Outcome.NO)
    assert sent == [confirmed]


def test_router_feeds_candles_from_mids_and_active_source_trades() -> None:
    candles = CandleAggregator(intervals=("1m",))
    clock = FakeClock()
    router = Router([BTC], lambda _: None, candles=candles, clock=clock, clock_ns=clock.ns)
    ts = 1_800_000_000 * 1_000_000_000
    router(bq("10", "12", ts=ts))
    router(TradeTick("binance", "btcusdt", D("13"), D("2"), "buy", "1", ts + 1))
    router(
        TradeTick("coingecko", "bitcoin/usd", D("50"), D("9"), None, None, ts + 2)
    )  # not the active source
    candle = candles.current("BTC-PERP", "1m")
    assert candle is not None
    assert (candle.open, candle.high, candle.close, candle.volume, candle.trades) == (
        D(11),
        D(13),
        D(13),
        D(2),
        1,
    )


def test_exchange_to_engine_latency_is_observed_per_source() -> None:
    from prometheus_client import REGISTRY

    labels = {"feed": "latency_test"}

    def count() -> float:
        return REGISTRY.get_sample_value("tradehall_feed_latency_seconds_count", labels) or 0.0

    def total() -> float:
        return REGISTRY.get_sample_value("tradehall_feed_latency_seconds_sum", labels) or 0.0

    route = MarketRoute("L", (InstrumentRef("latency_test", "x"),))
    router, _, clock = make([route])
    before_count, before_sum = count(), total()
    router(Quote("latency_test", "x", D(1), D(2), exchange_ts=clock.ns() - 3_000_000))
    router(Quote("latency_test", "x", D(1), D(2), exchange_ts=None))
    assert count() - before_count == 1
    assert abs(total() - before_sum - 0.003) < 1e-9
