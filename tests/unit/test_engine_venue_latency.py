"""Seeded per-order latency of a quote venue (`latency_jitter_ms`): each order waits `latency_ms`
plus a draw in [0, latency_jitter_ms] fixed by the market's symbol and the order id, so two venues
of one instrument have different, replayable latencies."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine_support import engine_with, of_type, one, order_id, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import Venue
from tradehall.engine import Engine
from tradehall.engine.markets import MarketTerms

MS = 1_000_000
SECOND = 1_000_000_000


def terms(symbol: str, latency_ms: int, jitter_ms: int) -> MarketTerms:
    spec = spot_spec(symbol, venue=Venue.QUOTE, latency_ms=latency_ms, latency_jitter_ms=jitter_ms)
    return MarketTerms(spec, {"USD": 2, "BTC": 8})


@given(st.integers(1, 10**12))
@settings(max_examples=200)
def test_each_orders_latency_is_in_bounds_and_a_function_of_symbol_and_order(order: int) -> None:
    okx = terms("BTC-USD.OKX", 20, 30)
    delay = okx.latency_of(order)
    assert 20 * MS <= delay <= 50 * MS and delay % MS == 0
    assert terms("BTC-USD.OKX", 20, 30).latency_of(order) == delay  # no hidden state: replays agree


def test_the_draw_varies_per_order_and_per_venue() -> None:
    okx, binance = terms("BTC-USD.OKX", 20, 30), terms("BTC-USD.BINANCE", 20, 30)
    okx_delays = [okx.latency_of(n) for n in range(1, 201)]
    assert len(set(okx_delays)) == 31  # every whole millisecond of 20..50 is drawn in 200 orders
    assert okx_delays != [binance.latency_of(n) for n in range(1, 201)]
    assert terms("BTC-USD.OKX", 20, 0).latency_of(7) == 20 * MS  # no jitter: the fixed latency


def quote(engine: Engine, ask: str, ts: int) -> list[ev.AnyEvent]:
    return engine.apply(c.Quote(market="BTC-USD.OKX", bid=D("63990"), ask=D(ask), ts=ts))  # type: ignore[arg-type]


def test_an_order_fills_on_the_first_quote_after_its_own_latency() -> None:
    spec = spot_spec(
        "BTC-USD.OKX",
        instrument="BTC-USD",
        venue=Venue.QUOTE,
        latency_ms=10,
        latency_jitter_ms=40,
        slippage=D(0),
    )
    engine = engine_with(spec, accounts={"a": {"USD": "1000000"}})
    quote(engine, "64000", SECOND)
    events = place(engine, "a", "BTC-USD.OKX", "buy", "0.1", None, type="market", ts=SECOND)
    assert not of_type(events, ev.OrderFilled)
    delay = engine.markets["BTC-USD.OKX"].terms.latency_of(order_id(events))
    assert 10 * MS <= delay <= 50 * MS
    assert not of_type(quote(engine, "64001", SECOND + delay - MS), ev.OrderFilled)  # one ms early
    fill = one(quote(engine, "64002", SECOND + delay), ev.OrderFilled)
    assert fill.price == 6_400_200  # the quote at its latency, not the one before


def test_invalid_latency_is_refused() -> None:
    engine = Engine()
    events = engine.apply(c.CreateMarket(spec=spot_spec("X-USD", venue=Venue.QUOTE, latency_jitter_ms=-1)))
    rejected = one(events, ev.CommandRejected)
    assert rejected.reason == "latency_ms and latency_jitter_ms must be at least 0"
    assert "X-USD" not in engine.markets
