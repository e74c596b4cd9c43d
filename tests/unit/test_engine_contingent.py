"""Contingent orders in the engine: brackets, otos and ocos with exact fills, prices, fees, holds and P&L.

Spot book BTC-USD (tick 0.01, lot 0.0001, maker 0.1 %, taker 0.2 %): `t` trades with 1,000 USD, `m`
makes the market (10,000 USD, 10 BTC), `x` trades against `m` to move the last price.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tests.engine_support import (
    balance,
    binary_spec,
    engine_with,
    expect_no_rejection,
    of_type,
    one,
    perp_spec,
    place,
    spot_spec,
)
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, MarketStatus, OrderClass, OrderStatus, OrderType, Venue
from tradehall.domain.errors import Code
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine

BTC = 100_000_000  # minor units of one BTC
LOTS = 10_000  # lots of one BTC


def spot_engine() -> Engine:
    return engine_with(
        spot_spec(),
        accounts={
            "t": {"USD": "1000"},
            "m": {"USD": "10000", "BTC": "10"},
            "x": {"USD": "10000", "BTC": "10"},
        },
    )


def bracket(
    engine: Engine, quantity: str = "1", price: str | None = "100", **fields: Any
) -> list[ev.AnyEvent]:
    terms: dict[str, Any] = {"order_class": "bracket", "take_profit": D("110"), "stop_loss": D("95")}
    terms.update(fields)
    if price is None:
        terms.setdefault("type", "market")
    return place(engine, "t", "BTC-USD", "buy", quantity, price, **terms)


def legs_of(events: list[ev.AnyEvent], parent: int) -> list[ev.OrderAccepted]:
    return [e for e in of_type(events, ev.OrderAccepted) if e.parent_order_id == parent]


def trade_at(engine: Engine, price: str, quantity: str = "0.01") -> list[ev.AnyEvent]:
    """`x` sells to `m` at `price`: moves the last trade price (both rest nothing afterwards)."""
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", quantity, price))
    return expect_no_rejection(place(engine, "x", "BTC-USD", "sell", quantity, price))


def entered(engine: Engine) -> tuple[int, int, int]:
    """A 1 BTC bracket entry filled as taker at 100 (fee 0.20): (entry, take-profit, stop-loss) ids."""
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "100"))
    events = expect_no_rejection(bracket(engine))
    entry = events[0]
    assert isinstance(entry, ev.OrderAccepted)
    take, stop = legs_of(events, entry.order_id)
    return entry.order_id, take.order_id, stop.order_id


def test_a_bracket_entry_that_fills_places_both_exits_sharing_one_hold() -> None:
    engine = spot_engine()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "100"))
    events = expect_no_rejection(bracket(engine))
    entry = events[0]
    assert isinstance(entry, ev.OrderAccepted)
    assert (entry.order_class, entry.take_profit, entry.stop_loss) == (OrderClass.BRACKET, 11_000, 9_500)
    fill = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert [(f.price, f.quantity, f.fee) for f in fill] == [(10_000, LOTS, 20)]
    take, stop = legs_of(events, entry.order_id)
    assert (take.type, take.side, take.price, take.quantity, take.status) == (
        OrderType.LIMIT,
        "sell",
        11_000,
        LOTS,
        OrderStatus.OPEN,
    )
    assert (stop.type, stop.stop_price, stop.quantity, stop.status) == (
        OrderType.STOP,
        9_500,
        LOTS,
        OrderStatus.PENDING_TRIGGER,
    )
    assert take.order_class is stop.order_class is OrderClass.BRACKET
    assert balance(engine, "t") == (100_000 - 10_000 - 20, 0)
    assert balance(engine, "t", "BTC") == (BTC, BTC)  # one hold for both exits
    orders = engine.orders
    assert (orders[take.order_id].hold, orders[stop.order_id].hold) == (BTC, 0)
    assert orders[take.order_id].oco_with == stop.order_id and orders[stop.order_id].oco_with == take.order_id
    check_invariants(engine)


def test_bracket_win_the_take_profit_fills_and_cancels_the_stop() -> None:
    engine = spot_engine()
    _, take, stop = entered(engine)
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "110"))
    filled = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert [(f.order_id, f.price, f.quantity, f.fee, f.realized_pnl) for f in filled] == [
        (take, 11_000, LOTS, 11, 1_000)
    ]
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (stop, CancelReason.OCO)
    # 1,000 - 100.00 - 0.20 + 110.00 - 0.11
    assert balance(engine, "t") == (100_969, 0)
    assert balance(engine, "t", "BTC") == (0, 0)
    assert engine.orders == {}
    check_invariants(engine)


def test_bracket_loss_the_stop_fires_ends_the_take_profit_and_sells_at_the_bid_after_the_gap() -> None:
    engine = spot_engine()
    _, take, stop = entered(engine)
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "94.5"))
    events = trade_at(engine, "95")  # last 95 <= stop 95: fires
    assert one(events, ev.OrderTriggered).order_id == stop
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (take, CancelReason.OCO)
    filled = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    # the bid at 95 was taken by the trade that fired it: the stop sells at 94.50, fee 0.189 -> 0.19
    assert [(f.order_id, f.price, f.quantity, f.fee, f.realized_pnl) for f in filled] == [
        (stop, 9_450, LOTS, 19, -550)
    ]
    assert balance(engine, "t") == (100_000 - 10_000 - 20 + 9_450 - 19, 0)
    assert balance(engine, "t", "BTC") == (0, 0)
    assert engine.markets["BTC-USD"].positions["t"].realized == -550
    check_invariants(engine)


def test_a_partial_entry_fill_places_exits_of_its_size_and_later_fills_grow_them() -> None:
    engine = spot_engine()
    events = expect_no_rejection(bracket(engine))
    entry = events[0].order_id  # type: ignore[attr-defined]
    assert legs_of(events, entry) == []  # nothing filled, nothing to protect yet
    assert balance(engine, "t") == (100_000, 10_000 + 20)  # the entry holds as any buy: 100.00 + fee bound
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.4", "100"))
    take, stop = legs_of(events, entry)
    assert (take.quantity, stop.quantity) == (4_000, 4_000)
    assert balance(engine, "t", "BTC") == (40_000_000, 40_000_000)
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.6", "100"))
    grown = {e.order_id: (e.quantity, e.priority_lost) for e in of_type(events, ev.OrderAmended)}
    assert grown == {take.order_id: (LOTS, True), stop.order_id: (LOTS, False)}
    orders = engine.orders
    assert (orders[take.order_id].remaining, orders[stop.order_id].remaining) == (LOTS, LOTS)
    assert balance(engine, "t", "BTC") == (BTC, BTC)
    # maker fills: 0.04 + 0.06 of fees, the entry's hold released entirely
    assert balance(engine, "t") == (100_000 - 10_000 - 4 - 6, 0)
    check_invariants(engine)


def test_a_partial_take_profit_fill_shrinks_the_stop_and_the_rest_cancels_it() -> None:
    engine = spot_engine()
    _, take, stop = entered(engine)
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "0.3", "110"))
    shrunk = one(events, ev.OrderAmended)
    assert (shrunk.order_id, shrunk.quantity, shrunk.stop_price) == (stop, 7_000, 9_500)
    assert balance(engine, "t", "BTC") == (70_000_000, 70_000_000)
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "0.7", "110"))
    assert (one(events, ev.OrderCancelled).order_id, one(events, ev.OrderCancelled).reason) == (
        stop,
        CancelReason.OCO,
    )
    assert take not in engine.orders and stop not in engine.orders
    check_invariants(engine)


def test_an_oco_exits_a_held_position_and_a_fill_of_one_leg_cancels_the_other() -> None:
    engine = spot_engine()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "1", "100"))
    expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "1", "100"))
    events = expect_no_rejection(
        place(
            engine, "t", "BTC-USD", "sell", "1", None, type="limit", order_class="oco",
            take_profit=D("110"), stop_loss=D("95"), stop_loss_limit=D("94"),
        )
    )  # fmt: skip
    take, stop = of_type(events, ev.OrderAccepted)
    assert (take.order_class, take.price, take.parent_order_id) == (OrderClass.OCO, 11_000, None)
    assert (stop.type, stop.stop_price, stop.price, stop.parent_order_id) == (
        OrderType.STOP_LIMIT,
        9_500,
        9_400,
        take.order_id,
    )
    assert balance(engine, "t", "BTC") == (BTC, BTC)
    events = expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "110"))
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (stop.order_id, CancelReason.OCO)
    assert balance(engine, "t") == (100_000 - 10_000 - 20 + 11_000 - 11, 0)
    check_invariants(engine)


def test_an_oco_needs_a_position_to_exit() -> None:
    engine = spot_engine()
    oco: dict[str, Any] = {"order_class": "oco", "take_profit": D("110"), "stop_loss": D("95")}
    refused = one(place(engine, "t", "BTC-USD", "sell", "1", None, **oco), ev.OrderRejected)
    assert refused.code is Code.INVALID_ORDER
    assert "exits a position" in refused.reason
    perp = engine_with(perp_spec(), accounts={"p": {"USD": "10000"}})
    refused = one(place(perp, "p", "BTC-PERP", "sell", "0.1", None, **oco), ev.OrderRejected)
    assert (refused.code, refused.reason) == (
        Code.INVALID_ORDER,
        "an oco exits a position: there is no position of that size to close",
    )


def test_cancelling_the_entry_before_any_fill_cancels_the_bracket() -> None:
    engine = spot_engine()
    entry = expect_no_rejection(bracket(engine))[0].order_id  # type: ignore[attr-defined]
    events = expect_no_rejection(engine.apply(c.CancelOrder(order_id=entry, account_id="t")))
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [
        (entry, CancelReason.USER)
    ]
    assert engine.orders == {}
    assert balance(engine, "t") == (100_000, 0)
    # a market entry that finds nothing places no exits either
    events = expect_no_rejection(bracket(engine, price=None))
    assert len(of_type(events, ev.OrderAccepted)) == 1 and engine.orders == {}


def test_cancelling_one_exit_leaves_the_other_working_alone() -> None:
    engine = spot_engine()
    _, take, stop = entered(engine)
    events = expect_no_rejection(engine.apply(c.CancelOrder(order_id=take, account_id="t")))
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [(take, CancelReason.USER)]
    alone = engine.orders[stop]
    assert (alone.status, alone.oco_with, alone.hold) == (OrderStatus.PENDING_TRIGGER, None, 0)
    assert balance(engine, "t", "BTC") == (BTC, 0)  # a stop market order holds when it fires
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "1", "94"))
    events = trade_at(engine, "95")
    filled = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert [(f.order_id, f.price, f.quantity) for f in filled] == [(stop, 9_400, LOTS)]
    check_invariants(engine)

    engine = spot_engine()
    _, take, stop = entered(engine)
    expect_no_rejection(engine.apply(c.CancelOrder(order_id=stop, account_id="t")))
    kept = engine.orders[take]
    assert (kept.status, kept.oco_with, kept.hold) == (OrderStatus.OPEN, None, BTC)
    check_invariants(engine)


def test_the_exits_prices_move_and_their_size_follows_the_entry() -> None:
    engine = spot_engine()
    _, take, stop = entered(engine)
    moved = one(
        expect_no_rejection(engine.apply(c.AmendOrder(order_id=take, price=D("112")))), ev.OrderAmended
    )
    assert (moved.price, moved.priority_lost) == (11_200, True)
    assert engine.orders[take].oco_with == stop and engine.orders[take].hold == BTC
    moved = one(
        expect_no_rejection(engine.apply(c.AmendOrder(order_id=stop, stop_price=D("97")))), ev.OrderAmended
    )
    assert moved.stop_price == 9_700
    assert engine.orders[stop].hold == 0  # still riding on the take-profit's hold
    for amend in (
        c.AmendOrder(order_id=stop, stop_price=D("113")),  # above the take-profit
        c.AmendOrder(order_id=take, price=D("96")),  # below the stop-loss
        c.AmendOrder(order_id=take, quantity=D("0.5")),
        c.AmendOrder(order_id=stop, quantity=D("0.5")),
    ):
        refused = one(engine.apply(amend), ev.CommandRejected)
        assert refused.code is Code.INVALID_ORDER, amend
    assert balance(engine, "t", "BTC") == (BTC, BTC)
    check_invariants(engine)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"take_profit": D("99")}, "take_profit 99 must be above the entry price 100"),
        ({"stop_loss": D("101")}, "stop_loss 101 must be below the entry price 100"),
        ({"stop_loss": D("100")}, "stop_loss 100 must be below the entry price 100"),
        ({"take_profit": D("110.001")}, "take_profit"),
        ({"take_profit": D("-1")}, "take_profit must be positive"),
        ({"take_profit": D("0")}, "take_profit must be positive"),
        ({"stop_loss_limit": D("96")}, "stop_loss limit_price must be at or below its stop_price"),
        ({"order_class": "oto"}, "an oto order has one exit"),
        ({"order_class": "weird"}, "order_class 'weird' is not one of"),
        ({"take_profit": None}, "needs take_profit and stop_loss"),
        (
            {"price": None, "type": "stop", "stop_price": D("101")},
            "a bracket order is a market or limit order",
        ),
        (
            {"order_class": "simple", "take_profit": None, "stop_loss": None, "stop_loss_limit": D("94")},
            "needs",
        ),
    ],
)
def test_a_contingent_order_with_bad_exits_is_refused_and_changes_nothing(
    fields: dict[str, Any], detail: str
) -> None:
    engine = spot_engine()
    before = engine.state_hash()
    price = fields.pop("price", "100")
    refused = one(bracket(engine, price=price, **fields), ev.OrderRejected)
    assert refused.code is Code.INVALID_ORDER
    assert detail in refused.reason
    assert engine.state_hash() == before


def test_plain_exit_prices_on_a_simple_order_make_a_bracket_or_an_oto() -> None:
    engine = spot_engine()
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "2", "100"))
    events = expect_no_rejection(
        place(engine, "t", "BTC-USD", "buy", "1", "100", take_profit=D("110"), stop_loss=D("95"))
    )
    assert events[0].order_class is OrderClass.BRACKET  # type: ignore[attr-defined]
    assert len(legs_of(events, events[0].order_id)) == 2  # type: ignore[attr-defined]
    events = expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "0.5", "100", stop_loss=D("95")))
    assert events[0].order_class is OrderClass.OTO  # type: ignore[attr-defined]
    (leg,) = legs_of(events, events[0].order_id)  # type: ignore[attr-defined]
    assert (leg.type, leg.quantity, leg.stop_price) == (OrderType.STOP, 5_000, 9_500)
    assert engine.orders[leg.order_id].hold == 0  # alone, a stop market order holds when it fires
    check_invariants(engine)


def test_a_perp_bracket_reserves_the_position_once_and_a_short_is_mirrored() -> None:
    engine = engine_with(perp_spec(), accounts={"p": {"USD": "10000"}, "q": {"USD": "10000"}})
    expect_no_rejection(place(engine, "q", "BTC-PERP", "buy", "0.1", "20000"))
    events = expect_no_rejection(
        place(engine, "p", "BTC-PERP", "short", "0.1", "20000", order_class="bracket",
              take_profit=D("19000"), stop_loss=D("21000"))
    )  # fmt: skip
    entry = events[0].order_id  # type: ignore[attr-defined]
    take, stop = legs_of(events, entry)
    assert (take.side, take.price, take.reduce_only) == ("buy", 38_000, True)
    assert (stop.side, stop.stop_price, stop.reduce_only) == ("buy", 42_000, True)
    position = engine.markets["BTC-PERP"].positions["p"]
    assert (position.quantity, position.reserved_buy) == (-100, 100)  # reserved once, by the take-profit
    check_invariants(engine)


TIER = TierSpec(
    name="risk",
    starting_balance=D("10000"),
    profit_target=D("0.5"),
    max_daily_loss=D("0"),
    max_total_loss=D("0.5"),
    max_risk_per_trade=D("0.01"),
)


def test_risk_per_trade_counts_the_distance_to_the_stop_and_the_exit_fee() -> None:
    engine = engine_with(spot_spec(), accounts={"m": {"USD": "100000", "BTC": "10"}})
    engine.apply(c.Configure(tiers={"risk": TIER}))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind="assessment", tier="risk"))
    )  # type: ignore[arg-type]
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "10", "1000"))
    # 1 BTC at 1,000, a stop at 900.20: 99.80 of distance + 0.2 % of 900.20 (1.8004 -> 1.81) = 101.61
    refused = one(place(engine, "p", "BTC-USD", "buy", "1", "1000", stop_loss=D("900.2")), ev.OrderRejected)
    assert refused.code is Code.RISK_LIMIT_EXCEEDED
    # a stop at 901.80: 98.20 + 1.8036 -> 1.81 = 100.01 > 100; at 901.81: 98.19 + 1.81 = 100.00 passes
    assert one(
        place(engine, "p", "BTC-USD", "buy", "1", "1000", stop_loss=D("901.8")), ev.OrderRejected
    ).code is (Code.RISK_LIMIT_EXCEEDED)
    expect_no_rejection(place(engine, "p", "BTC-USD", "buy", "1", "1000", stop_loss=D("901.81")))
    # a stop at the entry price is no zero risk: it is refused as invalid
    refused = one(place(engine, "p", "BTC-USD", "buy", "1", "1000", stop_loss=D("1000")), ev.OrderRejected)
    assert refused.code is Code.INVALID_ORDER


def test_a_settled_or_voided_market_ends_the_exits_with_its_reason() -> None:
    for command, reason in (
        (c.SettleMarket(market="FED-CUT", outcome="yes"), CancelReason.MARKET_SETTLED),  # type: ignore[arg-type]
        (c.VoidMarket(market="FED-CUT"), CancelReason.MARKET_VOIDED),
    ):
        engine = engine_with(binary_spec(), accounts={"b": {"USD": "1000"}, "s": {"USD": "1000"}})
        expect_no_rejection(place(engine, "s", "FED-CUT", "no", "10", "0.6"))
        events = expect_no_rejection(
            place(engine, "b", "FED-CUT", "yes", "10", "0.4", order_class="bracket",
                  take_profit=D("0.6"), stop_loss=D("0.3"))
        )  # fmt: skip
        legs = [leg.order_id for leg in legs_of(events, events[0].order_id)]  # type: ignore[attr-defined]
        assert len(legs) == 2
        events = expect_no_rejection(engine.apply(command))
        assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [
            (i, reason) for i in legs
        ]
        assert engine.orders == {}
        check_invariants(engine)


def test_a_failed_assessment_ends_the_exits_with_assessment_ended() -> None:
    tier = TierSpec(
        name="tight", starting_balance=D("1000"), profit_target=D("0.5"), max_daily_loss=D("0"),
        max_total_loss=D("0.05"),
    )  # fmt: skip
    engine = engine_with(spot_spec(), accounts={"m": {"USD": "100000", "BTC": "10"}, "x": {"BTC": "10"}})
    engine.apply(c.Configure(tiers={"tight": tier}))
    expect_no_rejection(
        engine.apply(c.OpenAccount(account_id="p", owner="p", kind="assessment", tier="tight"))
    )  # type: ignore[arg-type]
    expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "5", "100"))
    events = expect_no_rejection(
        place(engine, "p", "BTC-USD", "buy", "5", "100", order_class="bracket", take_profit=D("120"),
              stop_loss=D("80"))
    )  # fmt: skip
    legs = [leg.order_id for leg in legs_of(events, events[0].order_id)]  # type: ignore[attr-defined]
    events = expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-USD", price=D("40"))))
    ended = {e.order_id: e.reason for e in of_type(events, ev.OrderCancelled)}
    assert {i: ended[i] for i in legs} == dict.fromkeys(legs, CancelReason.ASSESSMENT_ENDED)
    check_invariants(engine)


def quote_engine() -> Engine:
    spec = spot_spec(venue=Venue.QUOTE, slippage=D("0.001"))
    engine = engine_with(spec, accounts={"t": {"USD": "1000"}})
    expect_no_rejection(engine.apply(c.Quote(market="BTC-USD", bid=D("99.9"), ask=D("100"))))
    return engine


def test_on_a_quote_venue_a_bracket_fills_with_slippage_and_the_stop_gaps_to_the_quote_after_the_gap() -> (
    None
):
    engine = quote_engine()
    events = expect_no_rejection(bracket(engine, price=None))
    entry = events[0].order_id  # type: ignore[attr-defined]
    (fill,) = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert (fill.price, fill.fee) == (10_010, 21)  # ask 100 + 0.1 % = 100.10; 0.2 % = 0.2002 -> 0.21
    take, stop = legs_of(events, entry)
    assert engine.orders[stop.order_id].trigger == "bid_ask"
    # the bid gaps from 99.90 to 90: the stop (bid <= 95) sells at 90 less slippage, not at 95
    events = expect_no_rejection(engine.apply(c.Quote(market="BTC-USD", bid=D("90"), ask=D("90.1"))))
    cancelled = one(events, ev.OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (take.order_id, CancelReason.OCO)
    (sold,) = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert (sold.order_id, sold.price, sold.quantity, sold.fee) == (stop.order_id, 8_991, LOTS, 18)
    assert balance(engine, "t") == (100_000 - 10_010 - 21 + 8_991 - 18, 0)
    check_invariants(engine)


def test_on_a_quote_venue_the_take_profit_fills_at_its_limit_when_the_bid_reaches_it() -> None:
    engine = quote_engine()
    events = expect_no_rejection(bracket(engine, price=None))
    take, stop = legs_of(events, events[0].order_id)  # type: ignore[attr-defined]
    events = expect_no_rejection(engine.apply(c.Quote(market="BTC-USD", bid=D("111"), ask=D("111.1"))))
    (sold,) = [f for f in of_type(events, ev.OrderFilled) if f.account_id == "t"]
    assert (sold.order_id, sold.price, sold.fee) == (take.order_id, 11_000, 11)  # maker 0.1 %
    assert one(events, ev.OrderCancelled).order_id == stop.order_id
    check_invariants(engine)


# --- a restart (snapshot and restore) in the middle of each scenario continues identically ---------


def scenario_commands() -> dict[str, list[c.Command]]:
    def order(account: str, side: str, quantity: str, price: str | None, **fields: Any) -> c.PlaceOrder:
        return c.PlaceOrder(
            account_id=account, market="BTC-USD", side=side, quantity=D(quantity),  # type: ignore[arg-type]
            price=None if price is None else D(price), **fields,
        )  # fmt: skip

    exits: dict[str, Any] = {"order_class": "bracket", "take_profit": D("110"), "stop_loss": D("95")}
    return {
        "win": [
            order("m", "sell", "1", "100"),
            order("t", "buy", "1", "100", **exits),
            order("m", "buy", "1", "110"),
        ],
        "loss": [
            order("m", "sell", "1", "100"), order("t", "buy", "1", "100", **exits),
            order("m", "buy", "1", "94.5"), order("m", "buy", "0.01", "95"), order("x", "sell", "0.01", "95"),
        ],
        "partial": [
            order("t", "buy", "1", "100", **exits), order("m", "sell", "0.4", "100"),
            order("m", "buy", "0.2", "110"), order("m", "sell", "0.6", "100"),
            order("m", "buy", "0.8", "110"),
        ],
        "oco": [
            order("m", "sell", "1", "100"), order("t", "buy", "1", "100"),
            order("t", "sell", "1", None, order_class="oco", take_profit=D("110"), stop_loss=D("95")),
            order("m", "buy", "0.3", "110"), c.AmendOrder(order_id=3, price=D("111")),
            order("m", "buy", "0.7", "111"),
        ],
        "cancel leg": [
            order("m", "sell", "1", "100"), order("t", "buy", "1", "100", **exits),
            c.CancelOrder(order_id=3), order("m", "buy", "1", "94"),
            order("m", "buy", "0.01", "95"), order("x", "sell", "0.01", "95"),
        ],
        "amend leg": [
            order("m", "sell", "1", "100"), order("t", "buy", "1", "100", **exits),
            c.AmendOrder(order_id=4, stop_price=D("98")), c.AmendOrder(order_id=3, price=D("105")),
            order("m", "buy", "1", "105"),
        ],
        "halt": [
            order("t", "buy", "1", "100", **exits), order("m", "sell", "0.4", "100"),
            c.SetMarketStatus(market="BTC-USD", status=MarketStatus.HALTED),
            c.SetMarketStatus(market="BTC-USD", status=MarketStatus.OPEN),
            order("m", "sell", "0.6", "100"),
            order("m", "buy", "0.01", "94"), order("x", "sell", "0.01", "94"),
        ],
    }  # fmt: skip


@pytest.mark.parametrize("name", list(scenario_commands()))
def test_a_restart_at_any_point_of_a_scenario_continues_exactly_like_the_original(name: str) -> None:
    commands = scenario_commands()[name]
    reference = spot_engine()
    expected = [expect_no_rejection(reference.apply(command)) for command in commands]
    for cut in range(len(commands) + 1):
        engine = spot_engine()
        for command in commands[:cut]:
            engine.apply(command)
        restored = Engine.restore(engine.snapshot())
        assert restored.state_hash() == engine.state_hash()
        check_invariants(restored)
        assert [restored.apply(command) for command in commands[cut:]] == expected[cut:], (name, cut)
        assert restored.state_hash() == reference.state_hash()


def test_a_liquidation_ends_the_exits_with_liquidation() -> None:
    engine = engine_with(perp_spec(), accounts={"a": {"USD": "1100"}, "b": {"USD": "1000000"}})
    expect_no_rejection(place(engine, "b", "BTC-PERP", "short", "1", "10000"))
    events = expect_no_rejection(
        place(engine, "a", "BTC-PERP", "long", "1", "10000", order_class="bracket",
              take_profit=D("11000"), stop_loss=D("9000"))
    )  # fmt: skip
    legs = [leg.order_id for leg in legs_of(events, events[0].order_id)]  # type: ignore[attr-defined]
    assert (
        engine.markets["BTC-PERP"].positions["a"].reserved_sell == 1_000
    )  # covered once, by the take-profit
    events = expect_no_rejection(engine.apply(c.MarkPrice(market="BTC-PERP", price=D("9370"))))
    one(events, ev.PositionLiquidated)
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled) if e.order_id in legs] == [
        (leg, CancelReason.LIQUIDATION) for leg in legs
    ]
    assert not any(o.account_id == "a" for o in engine.orders.values())
    check_invariants(engine)


def test_a_repeated_client_order_id_compares_the_class_and_the_stop_limit_too() -> None:
    engine = spot_engine()
    terms: dict[str, Any] = {"client_order_id": "k-1", "take_profit": D("110"), "stop_loss": D("95")}
    first = expect_no_rejection(bracket(engine, **terms))
    assert engine.apply(c.PlaceOrder(**{**placement(), **terms, "order_class": "bracket"})) == []  # the same
    for other in ({"stop_loss_limit": D("94")}, {"order_class": "oto", "take_profit": None}):
        refused = one(
            engine.apply(c.PlaceOrder(**{**placement(), **terms, "order_class": "bracket", **other})),
            ev.OrderRejected,
        )
        assert refused.code is Code.CONFLICT, other
    assert engine.order_id_for("t", "k-1") == first[0].order_id  # type: ignore[attr-defined]


def placement() -> dict[str, Any]:
    return {"account_id": "t", "market": "BTC-USD", "side": "buy", "quantity": D("1"), "price": D("100")}
