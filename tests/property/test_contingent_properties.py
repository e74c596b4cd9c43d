"""Hypothesis properties of contingent orders: random streams where prices walk (trades and marks)
among brackets, otos and ocos (entries that fill in parts, exits that fill, trigger, are moved and
cancelled, market halts that end them) keep every engine invariant (holds equal what orders hold, a
waiting pair holds once, no exit can close more than the position, conservation), the reference book
gives the same events, and a snapshot restore mid-stream continues identically."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support.streams import (
    LOT,
    MID,
    SIDES,
    STEP,
    check_invariants,
    contingent_terms,
    other_commands,
    place_orders,
)
from tests.property.test_trailing_stop_properties import (
    flattened,
    prepared,
    price_moves,
    run,
    ticks_near,
)
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import CancelReason, MarketStatus, OrderClass
from tradehall.engine import Engine
from tradehall.engine.book_reference import ReferenceBook

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKETS = tuple(MID)


@st.composite
def contingent_orders(draw: st.DrawFn) -> c.Command:
    """A bracket, oto or oco whose entry and exits sit within the range the prices walk."""
    market = draw(st.sampled_from(MARKETS))
    kind = draw(st.sampled_from(("bracket", "bracket", "oco")))
    side = draw(st.sampled_from(SIDES[market]))
    ticks = ticks_near(market, draw(st.integers(-4, 4)))
    fields: dict[str, Any] = {
        "account_id": draw(st.sampled_from(("a", "b", "c"))),
        "market": market,
        "side": side,
        "quantity": LOT[market] * draw(st.integers(1, 8)),
        "price": STEP[market] * ticks,
    }
    fields.update(contingent_terms(draw, market, ticks, kind, side))
    return c.PlaceOrder(**fields)


@st.composite
def leg_amends(draw: st.DrawFn) -> c.Command:
    """A new price or stop price (or a refused quantity) for one of the stream's orders."""
    order_id = draw(st.integers(7, 40))
    market = draw(st.sampled_from(MARKETS))
    ticks = ticks_near(market, draw(st.integers(-10, 10)))
    what = draw(st.sampled_from(("price", "stop_price", "quantity")))
    if what == "quantity":
        return c.AmendOrder(order_id=order_id, quantity=LOT[market] * draw(st.integers(1, 8)))
    return c.AmendOrder(order_id=order_id, **{what: STEP[market] * ticks})


@st.composite
def halts(draw: st.DrawFn) -> list[c.Command]:
    """A halt (which ends the market's contingent orders) and the resume after it."""
    market = draw(st.sampled_from(MARKETS))
    return [
        c.SetMarketStatus(market=market, status=MarketStatus.HALTED),
        c.SetMarketStatus(market=market, status=MarketStatus.OPEN),
    ]


def contingent_streams() -> st.SearchStrategy[list[c.Command]]:
    one = st.one_of(
        contingent_orders(),
        contingent_orders(),
        contingent_orders(),
        price_moves(),
        price_moves(),
        price_moves(),
        price_moves(),
        place_orders(),
        other_commands(),
        leg_amends(),
        halts(),
    )

    return flattened(one)


@SETTINGS
@given(stream=contingent_streams())
def test_invariants_hold_with_contingent_orders_after_every_command(stream: list[c.Command]) -> None:
    run(prepared(), stream, check=True)


@SETTINGS
@given(stream=contingent_streams())
def test_the_reference_book_gives_the_same_events_with_contingent_orders(stream: list[c.Command]) -> None:
    assert run(prepared(), stream) == run(prepared(ReferenceBook), stream)


@SETTINGS
@given(stream=contingent_streams(), data=st.data())
def test_a_restore_mid_stream_continues_identically_with_contingent_orders(
    stream: list[c.Command], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(stream)))
    original = prepared()
    run(original, stream[:cut])
    restored = Engine.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    check_invariants(restored)
    assert run(restored, stream[cut:]) == run(original, stream[cut:])
    assert restored.state_hash() == original.state_hash()


def test_the_streams_exercise_exits_that_fill_trigger_and_cancel_each_other() -> None:
    """The streams above are worth running: across a fixed sample, exits are placed, filled, fired
    and ended by their sibling (a guard against a generator that only produces refusals)."""
    seen: Counter[str] = Counter()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(stream=contingent_streams())
    def sample(stream: list[c.Command]) -> None:
        engine = prepared()
        legs: set[int] = set()
        for events in run(engine, stream):
            for event in events:
                if isinstance(event, ev.OrderAccepted) and event.parent_order_id is not None:
                    legs.add(event.order_id)
                    seen["leg placed"] += 1
                elif isinstance(event, ev.OrderAccepted) and event.order_class is OrderClass.OCO:
                    legs.add(event.order_id)  # an oco is its take-profit
                    seen["oco placed"] += 1
                elif isinstance(event, ev.OrderFilled) and event.order_id in legs:
                    seen["leg filled"] += 1
                elif isinstance(event, ev.OrderTriggered) and event.order_id in legs:
                    seen["leg fired"] += 1
                elif isinstance(event, ev.OrderCancelled) and event.reason is CancelReason.OCO:
                    seen["oco cancel"] += 1
                elif isinstance(event, ev.OrderAmended) and event.order_id in legs:
                    seen["leg amended"] += 1
                elif isinstance(event, ev.OrderCancelled) and event.reason is CancelReason.MARKET_HALTED:
                    seen["halt cancel"] += 1

    sample()
    for what in (
        "leg placed",
        "oco placed",
        "leg filled",
        "leg fired",
        "oco cancel",
        "leg amended",
        "halt cancel",
    ):
        assert seen[what] > 0, (what, seen)
