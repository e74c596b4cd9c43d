"""Stops: the trigger source per order, refusal of a stop already through its trigger, amending stops."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.engine_support import (
    balance,
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
from tradehall.engine import Engine

RICH = {"USD": "10000000", "BTC": "100"}


def book_engine() -> Engine:
    """Book venue, no fees: last 100 (a trade), mark 102 (posted), bid 99, ask 101."""
    engine = engine_with(
        spot_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"a": RICH, "b": RICH, "c": RICH}
    )
    expect_no_rejection(place(engine, "a", "BTC-USD", "sell", "0.1", "100"))
    expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "100"))
    expect_no_rejection(place(engine, "a", "BTC-USD", "buy", "0.1", "99"))
    expect_no_rejection(place(engine, "a", "BTC-USD", "sell", "0.1", "101"))
    expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("102"))))
    return engine


def quote_engine() -> Engine:
    """Quote venue: bid 64000, ask 64010 (mark = mid 64005), last 63990."""
    spec = spot_spec(venue=Venue.QUOTE, maker_fee=D("0"), taker_fee=D("0"), slippage=D("0"))
    engine = engine_with(spec, accounts={"a": RICH})
    quote(engine, "64000", "64010", last="63990")
    return engine


def quote(engine: Engine, bid: str, ask: str, last: str | None = None) -> list[ev.AnyEvent]:
    command = c.Quote(market="BTC-USD", bid=D(bid), ask=D(ask), last=None if last is None else D(last))
    return expect_no_rejection(engine.apply(command))


def stop(engine: Engine, account: str, side: str, stop_price: str, **fields: object) -> list[ev.AnyEvent]:
    return place(
        engine, account, "BTC-USD", side, "0.1", None, type="stop", stop_price=D(stop_price), **fields
    )


# (venue, trigger asked for (None: the venue's default), side, stop price, refused)
REFUSAL_TABLE = [
    ("book", None, "buy", "100", True),  # default last = 100: inclusive
    ("book", None, "buy", "100.01", False),
    ("book", "last", "sell", "100", True),
    ("book", "last", "sell", "99.99", False),
    ("book", "mark", "buy", "101", True),  # mark 102 is above it (last 100 would not be)
    ("book", "mark", "buy", "102.01", False),
    ("book", "mark", "sell", "102", True),
    ("book", "mark", "sell", "101.99", False),
    ("book", "bid_ask", "buy", "101", True),  # a buy stop watches the ask
    ("book", "bid_ask", "buy", "101.01", False),
    ("book", "bid_ask", "sell", "99", True),  # a sell stop watches the bid
    ("book", "bid_ask", "sell", "98.99", False),
    ("quote", None, "buy", "64010", True),  # default bid_ask on a quote venue
    ("quote", None, "buy", "64010.01", False),
    ("quote", None, "sell", "64000", True),
    ("quote", None, "sell", "63999.99", False),
    ("quote", "last", "buy", "63990", True),
    ("quote", "last", "buy", "63990.01", False),
    ("quote", "last", "sell", "63990", True),
    ("quote", "last", "sell", "63989.99", False),
    ("quote", "mark", "buy", "64005", True),
    ("quote", "mark", "buy", "64005.01", False),
    ("quote", "mark", "sell", "64005", True),
    ("quote", "mark", "sell", "64004.99", False),
]


@pytest.mark.parametrize(("venue", "trigger", "side", "stop_price", "refused"), REFUSAL_TABLE)
def test_a_stop_already_through_its_trigger_is_refused(
    venue: str, trigger: str | None, side: str, stop_price: str, refused: bool
) -> None:
    engine = book_engine() if venue == "book" else quote_engine()
    before = engine.state_hash()
    fields = {} if trigger is None else {"trigger": StopTrigger(trigger)}
    events = stop(engine, "c" if venue == "book" else "a", side, stop_price, **fields)
    if refused:
        rejected = one(events, ev.OrderRejected)
        assert (rejected.code, rejected.reject_reason) == (Code.INVALID_ORDER, CancelReason.WOULD_TRIGGER)
        assert "would trigger immediately" in rejected.reason
        assert engine.state_hash() == before
    else:
        accepted = one(expect_no_rejection(events), ev.OrderAccepted)
        expected = (
            StopTrigger(trigger)
            if trigger
            else (StopTrigger.LAST if venue == "book" else StopTrigger.BID_ASK)
        )
        assert (accepted.status, accepted.trigger) == (OrderStatus.PENDING_TRIGGER, expected)
        assert not of_type(events, ev.OrderTriggered)


def test_the_issue_sell_stop_above_the_last_price_is_refused_with_a_detail_in_its_terms() -> None:
    funds = {"USD": "100000", "ETH": "10"}
    engine = engine_with(
        spot_spec("ETH-USD", base="ETH", maker_fee=D("0"), taker_fee=D("0")),
        accounts={"a": funds, "b": funds},
    )
    expect_no_rejection(place(engine, "b", "ETH-USD", "sell", "0.1", "3199.95"))
    expect_no_rejection(place(engine, "a", "ETH-USD", "buy", "0.1", "3199.95"))
    events = place(engine, "a", "ETH-USD", "sell", "0.1", None, type="stop", stop_price=D("4000"))
    rejected = one(events, ev.OrderRejected)
    assert rejected.reason == (
        "a sell stop at 4000 would trigger immediately:"
        " the last trade price is 3199.95, already at or below it"
    )


@pytest.mark.parametrize("trigger", [StopTrigger.LAST, StopTrigger.MARK, StopTrigger.BID_ASK])
def test_a_stop_whose_trigger_source_has_no_price_yet_waits_then_fires_on_the_first_one(
    trigger: StopTrigger,
) -> None:
    engine = engine_with(
        spot_spec(maker_fee=D("0"), taker_fee=D("0")), accounts={"a": RICH, "b": RICH, "c": RICH}
    )
    pending = order_id(expect_no_rejection(stop(engine, "c", "buy", "100", trigger=trigger)))
    assert engine.orders[pending].status is OrderStatus.PENDING_TRIGGER
    expect_no_rejection(place(engine, "a", "BTC-USD", "sell", "0.1", "102"))  # the first ask: 102 >= 100
    if trigger is StopTrigger.BID_ASK:
        assert engine.orders.get(pending) is None  # fired on the ask's arrival and bought it
        return
    assert engine.orders[pending].status is OrderStatus.PENDING_TRIGGER
    # the first trade: last = 102 (and the mark source reads the last trade until a mark is posted)
    events = expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.05", "102"))
    assert one(events, ev.OrderTriggered).order_id == pending


def test_a_mark_stop_fires_on_the_mark_not_on_trades() -> None:
    engine = book_engine()
    sell = order_id(expect_no_rejection(stop(engine, "c", "sell", "95", trigger=StopTrigger.MARK)))
    expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "95"))
    expect_no_rejection(place(engine, "c", "BTC-USD", "sell", "0.1", "99"))  # last 99: no mark trigger
    assert engine.orders[sell].status is OrderStatus.PENDING_TRIGGER
    assert not of_type(engine.apply(c.MarkPrice(market="BTC-USD", price=D("95.01"))), ev.OrderTriggered)
    events = expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("95"))))
    assert one(events, ev.OrderTriggered).order_id == sell
    fill = next(f for f in of_type(events, ev.OrderFilled) if f.order_id == sell)
    assert (fill.price, fill.quantity, fill.status) == (9_500, 1000, OrderStatus.FILLED)


def test_a_bid_ask_stop_on_a_book_fires_when_a_cancel_lifts_the_ask() -> None:
    engine = book_engine()
    expect_no_rejection(place(engine, "b", "BTC-USD", "sell", "0.1", "102.5"))
    buy = order_id(expect_no_rejection(stop(engine, "c", "buy", "102", trigger=StopTrigger.BID_ASK)))
    ask = next(o for o in engine.orders.values() if o.price == 10_100)
    events = expect_no_rejection(engine.apply(c.CancelOrder(order_id=ask.order_id)))
    assert one(events, ev.OrderTriggered).order_id == buy
    fill = next(f for f in of_type(events, ev.OrderFilled) if f.order_id == buy)
    assert (fill.price, fill.quantity) == (10_250, 1000)


def test_on_a_quote_venue_the_source_decides_which_quote_fires_a_stop() -> None:
    engine = quote_engine()
    by_last = order_id(expect_no_rejection(stop(engine, "a", "sell", "63000", trigger=StopTrigger.LAST)))
    by_touch = order_id(expect_no_rejection(stop(engine, "a", "sell", "63000")))
    events = quote(engine, "63100", "63110", last="62999")  # the last is through 63000, the bid is not
    assert [e.order_id for e in of_type(events, ev.OrderTriggered)] == [by_last]
    events = quote(engine, "62990", "63000", last="63100")  # the bid is through 63000
    assert [e.order_id for e in of_type(events, ev.OrderTriggered)] == [by_touch]


def test_a_halted_market_fires_no_stop_and_resuming_fires_what_the_mark_passed() -> None:
    engine = book_engine()
    sell = order_id(expect_no_rejection(stop(engine, "c", "sell", "99", trigger=StopTrigger.MARK)))
    expect_no_rejection(engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.HALTED)))
    assert not of_type(engine.apply(c.MarkPrice(market="BTC-USD", price=D("98"))), ev.OrderTriggered)
    events = expect_no_rejection(engine.apply(c.SetMarketStatus(market="BTC-USD", status=MarketStatus.OPEN)))
    assert one(events, ev.OrderTriggered).order_id == sell


# --- amending an untriggered stop ------------------------------------------------------------


def amend(engine: Engine, order: int, **fields: object) -> list[ev.AnyEvent]:
    return engine.apply(c.AmendOrder(order_id=order, **fields))  # type: ignore[arg-type]


def test_moving_a_stop_keeps_it_waiting_and_it_fires_at_the_new_price_only() -> None:
    engine = book_engine()
    buy = order_id(expect_no_rejection(stop(engine, "c", "buy", "105")))
    events = expect_no_rejection(amend(engine, buy, stop_price=D("101")))
    amended = one(events, ev.OrderAmended)
    assert (amended.stop_price, amended.quantity, amended.price) == (10_100, 1000, None)
    assert engine.orders[buy].status is OrderStatus.PENDING_TRIGGER
    events = expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "101"))  # last 101
    assert one(events, ev.OrderTriggered).order_id == buy


def test_moving_a_stop_to_a_price_its_trigger_already_passed_is_refused() -> None:
    engine = book_engine()
    buy = order_id(expect_no_rejection(stop(engine, "c", "buy", "105")))
    before = engine.state_hash()
    rejected = one(amend(engine, buy, stop_price=D("100")), ev.CommandRejected)  # last is 100
    assert rejected.code is Code.INVALID_ORDER
    assert rejected.reason == (
        "a buy stop at 100 would trigger immediately: the last trade price is 100, already at or above it"
    )
    assert engine.state_hash() == before


def test_a_stop_limit_takes_a_new_limit_price_and_its_hold_follows() -> None:
    engine = book_engine()
    order = order_id(
        expect_no_rejection(
            place(engine, "c", "BTC-USD", "buy", "0.1", "106", type="stop_limit", stop_price=D("105"))
        )
    )
    assert balance(engine, "c")[1] == 1_060  # 0.1 x 106.00
    events = expect_no_rejection(amend(engine, order, price=D("110"), stop_price=D("108"), quantity=D("0.2")))
    amended = one(events, ev.OrderAmended)
    assert (amended.price, amended.stop_price, amended.quantity) == (11_000, 10_800, 2000)
    assert balance(engine, "c")[1] == 2_200  # 0.2 x 110.00
    assert engine.orders[order].status is OrderStatus.PENDING_TRIGGER


@pytest.mark.parametrize(
    ("kind", "fields", "code"),
    [
        ("stop", {"price": D("106")}, Code.INVALID_ORDER),  # a stop market order has no limit price
        ("limit", {"stop_price": D("90")}, Code.INVALID_ORDER),  # a limit has no stop to move
        ("triggered", {"stop_price": D("90")}, Code.CONFLICT),  # a triggered stop-limit no longer moves
    ],
)
def test_amends_a_stop_cannot_take(kind: str, fields: dict[str, object], code: Code) -> None:
    engine = book_engine()
    if kind == "stop":
        target = order_id(stop(engine, "c", "buy", "105"))
    elif kind == "limit":
        target = order_id(place(engine, "c", "BTC-USD", "buy", "0.1", "95"))
    else:
        target = order_id(
            place(engine, "c", "BTC-USD", "sell", "0.1", "90", type="stop_limit", stop_price=D("99.5"))
        )
        expect_no_rejection(place(engine, "b", "BTC-USD", "sell", "0.1", "99"))  # last 99: triggers
        assert engine.orders[target].status is OrderStatus.OPEN
    assert one(amend(engine, target, **fields), ev.CommandRejected).code is code
