"""Hypothesis properties of trailing stops: random streams where prices walk (trades and marks) among
trailing stops of every kind keep the engine's invariants (the stop books included), the reference book
gives the same events, and a snapshot restore mid-stream continues identically."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support.streams import (
    LOT,
    MID,
    SIDES,
    STEP,
    check_invariants,
    other_commands,
    place_orders,
    setup_commands,
    trailing_terms,
)
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.engine import Engine
from tradehall.engine.book_reference import ReferenceBook

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKETS = tuple(MID)


def ticks_near(market: str, offset: int) -> int:
    return MID[market] + offset if market != "FED-CUT" else min(99, max(1, 50 + offset))


def seed_prices() -> list[c.Command]:
    """A trade at the middle of every market (the last price) and a mark, so trailing stops start trailing."""
    commands: list[c.Command] = []
    for market in MARKETS:
        price = STEP[market] * ticks_near(market, 0)
        for account, side in (("a", "sell"), ("b", "buy")):
            commands.append(
                c.PlaceOrder(account_id=account, market=market, side=side, quantity=LOT[market], price=price)  # type: ignore[arg-type]
            )
        commands.append(c.MarkPrice(market=market, price=price))
    return commands


@st.composite
def trailing_stops(draw: st.DrawFn) -> c.Command:
    market = draw(st.sampled_from(MARKETS))
    fields: dict[str, Any] = {
        "account_id": draw(st.sampled_from(("a", "b", "c"))),
        "market": market,
        "side": draw(st.sampled_from(SIDES[market])),
        "quantity": LOT[market] * draw(st.integers(1, 20)),
    }
    fields.update(trailing_terms(draw, market, ticks_near(market, 0)))
    return c.PlaceOrder(**fields)


@st.composite
def price_moves(draw: st.DrawFn) -> c.Command | list[c.Command]:
    """A trade (a crossing pair of limits) or a mark a few ticks from the middle: prices walk both ways."""
    market = draw(st.sampled_from(MARKETS))
    price = STEP[market] * ticks_near(market, draw(st.integers(-12, 12)))
    if market != "FED-CUT" and draw(st.booleans()):
        return c.MarkPrice(market=market, price=price)
    seller, buyer = draw(st.sampled_from((("a", "b"), ("b", "a"), ("c", "a"))))
    quantity = LOT[market] * draw(st.integers(1, 5))
    return [
        c.PlaceOrder(account_id=seller, market=market, side="sell", quantity=quantity, price=price),  # type: ignore[arg-type]
        c.PlaceOrder(account_id=buyer, market=market, side="buy", quantity=quantity, price=price),  # type: ignore[arg-type]
    ]


@st.composite
def retrails(draw: st.DrawFn) -> c.Command:
    """A new trail for one of the stream's first orders (the seed takes ids 1 to 6); a trail of 0.5
    is on every market's grid."""
    order_id = draw(st.integers(7, 30))
    if draw(st.booleans()):
        percent = Decimal(draw(st.sampled_from(("0.05", "0.5", "3"))))
        return c.AmendOrder(order_id=order_id, trail_percent=percent)
    return c.AmendOrder(order_id=order_id, trail_price=Decimal("0.5") * draw(st.integers(1, 3)))


def trailing_streams() -> st.SearchStrategy[list[c.Command]]:
    one = st.one_of(
        trailing_stops(),
        trailing_stops(),
        price_moves(),
        price_moves(),
        price_moves(),
        place_orders(),
        other_commands(),
        retrails(),
        retrails(),
    )

    return flattened(one)


def flattened(one: st.SearchStrategy[Any]) -> st.SearchStrategy[list[c.Command]]:
    """Streams of 5 to 70 draws of `one`, a draw being a command or a list of them, flattened."""

    def flatten(items: list[c.Command | list[c.Command]]) -> list[c.Command]:
        out: list[c.Command] = []
        for item in items:
            out.extend(item if isinstance(item, list) else [item])
        return out

    return st.lists(one, min_size=5, max_size=70).map(flatten)


def run(engine: Engine, commands: list[c.Command], check: bool = False) -> list[list[ev.AnyEvent]]:
    produced = []
    for command in commands:
        produced.append(engine.apply(command))
        if check:
            check_invariants(engine)
    return produced


def prepared(book_factory: Any = None) -> Engine:
    engine = Engine() if book_factory is None else Engine(book_factory=book_factory)
    run(engine, setup_commands() + seed_prices())
    return engine


@SETTINGS
@given(stream=trailing_streams())
def test_invariants_hold_with_trailing_stops_after_every_command(stream: list[c.Command]) -> None:
    run(prepared(), stream, check=True)


@SETTINGS
@given(stream=trailing_streams())
def test_the_reference_book_gives_the_same_events_with_trailing_stops(stream: list[c.Command]) -> None:
    assert run(prepared(), stream) == run(prepared(ReferenceBook), stream)


@SETTINGS
@given(stream=trailing_streams(), data=st.data())
def test_a_restore_mid_stream_continues_identically(stream: list[c.Command], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(stream)))
    original = prepared()
    run(original, stream[:cut])
    restored = Engine.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    check_invariants(restored)
    assert run(restored, stream[cut:]) == run(original, stream[cut:])
    assert restored.state_hash() == original.state_hash()
