"""A market halt ends the market's contingent orders (`market_halted`) and leaves plain ones waiting.

A bracket's stop-loss or a trailing stop that waited through a halt would fire as a market order on
whatever price the market reopens at, and an entry that filled on reopening would grow exits that no
longer exist, so a halt ends them all with their holds released exactly; plain orders and plain stops
wait, as the halt endpoint says.
"""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import (
    balance,
    engine_with,
    expect_no_rejection,
    of_type,
    perp_spec,
    place,
    spot_spec,
)
from tests.engine_support.streams import check_invariants
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, MarketStatus, OrderStatus
from tradehall.engine import Engine

BTC = 100_000_000  # minor units of one BTC
HALTED = CancelReason.MARKET_HALTED


def set_status(engine: Engine, market: str, status: MarketStatus) -> list[ev.AnyEvent]:
    return expect_no_rejection(engine.apply(c.SetMarketStatus(market=market, status=status)))


def accepted_id(events: list[ev.AnyEvent]) -> int:
    first = events[0]
    assert isinstance(first, ev.OrderAccepted)
    return first.order_id


def test_a_halt_ends_brackets_and_trailing_stops_and_releases_their_holds_exactly() -> None:
    engine = engine_with(
        spot_spec(),
        accounts={
            "t": {"USD": "1000"},
            "m": {"USD": "10000", "BTC": "10"},
            "x": {"USD": "10000", "BTC": "10"},
        },
    )
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "0.01", "100"))
    expect_no_rejection(place(engine, "x", "BTC-USD", "sell", "0.01", "100"))  # last trade 100
    entry_events = expect_no_rejection(
        place(engine, "t", "BTC-USD", "buy", "1", "100", order_class="bracket",
              take_profit=D("110"), stop_loss=D("95"))
    )  # fmt: skip
    entry = accepted_id(entry_events)
    legs = of_type(expect_no_rejection(place(engine, "m", "BTC-USD", "sell", "0.4", "100")), ev.OrderAccepted)
    take, stop = (leg.order_id for leg in legs if leg.parent_order_id == entry)
    plain_buy = accepted_id(expect_no_rejection(place(engine, "t", "BTC-USD", "buy", "1", "60")))
    trailing = accepted_id(
        expect_no_rejection(
            place(engine, "x", "BTC-USD", "sell", "0.1", None, type="trailing_stop", trail_price=D("2"))
        )
    )
    plain_stop = accepted_id(
        expect_no_rejection(
            place(engine, "x", "BTC-USD", "sell", "0.1", None, type="stop", stop_price=D("80"))
        )
    )
    # 0.4 bought as maker at 100 (fee 0.04): the entry held 100.00 + a 0.20 taker-fee bound and keeps
    # what the fill did not use (60.16); the plain buy holds 60.00 + 0.12; the take-profit holds the
    # 0.4 BTC for both exits
    assert balance(engine, "t") == (100_000 - 4_000 - 4, 6_016 + 6_012)
    assert balance(engine, "t", "BTC") == (40_000_000, 40_000_000)

    events = set_status(engine, "BTC-USD", MarketStatus.HALTED)
    assert [(e.order_id, e.reason, e.filled_quantity) for e in of_type(events, ev.OrderCancelled)] == [
        (entry, HALTED, 4_000),
        (take, HALTED, 0),
        (stop, HALTED, 0),
        (trailing, HALTED, 0),
    ]
    cancelled_trailing = next(e for e in of_type(events, ev.OrderCancelled) if e.order_id == trailing)
    assert (cancelled_trailing.hwm, cancelled_trailing.stop_price) == (10_000, 9_800)
    assert sorted(engine.orders) == [plain_buy, plain_stop]  # plain orders and stops wait
    assert engine.orders[plain_stop].status is OrderStatus.PENDING_TRIGGER
    assert balance(engine, "t") == (100_000 - 4_000 - 4, 6_012)  # only the plain buy still holds
    assert balance(engine, "t", "BTC") == (40_000_000, 0)
    check_invariants(engine)

    # a restart while halted brings back exactly the same engine
    restored = Engine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash()

    # reopened: prices through the old exits fire nothing of them; the plain stop still works
    set_status(engine, "BTC-USD", MarketStatus.OPEN)
    expect_no_rejection(place(engine, "m", "BTC-USD", "buy", "0.01", "70"))
    events = expect_no_rejection(place(engine, "x", "BTC-USD", "sell", "0.01", "70"))
    assert [e.order_id for e in of_type(events, ev.OrderTriggered)] == [plain_stop]
    assert engine.orders.keys() == {plain_buy}
    check_invariants(engine)


def test_a_halt_ends_a_perp_oco_and_frees_the_position_it_covered() -> None:
    engine = engine_with(perp_spec(), accounts={"p": {"USD": "10000"}, "q": {"USD": "10000"}})
    expect_no_rejection(place(engine, "q", "BTC-PERP", "short", "0.1", "20000"))
    expect_no_rejection(place(engine, "p", "BTC-PERP", "long", "0.1", "20000"))
    usd_before = balance(engine, "p")
    events = expect_no_rejection(
        place(engine, "p", "BTC-PERP", "sell", "0.1", None, type="limit", order_class="oco",
              take_profit=D("21000"), stop_loss=D("19000"))
    )  # fmt: skip
    take, stop = (e.order_id for e in of_type(events, ev.OrderAccepted))
    position = engine.markets["BTC-PERP"].positions["p"]
    assert (position.quantity, position.reserved_sell) == (100, 100)
    assert balance(engine, "p")[1] > usd_before[1]  # the take-profit holds its fee bound

    events = set_status(engine, "BTC-PERP", MarketStatus.HALTED)
    assert [(e.order_id, e.reason) for e in of_type(events, ev.OrderCancelled)] == [
        (take, HALTED),
        (stop, HALTED),
    ]
    assert (position.quantity, position.reserved_sell) == (100, 0)
    assert balance(engine, "p") == usd_before
    assert engine.orders == {}
    check_invariants(engine)
