"""Trailing stops: the watermark and the stop at every step, activation, both sides, both trail kinds,
the quote venue's gaps, refusals, amends, and a snapshot restore in the middle of each scenario."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tests.engine_support import (
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
from tradehall.domain.enums import CancelReason, MarketStatus, OrderStatus, StopTrigger, Venue
from tradehall.domain.errors import Code
from tradehall.domain.fixedpoint import decimal_of
from tradehall.engine import Engine

RICH = {"USD": "10000000", "BTC": "100"}
TICK = D("0.01")


def shown(engine: Engine, order: int) -> tuple[str | None, str | None]:
    """(hwm, stop_price) of a waiting trailing stop in prices, as the order shows them."""
    o = engine.orders[order]
    return (
        None if o.hwm is None else str(decimal_of(o.hwm, TICK)),
        None if o.stop_price is None else str(decimal_of(o.stop_price, TICK)),
    )


def trade_at(engine: Engine, price: str) -> list[ev.AnyEvent]:
    """A trade at `price` between two bystanders (the book keeps nothing of it): the last price."""
    expect_no_rejection(place(engine, "a", "BTC-USD", "sell", "0.01", price))
    return expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.01", price))


def book_engine() -> Engine:
    """Book venue without fees; the last price is 100; `m` bids 1 at 90 and offers 1 at 110."""
    engine = engine_with(
        spot_spec(maker_fee=D("0"), taker_fee=D("0")),
        accounts={"a": RICH, "b": RICH, "m": RICH, "t": RICH},
    )
    trade_at(engine, "100")
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "90"))
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "110"))
    return engine


def step(engine: Engine, action: str, price: str) -> list[ev.AnyEvent]:
    if action == "last":
        return trade_at(engine, price)
    return expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D(price))))


def trailing(engine: Engine, side: str, **fields: Any) -> list[ev.AnyEvent]:
    price = fields.pop("price", None)
    return place(engine, "t", "BTC-USD", side, "0.1", price, type="trailing_stop", **fields)


# Each scenario: the order's terms, then steps of (source of the price, price, hwm, stop) after the step;
# hwm "fired" means the step triggered it. The last price is 100 and the mark 100 before the order.
SCENARIOS: dict[str, tuple[str, dict[str, Any], list[tuple[str, str, str | None, str | None]]]] = {
    "sell, price trail, follows a rise and fires on the retracement": (
        "sell",
        {"trail_price": D("2")},
        [
            ("last", "100", "100", "98"),  # acceptance: hwm = the last price
            ("last", "101", "101", "99"),
            ("last", "103.5", "103.5", "101.5"),
            ("last", "102", "103.5", "101.5"),  # a fall never lowers it
            ("last", "104", "104", "102"),
            ("last", "102.01", "104", "102"),
            ("last", "102", "fired", None),  # inclusive: last <= stop
        ],
    ),
    "sell, percent trail on the mark, rounded up to the tick": (
        "sell",
        {"trail_percent": D("1.5"), "trigger": StopTrigger.MARK},
        [
            ("mark", "100", "100", "98.5"),
            ("mark", "101.37", "101.37", "99.85"),  # 99.84945 rounded up
            ("last", "120", "101.37", "99.85"),  # trades move no mark stop
            ("mark", "103", "103", "101.46"),  # 101.455 rounded up
            ("mark", "101.47", "103", "101.46"),
            ("mark", "101.46", "fired", None),
        ],
    ),
    "buy, price trail, follows a fall and fires on the rebound": (
        "buy",
        {"trail_price": D("1.5")},
        [
            ("last", "100", "100", "101.5"),
            ("last", "99", "99", "100.5"),
            ("last", "97", "97", "98.5"),
            ("last", "98", "97", "98.5"),
            ("last", "98.49", "97", "98.5"),
            ("last", "98.5", "fired", None),
        ],
    ),
    "sell with an activation price: it trails only from there": (
        "sell",
        {"trail_price": D("2"), "activation_price": D("103")},
        [
            ("last", "100", None, None),
            ("last", "102.99", None, None),
            ("last", "99", None, None),  # nothing fires before activation
            ("last", "103.2", "103.2", "101.2"),  # activated at the price that reached 103
            ("last", "105", "105", "103"),
            ("last", "104", "105", "103"),
            ("last", "103", "fired", None),
        ],
    ),
    "buy with an activation price and a percent trail, rounded down to the tick": (
        "buy",
        {"trail_percent": D("2"), "activation_price": D("95")},
        [
            ("last", "100", None, None),
            ("last", "96", None, None),
            ("last", "95", "95", "96.9"),
            ("last", "94", "94", "95.88"),
            ("last", "93.33", "93.33", "95.19"),  # 95.1966 rounded down
            ("last", "95.18", "93.33", "95.19"),
            ("last", "95.19", "fired", None),
        ],
    ),
}


def run_scenario(name: str, restore_at: int | None) -> list[list[ev.AnyEvent]]:
    side, fields, steps = SCENARIOS[name]
    engine = book_engine()
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("100"))))
    order = order_id(expect_no_rejection(trailing(engine, side, **fields)))
    seen: list[list[ev.AnyEvent]] = []
    for index, (action, price, hwm, stop) in enumerate(steps):
        if index == restore_at:
            engine = Engine.restore(engine.snapshot())
        events = step(engine, action, price) if index else []  # step 0 is the acceptance itself
        seen.append(events)
        if hwm == "fired":
            triggered = one(events, ev.OrderTriggered)
            assert triggered.order_id == order
            fill = next(f for f in of_type(events, ev.OrderFilled) if f.order_id == order)
            # a market order at the book's best price: m's bid at 90 or its offer at 110
            assert (fill.price, fill.quantity, fill.status) == (
                9_000 if side == "sell" else 11_000,
                1000,
                OrderStatus.FILLED,
            )
            assert order not in engine.orders
            break
        assert engine.orders[order].status is OrderStatus.PENDING_TRIGGER
        assert not of_type(events, ev.OrderTriggered)
        assert shown(engine, order) == (hwm, stop), (index, action, price)
    else:
        pytest.fail("the scenario never fired")
    return seen


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_trailing_stop_scenario(name: str) -> None:
    run_scenario(name, restore_at=None)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_snapshot_restore_in_the_middle_brings_back_the_watermark(name: str) -> None:
    steps = len(SCENARIOS[name][2])
    straight = run_scenario(name, restore_at=None)
    for restore_at in range(1, steps):
        assert run_scenario(name, restore_at=restore_at) == straight


def test_the_accepted_and_triggered_events_carry_the_trail_and_the_watermark() -> None:
    engine = book_engine()
    accepted = one(expect_no_rejection(trailing(engine, "sell", trail_percent=D("1.25"))), ev.OrderAccepted)
    assert (accepted.type, accepted.status, accepted.trigger) == (
        "trailing_stop",
        OrderStatus.PENDING_TRIGGER,
        StopTrigger.LAST,
    )
    assert (accepted.trail_ppm, accepted.trail_price, accepted.hwm, accepted.stop_price) == (
        12_500,
        None,
        10_000,
        9_875,
    )
    trade_at(engine, "104")  # hwm 104, stop 102.70
    triggered = one(trade_at(engine, "102.7"), ev.OrderTriggered)
    assert (triggered.hwm, triggered.stop_price) == (10_400, 10_270)


def test_a_trailing_stop_whose_source_has_no_price_waits_then_trails_from_the_first_one() -> None:
    engine = engine_with(
        spot_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"a": RICH, "b": RICH, "t": RICH}
    )
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("5"))))
    assert shown(engine, order) == (None, None)
    trade_at(engine, "80")
    assert shown(engine, order) == ("80", "75")


def test_a_binary_no_order_trails_in_no_prices() -> None:
    """A NO buy is a YES sell; its percent trail is of the NO price it was entered in."""
    engine = engine_with(
        binary_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"a": RICH, "b": RICH, "t": RICH}
    )
    expect_no_rejection(place(engine, "a", "FED-CUT", "sell", "10", "0.40"))
    expect_no_rejection(place(engine, "b", "FED-CUT", "buy", "10", "0.40"))  # YES last 0.40 = NO 0.60
    events = place(engine, "t", "FED-CUT", "no", "10", None, type="trailing_stop", trail_percent=D("10"))
    order = order_id(expect_no_rejection(events))
    o = engine.orders[order]
    # NO low 0.60, stop 0.66 NO = 0.34 YES; kept in YES ticks
    assert (o.hwm, o.stop_price) == (40, 34)
    expect_no_rejection(place(engine, "a", "FED-CUT", "sell", "10", "0.45"))
    expect_no_rejection(place(engine, "b", "FED-CUT", "buy", "10", "0.45"))  # NO 0.55: stop 0.605 -> 0.60
    assert (o.hwm, o.stop_price) == (45, 40)


# --- the quote venue ----------------------------------------------------------------------------


def quote_engine() -> Engine:
    spec = spot_spec(venue=Venue.QUOTE, maker_fee=D("0"), taker_fee=D("0.001"), slippage=D("0.001"))
    engine = engine_with(spec, accounts={"t": RICH})
    quote(engine, "64000", "64010")
    return engine


def quote(engine: Engine, bid: str, ask: str) -> list[ev.AnyEvent]:
    return expect_no_rejection(engine.apply(c.Quote(market="BTC-USD", bid=D(bid), ask=D(ask))))


def test_on_a_quote_venue_a_sell_trails_the_bid_and_a_gap_fills_at_the_quote_after_it() -> None:
    engine = quote_engine()
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("100"))))
    assert shown(engine, order) == ("64000", "63900")  # the default source on a quote venue: the bid
    quote(engine, "64500", "64600")
    assert shown(engine, order) == ("64500", "64400")
    quote(engine, "64450", "64900")  # the ask moves nothing of a sell
    assert shown(engine, order) == ("64500", "64400")
    events = quote(engine, "63000", "63010")  # a gap straight through 64400
    assert one(events, ev.OrderTriggered).order_id == order
    fill = one(events, ev.OrderFilled)
    # at the bid after the gap less the venue's 0.1 % slippage, never at the stop price; taker fee 0.1 %
    assert (fill.price, fill.quantity, fill.fee) == (6_293_700, 1000, 630)


def test_on_a_quote_venue_a_buy_trails_the_ask() -> None:
    engine = quote_engine()
    order = order_id(expect_no_rejection(trailing(engine, "buy", trail_percent=D("1"))))
    assert shown(engine, order) == ("64010", "64650.1")
    quote(engine, "63000", "63100")
    assert shown(engine, order) == ("63100", "63731")
    events = quote(engine, "64990", "65000")  # gaps past 63731: fills at the ask plus slippage
    fill = one(events, ev.OrderFilled)
    assert (fill.price, fill.quantity) == (6_506_500, 1000)


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({}, "exactly one of trail_percent and trail_price"),
        ({"trail_percent": D("1"), "trail_price": D("1")}, "exactly one of trail_percent and trail_price"),
        ({"trail_percent": D("0")}, "above 0 and below 100"),
        ({"trail_percent": D("-1")}, "above 0 and below 100"),
        ({"trail_percent": D("100")}, "above 0 and below 100"),
        ({"trail_percent": D("1.00001")}, "finer than one part per million"),
        ({"trail_price": D("0")}, "trail_price must be positive"),
        ({"trail_price": D("-2")}, "trail_price must be positive"),
        ({"trail_price": D("0.005")}, "not a multiple of 0.01"),
        ({"trail_price": D("2"), "activation_price": D("100.005")}, "not a multiple of 0.01"),
        (
            {"trail_price": D("2"), "activation_price": D("100")},
            "must be above the current trigger price 100",
        ),
        ({"trail_price": D("2"), "activation_price": D("99")}, "must be above the current trigger price 100"),
        ({"trail_price": D("2"), "stop_price": D("95")}, "takes no stop_price"),
        ({"trail_price": D("2"), "price": "95"}, "takes no price"),
        ({"trail_price": D("2"), "time_in_force": "day"}, "cannot rest"),
    ],
)
def test_a_bad_trailing_stop_is_refused_and_changes_nothing(fields: dict[str, Any], detail: str) -> None:
    engine = book_engine()
    before = engine.state_hash()
    rejected = one(trailing(engine, "sell", **fields), ev.OrderRejected)
    assert rejected.code is Code.INVALID_ORDER
    assert detail in rejected.reason
    assert engine.state_hash() == before


def test_a_buy_activation_price_must_be_below_the_price() -> None:
    engine = book_engine()
    rejected = one(trailing(engine, "buy", trail_price=D("2"), activation_price=D("100")), ev.OrderRejected)
    assert (rejected.code, rejected.reject_reason) == (Code.INVALID_ORDER, CancelReason.WOULD_TRIGGER)
    assert "must be below the current trigger price 100" in rejected.reason


@pytest.mark.parametrize("field", ["trail_percent", "trail_price", "activation_price"])
def test_trail_fields_on_another_order_type_are_refused(field: str) -> None:
    engine = book_engine()
    events = place(
        engine, "t", "BTC-USD", "sell", "0.1", None, type="stop", stop_price=D("95"), **{field: D("1")}
    )
    assert one(events, ev.OrderRejected).reason == (
        "trail_percent, trail_price and activation_price are only for trailing_stop orders"
    )


# --- amends ------------------------------------------------------------------------------------


def amend(engine: Engine, order: int, **fields: Any) -> list[ev.AnyEvent]:
    return engine.apply(c.AmendOrder(order_id=order, **fields))


def test_re_trailing_moves_the_stop_from_the_same_watermark() -> None:
    engine = book_engine()
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("2"))))
    trade_at(engine, "104")
    amended = one(expect_no_rejection(amend(engine, order, trail_percent=D("1"))), ev.OrderAmended)
    assert (amended.stop_price, amended.trail_ppm, amended.trail_price) == (10_296, 10_000, None)
    assert shown(engine, order) == ("104", "102.96")
    amended = one(expect_no_rejection(amend(engine, order, trail_price=D("5"))), ev.OrderAmended)
    assert shown(engine, order) == ("104", "99")
    trade_at(engine, "106")
    assert shown(engine, order) == ("106", "101")
    assert one(trade_at(engine, "101"), ev.OrderTriggered).order_id == order


def test_re_trailing_a_waiting_trailing_stop_keeps_it_waiting() -> None:
    engine = book_engine()
    order = order_id(
        expect_no_rejection(trailing(engine, "buy", trail_price=D("2"), activation_price=D("95")))
    )
    amended = one(
        expect_no_rejection(amend(engine, order, trail_price=D("3"), quantity=D("0.2"))), ev.OrderAmended
    )
    assert (amended.stop_price, amended.trail_price, amended.quantity) == (None, 300, 2000)
    trade_at(engine, "94")
    assert shown(engine, order) == ("94", "97")


def test_a_trail_that_would_put_the_stop_through_the_price_is_refused() -> None:
    engine = book_engine()
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("5"))))
    trade_at(engine, "104")
    trade_at(engine, "101")  # hwm 104, stop 99, last 101
    before = engine.state_hash()
    rejected = one(amend(engine, order, trail_price=D("2")), ev.CommandRejected)  # stop 102 >= 101
    assert rejected.code is Code.INVALID_ORDER
    assert "would trigger immediately" in rejected.reason
    assert engine.state_hash() == before


@pytest.mark.parametrize(
    ("fields", "code", "detail"),
    [
        ({"stop_price": D("95")}, Code.INVALID_ORDER, "follows its watermark"),
        ({"price": D("95")}, Code.INVALID_ORDER, "takes no price"),
        ({"trail_percent": D("100")}, Code.INVALID_ORDER, "above 0 and below 100"),
        ({"trail_price": D("0.001")}, Code.INVALID_ORDER, "not a multiple"),
        ({"trail_price": D("1"), "trail_percent": D("1")}, Code.INVALID_ORDER, "exactly one"),
    ],
)
def test_amends_a_trailing_stop_cannot_take(fields: dict[str, Any], code: Code, detail: str) -> None:
    engine = book_engine()
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("2"))))
    before = engine.state_hash()
    rejected = one(amend(engine, order, **fields), ev.CommandRejected)
    assert rejected.code is code
    assert detail in rejected.reason
    assert engine.state_hash() == before


def test_a_plain_stop_takes_no_trail_and_a_fired_trailing_stop_no_longer_re_trails() -> None:
    engine = book_engine()
    plain = order_id(place(engine, "t", "BTC-USD", "sell", "0.1", None, type="stop", stop_price=D("95")))
    assert (
        one(amend(engine, plain, trail_price=D("1")), ev.CommandRejected).reason
        == "a stop order has no trail"
    )
    limit = order_id(place(engine, "t", "BTC-USD", "sell", "0.1", "120"))
    assert one(amend(engine, limit, trail_price=D("1")), ev.CommandRejected).code is Code.INVALID_ORDER


def test_cancelling_a_trailing_stop_reports_its_last_watermark() -> None:
    engine = book_engine()
    order = order_id(expect_no_rejection(trailing(engine, "sell", trail_price=D("2"))))
    trade_at(engine, "105")
    cancelled = one(expect_no_rejection(engine.apply(c.CancelOrder(order_id=order))), ev.OrderCancelled)
    assert (cancelled.reason, cancelled.hwm, cancelled.stop_price) == (CancelReason.USER, 10_500, 10_300)
    assert engine.apply(c.MarkPrice(market="BTC-USD", price=D("100"))) and order not in engine.orders


def test_on_a_quote_venue_a_plain_stop_gapped_through_fills_at_the_quote_after_the_gap() -> None:
    engine = quote_engine()
    order = order_id(
        expect_no_rejection(
            place(engine, "t", "BTC-USD", "sell", "0.1", None, type="stop", stop_price=D("63500"))
        )
    )
    assert engine.orders[order].trigger is StopTrigger.BID_ASK
    events = quote(engine, "62000", "62010")
    assert one(events, ev.OrderTriggered).order_id == order
    fill = one(events, ev.OrderFilled)
    assert (fill.price, fill.quantity) == (6_193_800, 1000)  # 62,000 less 0.1 % slippage, not 63,500


def test_a_halt_ends_a_trailing_stop_with_market_halted_and_its_last_watermark() -> None:
    engine = book_engine()
    order = order_id(
        expect_no_rejection(trailing(engine, "sell", trail_price=D("2"), trigger=StopTrigger.MARK))
    )
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("103"))))
    assert shown(engine, order) == ("103", "101")
    events = expect_no_rejection(
        engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.HALTED))
    )
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason, cancelled.hwm, cancelled.stop_price) == (
        order,
        CancelReason.MARKET_HALTED,
        10_300,
        10_100,
    )
    assert order not in engine.orders
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("95"))))
    events = expect_no_rejection(engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.OPEN)))
    assert of_type(events, ev.OrderTriggered) == [] and of_type(events, ev.OrderFilled) == []


def test_a_trailing_stop_ends_with_the_markets_reason() -> None:
    engine = engine_with(
        binary_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"a": RICH, "b": RICH, "t": RICH}
    )
    expect_no_rejection(place(engine, "a", "FED-CUT", "sell", "10", "0.40"))
    expect_no_rejection(place(engine, "b", "FED-CUT", "buy", "10", "0.40"))
    order = order_id(
        expect_no_rejection(
            place(engine, "t", "FED-CUT", "buy", "5", None, type="trailing_stop", trail_price=D("0.05"))
        )
    )
    events = expect_no_rejection(engine.apply(c.SettleMarket(market="FED-CUT", outcome="yes")))  # type: ignore[arg-type]
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason, cancelled.hwm, cancelled.stop_price) == (
        order,
        CancelReason.MARKET_SETTLED,
        40,
        45,
    )


def test_a_percent_trail_finer_than_a_tick_keeps_the_stop_one_tick_away() -> None:
    engine = book_engine()
    sell = order_id(expect_no_rejection(trailing(engine, "sell", trail_percent=D("0.001"))))
    buy = order_id(expect_no_rejection(trailing(engine, "buy", trail_percent=D("0.001"))))
    # 100 x 0.99999 = 99.999 rounds up to 100, the watermark itself: kept at 99.99 (and 100.01 for the buy)
    assert (shown(engine, sell), shown(engine, buy)) == (("100", "99.99"), ("100", "100.01"))


def test_a_repeated_client_order_id_compares_the_trail() -> None:
    engine = book_engine()
    first = expect_no_rejection(trailing(engine, "sell", trail_percent=D("1.50"), client_order_id="t-1"))
    before = engine.state_hash()
    assert trailing(engine, "sell", trail_percent=D("1.5"), client_order_id="t-1") == []  # the same order
    conflict = one(trailing(engine, "sell", trail_percent=D("2"), client_order_id="t-1"), ev.OrderRejected)
    assert conflict.code is Code.CONFLICT
    assert engine.state_hash() == before
    assert order_id(first) in engine.orders
