"""Paper trading on external quotes: fills with slippage, depth, staleness, resting limits, stops, latency."""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import (
    balance,
    binary_spec,
    engine_with,
    expect_no_rejection,
    of_type,
    one,
    order_id,
    place,
    spot_spec,
)
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, Liquidity, OrderStatus, Venue
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_VENUE

SECOND = 1_000_000_000


def quote_engine(**overrides: object) -> Engine:
    spec = spot_spec("BTC-USD", venue=Venue.QUOTE, maker_fee=D("0.001"), taker_fee=D("0.001"), **overrides)
    return engine_with(spec, accounts={"a": {"USD": "1000000", "BTC": "2"}})


def quote(
    engine: Engine, bid: str | None, ask: str | None, ts: int = 0, **sizes: object
) -> list[ev.AnyEvent]:
    return expect_no_rejection(
        engine.apply(
            c.Quote(
                market="BTC-USD", bid=D(bid) if bid else None, ask=D(ask) if ask else None, ts=ts, **sizes
            )  # type: ignore[arg-type]
        )
    )


def taker_fills(events: list[ev.AnyEvent]) -> list[tuple[int, int, int]]:
    return [(f.price, f.quantity, f.fee) for f in of_type(events, ev.OrderFilled)]


def test_market_buy_takes_the_ask_plus_slippage_and_pays_the_fee() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    events = place(engine, "a", "BTC-USD", "buy", "0.5", None, type="market")
    # 64,010.00 x 1.001 = 64,074.01; notional 32,037.005: the buyer pays it rounded up, 32,037.01;
    # fee 0.1 % of the exact notional, 32.037005 -> 32.04
    assert taker_fills(events) == [(6_407_401, 5_000, 3_204)]
    trade = one(events, ev.TradeExecuted)
    assert (trade.maker_account_id, trade.maker_order_id) == (SYSTEM_VENUE, 0)
    assert balance(engine, "a") == (100_000_000 - 3_203_701 - 3_204, 0)
    assert balance(engine, "a", "BTC") == (250_000_000, 0)
    assert all(total == 0 for total in engine.ledger.totals().values())


def test_market_sell_takes_the_bid_minus_slippage() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    events = place(engine, "a", "BTC-USD", "sell", "1", None, type="market")
    assert taker_fills(events)[0][:2] == (6_393_600, 10_000)  # 64,000 x 0.999


def test_orders_walk_the_quoted_depth_and_never_take_the_same_liquidity_twice() -> None:
    engine = quote_engine(slippage=D("0"))
    asks = ((D("64010"), D("0.3")), (D("64020"), D("1")))
    engine.apply(c.Quote(market="BTC-USD", bids=((D("64000"), D("1")),), asks=asks))
    first = place(engine, "a", "BTC-USD", "buy", "0.5", None, type="market")
    assert [(p, q) for p, q, _ in taker_fills(first)] == [(6_401_000, 3_000), (6_402_000, 2_000)]
    second = place(engine, "a", "BTC-USD", "buy", "0.3", None, type="market")
    assert [(p, q) for p, q, _ in taker_fills(second)] == [(6_402_000, 3_000)]
    third = place(engine, "a", "BTC-USD", "buy", "1", None, type="market")
    assert [(p, q) for p, q, _ in taker_fills(third)] == [(6_402_000, 5_000)]
    assert one(third, ev.OrderCancelled).reason is CancelReason.MARKET_REMAINDER
    engine.apply(c.Quote(market="BTC-USD", bids=((D("64000"), D("1")),), asks=asks))  # a new book
    fourth = place(engine, "a", "BTC-USD", "buy", "0.3", None, type="market")
    assert [(p, q) for p, q, _ in taker_fills(fourth)] == [(6_401_000, 3_000)]


def test_stale_or_missing_quote_refuses_the_order_and_changes_nothing() -> None:
    engine = quote_engine(quote_max_age_ms=5_000)
    before = engine.state_hash()
    assert one(place(engine, "a", "BTC-USD", "buy", "0.1", None, type="market"), ev.OrderRejected).code == (
        "market_data_unavailable"
    )
    assert engine.state_hash() == before
    quote(engine, "64000", "64010", ts=10 * SECOND)
    engine.apply(c.AdvanceTime(ts=16 * SECOND))
    before = engine.state_hash()
    events = engine.apply(
        c.PlaceOrder(
            account_id="a", market="BTC-USD", side="buy", quantity=D("0.1"), price=D("64000"), ts=16 * SECOND
        )  # type: ignore[arg-type]
    )
    assert one(events, ev.OrderRejected).code == "market_data_unavailable"
    assert engine.state_hash() == before


