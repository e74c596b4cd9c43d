"""Matching rules of the book venue, with exact fills."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.engine_support import (
    SelfTradePrevention,
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
from tradehall.domain.enums import CancelReason, Liquidity, OrderStatus, Side
from tradehall.domain.errors import Code
from tradehall.engine import Engine

RICH = {"USD": "10000000", "BTC": "100"}


def market_engine(stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST) -> Engine:
    return engine_with(
        spot_spec(self_trade_prevention=stp, maker_fee=D("0"), taker_fee=D("0")),
        accounts={"a": RICH, "b": RICH, "c": RICH},
    )


def fills_of(events: list[ev.AnyEvent]) -> list[tuple[int, int, int, Liquidity]]:
    return [(f.order_id, f.price, f.quantity, f.liquidity) for f in of_type(events, ev.OrderFilled)]


def test_limit_order_rests_when_it_does_not_cross() -> None:
    engine = market_engine()
    events = expect_no_rejection(place(engine, "a", "BTC-USD", "buy", "1", "100"))
    assert one(events, ev.OrderAccepted).status is OrderStatus.OPEN
    assert engine.markets["BTC-USD"].book.depth() == ([(10_000, 10_000)], [])
    assert one(events, ev.BookChanged).bids == ((10_000, 10_000),)


def test_crossing_order_trades_at_the_resting_price() -> None:
    engine = market_engine()
    maker = order_id(place(engine, "a", "BTC-USD", "sell", "1", "100"))
    events = place(engine, "b", "BTC-USD", "buy", "1", "105")
    taker = order_id(events)
    assert fills_of(events) == [
        (maker, 10_000, 10_000, Liquidity.MAKER),
        (taker, 10_000, 10_000, Liquidity.TAKER),
    ]
    trade = one(events, ev.TradeExecuted)
    assert (trade.price, trade.quantity, trade.taker_side) == (10_000, 10_000, Side.BUY)


def test_price_time_priority_fills_the_better_price_then_the_earlier_order() -> None:
    engine = market_engine()
    first = order_id(place(engine, "a", "BTC-USD", "sell", "1", "100"))
    second = order_id(place(engine, "b", "BTC-USD", "sell", "1", "100"))
    better = order_id(place(engine, "a", "BTC-USD", "sell", "1", "99"))
    events = place(engine, "c", "BTC-USD", "buy", "2.5", "100")
    maker_fills = [(f[0], f[1], f[2]) for f in fills_of(events) if f[3] is Liquidity.MAKER]
    assert maker_fills == [(better, 9_900, 10_000), (first, 10_000, 10_000), (second, 10_000, 5_000)]
    assert engine.orders[second].remaining == 5_000


def test_order_sweeping_three_resting_orders_has_three_fills() -> None:
    engine = market_engine()
    makers = [
        order_id(place(engine, "a", "BTC-USD", "sell", "0.1", "100")),
        order_id(place(engine, "b", "BTC-USD", "sell", "0.2", "101")),
        order_id(place(engine, "a", "BTC-USD", "sell", "0.3", "102")),
    ]
    events = place(engine, "c", "BTC-USD", "buy", "0.5", "102")
    maker_fills = [(f[0], f[1], f[2]) for f in fills_of(events) if f[3] is Liquidity.MAKER]
    assert maker_fills == [(makers[0], 10_000, 1000), (makers[1], 10_100, 2000), (makers[2], 10_200, 2000)]
    taker_fill = of_type(events, ev.OrderFilled)[-1]
    assert taker_fill.status is OrderStatus.FILLED and taker_fill.filled_quantity == 5000
    assert engine.markets["BTC-USD"].book.depth()[1] == [(10_200, 1000)]


def test_market_order_walks_the_book_and_cancels_the_unfilled_rest() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    place(engine, "a", "BTC-USD", "sell", "0.1", "104")  # inside the default 5 % price protection
    events = engine.apply(
        c.PlaceOrder(
            account_id="b",
            market="BTC-USD",
            side="buy",  # type: ignore[arg-type]
            type="market",
            quantity=D("0.5"),
        )
    )  # type: ignore[arg-type]
    taker_fills = [
        (f.price, f.quantity) for f in of_type(events, ev.OrderFilled) if f.liquidity is Liquidity.TAKER
    ]
    assert taker_fills == [(10_000, 1000), (10_400, 1000)]
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (CancelReason.MARKET_REMAINDER, 2000)
    assert engine.markets["BTC-USD"].book.depth() == ([], [])


def test_market_order_on_an_empty_book_is_cancelled_without_fills() -> None:
    engine = market_engine()
    events = engine.apply(
        c.PlaceOrder(
            account_id="b",
            market="BTC-USD",
            side="sell",  # type: ignore[arg-type]
            type="market",
            quantity=D("0.5"),
        )
    )  # type: ignore[arg-type]
    assert one(events, ev.OrderCancelled).reason is CancelReason.MARKET_REMAINDER
    assert not of_type(events, ev.OrderFilled)
    assert engine.accounts["b"].balances["BTC"].held == 0


def test_ioc_remainder_is_cancelled_after_partial_fill() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.3", "100")
    events = place(engine, "b", "BTC-USD", "buy", "1", "100", time_in_force="ioc")
    assert of_type(events, ev.OrderFilled)[-1].quantity == 3000
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (CancelReason.IOC_REMAINDER, 3000)
    assert engine.markets["BTC-USD"].book.depth() == ([], [])
    assert engine.accounts["b"].balances["USD"].held == 0


def test_fok_that_cannot_fill_completely_is_cancelled_with_no_fills() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.3", "100")
    events = place(engine, "b", "BTC-USD", "buy", "1", "100", time_in_force="fok")
    assert not of_type(events, ev.OrderFilled)
    assert one(events, ev.OrderCancelled).reason is CancelReason.FOK_UNFILLED
    assert engine.markets["BTC-USD"].book.depth()[1] == [(10_000, 3000)]


def test_fok_that_can_fill_completely_fills() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.3", "100")
    place(engine, "c", "BTC-USD", "sell", "0.7", "101")
    events = place(engine, "b", "BTC-USD", "buy", "1", "101", time_in_force="fok")
    assert of_type(events, ev.OrderFilled)[-1].status is OrderStatus.FILLED
    assert not of_type(events, ev.OrderCancelled)


def test_post_only_that_would_take_liquidity_is_refused_and_changes_nothing() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.3", "100")
    before = engine.state_hash()
    events = place(engine, "b", "BTC-USD", "buy", "1", "100", post_only=True)
    assert one(events, ev.OrderRejected).code == "invalid_order"
    assert engine.state_hash() == before


def test_post_only_that_rests_is_accepted() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.3", "100")
    events = expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "1", "99.99", post_only=True))
    assert one(events, ev.OrderAccepted).post_only


@pytest.mark.parametrize(
    ("mode", "maker_cancelled", "taker_rest_cancelled", "fills"),
    [
        (SelfTradePrevention.CANCEL_NEWEST, False, True, 0),
        (SelfTradePrevention.CANCEL_OLDEST, True, False, 1),
        (SelfTradePrevention.CANCEL_BOTH, True, True, 0),
    ],
)
def test_self_trade_prevention_modes(
    mode: SelfTradePrevention, maker_cancelled: bool, taker_rest_cancelled: bool, fills: int
) -> None:
    engine = market_engine(mode)
    own = order_id(place(engine, "a", "BTC-USD", "sell", "0.1", "100"))
    other = order_id(place(engine, "b", "BTC-USD", "sell", "0.1", "101"))
    events = place(engine, "a", "BTC-USD", "buy", "0.1", "101")
    cancelled = {e.order_id: e.reason for e in of_type(events, ev.OrderCancelled)}
    assert (own in cancelled) == maker_cancelled
    taker = order_id(events)
    assert (taker in cancelled) == taker_rest_cancelled
    assert len([f for f in of_type(events, ev.OrderFilled) if f.order_id == other]) == fills
    assert not of_type(events, ev.TradeExecuted) or all(
        t.maker_account_id != t.taker_account_id for t in of_type(events, ev.TradeExecuted)
    )


def test_stop_order_triggers_on_the_last_trade_price_in_the_same_command() -> None:
    engine = market_engine()
    stop = order_id(place(engine, "c", "BTC-USD", "buy", "0.1", None, type="stop", stop_price=D("101")))
    assert engine.orders[stop].status is OrderStatus.PENDING_TRIGGER
    place(engine, "a", "BTC-USD", "sell", "0.1", "100")
    place(engine, "a", "BTC-USD", "sell", "0.2", "101")
    events = place(engine, "b", "BTC-USD", "buy", "0.1", "100")  # last = 100: not yet
    assert not of_type(events, ev.OrderTriggered)
    events = place(engine, "b", "BTC-USD", "buy", "0.1", "101")  # last = 101: triggers (inclusive)
    assert one(events, ev.OrderTriggered).order_id == stop
    stop_fill = [f for f in of_type(events, ev.OrderFilled) if f.order_id == stop]
    assert [(f.price, f.quantity, f.status) for f in stop_fill] == [(10_100, 1000, OrderStatus.FILLED)]


def test_stop_limit_enters_the_book_as_a_limit_when_triggered() -> None:
    engine = market_engine()
    stop = order_id(place(engine, "c", "BTC-USD", "sell", "0.1", "95", type="stop_limit", stop_price=D("99")))
    place(engine, "a", "BTC-USD", "buy", "0.1", "99")
    events = place(engine, "b", "BTC-USD", "sell", "0.1", "99")  # last = 99 <= 99: triggers
    assert one(events, ev.OrderTriggered).order_id == stop
    assert engine.orders[stop].in_book and engine.orders[stop].price == 9_500
    assert engine.markets["BTC-USD"].book.depth()[1] == [(9_500, 1000)]


def test_day_and_gtd_orders_expire_on_advance_time() -> None:
    engine = market_engine()
    t0 = 1_700_000_000 * 10**9
    engine.apply(c.AdvanceTime(ts=t0))
    day = order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "90", time_in_force="day"))
    gtd = order_id(
        place(engine, "a", "BTC-USD", "buy", "0.1", "91", time_in_force="gtd", expire_at=t0 + 60 * 10**9)
    )
    gtc = order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "92"))
    events = engine.apply(c.AdvanceTime(ts=t0 + 61 * 10**9))
    assert [e.order_id for e in of_type(events, ev.OrderExpired)] == [gtd]
    next_midnight = (t0 // (86_400 * 10**9) + 1) * 86_400 * 10**9
    events = engine.apply(c.AdvanceTime(ts=next_midnight))
    assert [e.order_id for e in of_type(events, ev.OrderExpired)] == [day]
    assert list(engine.orders) == [gtc]
    assert engine.accounts["a"].balances["USD"].held == 920  # 0.1 BTC at 92 = 9.20 USD, no fees


def test_amend_quantity_down_keeps_priority() -> None:
    engine = market_engine()
    first = order_id(place(engine, "a", "BTC-USD", "sell", "0.5", "100"))
    place(engine, "b", "BTC-USD", "sell", "0.5", "100")
    events = engine.apply(c.AmendOrder(order_id=first, quantity=D("0.2")))
    amended = one(events, ev.OrderAmended)
    assert (amended.quantity, amended.priority_lost) == (2000, False)
    fills = place(engine, "c", "BTC-USD", "buy", "0.1", "100")
    assert [f.order_id for f in of_type(fills, ev.OrderFilled) if f.liquidity is Liquidity.MAKER] == [first]


def test_amend_quantity_up_loses_priority() -> None:
    engine = market_engine()
    first = order_id(place(engine, "a", "BTC-USD", "sell", "0.5", "100"))
    second = order_id(place(engine, "b", "BTC-USD", "sell", "0.5", "100"))
    assert one(engine.apply(c.AmendOrder(order_id=first, quantity=D("0.6"))), ev.OrderAmended).priority_lost
    fills = place(engine, "c", "BTC-USD", "buy", "0.1", "100")
    assert [f.order_id for f in of_type(fills, ev.OrderFilled) if f.liquidity is Liquidity.MAKER] == [second]


def test_amend_price_across_the_spread_trades_at_the_resting_prices() -> None:
    engine = market_engine()
    place(engine, "a", "BTC-USD", "sell", "0.1", "101")
    bid = order_id(place(engine, "b", "BTC-USD", "buy", "0.2", "99"))
    events = engine.apply(c.AmendOrder(order_id=bid, price=D("102")))
    taker = [f for f in of_type(events, ev.OrderFilled) if f.order_id == bid]
    assert [(f.price, f.quantity, f.liquidity) for f in taker] == [(10_100, 1000, Liquidity.TAKER)]
    assert engine.markets["BTC-USD"].book.depth() == ([(10_200, 1000)], [])


def test_amend_to_at_or_below_filled_closes_the_order() -> None:
    engine = market_engine()
    ask = order_id(place(engine, "a", "BTC-USD", "sell", "0.5", "100"))
    place(engine, "b", "BTC-USD", "buy", "0.2", "100")
    events = engine.apply(c.AmendOrder(order_id=ask, quantity=D("0.2")))
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.reason, cancelled.filled_quantity) == (CancelReason.AMENDED_TO_FILLED, 2000)
    assert ask not in engine.orders
    assert engine.accounts["a"].balances["BTC"].held == 0


def test_cancel_errors_have_stable_codes_and_change_nothing() -> None:
    engine = market_engine()
    filled = order_id(place(engine, "a", "BTC-USD", "sell", "0.1", "100"))
    place(engine, "b", "BTC-USD", "buy", "0.1", "100")
    resting = order_id(place(engine, "a", "BTC-USD", "sell", "0.1", "105"))
    before = engine.state_hash()
    assert one(engine.apply(c.CancelOrder(order_id=filled)), ev.CommandRejected).code == "conflict"
    assert one(engine.apply(c.CancelOrder(order_id=999)), ev.CommandRejected).code == "not_found"
    assert (
        one(engine.apply(c.CancelOrder(order_id=resting, account_id="b")), ev.CommandRejected).code
        == "forbidden"
    )
    assert engine.state_hash() == before
    events = engine.apply(c.CancelOrder(order_id=resting, account_id="a"))
    assert one(events, ev.OrderCancelled).reason is CancelReason.USER
    assert one(events, ev.BookChanged).asks == ((10_500, 0),)


def test_cancel_all_per_account_and_market() -> None:
    engine = engine_with(spot_spec(), spot_spec("ETH-USD", base="ETH"), accounts={"a": {**RICH, "ETH": "10"}})
    a1 = order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "90"))
    a2 = order_id(place(engine, "a", "BTC-USD", "sell", "0.1", "110"))
    e1 = order_id(place(engine, "a", "ETH-USD", "buy", "0.1", "90"))
    events = engine.apply(c.CancelAll(account_id="a", market="BTC-USD"))
    assert sorted(e.order_id for e in of_type(events, ev.OrderCancelled)) == [a1, a2]
    assert list(engine.orders) == [e1]
    events = engine.apply(c.CancelAll(account_id="a"))
    assert [e.order_id for e in of_type(events, ev.OrderCancelled)] == [e1]
    assert engine.accounts["a"].balances["USD"].held == 0


def test_book_sequence_increases_by_exactly_one_per_book_change() -> None:
    engine = market_engine()
    sequences = []
    for price in ("100", "101", "102"):
        sequences += [
            e.sequence for e in of_type(place(engine, "a", "BTC-USD", "sell", "0.1", price), ev.BookChanged)
        ]
    sequences += [
        e.sequence for e in of_type(place(engine, "b", "BTC-USD", "buy", "0.3", "102"), ev.BookChanged)
    ]
    assert sequences == [1, 2, 3, 4]
    assert engine.markets["BTC-USD"].book_sequence == 4


def test_repeated_client_order_id_creates_nothing() -> None:
    engine = market_engine()
    first = order_id(place(engine, "a", "BTC-USD", "buy", "0.1", "90", client_order_id="my-1"))
    before = engine.state_hash()
    assert place(engine, "a", "BTC-USD", "buy", "0.10", "90.00", client_order_id="my-1") == []
    assert engine.state_hash() == before
    # the same id with other parameters is a conflict (issue 11), still creating nothing
    refused = one(place(engine, "a", "BTC-USD", "buy", "0.2", "91", client_order_id="my-1"), ev.OrderRejected)
    assert refused.code is Code.CONFLICT
    assert engine.state_hash() == before
    assert engine.order_id_for("a", "my-1") == first
    # another account may use the same client id
    expect_no_rejection(place(engine, "b", "BTC-USD", "buy", "0.1", "90", client_order_id="my-1"))
