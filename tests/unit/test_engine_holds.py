"""Holds where covered and uncovered orders of one account meet, and holds when leverage changes.

The holds invariant (engine/holds.py) is checked on random streams by
tests/property/test_engine_holds_properties.py; these are the two cases it found, with exact figures.
"""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import balance, engine_with, of_type, order_id, perp_spec, place
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.domain import events as ev


def test_a_covered_order_filling_after_an_uncovered_one_in_the_same_match_finds_its_hold() -> None:
    engine = engine_with(
        perp_spec(), accounts={"a": {"USD": "60"}, "b": {"USD": "100000"}, "s": {"USD": "100000"}}
    )
    place(engine, "a", "BTC-PERP", "sell", "0.02", "20000")
    place(engine, "b", "BTC-PERP", "buy", "0.02", "20000")
    assert balance(engine, "a") == (6000, 4000)  # short 20 lots, 40.00 USD margin
    lower = order_id(place(engine, "a", "BTC-PERP", "buy", "0.01", "19999"))  # covers 10 lots
    upper = order_id(
        place(engine, "a", "BTC-PERP", "buy", "0.012", "19999.5")
    )  # covers the other 10, opens 2
    assert (engine.orders[lower].covered, engine.orders[lower].hold) == (10, 10)  # the fee bound only
    assert (engine.orders[upper].covered, engine.orders[upper].hold) == (10, 413)  # 2 lots' margin + 1 + fee
    # one taker fills the upper order first: its 12 lots close 12 (10 its own cover, 2 the lower order's),
    # so the lower order's last 2 lots open a long, paid from the upper order's hold for 2 opening lots
    events = place(engine, "s", "BTC-PERP", "sell", "0.022", "19999", time_in_force="ioc")
    fills = [
        (f.order_id, f.quantity, f.price) for f in of_type(events, ev.OrderFilled) if f.account_id == "a"
    ]
    assert fills == [(upper, 12, 39999), (lower, 10, 39998)]
    position = engine.markets["BTC-PERP"].positions["a"]
    assert (position.quantity, position.margin) == (2, 400)
    assert balance(engine, "a") == (6001, 400)  # held is exactly the new position's margin
    assert engine.state.hold_shortfall == 0
    check_invariants(engine)


def test_a_higher_margin_rate_holds_more_for_open_orders_or_is_refused() -> None:
    engine = engine_with(perp_spec(), accounts={"a": {"USD": "100"}})
    order = order_id(place(engine, "a", "BTC-PERP", "buy", "0.005", "20000"))
    assert (engine.orders[order].hold, balance(engine, "a")) == (1006, (10000, 1006))  # 10x: 10.00 + 1 + fee
    events = engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("2")))
    assert [type(e) for e in events] == [ev.LeverageChanged, ev.BalanceChanged]
    assert (engine.orders[order].hold, balance(engine, "a")) == (5006, (10000, 5006))  # 2x: 50.00 + 1 + fee
    refused = engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("1")))
    rejected = refused[0]
    assert isinstance(rejected, ev.CommandRejected) and rejected.code == "insufficient_balance"
    assert rejected.reason == ("its open orders need 50.00 USD more margin at that leverage, 49.94 available")
    assert (engine.orders[order].hold, balance(engine, "a")) == (5006, (10000, 5006))  # nothing changed
    # a lower rate keeps the hold: the slack is given back when the order ends
    engine.apply(c.SetLeverage(account_id="a", market="BTC-PERP", leverage=D("10")))
    assert engine.orders[order].hold == 5006
    engine.apply(c.CancelOrder(order_id=order))
    assert balance(engine, "a") == (10000, 0)
    check_invariants(engine)