def test_limit_order_rests_and_fills_at_its_limit_when_the_quote_crosses_it() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    resting = order_id(place(engine, "a", "BTC-USD", "buy", "0.2", "63900"))
    assert engine.orders[resting].in_book and not of_type([], ev.OrderFilled)
    events = quote(engine, "63800", "63850")
    fill = one(events, ev.OrderFilled)
    assert (fill.order_id, fill.price, fill.quantity, fill.liquidity) == (
        resting,
        6_390_000,
        2_000,
        Liquidity.MAKER,
    )
    assert resting not in engine.orders
    assert balance(engine, "a")[1] == 0


def test_marketable_limit_fills_at_once_capped_at_its_limit() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    events = place(engine, "a", "BTC-USD", "buy", "0.1", "64050")
    assert taker_fills(events)[0][:2] == (6_405_000, 1_000)  # slipped 64,074.01 capped at 64,050


def test_stop_triggers_on_the_quote() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    stop = order_id(place(engine, "a", "BTC-USD", "sell", "0.1", None, type="stop", stop_price=D("63000")))
    assert not of_type(quote(engine, "63100", "63110"), ev.OrderTriggered)
    events = quote(engine, "62990", "63000")
    assert one(events, ev.OrderTriggered).order_id == stop
    assert taker_fills(events)[0][:2] == (6_292_701, 1_000)  # 62,990 x 0.999 = 62,927.01


def test_latency_fills_against_the_quote_that_comes_later() -> None:
    engine = quote_engine(latency_ms=100)
    quote(engine, "64000", "64010", ts=SECOND)
    events = engine.apply(
        c.PlaceOrder(
            account_id="a", market="BTC-USD", side="buy", quantity=D("0.1"), type="market", ts=SECOND
        )  # type: ignore[arg-type]
    )
    assert not of_type(events, ev.OrderFilled) and one(events, ev.OrderAccepted)
    assert not of_type(quote(engine, "64100", "64110", ts=SECOND + 50_000_000), ev.OrderFilled)
    events = quote(engine, "64200", "64210", ts=SECOND + 100_000_000)
    assert taker_fills(events)[0][:2] == (6_427_421, 1_000)  # 64,210 x 1.001 = 64,274.21


def test_binary_quote_venue_buys_yes_at_the_ask_with_slippage_on_the_cent_grid() -> None:
    engine = engine_with(binary_spec(venue=Venue.QUOTE), accounts={"a": {"USD": "100"}})
    engine.apply(c.Quote(market="FED-CUT", bid=D("0.53"), ask=D("0.55")))
    events = place(engine, "a", "FED-CUT", "yes", "10", None, type="market")
    fill = one(events, ev.OrderFilled)
    assert (fill.price, fill.quantity) == (56, 10)  # 0.55 x 1.002 rounded up to the cent
    events = place(engine, "a", "FED-CUT", "no", "5", None, type="market")  # a YES sell at the bid
    fill = one(events, ev.OrderFilled)
    assert (fill.price, fill.quantity) == (52, 5)  # 0.53 x 0.998 rounded down: closes 5 YES
    assert engine.markets["FED-CUT"].positions["a"].quantity == 5
    assert engine.markets["FED-CUT"].positions[SYSTEM_VENUE].quantity == -5
    pool = engine.accounts["system:collateral:FED-CUT"].balances["USD"].total
    assert pool == 5 * 100


def test_halted_quote_market_refuses_orders() -> None:
    engine = quote_engine()
    quote(engine, "64000", "64010")
    engine.apply(c.SetMarketStatus(market="BTC-USD", status="halted"))  # type: ignore[arg-type]
    assert one(place(engine, "a", "BTC-USD", "buy", "0.1", None, type="market"), ev.OrderRejected).code == (
        "market_closed"
    )
    assert engine.orders == {}
    assert OrderStatus.OPEN  # the enum is importable for the readers of this file
